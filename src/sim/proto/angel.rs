//! Angel One SmartAPI WebSocket 2.0: four auth headers at the upgrade (checked by the gate),
//! JSON subscribe / unsubscribe (action 1/0, mode 1-4, `tokenList` by exchangeType), text
//! `ping` → `pong`, E1001 / E1002 error texts, and exactly one little-endian packet per binary
//! message. No server heartbeat: the client pings.
//!
//! Subscriptions are per (exchangeType, token, mode), as the real server keeps them: a token
//! subscribed in LTP and SnapQuote gets both packet kinds; unsubscribe names its mode.
//! Duplicates (the official client resends doubled lists) are ignored. Limits: 1000 distinct
//! (exchangeType, token) per session and 50 Depth-20 tokens (nse_cm only); a request that
//! would exceed one is refused whole with E1002, one that does not parse (non-numeric token,
//! unknown exchange type, Depth-20 outside nse_cm) whole with E1001.

use super::{Cx, Effect, Protocol, SubKey, Ticked};
use crate::adapters::angel::codec::{
    self as angel, AngelMode, AngelPacket, AngelRequest, AngelToken, MAX_DEPTH20_TOKENS,
    MAX_TOKENS, NSE_CM, PONG, Subscription,
};
use crate::model::{FeedKey, Mode, Price, Tick};
use crate::sim::instruments::{Family, Params};
use crate::sim::market;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashSet;
use tokio_tungstenite::tungstenite::Message;

/// E1001's message (brokers.md §2.4).
pub(crate) const E1001: &str = "Invalid Request Payload";
/// E1002's message, as the documentation's example writes it.
pub(crate) const E1002: &str = "Invalid Request. Subscription Limit Exceeded";
/// Longest correlationID echoed back (the protocol allows 10; a hostile one is cut).
const MAX_CORRELATION: usize = 32;

/// The Angel half of a connection.
#[derive(Default)]
pub(crate) struct Angel {
    /// Sequence number of the last tradable packet sent.
    seq: i64,
    buf: Vec<u8>,
}

/// Our mode for a SmartAPI mode: SnapQuote and Depth-20 both carry depth.
pub(crate) fn mode_of(m: AngelMode) -> Mode {
    match m {
        AngelMode::Ltp => Mode::Ltp,
        AngelMode::Quote => Mode::Quote,
        AngelMode::SnapQuote | AngelMode::Depth20 => Mode::Depth,
    }
}

fn error(cx: &mut Cx<'_>, correlation: Option<&str>, code: &str, message: &str) {
    let id = correlation.map(|c| c.chars().take(MAX_CORRELATION).collect::<String>());
    cx.out.push(Message::text(angel::encode_error(
        id.as_deref(),
        code,
        message,
    )));
}

/// The correlationID of a request that did not decode, when it has a string one.
fn correlation_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("correlationID")?.as_str().map(str::to_string)
}

impl Angel {
    /// The request's keys, or `None` when any token or exchange type is invalid for `mode`.
    fn valid_keys(sub: &Subscription) -> Option<Vec<FeedKey>> {
        let ok = sub.token_list.iter().all(|g| {
            angel::exchange_name(g.exchange_type).is_some()
                && (sub.mode != AngelMode::Depth20 || g.exchange_type == NSE_CM)
        });
        ok.then(|| sub.keys()).flatten()
    }

    fn subscribe(&mut self, cx: &mut Cx<'_>, sub: &Subscription) {
        let cid = sub.correlation_id.as_deref();
        cx.report.subscribe_messages += 1;
        let Some(keys) = Self::valid_keys(sub) else {
            return error(cx, cid, "E1001", E1001);
        };
        cx.report.tokens += keys.len() as u64;
        let mut seen = HashSet::new();
        let mut dups = 0u64;
        let (mut take, mut rejected) = (Vec::new(), Vec::new());
        for k in keys {
            if !seen.insert(k) {
                dups += 1;
                continue;
            }
            let market = cx.shared.instruments.market_token(Family::Angel, k);
            if cx.flags.rejects(k.token, market) {
                rejected.push(k.token.to_string());
            } else {
                take.push((k, market));
            }
        }
        let variant = sub.mode.wire();
        let new_keys = take.iter().filter(|(k, _)| !cx.subs.has_key(*k)).count();
        if cx.subs.keys_len() + new_keys > MAX_TOKENS {
            return error(cx, cid, "E1002", E1002);
        }
        if sub.mode == AngelMode::Depth20 {
            let new = take
                .iter()
                .filter(|(key, _)| !cx.subs.contains(SubKey { key: *key, variant }))
                .count();
            if cx.subs.count_variant(variant) + new > MAX_DEPTH20_TOKENS {
                return error(cx, cid, "E1002", E1002);
            }
        }
        let mode = mode_of(sub.mode);
        let tickable = !cx.flags.ignore_subscriptions;
        for (key, market) in take {
            if cx
                .subs
                .upsert(SubKey { key, variant }, Some(mode), mode, market, tickable)
            {
                dups += 1;
            }
        }
        cx.report.duplicates += dups;
        if !rejected.is_empty() {
            let msg = format!(
                "{E1001}: subscription rejected for tokens {}",
                rejected.join(", ")
            );
            error(cx, cid, "E1001", &msg);
        }
    }

    fn unsubscribe(cx: &mut Cx<'_>, sub: &Subscription) {
        let Some(keys) = Self::valid_keys(sub) else {
            return error(cx, sub.correlation_id.as_deref(), "E1001", E1001);
        };
        for key in keys {
            cx.subs.remove(SubKey {
                key,
                variant: sub.mode.wire(),
            });
        }
    }
}

/// Fill Depth-20 levels 6-20 below / above the five the market model makes: one tick apart,
/// quantities growing with depth (deterministic, no draw from the walk's generator).
fn extend_depth20(p: &mut AngelPacket, tick_raw: i64, lot: i64) {
    let Some(d) = p.depth_20.as_mut() else {
        return;
    };
    let tick = i32::try_from(tick_raw.max(1)).unwrap_or(i32::MAX);
    let lot = i32::try_from(lot.max(1)).unwrap_or(1);
    for (side, sign) in [(&mut d.buy, -1), (&mut d.sell, 1)] {
        let last = side[4];
        if last.price <= 0 {
            continue;
        }
        for (i, level) in side.iter_mut().enumerate().skip(5) {
            let steps = i as i32 - 4;
            let price = last.price.saturating_add(sign * tick.saturating_mul(steps));
            *level = if price > 0 {
                angel::AngelDepthLevel {
                    quantity: lot.saturating_mul(3 * (i as i32 + 1)),
                    price,
                    orders: (i + 1) as i16,
                }
            } else {
                angel::AngelDepthLevel::default()
            };
        }
    }
}

/// SnapQuote's circuit limits (tradable instruments; indices have none) and 52-week range,
/// the values the REST quote gives for the same instrument.
fn limits(s: &mut angel::AngelSnapQuote, t: &Tick, p: &Params, div: i64) {
    if let (true, Some(q)) = (t.tradable, t.quote) {
        let (lc, uc) = market::circuits(q.ohlc.close, p.tick);
        s.lower_circuit_limit = lc.to_raw(div);
        s.upper_circuit_limit = uc.to_raw(div);
    }
    let (low, high) = market::week52(p);
    s.week_52_low_price = low.to_raw(div);
    s.week_52_high_price = high.to_raw(div);
}

impl Protocol for Angel {
    fn on_text(&mut self, cx: &mut Cx<'_>, text: &str) -> Effect {
        match angel::decode_request(text) {
            Ok(AngelRequest::Ping) => {
                cx.out.push(Message::text(PONG));
                Effect::None
            }
            Ok(AngelRequest::Subscribe(sub)) => {
                self.subscribe(cx, &sub);
                Effect::Subscribed
            }
            Ok(AngelRequest::Unsubscribe(sub)) => {
                Self::unsubscribe(cx, &sub);
                Effect::None
            }
            Err(e) => {
                tracing::debug!(conn = cx.conn, error = %e, "simulator: bad Angel request");
                let id = correlation_of(text);
                error(cx, id.as_deref(), "E1001", E1001);
                Effect::None
            }
        }
    }

    fn encode(&mut self, cx: &mut Cx<'_>, ticks: &[Ticked]) -> u64 {
        let now_ms = crate::sim::now_secs().saturating_mul(1000);
        for t in ticks {
            let mode = AngelMode::from_wire(t.sk.variant).unwrap_or(AngelMode::Ltp);
            let mut p = AngelPacket::from_tick(&t.tick, mode);
            if p.exchange_timestamp == 0 {
                // LTP ticks carry no time; every Angel packet has the exchange timestamp.
                p.exchange_timestamp = now_ms;
            }
            if t.tick.tradable && mode != AngelMode::Depth20 {
                self.seq += 1;
                p.sequence_number = self.seq;
            }
            let params = cx.shared.instruments.params(t.market);
            if mode == AngelMode::Depth20 {
                if let Some(ps) = params {
                    let tick = Price(ps.tick).to_raw(angel::divisor(p.exchange_type));
                    extend_depth20(&mut p, tick, i64::from(ps.lot));
                }
            }
            if let (Some(s), Some(ps)) = (p.snap_quote.as_mut(), params) {
                limits(s, &t.tick, &ps, angel::divisor(p.exchange_type));
            }
            self.buf.clear();
            angel::encode_packet(&p, &mut self.buf);
            cx.out
                .push(Message::Binary(Bytes::copy_from_slice(&self.buf)));
        }
        ticks.len() as u64
    }

    fn malformed(&mut self, kind: u32, key: FeedKey) -> Message {
        let exch = u8::try_from(key.seg).unwrap_or(NSE_CM);
        let mut p = AngelPacket::empty(AngelMode::Ltp, exch, AngelToken::from_number(key.token));
        p.last_traded_price = 100_000;
        let mut b = Vec::new();
        match kind % MALFORMED_KINDS {
            0 => {
                // Says Quote (123 bytes), carries the 51 of an LTP packet.
                angel::encode_packet(&p, &mut b);
                b[0] = AngelMode::Quote.wire();
            }
            1 => {
                // No such subscription mode.
                angel::encode_packet(&p, &mut b);
                b[0] = 9;
            }
            2 => {
                // A valid LTP packet followed by garbage.
                angel::encode_packet(&p, &mut b);
                b.extend_from_slice(&[0xde, 0xad, 0xbe]);
            }
            3 => {} // An empty binary message.
            _ => {
                // A token that is not decimal digits.
                p.token = AngelToken::new("ab\u{1}").unwrap_or_default();
                angel::encode_packet(&p, &mut b);
            }
        }
        Message::Binary(b.into())
    }

    fn malformed_kinds(&self) -> u32 {
        MALFORMED_KINDS
    }
}

/// Number of distinct malformed Angel messages: truncated, unknown mode, trailing bytes,
/// empty, non-numeric token.
const MALFORMED_KINDS: u32 = 5;
