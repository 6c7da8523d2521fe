//! Angel decoding: binary packets into [`AngelPacket`], server text frames, and the engine's
//! per-connection [`AngelDecoder`].

use super::{
    AngelBestFive, AngelDepth20, AngelDepthLevel, AngelMode, AngelPacket, AngelQuote,
    AngelSnapQuote, AngelText, AngelToken, DEPTH20_LEN, LTP_LEN, PONG, QUOTE_LEN, SNAP_QUOTE_LEN,
    TOKEN_LEN, bad, ms_to_s,
};
use crate::adapters::{CodecError, Decoder, Inbound};
use crate::model::{FeedKey, Price, Quote, Tick};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Little-endian i64 at a constant offset; the const assertion makes an out-of-range read a
/// compile error, so the bounds check folds away and no panic path remains.
#[inline(always)]
fn i64_at<const AT: usize, const N: usize>(p: &[u8; N]) -> i64 {
    const { assert!(AT + 8 <= N) };
    i64::from_le_bytes([
        p[AT],
        p[AT + 1],
        p[AT + 2],
        p[AT + 3],
        p[AT + 4],
        p[AT + 5],
        p[AT + 6],
        p[AT + 7],
    ])
}

#[inline(always)]
fn f64_at<const AT: usize, const N: usize>(p: &[u8; N]) -> f64 {
    f64::from_bits(i64_at::<AT, N>(p) as u64)
}

#[inline(always)]
fn token_of<const N: usize>(p: &[u8; N]) -> AngelToken {
    const { assert!(2 + TOKEN_LEN <= N) };
    let mut raw = [0u8; TOKEN_LEN];
    raw.copy_from_slice(&p[2..2 + TOKEN_LEN]);
    AngelToken(raw)
}

/// Decode one binary message into the SDK-shaped packet.
///
/// # Errors
/// As [`decode_packet_into`].
#[inline]
pub fn decode_packet(buf: &[u8]) -> Result<AngelPacket, CodecError> {
    let mut p = AngelPacket::default();
    decode_packet_into(buf, &mut p)?;
    Ok(p)
}

/// Decode one binary message into `p`, in place: the decoder reuses one packet per
/// connection, so no ~1 KB packet is moved per message (moving it cost more than decoding).
/// On error `p` is left as it was.
///
/// # Errors
/// `Empty` for an empty message; `BadText` for an unknown mode byte; `Truncated` when the
/// message is shorter than its mode's length; `Trailing` when it is longer.
pub fn decode_packet_into(buf: &[u8], p: &mut AngelPacket) -> Result<(), CodecError> {
    let Some(&mode_byte) = buf.first() else {
        return Err(CodecError::Empty);
    };
    let mode = AngelMode::from_wire(mode_byte)
        .ok_or_else(|| CodecError::BadText(format!("unknown subscription mode {mode_byte}")))?;
    let len = mode.packet_len();
    if buf.len() > len {
        return Err(CodecError::Trailing {
            packets: 1,
            extra: buf.len() - len,
        });
    }
    let short = || CodecError::Truncated {
        offset: 0,
        needed: len,
        have: buf.len(),
    };
    // Each arm converts to a fixed-size array so every field read is a checked constant.
    match mode {
        AngelMode::Ltp => {
            let a: &[u8; LTP_LEN] = buf.try_into().map_err(|_| short())?;
            header(a, mode, p);
            (p.quote, p.snap_quote, p.depth_20) = (None, None, None);
        }
        AngelMode::Quote => {
            let a: &[u8; QUOTE_LEN] = buf.try_into().map_err(|_| short())?;
            header(a, mode, p);
            quote_part(a, p.quote.get_or_insert_with(AngelQuote::default));
            (p.snap_quote, p.depth_20) = (None, None);
        }
        AngelMode::SnapQuote => {
            let a: &[u8; SNAP_QUOTE_LEN] = buf.try_into().map_err(|_| short())?;
            header(a, mode, p);
            quote_part(a, p.quote.get_or_insert_with(AngelQuote::default));
            snap_part(a, p.snap_quote.get_or_insert_with(AngelSnapQuote::default));
            p.depth_20 = None;
        }
        AngelMode::Depth20 => {
            let a: &[u8; DEPTH20_LEN] = buf.try_into().map_err(|_| short())?;
            header(a, mode, p);
            // The SDK reads a sequence number and an LTP here, then drops both.
            (p.sequence_number, p.last_traded_price) = (0, 0);
            (p.quote, p.snap_quote) = (None, None);
            let d = p.depth_20.get_or_insert_with(AngelDepth20::default);
            depth20_side(&a[43..243], &mut d.buy);
            depth20_side(&a[243..443], &mut d.sell);
        }
    }
    Ok(())
}

/// Decode one binary message straight to a normalised tick (stateless; see
/// [`AngelPacket::to_tick`] for Depth-20).
///
/// # Errors
/// As [`decode_packet`], plus `BadText` for a non-numeric token.
pub fn decode_tick(buf: &[u8]) -> Result<Tick, CodecError> {
    decode_packet(buf)?.to_tick()
}

#[inline(always)]
fn header<const N: usize>(a: &[u8; N], mode: AngelMode, p: &mut AngelPacket) {
    p.subscription_mode = mode;
    p.exchange_type = a[1];
    p.token = token_of(a);
    p.sequence_number = i64_at::<27, N>(a);
    p.exchange_timestamp = i64_at::<35, N>(a);
    p.last_traded_price = i64_at::<43, N>(a);
}

#[inline(always)]
fn quote_part<const N: usize>(a: &[u8; N], q: &mut AngelQuote) {
    *q = AngelQuote {
        last_traded_quantity: i64_at::<51, N>(a),
        average_traded_price: i64_at::<59, N>(a),
        volume_trade_for_the_day: i64_at::<67, N>(a),
        total_buy_quantity: f64_at::<75, N>(a),
        total_sell_quantity: f64_at::<83, N>(a),
        open_price_of_the_day: i64_at::<91, N>(a),
        high_price_of_the_day: i64_at::<99, N>(a),
        low_price_of_the_day: i64_at::<107, N>(a),
        closed_price: i64_at::<115, N>(a),
    };
}

fn snap_part(a: &[u8; SNAP_QUOTE_LEN], s: &mut AngelSnapQuote) {
    s.last_traded_timestamp = i64_at::<123, SNAP_QUOTE_LEN>(a);
    s.open_interest = i64_at::<131, SNAP_QUOTE_LEN>(a);
    s.open_interest_change_percentage = i64_at::<139, SNAP_QUOTE_LEN>(a);
    let mut rest = &a[147..347];
    for slot in &mut s.best_five {
        let Some((e, tail)) = rest.split_first_chunk::<20>() else {
            break;
        };
        *slot = AngelBestFive {
            flag: u16::from_le_bytes([e[0], e[1]]),
            quantity: i64::from_le_bytes([e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9]]),
            price: i64::from_le_bytes([e[10], e[11], e[12], e[13], e[14], e[15], e[16], e[17]]),
            orders: u16::from_le_bytes([e[18], e[19]]),
        };
        rest = tail;
    }
    s.upper_circuit_limit = i64_at::<347, SNAP_QUOTE_LEN>(a);
    s.lower_circuit_limit = i64_at::<355, SNAP_QUOTE_LEN>(a);
    s.week_52_high_price = i64_at::<363, SNAP_QUOTE_LEN>(a);
    s.week_52_low_price = i64_at::<371, SNAP_QUOTE_LEN>(a);
}

fn depth20_side(mut rest: &[u8], out: &mut [AngelDepthLevel; 20]) {
    for slot in out {
        let Some((e, tail)) = rest.split_first_chunk::<10>() else {
            break;
        };
        *slot = AngelDepthLevel {
            quantity: i32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            price: i32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            orders: i16::from_le_bytes([e[8], e[9]]),
        };
        rest = tail;
    }
}

/// Decode a server text frame.
///
/// # Errors
/// `BadText` for anything but `pong` or an error object with a string `errorCode` (and, when
/// present, string `errorMessage` / `correlationID`).
pub fn decode_text(s: &str) -> Result<AngelText, CodecError> {
    if s == PONG {
        return Ok(AngelText::Pong);
    }
    let v: Value = serde_json::from_str(s).map_err(|_| bad("not pong and not JSON", s))?;
    let Value::Object(mut o) = v else {
        return Err(bad("not a JSON object", s));
    };
    let mut text = |k: &str| match o.remove(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t)),
        Some(_) => Err(bad(&format!("{k} is not a string"), s)),
    };
    let code = text("errorCode")?.ok_or_else(|| bad("no errorCode", s))?;
    Ok(AngelText::Error {
        correlation_id: text("correlationID")?,
        message: text("errorMessage")?.unwrap_or_default(),
        code,
    })
}

// ---------------------------------------------------------------------------------------------
// Decoder (per connection)
// ---------------------------------------------------------------------------------------------

/// Instruments whose last LTP/quote the decoder remembers; above Angel's 1000 subscriptions
/// in every mode, so it only bounds what a hostile server can make us hold.
const REMEMBERED: usize = 4096;

/// Hasher for the remembered-state map: one multiply per key (SipHash was a third of the
/// decoder's cost) with a per-decoder random seed. The map is bounded, so a server that forced
/// collisions could only make lookups scan at most `REMEMBERED` entries.
#[derive(Debug, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // Fold the high bits (where the multiplications put the entropy) into the low ones
        // the table indexes with.
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.write_u64(u64::from(*b)));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Builds [`KeyHasher`]s from one random seed.
#[derive(Debug, Clone, Copy)]
struct KeyHash(u64);

impl Default for KeyHash {
    fn default() -> KeyHash {
        KeyHash(RandomState::new().hash_one(0u64))
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

/// The engine's per-connection Angel decoder. Stateful only to give Depth-20 ticks an LTP and
/// quote: it remembers the last of both per instrument from LTP/Quote/SnapQuote packets (a
/// Depth-20 tick for an instrument with no such packet yet has LTP 0 and no quote, so
/// subscribe Depth-20 alongside a mode that carries LTP).
#[derive(Debug, Default)]
pub struct AngelDecoder {
    last: HashMap<FeedKey, (Price, Option<Quote>), KeyHash>,
    /// Reused for every message (see [`decode_packet_into`]).
    scratch: AngelPacket,
}

impl AngelDecoder {
    /// A decoder for a new connection.
    pub fn new() -> AngelDecoder {
        AngelDecoder::default()
    }

    /// Decode one binary message into a tick (filled as described on [`AngelDecoder`]).
    ///
    /// # Errors
    /// As [`decode_tick`].
    pub fn decode(&mut self, buf: &[u8]) -> Result<Tick, CodecError> {
        decode_packet_into(buf, &mut self.scratch)?;
        let p = &self.scratch;
        let mut t = p.tick_for(p.key()?);
        remember_or_fill(&mut self.last, p, &mut t);
        Ok(t)
    }

    /// Decode one binary message, appending its tick to `out` (nothing on error).
    fn decode_into(&mut self, buf: &[u8], out: &mut Vec<Tick>) -> Result<(), CodecError> {
        decode_packet_into(buf, &mut self.scratch)?;
        let p = &self.scratch;
        // Pushed first and completed in place: building the ~400-byte tick and moving it
        // through return values cost more than decoding it.
        out.push(p.tick_for(p.key()?));
        if let Some(t) = out.last_mut() {
            remember_or_fill(&mut self.last, p, t);
        }
        Ok(())
    }
}

/// Depth-20: take LTP and quote from the instrument's last packet that had them; any other
/// mode: remember its LTP (and quote) for that.
#[inline(always)]
fn remember_or_fill(
    last: &mut HashMap<FeedKey, (Price, Option<Quote>), KeyHash>,
    p: &AngelPacket,
    t: &mut Tick,
) {
    if p.subscription_mode == AngelMode::Depth20 {
        if let Some((ltp, quote)) = last.get(&t.key) {
            t.ltp = *ltp;
            t.quote = quote.map(|q| Quote {
                exchange_time: Some(ms_to_s(p.exchange_timestamp)),
                ..q
            });
        }
    } else if let Some(e) = last.get_mut(&t.key) {
        e.0 = t.ltp;
        if t.quote.is_some() {
            e.1 = t.quote;
        }
    } else if last.len() < REMEMBERED {
        last.insert(t.key, (t.ltp, t.quote));
    }
}

impl Decoder for AngelDecoder {
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        self.decode_into(data, out)?;
        Ok(Inbound::Ticks { skipped: 0 })
    }

    fn text(&mut self, data: &str, _out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        Ok(match decode_text(data)? {
            AngelText::Pong => Inbound::Heartbeat,
            e @ AngelText::Error { .. } => Inbound::ServerError(e.describe()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NSE_CM, encode_packet};
    use super::*;

    #[test]
    fn remembered_state_is_bounded() {
        let mut d = AngelDecoder::new();
        let mut f = Vec::new();
        for n in 0..(REMEMBERED as u32 + 10) {
            f.clear();
            let p = AngelPacket::empty(AngelMode::Ltp, NSE_CM, AngelToken::from_number(n));
            encode_packet(&p, &mut f);
            d.decode(&f).unwrap();
        }
        assert_eq!(d.last.len(), REMEMBERED);
    }
}
