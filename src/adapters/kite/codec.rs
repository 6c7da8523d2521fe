//! Kite Connect ticker codec (pure, no I/O): binary big-endian tick frames and JSON text
//! messages, both directions (the simulator uses the server side).

use crate::adapters::CodecError;
use crate::model::{Mode, Tick};

/// What a decoded binary frame held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameInfo {
    /// The frame was the 1-byte heartbeat.
    pub heartbeat: bool,
    /// Packets decoded into ticks.
    pub packets: usize,
    /// Packets of unknown length, skipped.
    pub skipped: usize,
}

/// Decode one binary frame, appending ticks to `out`. All-or-nothing: on error `out` is left
/// as it was.
pub fn decode_frame(_buf: &[u8], _out: &mut Vec<Tick>) -> Result<FrameInfo, CodecError> {
    todo!("kite decode_frame")
}

/// A server text message.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMessage {
    /// `{"type":"error","data":"..."}`
    Error(String),
    /// `{"type":"message","data":"..."}`
    Message(String),
    /// `{"type":"order","data":{...}}`
    Order(serde_json::Value),
}

/// Decode a server text message.
pub fn decode_text(_s: &str) -> Result<TextMessage, CodecError> {
    todo!("kite decode_text")
}

/// Encode a server text message (simulator side).
pub fn encode_text(_m: &TextMessage) -> String {
    todo!()
}

/// `{"a":"subscribe","v":[...]}`
pub fn encode_subscribe(_tokens: &[u32]) -> String {
    todo!()
}

/// `{"a":"unsubscribe","v":[...]}`
pub fn encode_unsubscribe(_tokens: &[u32]) -> String {
    todo!()
}

/// `{"a":"mode","v":["ltp"|"quote"|"full",[...]]}`
pub fn encode_mode(_mode: Mode, _tokens: &[u32]) -> String {
    todo!()
}

/// A client request as the server sees it (simulator side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Subscribe tokens (server default mode: quote).
    Subscribe(Vec<u32>),
    /// Unsubscribe tokens.
    Unsubscribe(Vec<u32>),
    /// Set mode for tokens.
    Mode(Mode, Vec<u32>),
}

/// Decode a client request (simulator side).
pub fn decode_request(_s: &str) -> Result<Request, CodecError> {
    todo!()
}

/// Encode ticks into one frame (simulator side). Each tick is encoded per its `mode` and
/// `tradable` flag (LTP 8, index 28/32, quote 44, full 184).
pub fn encode_frame(_ticks: &[Tick], _out: &mut Vec<u8>) {
    todo!()
}
