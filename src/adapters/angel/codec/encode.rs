//! Angel encoders: binary packets from packets or ticks and error text (server side, for the
//! simulator), subscribe / unsubscribe / ping (client side), and the request decoder the
//! simulator needs.

use super::{
    AngelDepthLevel, AngelMode, AngelPacket, AngelToken, CodecError, NSE_CM, bad, divisor, snippet,
};
use crate::model::{FeedKey, Price, Tick};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Client heartbeat text; the server answers [`PONG`].
pub const PING: &str = "ping";
/// Server reply to [`PING`].
pub const PONG: &str = "pong";
/// Token subscriptions per session (brokers.md §2.1), also our per-message batch for modes 1–3.
pub const MAX_TOKENS: usize = 1000;
/// Depth-20 tokens per subscribe call (the SDK's quota, enforced client-side).
pub const MAX_DEPTH20_TOKENS: usize = 50;

// ---------------------------------------------------------------------------------------------
// Binary packets (server side)
// ---------------------------------------------------------------------------------------------

fn put(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_level(out: &mut Vec<u8>, l: &AngelDepthLevel) {
    out.extend_from_slice(&l.quantity.to_le_bytes());
    out.extend_from_slice(&l.price.to_le_bytes());
    out.extend_from_slice(&l.orders.to_le_bytes());
}

/// Append the binary message of a packet: exactly `subscription_mode.packet_len()` bytes. A
/// part the mode needs but the packet lacks is written as zeros; Depth-20 packets write zeros
/// where the SDK reads (and drops) a sequence number.
pub fn encode_packet(p: &AngelPacket, out: &mut Vec<u8>) {
    let mode = p.subscription_mode;
    out.reserve(mode.packet_len());
    out.push(mode.wire());
    out.push(p.exchange_type);
    out.extend_from_slice(&p.token.0);
    if mode == AngelMode::Depth20 {
        put(out, 0);
        put(out, p.exchange_timestamp);
        let d = p.depth_20.unwrap_or_default();
        d.buy.iter().chain(&d.sell).for_each(|l| put_level(out, l));
        return;
    }
    put(out, p.sequence_number);
    put(out, p.exchange_timestamp);
    put(out, p.last_traded_price);
    if mode == AngelMode::Ltp {
        return;
    }
    let q = p.quote.unwrap_or_default();
    for v in [
        q.last_traded_quantity,
        q.average_traded_price,
        q.volume_trade_for_the_day,
    ] {
        put(out, v);
    }
    out.extend_from_slice(&q.total_buy_quantity.to_le_bytes());
    out.extend_from_slice(&q.total_sell_quantity.to_le_bytes());
    for v in [
        q.open_price_of_the_day,
        q.high_price_of_the_day,
        q.low_price_of_the_day,
        q.closed_price,
    ] {
        put(out, v);
    }
    if mode == AngelMode::Quote {
        return;
    }
    let s = p.snap_quote.unwrap_or_default();
    put(out, s.last_traded_timestamp);
    put(out, s.open_interest);
    put(out, s.open_interest_change_percentage);
    for e in &s.best_five {
        out.extend_from_slice(&e.flag.to_le_bytes());
        put(out, e.quantity);
        put(out, e.price);
        out.extend_from_slice(&e.orders.to_le_bytes());
    }
    for v in [
        s.upper_circuit_limit,
        s.lower_circuit_limit,
        s.week_52_high_price,
        s.week_52_low_price,
    ] {
        put(out, v);
    }
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sat_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

impl AngelPacket {
    /// The packet a server would send for a tick in `mode` (the inverse of
    /// [`AngelPacket::to_tick`] for ticks that fit the wire): token = the decimal key token,
    /// exchange type = `key.seg` (saturated to u8), prices back to paise, seconds to ms,
    /// SnapQuote best five as five bids (flag 1) then five asks (flag 0), Depth-20 levels 6–20
    /// zero; fields the tick lacks (sequence number, circuits, 52-week range) are zero.
    pub fn from_tick(t: &Tick, mode: AngelMode) -> AngelPacket {
        let exch = u8::try_from(t.key.seg).unwrap_or(u8::MAX);
        let div = divisor(exch);
        let raw = |p: Price| p.to_raw(div);
        let mut p = AngelPacket::empty(mode, exch, AngelToken::from_number(t.key.token));
        let q = t.quote.unwrap_or_default();
        p.exchange_timestamp = q.exchange_time.unwrap_or(0).saturating_mul(1000);
        p.last_traded_price = if mode == AngelMode::Depth20 {
            0
        } else {
            raw(t.ltp)
        };
        if let Some(aq) = p.quote.as_mut() {
            aq.last_traded_quantity = sat_i64(q.last_quantity);
            aq.average_traded_price = raw(q.average_price);
            aq.volume_trade_for_the_day = sat_i64(q.volume);
            aq.total_buy_quantity = q.total_buy_quantity as f64;
            aq.total_sell_quantity = q.total_sell_quantity as f64;
            aq.open_price_of_the_day = raw(q.ohlc.open);
            aq.high_price_of_the_day = raw(q.ohlc.high);
            aq.low_price_of_the_day = raw(q.ohlc.low);
            aq.closed_price = raw(q.ohlc.close);
        }
        let depth = t.depth.unwrap_or_default();
        if let Some(s) = p.snap_quote.as_mut() {
            s.last_traded_timestamp = q.last_trade_time.unwrap_or(0).saturating_mul(1000);
            s.open_interest = sat_i64(q.oi);
            let sides = depth.buy.iter().map(|l| (1, l));
            let sides = sides.chain(depth.sell.iter().map(|l| (0, l)));
            for (e, (flag, l)) in s.best_five.iter_mut().zip(sides) {
                e.flag = flag;
                e.quantity = sat_i64(l.quantity);
                e.price = raw(l.price);
                e.orders = u16::try_from(l.orders).unwrap_or(u16::MAX);
            }
        }
        if let Some(d) = p.depth_20.as_mut() {
            let level = |l: &crate::model::Level| AngelDepthLevel {
                quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
                price: sat_i32(raw(l.price)),
                orders: i16::try_from(l.orders).unwrap_or(i16::MAX),
            };
            for (e, l) in d.buy.iter_mut().zip(&depth.buy) {
                *e = level(l);
            }
            for (e, l) in d.sell.iter_mut().zip(&depth.sell) {
                *e = level(l);
            }
        }
        p
    }
}

/// Append the binary message for a tick in the mode that serves its `mode`
/// ([`AngelMode::for_mode`]: Depth → SnapQuote).
pub fn encode_tick(t: &Tick, out: &mut Vec<u8>) {
    encode_packet(&AngelPacket::from_tick(t, AngelMode::for_mode(t.mode)), out);
}

/// Error text frame, e.g. `{"correlationID":"abcde12345","errorCode":"E1002",
/// "errorMessage":"Invalid Request. Subscription Limit Exceeded"}` (no correlationID key when
/// `None`).
pub fn encode_error(correlation_id: Option<&str>, code: &str, message: &str) -> String {
    let mut o = serde_json::Map::new();
    if let Some(id) = correlation_id {
        o.insert("correlationID".into(), id.into());
    }
    o.insert("errorCode".into(), code.into());
    o.insert("errorMessage".into(), message.into());
    Value::Object(o).to_string()
}

// ---------------------------------------------------------------------------------------------
// Requests (client side) and their decoder (simulator side)
// ---------------------------------------------------------------------------------------------

/// Why a request could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The key's segment is not a SmartAPI exchange type (u8).
    #[error("segment {0} is not a SmartAPI exchange type")]
    Segment(u16),
    /// Depth-20 is served for nse_cm (exchange type 1) only.
    #[error("depth-20 is only available on nse_cm (exchange type 1), not {0}")]
    DepthExchange(u16),
    /// correlationID is at most 10 characters.
    #[error("correlationID {0:?} is longer than 10 characters")]
    CorrelationId(String),
}

/// `action` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 0.
    Unsubscribe = 0,
    /// 1.
    Subscribe = 1,
}

fn request(
    action: Action,
    correlation_id: Option<&str>,
    mode: AngelMode,
    keys: &[FeedKey],
) -> Result<Vec<String>, RequestError> {
    if let Some(id) = correlation_id.filter(|id| id.chars().count() > 10) {
        return Err(RequestError::CorrelationId(id.to_string()));
    }
    // Grouped by exchange type (ascending), tokens in the caller's order within a group.
    let mut groups: BTreeMap<u8, Vec<u32>> = BTreeMap::new();
    for k in keys {
        let exch = u8::try_from(k.seg).map_err(|_| RequestError::Segment(k.seg))?;
        if mode == AngelMode::Depth20 && exch != NSE_CM {
            return Err(RequestError::DepthExchange(k.seg));
        }
        groups.entry(exch).or_default().push(k.token);
    }
    let batch = if mode == AngelMode::Depth20 {
        MAX_DEPTH20_TOKENS
    } else {
        MAX_TOKENS
    };
    let flat: Vec<(u8, u32)> = groups
        .iter()
        .flat_map(|(e, ts)| ts.iter().map(move |t| (*e, *t)))
        .collect();
    let head = match correlation_id {
        Some(id) => format!("{{\"correlationID\":{},", Value::String(id.to_string())),
        None => "{".to_string(),
    };
    Ok(flat
        .chunks(batch)
        .map(|chunk| {
            let mut s = String::with_capacity(head.len() + 64 + chunk.len() * 10);
            s.push_str(&head);
            // Writing to a String cannot fail.
            let _ = write!(
                s,
                "\"action\":{},\"params\":{{\"mode\":{},\"tokenList\":[",
                action as u8,
                mode.wire()
            );
            let mut prev = None;
            for (i, (exch, token)) in chunk.iter().enumerate() {
                if prev != Some(*exch) {
                    if prev.is_some() {
                        s.push_str("]},");
                    }
                    let _ = write!(s, "{{\"exchangeType\":{exch},\"tokens\":[");
                    prev = Some(*exch);
                } else if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "\"{token}\"");
            }
            if prev.is_some() {
                s.push_str("]}");
            }
            s.push_str("]}}");
            s
        })
        .collect())
}

/// Subscribe messages for `keys` in `mode`, grouped by exchange type (seg) into
/// `tokenList` entries, at most [`MAX_TOKENS`] tokens per message ([`MAX_DEPTH20_TOKENS`] for
/// Depth-20). `correlationID` is omitted when `None` (as the SDK's resubscribe does).
///
/// # Errors
/// A seg above 255, a Depth-20 key outside nse_cm, or a correlationID over 10 characters.
pub fn encode_subscribe(
    correlation_id: Option<&str>,
    mode: AngelMode,
    keys: &[FeedKey],
) -> Result<Vec<String>, RequestError> {
    request(Action::Subscribe, correlation_id, mode, keys)
}

/// Unsubscribe messages, batched and grouped as [`encode_subscribe`].
///
/// # Errors
/// As [`encode_subscribe`].
pub fn encode_unsubscribe(
    correlation_id: Option<&str>,
    mode: AngelMode,
    keys: &[FeedKey],
) -> Result<Vec<String>, RequestError> {
    request(Action::Unsubscribe, correlation_id, mode, keys)
}

/// One `tokenList` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGroup {
    /// `exchangeType`.
    pub exchange_type: u8,
    /// `tokens` (strings on the wire; a server rejects non-numeric ones itself).
    pub tokens: Vec<String>,
}

/// The body of a subscribe / unsubscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `correlationID`, if sent.
    pub correlation_id: Option<String>,
    /// `params.mode`.
    pub mode: AngelMode,
    /// `params.tokenList`.
    pub token_list: Vec<TokenGroup>,
}

impl Subscription {
    /// Our keys for every token, or `None` if any token is not numeric.
    pub fn keys(&self) -> Option<Vec<FeedKey>> {
        self.token_list
            .iter()
            .flat_map(|g| {
                g.tokens.iter().map(|t| {
                    AngelToken::new(t)?.number().map(|token| FeedKey {
                        seg: u16::from(g.exchange_type),
                        token,
                    })
                })
            })
            .collect()
    }
}

/// A client message as the server sees it (simulator side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AngelRequest {
    /// Text `ping`.
    Ping,
    /// `action: 1`.
    Subscribe(Subscription),
    /// `action: 0`.
    Unsubscribe(Subscription),
}

fn u8_field(v: Option<&Value>, what: &str, s: &str) -> Result<u8, CodecError> {
    v.and_then(Value::as_u64)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| bad(&format!("{what} is not a small integer"), s))
}

/// Decode a client text message (simulator side): `ping`, or a subscribe / unsubscribe JSON
/// with `action`, `params.mode` 1–4 and `params.tokenList` of `{exchangeType, tokens:[str]}`.
///
/// # Errors
/// `BadText` (with at most ~80 characters of the input) for anything else.
pub fn decode_request(s: &str) -> Result<AngelRequest, CodecError> {
    if s == PING {
        return Ok(AngelRequest::Ping);
    }
    let v: Value = serde_json::from_str(s).map_err(|_| bad("not ping and not JSON", s))?;
    let correlation_id = match v.get("correlationID") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(bad("correlationID is not a string", s)),
    };
    let action = u8_field(v.get("action"), "action", s)?;
    let params = v.get("params").ok_or_else(|| bad("no params", s))?;
    let mode = AngelMode::from_wire(u8_field(params.get("mode"), "mode", s)?)
        .ok_or_else(|| bad("mode is not 1-4", s))?;
    let Some(Value::Array(list)) = params.get("tokenList") else {
        return Err(bad("tokenList is not an array", s));
    };
    let token_list = list
        .iter()
        .map(|g| {
            let exchange_type = u8_field(g.get("exchangeType"), "exchangeType", s)?;
            let Some(Value::Array(ts)) = g.get("tokens") else {
                return Err(bad("tokens is not an array", s));
            };
            let tokens = ts
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("token is not a string", s))
                })
                .collect::<Result<_, _>>()?;
            Ok(TokenGroup {
                exchange_type,
                tokens,
            })
        })
        .collect::<Result<_, _>>()?;
    let sub = Subscription {
        correlation_id,
        mode,
        token_list,
    };
    match action {
        1 => Ok(AngelRequest::Subscribe(sub)),
        0 => Ok(AngelRequest::Unsubscribe(sub)),
        n => Err(CodecError::BadText(format!(
            "unknown action {n} in {}",
            snippet(s)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    #[test]
    fn modes_map_to_wire() {
        for m in [Mode::Ltp, Mode::Quote, Mode::Depth] {
            let a = AngelMode::for_mode(m);
            assert_eq!(AngelMode::from_wire(a.wire()), Some(a));
        }
        assert_eq!(AngelMode::for_mode(Mode::Depth), AngelMode::SnapQuote);
    }
}
