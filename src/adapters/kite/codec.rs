//! Kite Connect ticker codec (pure, no I/O): binary big-endian tick frames and JSON text
//! messages, both directions (the simulator uses the server side).
//!
//! Wire format: `shared/protocols/brokers.md` §1.3. A frame is a u16 packet count N followed by
//! N × (u16 length, packet); the packet kind is chosen by its length only (8 LTP, 28 index
//! quote, 32 index full, 44 quote, 184 full) and other lengths are skipped, as pykiteconnect
//! does. Unlike pykiteconnect (which slices past the end silently), a frame whose declared
//! lengths do not match its size is an error, and nothing from it is kept.
//!
//! Signedness (a deliberate departure from pykiteconnect, which reads every field as `>I`):
//! - prices (LTP, average, OHLC, depth prices, index price change) are **i32**: negative prices
//!   exist (NYMEX-linked crude futures traded below zero in April 2020), and reading them
//!   unsigned turns -1.00 into 42949672.95. For every non-negative value below 2^31 — all the
//!   test vectors — the result is identical to pykiteconnect's.
//! - quantities, volume and OI are **u32** widened to u64 (they are never negative and may
//!   exceed 2^31 for volume); depth order counts are **u16** (client reads `>H`).
//! - timestamps are **u32** epoch seconds widened to i64, as pykiteconnect reads them, so they
//!   stay valid past 2038.
//!
//! `change` is not taken from the wire: like pykiteconnect it is computed as
//! `(last_price - close) * 100 / close` in f64 rupees (0 when close is 0), so it matches the
//! official client bit for bit.

use crate::adapters::CodecError;
use crate::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};
use serde_json::Value;
use std::fmt::Write as _;

/// Packet length of an LTP packet (any segment).
pub const LTP_LEN: usize = 8;
/// Packet length of an index quote packet.
pub const INDEX_QUOTE_LEN: usize = 28;
/// Packet length of an index full packet (quote plus exchange timestamp).
pub const INDEX_FULL_LEN: usize = 32;
/// Packet length of a quote packet (tradable instruments).
pub const QUOTE_LEN: usize = 44;
/// Packet length of a full packet (quote, OI, timestamps and 5+5 depth).
pub const FULL_LEN: usize = 184;

/// Segment code of indices (`token & 0xff`); index packets are not tradable.
pub const SEG_INDICES: u16 = 9;

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

/// Price divisor of a Kite segment: CDS (3) 1e7, BCD (6) and NCO (12) 1e4, else 100.
#[inline]
pub fn divisor(seg: u16) -> i64 {
    match seg {
        3 => 10_000_000,
        6 | 12 => 10_000,
        _ => 100,
    }
}

/// Percent change of `ltp` over `close` exactly as pykiteconnect computes it (0 when close is 0).
#[inline]
pub fn change_percent(ltp: Price, close: Price) -> f64 {
    if close.0 == 0 {
        return 0.0;
    }
    let (lp, c) = (ltp.to_f64(), close.to_f64());
    (lp - c) * 100.0 / c
}

/// The 1-byte heartbeat frame the server sends when idle.
#[inline]
pub fn encode_heartbeat() -> [u8; 1] {
    [0]
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decode one binary frame, appending ticks to `out`. All-or-nothing: on error `out` is left
/// as it was.
///
/// # Errors
/// `Empty` for an empty buffer, `Truncated` when a length or packet runs past the end,
/// `Trailing` when bytes remain after the declared packets.
pub fn decode_frame(buf: &[u8], out: &mut Vec<Tick>) -> Result<FrameInfo, CodecError> {
    let start = out.len();
    let r = decode_into(buf, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn decode_into(buf: &[u8], out: &mut Vec<Tick>) -> Result<FrameInfo, CodecError> {
    let Some((count, mut rest)) = buf.split_first_chunk::<2>() else {
        return if buf.is_empty() {
            Err(CodecError::Empty)
        } else {
            Ok(FrameInfo {
                heartbeat: true,
                ..FrameInfo::default()
            })
        };
    };
    let count = u16::from_be_bytes(*count) as usize;
    // One reservation per frame; bounded by what the buffer can hold (the smallest known packet
    // takes 10 bytes with its prefix) so a hostile count cannot make us allocate megabytes.
    out.reserve(count.min(rest.len() / (2 + LTP_LEN)));
    let mut info = FrameInfo::default();
    for _ in 0..count {
        let offset = buf.len() - rest.len();
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return Err(CodecError::Truncated {
                offset,
                needed: 2,
                have: rest.len(),
            });
        };
        let len = u16::from_be_bytes(*len) as usize;
        let Some((pkt, tail)) = tail.split_at_checked(len) else {
            return Err(CodecError::Truncated {
                offset: offset + 2,
                needed: len,
                have: tail.len(),
            });
        };
        rest = tail;
        // The conversions to fixed-size arrays cannot fail after the length match; they make
        // every field read below a compile-time-checked constant index. Each arm pushes its
        // own tick: a shared `Option<Tick>` push made every kind pay a full ~400-byte copy,
        // while per-kind pushes let the compiler store only the fields that kind has.
        let pushed = match len {
            FULL_LEN => pkt.try_into().map(|p| push_full(p, out)).is_ok(),
            QUOTE_LEN => pkt.try_into().map(|p| out.push(quote(p))).is_ok(),
            LTP_LEN => pkt.try_into().map(|p| out.push(ltp(p))).is_ok(),
            INDEX_QUOTE_LEN => pkt.try_into().map(|p| out.push(index_quote(p))).is_ok(),
            INDEX_FULL_LEN => pkt.try_into().map(|p| out.push(index_full(p))).is_ok(),
            _ => false,
        };
        if pushed {
            info.packets += 1;
        } else {
            info.skipped += 1;
        }
    }
    if !rest.is_empty() {
        return Err(CodecError::Trailing {
            packets: count,
            extra: rest.len(),
        });
    }
    Ok(info)
}

/// Big-endian i32 at a constant offset; the const assertion makes an out-of-range read a
/// compile error, so no runtime bounds check (and no panic path) remains.
#[inline(always)]
fn i32_at<const AT: usize, const N: usize>(p: &[u8; N]) -> i32 {
    const { assert!(AT + 4 <= N) };
    i32::from_be_bytes([p[AT], p[AT + 1], p[AT + 2], p[AT + 3]])
}

/// Big-endian u32 at a constant offset.
#[inline(always)]
fn u32_at<const AT: usize, const N: usize>(p: &[u8; N]) -> u32 {
    const { assert!(AT + 4 <= N) };
    u32::from_be_bytes([p[AT], p[AT + 1], p[AT + 2], p[AT + 3]])
}

/// Per-packet scaling: one division per packet instead of one per price field.
#[derive(Clone, Copy)]
struct Scale {
    key: FeedKey,
    tradable: bool,
    /// `Price::SCALE / divisor`, so `Price(raw * mul) == Price::from_raw(raw, divisor)`.
    mul: i64,
}

impl Scale {
    #[inline(always)]
    fn of(token: u32) -> Scale {
        let key = FeedKey::kite(token);
        Scale {
            key,
            tradable: key.seg != SEG_INDICES,
            // Spelled out rather than `Price::SCALE / divisor(seg)`: a hardware divide per
            // packet was the largest single cost of decoding. `scaled_price_equals_from_raw`
            // keeps the two in step.
            mul: match key.seg {
                3 => 1,
                6 | 12 => 1_000,
                _ => 100_000,
            },
        }
    }

    #[inline(always)]
    fn price(self, raw: i32) -> Price {
        // |raw| < 2^31 and mul <= 1e5, so the product cannot overflow (from_raw saturates; no
        // need here).
        Price(i64::from(raw) * self.mul)
    }
}

#[inline(always)]
fn qty(v: u32) -> u64 {
    u64::from(v)
}

fn ltp(p: &[u8; LTP_LEN]) -> Tick {
    let s = Scale::of(u32_at::<0, _>(p));
    Tick {
        key: s.key,
        mode: Mode::Ltp,
        tradable: s.tradable,
        ltp: s.price(i32_at::<4, _>(p)),
        quote: None,
        depth: None,
    }
}

/// Index packets: LTP then high, low, open, close (H,L,O,C, unlike the quote packet); bytes
/// 24-28 carry an absolute price change we ignore, recomputing `change` like pykiteconnect.
#[inline(always)]
fn index_common<const N: usize>(p: &[u8; N], mode: Mode, exchange_time: Option<i64>) -> Tick {
    let s = Scale::of(u32_at::<0, _>(p));
    let ltp = s.price(i32_at::<4, _>(p));
    let ohlc = Ohlc {
        high: s.price(i32_at::<8, _>(p)),
        low: s.price(i32_at::<12, _>(p)),
        open: s.price(i32_at::<16, _>(p)),
        close: s.price(i32_at::<20, _>(p)),
    };
    Tick {
        key: s.key,
        mode,
        tradable: s.tradable,
        ltp,
        quote: Some(Quote {
            ohlc,
            change: change_percent(ltp, ohlc.close),
            exchange_time,
            ..Quote::default()
        }),
        depth: None,
    }
}

fn index_quote(p: &[u8; INDEX_QUOTE_LEN]) -> Tick {
    index_common(p, Mode::Quote, None)
}

fn index_full(p: &[u8; INDEX_FULL_LEN]) -> Tick {
    index_common(p, Mode::Depth, Some(i64::from(u32_at::<28, _>(p))))
}

/// The first 44 bytes, shared by quote and full packets.
#[inline(always)]
fn quote_common<const N: usize>(p: &[u8; N], s: Scale) -> (Price, Quote) {
    let ltp = s.price(i32_at::<4, _>(p));
    let ohlc = Ohlc {
        open: s.price(i32_at::<28, _>(p)),
        high: s.price(i32_at::<32, _>(p)),
        low: s.price(i32_at::<36, _>(p)),
        close: s.price(i32_at::<40, _>(p)),
    };
    let q = Quote {
        last_quantity: qty(u32_at::<8, _>(p)),
        average_price: s.price(i32_at::<12, _>(p)),
        volume: qty(u32_at::<16, _>(p)),
        total_buy_quantity: qty(u32_at::<20, _>(p)),
        total_sell_quantity: qty(u32_at::<24, _>(p)),
        ohlc,
        change: change_percent(ltp, ohlc.close),
        ..Quote::default()
    };
    (ltp, q)
}

fn quote(p: &[u8; QUOTE_LEN]) -> Tick {
    let s = Scale::of(u32_at::<0, _>(p));
    let (ltp, q) = quote_common(p, s);
    Tick {
        key: s.key,
        mode: Mode::Quote,
        tradable: s.tradable,
        ltp,
        quote: Some(q),
        depth: None,
    }
}

/// One depth entry: qty u32, price i32, orders u16, 2 bytes padding.
#[inline(always)]
fn level<const AT: usize>(p: &[u8; FULL_LEN], s: Scale) -> Level {
    // `AT + 4` cannot be a const generic argument on stable, so index directly: the assertion
    // proves every index in range at compile time and the checks fold away.
    const { assert!(AT + 12 <= FULL_LEN) };
    let price = i32::from_be_bytes([p[AT + 4], p[AT + 5], p[AT + 6], p[AT + 7]]);
    Level {
        quantity: qty(u32_at::<AT, _>(p)),
        price: s.price(price),
        orders: u32::from(u16::from_be_bytes([p[AT + 8], p[AT + 9]])),
    }
}

/// Decode a full packet straight into `out`. The tick is pushed without depth and the depth is
/// then written in place: building the whole ~400-byte tick first and pushing it cost a
/// stack-to-heap copy that took a third of the decode time.
fn push_full(p: &[u8; FULL_LEN], out: &mut Vec<Tick>) {
    let s = Scale::of(u32_at::<0, _>(p));
    let (ltp, mut q) = quote_common(p, s);
    q.last_trade_time = Some(i64::from(u32_at::<44, _>(p)));
    q.oi = qty(u32_at::<48, _>(p));
    q.oi_day_high = qty(u32_at::<52, _>(p));
    q.oi_day_low = qty(u32_at::<56, _>(p));
    q.exchange_time = Some(i64::from(u32_at::<60, _>(p)));
    out.push(Tick {
        key: s.key,
        mode: Mode::Depth,
        tradable: s.tradable,
        ltp,
        quote: Some(q),
        depth: None,
    });
    if let Some(t) = out.last_mut() {
        t.depth = Some(Depth {
            buy: [
                level::<64>(p, s),
                level::<76>(p, s),
                level::<88>(p, s),
                level::<100>(p, s),
                level::<112>(p, s),
            ],
            sell: [
                level::<124>(p, s),
                level::<136>(p, s),
                level::<148>(p, s),
                level::<160>(p, s),
                level::<172>(p, s),
            ],
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (server side: simulator, benches, tests)
// ---------------------------------------------------------------------------------------------

/// Packet length `encode_frame` uses for a tick: from its mode and whether it is tradable.
#[inline]
pub fn packet_len(mode: Mode, tradable: bool) -> usize {
    match (mode, tradable) {
        (Mode::Ltp, _) => LTP_LEN,
        (Mode::Quote, true) => QUOTE_LEN,
        (Mode::Quote, false) => INDEX_QUOTE_LEN,
        (Mode::Depth, true) => FULL_LEN,
        (Mode::Depth, false) => INDEX_FULL_LEN,
    }
}

/// Encode ticks into one frame (simulator side). Each tick is encoded per its `mode` and
/// `tradable` flag (LTP 8, index 28/32, quote 44, full 184).
///
/// The inverse of [`decode_frame`] for ticks that fit the wire: values outside the wire types
/// saturate (prices to i32 raw units, quantities to u32, orders to u16, timestamps to u32;
/// a missing timestamp is 0), absent quote/depth parts are zeros, and `change` is not sent
/// (the client recomputes it). The index "price change" field is `ltp - close` in raw units.
///
/// # Panics
/// If `ticks.len() > 65535`: the packet count is a u16; split larger batches into frames.
pub fn encode_frame(ticks: &[Tick], out: &mut Vec<u8>) {
    assert!(
        ticks.len() <= usize::from(u16::MAX),
        "a Kite frame holds at most 65535 packets, got {}",
        ticks.len()
    );
    let body: usize = ticks
        .iter()
        .map(|t| 2 + packet_len(t.mode, t.tradable))
        .sum();
    out.reserve(2 + body);
    out.extend_from_slice(&(ticks.len() as u16).to_be_bytes());
    for t in ticks {
        encode_packet(t, out);
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn sat_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn put_time(out: &mut Vec<u8>, t: Option<i64>) {
    put_u32(out, t.map_or(0, |t| t.clamp(0, i64::from(u32::MAX)) as u32));
}

fn encode_packet(t: &Tick, out: &mut Vec<u8>) {
    let len = packet_len(t.mode, t.tradable);
    let div = divisor((t.key.token & 0xff) as u16);
    let raw = |p: Price| sat_i32(p.to_raw(div));
    let q = t.quote.unwrap_or_default();
    out.extend_from_slice(&(len as u16).to_be_bytes());
    put_u32(out, t.key.token);
    put_i32(out, raw(t.ltp));
    match len {
        LTP_LEN => {}
        INDEX_QUOTE_LEN | INDEX_FULL_LEN => {
            put_i32(out, raw(q.ohlc.high));
            put_i32(out, raw(q.ohlc.low));
            put_i32(out, raw(q.ohlc.open));
            put_i32(out, raw(q.ohlc.close));
            put_i32(
                out,
                sat_i32(t.ltp.to_raw(div).saturating_sub(q.ohlc.close.to_raw(div))),
            );
            if len == INDEX_FULL_LEN {
                put_time(out, q.exchange_time);
            }
        }
        _ => {
            put_u32(out, sat_u32(q.last_quantity));
            put_i32(out, raw(q.average_price));
            put_u32(out, sat_u32(q.volume));
            put_u32(out, sat_u32(q.total_buy_quantity));
            put_u32(out, sat_u32(q.total_sell_quantity));
            put_i32(out, raw(q.ohlc.open));
            put_i32(out, raw(q.ohlc.high));
            put_i32(out, raw(q.ohlc.low));
            put_i32(out, raw(q.ohlc.close));
            if len == FULL_LEN {
                put_time(out, q.last_trade_time);
                put_u32(out, sat_u32(q.oi));
                put_u32(out, sat_u32(q.oi_day_high));
                put_u32(out, sat_u32(q.oi_day_low));
                put_time(out, q.exchange_time);
                let d = t.depth.unwrap_or_default();
                for l in d.buy.iter().chain(d.sell.iter()) {
                    put_u32(out, sat_u32(l.quantity));
                    put_i32(out, raw(l.price));
                    let orders = u16::try_from(l.orders).unwrap_or(u16::MAX);
                    out.extend_from_slice(&orders.to_be_bytes());
                    out.extend_from_slice(&[0, 0]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text messages
// ---------------------------------------------------------------------------------------------

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

/// Longest excerpt of offending input quoted in a `BadText` error.
const SNIPPET: usize = 80;

/// At most `SNIPPET` characters of `s`, so a hostile megabyte never lands in a log line.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn bad(what: &str, input: &str) -> CodecError {
    CodecError::BadText(format!("{what}: {}", snippet(input)))
}

/// Decode a server text message.
///
/// # Errors
/// `BadText` (with at most ~80 characters of the input) for anything but a JSON object with
/// `type` error/message/order and a `data` field.
pub fn decode_text(s: &str) -> Result<TextMessage, CodecError> {
    let v: Value = serde_json::from_str(s).map_err(|_| bad("not JSON", s))?;
    let Value::Object(mut obj) = v else {
        return Err(bad("not a JSON object", s));
    };
    let Some(Value::String(kind)) = obj.get("type") else {
        return Err(bad("no string \"type\"", s));
    };
    // Brokers sometimes send non-string data for error/message; keep it readable as JSON.
    let text = |d: Option<Value>| match d {
        Some(Value::String(t)) => Ok(t),
        Some(other) => Ok(other.to_string()),
        None => Err(bad("no \"data\"", s)),
    };
    match kind.as_str() {
        "error" => text(obj.remove("data")).map(TextMessage::Error),
        "message" => text(obj.remove("data")).map(TextMessage::Message),
        "order" => obj
            .remove("data")
            .map(TextMessage::Order)
            .ok_or_else(|| bad("no \"data\"", s)),
        other => Err(CodecError::BadText(format!(
            "unknown type {:?}",
            snippet(other)
        ))),
    }
}

/// Encode a server text message (simulator side).
pub fn encode_text(m: &TextMessage) -> String {
    let (kind, data) = match m {
        TextMessage::Error(e) => ("error", Value::String(e.clone())),
        TextMessage::Message(t) => ("message", Value::String(t.clone())),
        TextMessage::Order(o) => ("order", o.clone()),
    };
    serde_json::json!({ "type": kind, "data": data }).to_string()
}

// ---------------------------------------------------------------------------------------------
// Client requests
// ---------------------------------------------------------------------------------------------

fn push_tokens(s: &mut String, tokens: &[u32]) {
    s.push('[');
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{t}");
    }
    s.push(']');
}

fn action(a: &str, tokens: &[u32]) -> String {
    let mut s = String::with_capacity(24 + a.len() + tokens.len() * 9);
    s.push_str("{\"a\":\"");
    s.push_str(a);
    s.push_str("\",\"v\":");
    push_tokens(&mut s, tokens);
    s.push('}');
    s
}

/// Kite's wire name of a mode: Depth is "full".
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Ltp => "ltp",
        Mode::Quote => "quote",
        Mode::Depth => "full",
    }
}

/// `{"a":"subscribe","v":[...]}`
pub fn encode_subscribe(tokens: &[u32]) -> String {
    action("subscribe", tokens)
}

/// `{"a":"unsubscribe","v":[...]}`
pub fn encode_unsubscribe(tokens: &[u32]) -> String {
    action("unsubscribe", tokens)
}

/// `{"a":"mode","v":["ltp"|"quote"|"full",[...]]}`
pub fn encode_mode(mode: Mode, tokens: &[u32]) -> String {
    let mut s = String::with_capacity(32 + tokens.len() * 9);
    s.push_str("{\"a\":\"mode\",\"v\":[\"");
    s.push_str(mode_name(mode));
    s.push_str("\",");
    push_tokens(&mut s, tokens);
    s.push_str("]}");
    s
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

fn token_list(v: Option<&Value>, s: &str) -> Result<Vec<u32>, CodecError> {
    let Some(Value::Array(items)) = v else {
        return Err(bad("expected an array of tokens", s));
    };
    items
        .iter()
        .map(|t| {
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| bad("token is not a u32", s))
        })
        .collect()
}

/// Decode a client request (simulator side).
///
/// # Errors
/// `BadText` for anything but subscribe/unsubscribe with a u32 array or mode with
/// `[ltp|quote|full, [tokens]]`.
pub fn decode_request(s: &str) -> Result<Request, CodecError> {
    let v: Value = serde_json::from_str(s).map_err(|_| bad("not JSON", s))?;
    let Some(Value::String(a)) = v.get("a") else {
        return Err(bad("no string \"a\"", s));
    };
    let val = v.get("v");
    match a.as_str() {
        "subscribe" => token_list(val, s).map(Request::Subscribe),
        "unsubscribe" => token_list(val, s).map(Request::Unsubscribe),
        "mode" => {
            let Some(Value::Array(parts)) = val else {
                return Err(bad("mode needs [mode, [tokens]]", s));
            };
            let [Value::String(m), tokens] = parts.as_slice() else {
                return Err(bad("mode needs [mode, [tokens]]", s));
            };
            let mode = match m.as_str() {
                "ltp" => Mode::Ltp,
                "quote" => Mode::Quote,
                "full" => Mode::Depth,
                _ => return Err(bad("unknown mode (ltp, quote, full)", s)),
            };
            Ok(Request::Mode(mode, token_list(Some(tokens), s)?))
        }
        other => Err(CodecError::BadText(format!(
            "unknown action {:?}",
            snippet(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_price_equals_from_raw() {
        for seg in 0..=255u16 {
            for raw in [0, 1, -1, 157_315, i32::MAX, i32::MIN] {
                let s = Scale::of(0x100 | u32::from(seg));
                assert_eq!(
                    s.price(raw),
                    Price::from_raw(i64::from(raw), divisor(seg)),
                    "seg {seg} raw {raw}"
                );
            }
        }
    }

    #[test]
    fn negative_price_reads_signed() {
        let mut f = vec![0, 1, 0, 8];
        f.extend_from_slice(&408_065u32.to_be_bytes());
        f.extend_from_slice(&(-3_763i32).to_be_bytes());
        let mut out = Vec::new();
        decode_frame(&f, &mut out).unwrap();
        assert_eq!(out[0].ltp.to_f64(), -37.63);
    }

    #[test]
    fn snippet_is_short_and_char_safe() {
        let long = "é".repeat(10_000);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), SNIPPET + 1);
        let CodecError::BadText(m) = decode_text(&long).unwrap_err() else {
            panic!("expected BadText")
        };
        assert!(m.len() < 300, "{m}");
    }
}
