//! Broker adapters: a pure codec plus a description of the broker (URLs, auth, limits,
//! keepalive rules, REST endpoints). The engine does all I/O, reconnection, resubscription,
//! backoff and watchdogs for every adapter; an adapter never owns a socket.

pub mod angel;
pub mod kite;
pub mod noren;

use crate::model::{FeedKey, Instrument, Mode, Tick};
use crate::secret::Secret;
use std::time::Duration;

/// One outbound WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// What one inbound message meant, after the codec appended any ticks to the output vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Market data: ticks were appended; `skipped` packets of unknown kind were dropped.
    Ticks {
        /// Packets skipped because their kind/length is unknown.
        skipped: usize,
    },
    /// A keepalive from the server; proves the transport, never the data.
    Heartbeat,
    /// An informational broker message (shown in the event log).
    Notice(String),
    /// A broker error message on an open connection (connection kept).
    ServerError(String),
    /// An order postback or other message the feed does not use.
    Ignored,
}

/// Why an upstream attempt or session failed, for health and for the engine's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Credentials rejected (HTTP 401/403 on upgrade, TokenException on REST): never retried
    /// with the same token.
    Auth,
    /// Connection limit / rate limit (HTTP 429): retried with backoff.
    RateLimited,
    /// TCP connect failed (refused, unreachable, DNS).
    Connect,
    /// Handshake did not finish within the connect timeout.
    Timeout,
    /// Server closed the connection (close frame or EOF).
    Closed,
    /// Transport watchdog: no frame at all within the transport timeout.
    TransportStall,
    /// Data watchdog: no tick for any subscribed instrument within `stale_after`.
    DataStale,
    /// Malformed frame from the server (counted; connection kept).
    Protocol,
    /// The server reported an error on an open connection.
    Server,
    /// A subscription request we refused (limit, unknown instrument).
    Subscription,
    /// Anything else (I/O error, unexpected HTTP status).
    Other,
}

impl ErrorKind {
    /// Snake-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::TransportStall => "transport_stall",
            ErrorKind::DataStale => "data_stale",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Server => "server",
            ErrorKind::Subscription => "subscription",
            ErrorKind::Other => "other",
        }
    }
}

/// A codec error: malformed input from the network. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame is empty.
    #[error("empty frame")]
    Empty,
    /// The frame ended before the declared data.
    #[error("truncated frame: needed {needed} bytes at offset {offset}, have {have}")]
    Truncated {
        /// Offset where the read started.
        offset: usize,
        /// Bytes needed from there.
        needed: usize,
        /// Bytes available from there.
        have: usize,
    },
    /// Bytes left over after the declared packets.
    #[error("{extra} trailing bytes after {packets} packets")]
    Trailing {
        /// Packets decoded.
        packets: usize,
        /// Bytes left over.
        extra: usize,
    },
    /// A text message that is not valid for the protocol.
    #[error("bad text message: {0}")]
    BadText(String),
}

/// Broker limits the engine enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum instruments on one connection (Kite 3000).
    pub max_instruments: usize,
    /// Maximum tokens in one subscribe/unsubscribe/mode message.
    pub batch: usize,
}

/// Credentials for one broker account. Secrets are redacted in Debug and Display.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// API key (Kite `api_key`).
    pub api_key: Secret,
    /// Access token (Kite `access_token`).
    pub access_token: Secret,
}

/// Endpoints of one broker, configurable so the engine can talk to any server speaking the
/// protocol (the simulator, a staging host).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// WebSocket root, e.g. `wss://ws.kite.trade`.
    pub ws_url: String,
    /// REST root, e.g. `https://api.kite.trade`.
    pub rest_url: String,
}

/// Per-connection decoder state (some protocols merge deltas into snapshots).
pub trait Decoder: Send {
    /// Decode one binary message, appending ticks to `out`.
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError>;
    /// Decode one text message, appending ticks to `out`.
    fn text(&mut self, data: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError>;
}

/// Result of a REST token check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// The token is valid; the string names the account (user id).
    Valid(String),
    /// The broker rejected the token (the message is safe to show: no secrets).
    Invalid(String),
    /// The check could not be made (network, 5xx): the engine proceeds to connect.
    Unknown(String),
}

/// A broker: codec plus description. Implementations are pure apart from `check_token` and
/// `fetch_instruments`, which the engine calls with its own HTTP client.
pub trait Adapter: Send + Sync + 'static {
    /// Short broker name (`kite`).
    fn name(&self) -> &'static str;
    /// Broker limits.
    fn limits(&self) -> Limits;
    /// Default transport watchdog (no frame at all).
    fn transport_timeout(&self) -> Duration;
    /// The WebSocket URL for these credentials (auth may live in the query string).
    fn ws_url(&self, endpoints: &Endpoints, creds: &Credentials) -> String;
    /// Extra HTTP headers for the upgrade request (header-auth brokers).
    fn ws_headers(&self, _creds: &Credentials) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Messages to send right after the upgrade (login for Noren); none for Kite.
    fn login(&self, _creds: &Credentials) -> Vec<WsOut> {
        Vec::new()
    }
    /// Map an HTTP status that refused the upgrade to an error kind.
    fn classify_rejection(&self, status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::Auth,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Other,
        }
    }
    /// A new decoder for a new connection.
    fn decoder(&self) -> Box<dyn Decoder>;
    /// Messages that subscribe these keys in these modes, batched within the broker's limits.
    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut>;
    /// Messages that change the mode of already-subscribed keys.
    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut>;
    /// Messages that unsubscribe these keys.
    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut>;
    /// Client keepalive the broker expects (interval and message), if any.
    fn keepalive(&self) -> Option<(Duration, WsOut)> {
        None
    }
    /// Resolve `EXCHANGE:SYMBOL` from a loaded instrument master (CSV text).
    fn parse_instruments(&self, text: &str) -> Result<Vec<Instrument>, String>;
    /// REST path of the instrument master.
    fn instruments_path(&self) -> &'static str;
    /// REST request that validates a token: (path, headers).
    fn token_check_request(&self, creds: &Credentials) -> (String, Vec<(String, String)>);
    /// Interpret the token-check response.
    fn token_check_response(&self, status: u16, body: &str) -> TokenCheck;
}
