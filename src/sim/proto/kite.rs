//! Kite ticker: query-string auth at the upgrade (checked by the gate), JSON requests
//! (`subscribe`, `unsubscribe`, `mode`; new tokens default to quote), big-endian frames of up
//! to [`MAX_PACKETS`] packets, a 1-byte heartbeat when idle, `{"type":"error"}` texts.

use super::{Cx, Effect, MAX_SUBSCRIPTIONS, Protocol, SubKey, Ticked};
use crate::adapters::kite::codec::{self, Request, TextMessage};
use crate::model::{FeedKey, Mode, Tick};
use crate::sim::instruments::Family;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

/// Largest number of packets in one frame.
const MAX_PACKETS: usize = 500;

/// The Kite half of a connection: only reusable encode buffers beyond the shared table.
#[derive(Default)]
pub(crate) struct Kite {
    buf: Vec<u8>,
    batch: Vec<Tick>,
}

fn error(cx: &mut Cx<'_>, msg: String) {
    cx.out
        .push(Message::text(codec::encode_text(&TextMessage::Error(msg))));
}

fn sk(token: u32) -> SubKey {
    SubKey {
        key: FeedKey::kite(token),
        variant: 0,
    }
}

impl Protocol for Kite {
    fn heartbeat(&self) -> Option<Message> {
        Some(Message::Binary(Bytes::from_static(&[0])))
    }

    fn on_text(&mut self, cx: &mut Cx<'_>, text: &str) -> Effect {
        let req = match codec::decode_request(text) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(conn = cx.conn, error = %e, "simulator: bad client message");
                error(cx, format!("Invalid message: {e}"));
                return Effect::None;
            }
        };
        let (tokens, mode, subscribe) = match req {
            Request::Unsubscribe(tokens) => {
                for t in tokens {
                    cx.subs.remove(sk(t));
                }
                return Effect::None;
            }
            Request::Subscribe(tokens) => (tokens, None, true),
            Request::Mode(mode, tokens) => (tokens, Some(mode), false),
        };
        let mut rejected = Vec::new();
        let (mut dups, mut over_limit) = (0u64, 0usize);
        for &t in &tokens {
            if cx.flags.rejected.contains(&t) {
                rejected.push(t);
                continue;
            }
            if cx.subs.len() >= MAX_SUBSCRIPTIONS && !cx.subs.contains(sk(t)) {
                over_limit += 1;
                continue;
            }
            let market = cx.shared.instruments.market_token(Family::Kite, sk(t).key);
            let tickable = !cx.flags.ignore_subscriptions;
            if cx.subs.upsert(sk(t), mode, Mode::Quote, market, tickable) && subscribe {
                dups += 1;
            }
        }
        if subscribe {
            cx.report.subscribe_messages += 1;
            cx.report.tokens += tokens.len() as u64;
            cx.report.duplicates += dups;
        }
        if over_limit > 0 {
            error(
                cx,
                format!(
                    "{over_limit} tokens not subscribed: at most {MAX_SUBSCRIPTIONS} per connection"
                ),
            );
        }
        if !rejected.is_empty() {
            let list: Vec<String> = rejected.iter().map(u32::to_string).collect();
            let msg = format!(
                "Subscription rejected for instrument tokens: {}",
                list.join(", ")
            );
            error(cx, msg);
        }
        if subscribe {
            Effect::Subscribed
        } else {
            Effect::None
        }
    }

    fn encode(&mut self, cx: &mut Cx<'_>, ticks: &[Ticked]) -> u64 {
        for chunk in ticks.chunks(MAX_PACKETS) {
            self.batch.clear();
            self.batch.extend(chunk.iter().map(|t| t.tick));
            self.buf.clear();
            codec::encode_frame(&self.batch, &mut self.buf);
            cx.out
                .push(Message::Binary(Bytes::copy_from_slice(&self.buf)));
        }
        ticks.len() as u64
    }

    fn malformed(&mut self, kind: u32, key: FeedKey) -> Message {
        let mut b = Vec::new();
        malformed_frame(kind, key.token, &mut b);
        Message::Binary(b.into())
    }

    fn malformed_kinds(&self) -> u32 {
        MALFORMED_KINDS
    }
}

/// Number of distinct malformed frame shapes [`malformed_frame`] produces.
pub const MALFORMED_KINDS: u32 = 5;

/// Build malformed frame number `kind % MALFORMED_KINDS` for `token` into `out` (cleared
/// first). Shapes: truncated packet, packet count larger than the packets present, trailing
/// bytes after the packets, an unknown packet length (8/28/32/44/184 are the only valid ones),
/// and a packet length pointing past the end of the frame.
pub fn malformed_frame(kind: u32, token: u32, out: &mut Vec<u8>) {
    out.clear();
    let ltp_packet = |out: &mut Vec<u8>| {
        out.extend_from_slice(&token.to_be_bytes());
        out.extend_from_slice(&100_000u32.to_be_bytes());
    };
    match kind % MALFORMED_KINDS {
        0 => {
            // Says one 44-byte quote packet, carries 20 bytes of it.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&44u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0u8; 12]);
        }
        1 => {
            // Says three packets, carries one.
            out.extend_from_slice(&3u16.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            ltp_packet(out);
        }
        2 => {
            // One valid LTP packet followed by garbage.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0xde, 0xad, 0xbe]);
        }
        3 => {
            // A 10-byte packet: no such packet kind.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&10u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0, 0]);
        }
        _ => {
            // Packet length far beyond the frame.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&0xffffu16.to_be_bytes());
            ltp_packet(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_frames_differ_from_valid_lengths() {
        let mut b = Vec::new();
        for k in 0..MALFORMED_KINDS {
            malformed_frame(k, 408065, &mut b);
            assert!(b.len() > 4, "kind {k} must not look like a heartbeat");
        }
    }
}
