//! Angel One SmartAPI WebSocket 2.0 codec (pure, no I/O): little-endian binary packets and the
//! text frames, both directions (the simulator uses the server side).
//!
//! Wire format: `shared/protocols/brokers.md` §2.3. Exactly one packet per binary message; the
//! first byte is the subscription mode and fixes the length (LTP 51, Quote 123, SnapQuote 379,
//! Depth-20 443). Unlike smartapi-python (which reads whatever is there and raises
//! `struct.error` on short frames, triggering a reconnect), any other length is an error value
//! and the connection is kept.
//!
//! [`AngelPacket`] mirrors the SDK's `_parse_binary_data` dict field for field (integers as the
//! SDK reads them: prices and quantities i64, total buy/sell quantity f64, best-five flag and
//! orders u16, Depth-20 entries i32/i32/i16). [`AngelPacket::to_tick`] normalises it:
//! - prices are paise: divided by 100, except cde_fo (exchange type 13) whose prices are
//!   divided by 1e7 — the SmartAPI WS 2.0 documentation's rule for currencies (brokers.md marks
//!   currency scaling unverified; this is the documented value, the same as Kite's CDS);
//! - quantities below zero (never valid) become 0; float totals are truncated to integers;
//! - timestamps are epoch milliseconds on the wire and seconds in [`Quote`];
//! - `change` is computed from LTP and close as for Kite (the wire carries none);
//! - the wire has no index flag, so every tick is `tradable`.

mod decode;
mod encode;

pub use decode::{AngelDecoder, decode_packet, decode_packet_into, decode_text, decode_tick};
pub use encode::{
    Action, AngelRequest, MAX_DEPTH20_TOKENS, MAX_TOKENS, PING, PONG, RequestError, Subscription,
    TokenGroup, decode_request, encode_error, encode_packet, encode_subscribe, encode_tick,
    encode_unsubscribe,
};

use crate::adapters::CodecError;
use crate::adapters::kite::codec::change_percent;
use crate::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};
use std::fmt;

/// Length of an LTP packet (the common header plus LTP).
pub const LTP_LEN: usize = 51;
/// Length of a Quote packet.
pub const QUOTE_LEN: usize = 123;
/// Length of a SnapQuote packet (quote, OI, best five, circuits, 52-week range).
pub const SNAP_QUOTE_LEN: usize = 379;
/// Length of a Depth-20 packet.
pub const DEPTH20_LEN: usize = 443;
/// Bytes of the NUL-padded ASCII token field.
pub const TOKEN_LEN: usize = 25;

/// Exchange type nse_cm (NSE cash; the only one Depth-20 supports).
pub const NSE_CM: u8 = 1;
/// Exchange type nse_fo.
pub const NSE_FO: u8 = 2;
/// Exchange type bse_cm.
pub const BSE_CM: u8 = 3;
/// Exchange type bse_fo.
pub const BSE_FO: u8 = 4;
/// Exchange type mcx_fo.
pub const MCX_FO: u8 = 5;
/// Exchange type ncx_fo.
pub const NCX_FO: u8 = 7;
/// Exchange type cde_fo (currency derivatives).
pub const CDE_FO: u8 = 13;

/// Exchange types with the exchange names of Angel's instrument master (`exch_seg`).
pub const EXCHANGE_TYPES: [(u8, &str); 7] = [
    (NSE_CM, "NSE"),
    (NSE_FO, "NFO"),
    (BSE_CM, "BSE"),
    (BSE_FO, "BFO"),
    (MCX_FO, "MCX"),
    (NCX_FO, "NCDEX"),
    (CDE_FO, "CDS"),
];

/// Exchange type of an exchange name (`NSE` → 1), case-insensitive.
pub fn exchange_type(name: &str) -> Option<u8> {
    EXCHANGE_TYPES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(t, _)| *t)
}

/// Exchange name of an exchange type (1 → `NSE`).
pub fn exchange_name(exchange_type: u8) -> Option<&'static str> {
    EXCHANGE_TYPES
        .iter()
        .find(|(t, _)| *t == exchange_type)
        .map(|(_, n)| *n)
}

/// Price divisor of an exchange type: cde_fo 1e7 (documented for currencies), else 100 (paise).
#[inline]
pub fn divisor(exchange_type: u8) -> i64 {
    if exchange_type == CDE_FO {
        10_000_000
    } else {
        100
    }
}

/// SmartAPI subscription mode (byte 0 of every packet, `params.mode` in requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AngelMode {
    /// 1: LTP.
    Ltp = 1,
    /// 2: Quote (OHLC, volume, totals).
    Quote = 2,
    /// 3: SnapQuote (quote, OI, best five, circuits, 52-week range).
    SnapQuote = 3,
    /// 4: Depth-20 (20 levels each side, nse_cm only).
    Depth20 = 4,
}

impl AngelMode {
    /// The mode for a wire byte.
    pub fn from_wire(b: u8) -> Option<AngelMode> {
        match b {
            1 => Some(AngelMode::Ltp),
            2 => Some(AngelMode::Quote),
            3 => Some(AngelMode::SnapQuote),
            4 => Some(AngelMode::Depth20),
            _ => None,
        }
    }

    /// The wire byte.
    pub fn wire(self) -> u8 {
        self as u8
    }

    /// Packet length of this mode.
    pub fn packet_len(self) -> usize {
        match self {
            AngelMode::Ltp => LTP_LEN,
            AngelMode::Quote => QUOTE_LEN,
            AngelMode::SnapQuote => SNAP_QUOTE_LEN,
            AngelMode::Depth20 => DEPTH20_LEN,
        }
    }

    /// The SDK's `subscription_mode_val` (`SUBSCRIPTION_MODE_MAP`).
    pub fn name(self) -> &'static str {
        match self {
            AngelMode::Ltp => "LTP",
            AngelMode::Quote => "QUOTE",
            AngelMode::SnapQuote => "SNAP_QUOTE",
            AngelMode::Depth20 => "DEPTH",
        }
    }

    /// The SmartAPI mode serving one of our modes: Depth (5 levels) is SnapQuote, whose best
    /// five also carries every quote field; Depth-20 is only ever asked for explicitly.
    pub fn for_mode(mode: Mode) -> AngelMode {
        match mode {
            Mode::Ltp => AngelMode::Ltp,
            Mode::Quote => AngelMode::Quote,
            Mode::Depth => AngelMode::SnapQuote,
        }
    }
}

/// The 25-byte token field, kept raw so re-encoding is byte-exact; the token is the bytes
/// before the first NUL, as the SDK reads it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AngelToken(pub [u8; TOKEN_LEN]);

impl AngelToken {
    /// A token from its text (at most 25 bytes, no NUL).
    pub fn new(s: &str) -> Option<AngelToken> {
        let b = s.as_bytes();
        if b.len() > TOKEN_LEN || b.contains(&0) {
            return None;
        }
        let mut raw = [0u8; TOKEN_LEN];
        raw[..b.len()].copy_from_slice(b);
        Some(AngelToken(raw))
    }

    /// The token of a numeric instrument token (its decimal digits).
    pub fn from_number(n: u32) -> AngelToken {
        let mut raw = [0u8; TOKEN_LEN];
        let mut digits = [0u8; 10];
        let (mut n, mut i) = (n, digits.len());
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        raw[..d.len()].copy_from_slice(d);
        AngelToken(raw)
    }

    /// The token bytes up to the first NUL.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(TOKEN_LEN);
        &self.0[..end]
    }

    /// The token as text, if it is UTF-8 (always, for real tokens: ASCII digits).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The numeric instrument token: ASCII digits that fit a u32.
    #[inline]
    pub fn number(&self) -> Option<u32> {
        let b = self.as_bytes();
        if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = b
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        u32::try_from(n).ok()
    }
}

impl fmt::Debug for AngelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Quote fields (modes 2 and 3), raw as on the wire; prices in paise (see [`divisor`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AngelQuote {
    /// `last_traded_quantity`.
    pub last_traded_quantity: i64,
    /// `average_traded_price`.
    pub average_traded_price: i64,
    /// `volume_trade_for_the_day`.
    pub volume_trade_for_the_day: i64,
    /// `total_buy_quantity` (f64 on the wire).
    pub total_buy_quantity: f64,
    /// `total_sell_quantity` (f64 on the wire).
    pub total_sell_quantity: f64,
    /// `open_price_of_the_day`.
    pub open_price_of_the_day: i64,
    /// `high_price_of_the_day`.
    pub high_price_of_the_day: i64,
    /// `low_price_of_the_day`.
    pub low_price_of_the_day: i64,
    /// `closed_price` (previous close).
    pub closed_price: i64,
}

/// One best-five entry (20 bytes): flag ≠ 0 is a bid, 0 an ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AngelBestFive {
    /// `flag` (docs: 1 buy, 0 sell; the SDK treats any non-zero as buy).
    pub flag: u16,
    /// `quantity`.
    pub quantity: i64,
    /// `price`, paise.
    pub price: i64,
    /// `no of orders`.
    pub orders: u16,
}

/// SnapQuote fields (mode 3) beyond the quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AngelSnapQuote {
    /// `last_traded_timestamp`, epoch ms.
    pub last_traded_timestamp: i64,
    /// `open_interest`.
    pub open_interest: i64,
    /// `open_interest_change_percentage` (docs: a dummy f64; the SDK reads i64, so do we).
    pub open_interest_change_percentage: i64,
    /// The ten best-five entries in wire order (flags say which side each is).
    pub best_five: [AngelBestFive; 10],
    /// `upper_circuit_limit`.
    pub upper_circuit_limit: i64,
    /// `lower_circuit_limit`.
    pub lower_circuit_limit: i64,
    /// `52_week_high_price`.
    pub week_52_high_price: i64,
    /// `52_week_low_price`.
    pub week_52_low_price: i64,
}

impl AngelSnapQuote {
    /// `best_5_buy_data`: entries with a non-zero flag, in wire order (as the SDK groups them).
    pub fn best_5_buy(&self) -> impl Iterator<Item = &AngelBestFive> {
        self.best_five.iter().filter(|e| e.flag != 0)
    }

    /// `best_5_sell_data`: entries with flag 0, in wire order.
    pub fn best_5_sell(&self) -> impl Iterator<Item = &AngelBestFive> {
        self.best_five.iter().filter(|e| e.flag == 0)
    }
}

/// One Depth-20 entry (10 bytes), signed as the SDK reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AngelDepthLevel {
    /// `quantity` (i32).
    pub quantity: i32,
    /// `price` (i32, paise).
    pub price: i32,
    /// `num_of_orders` (i16).
    pub orders: i16,
}

/// Depth-20 levels (mode 4), best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AngelDepth20 {
    /// `depth_20_buy_data`.
    pub buy: [AngelDepthLevel; 20],
    /// `depth_20_sell_data`.
    pub sell: [AngelDepthLevel; 20],
}

/// One decoded packet, mirroring smartapi-python's `_parse_binary_data` output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AngelPacket {
    /// `subscription_mode`.
    pub subscription_mode: AngelMode,
    /// `exchange_type` (see [`EXCHANGE_TYPES`]).
    pub exchange_type: u8,
    /// `token`.
    pub token: AngelToken,
    /// `sequence_number`; 0 in Depth-20 packets (the SDK drops those bytes, so do we).
    pub sequence_number: i64,
    /// `exchange_timestamp`, epoch ms (Depth-20: also `packet_received_time`).
    pub exchange_timestamp: i64,
    /// `last_traded_price`, paise; 0 in Depth-20 packets (their bytes 43.. are depth).
    pub last_traded_price: i64,
    /// Modes 2 and 3.
    pub quote: Option<AngelQuote>,
    /// Mode 3.
    pub snap_quote: Option<AngelSnapQuote>,
    /// Mode 4.
    pub depth_20: Option<AngelDepth20>,
}

impl Default for AngelPacket {
    /// An all-zero LTP packet with an empty token.
    fn default() -> AngelPacket {
        AngelPacket::empty(AngelMode::Ltp, 0, AngelToken::default())
    }
}

impl AngelPacket {
    /// A packet of `mode` with every field zero and the parts the mode carries present.
    pub fn empty(mode: AngelMode, exchange_type: u8, token: AngelToken) -> AngelPacket {
        let at_least = |m: AngelMode| mode >= m && mode != AngelMode::Depth20;
        AngelPacket {
            subscription_mode: mode,
            exchange_type,
            token,
            sequence_number: 0,
            exchange_timestamp: 0,
            last_traded_price: 0,
            quote: at_least(AngelMode::Quote).then(AngelQuote::default),
            snap_quote: at_least(AngelMode::SnapQuote).then(AngelSnapQuote::default),
            depth_20: (mode == AngelMode::Depth20).then(AngelDepth20::default),
        }
    }

    /// `packet_received_time` (Depth-20): the SDK reads it from the exchange-timestamp bytes.
    pub fn packet_received_time(&self) -> i64 {
        self.exchange_timestamp
    }

    /// Our key: `seg` = exchange type, `token` = the numeric token.
    ///
    /// # Errors
    /// `BadText` when the token is not decimal digits fitting a u32.
    #[inline]
    pub fn key(&self) -> Result<FeedKey, CodecError> {
        self.token
            .number()
            .map(|token| FeedKey {
                seg: u16::from(self.exchange_type),
                token,
            })
            .ok_or_else(|| CodecError::BadText(format!("token {:?} is not numeric", self.token)))
    }

    /// The normalised tick. LTP → `Mode::Ltp`; Quote → `Mode::Quote`; SnapQuote →
    /// `Mode::Depth` with the best five as [`Depth`] (the first five bids and asks in wire
    /// order, missing ones zero). Depth-20 → `Mode::Depth` with only the **top 5** of each
    /// side in `depth` (all 20 stay in [`AngelPacket::depth_20`]); the packet carries no LTP
    /// or quote, so `ltp` is 0 and `quote` None here ([`AngelDecoder`] fills both from the
    /// instrument's last LTP/Quote/SnapQuote packet).
    ///
    /// # Errors
    /// `BadText` when the token is not numeric.
    #[inline]
    pub fn to_tick(&self) -> Result<Tick, CodecError> {
        self.key().map(|key| self.tick_for(key))
    }

    /// [`AngelPacket::to_tick`] with the key already checked; inlined so the decoder can build
    /// the tick straight in its output vector.
    #[inline(always)]
    fn tick_for(&self, key: FeedKey) -> Tick {
        let div = divisor(self.exchange_type);
        let px = |raw: i64| Price::from_raw(raw, div);
        let mut t = Tick {
            key,
            mode: Mode::Ltp,
            tradable: true,
            ltp: px(self.last_traded_price),
            quote: None,
            depth: None,
        };
        if let Some(q) = &self.quote {
            let ohlc = Ohlc {
                open: px(q.open_price_of_the_day),
                high: px(q.high_price_of_the_day),
                low: px(q.low_price_of_the_day),
                close: px(q.closed_price),
            };
            t.mode = Mode::Quote;
            t.quote = Some(Quote {
                volume: qty(q.volume_trade_for_the_day),
                average_price: px(q.average_traded_price),
                last_quantity: qty(q.last_traded_quantity),
                // `as` saturates: NaN and negatives give 0, +inf u64::MAX.
                total_buy_quantity: q.total_buy_quantity as u64,
                total_sell_quantity: q.total_sell_quantity as u64,
                ohlc,
                change: change_percent(t.ltp, ohlc.close),
                exchange_time: Some(ms_to_s(self.exchange_timestamp)),
                ..Quote::default()
            });
        }
        if let (Some(s), Some(q)) = (&self.snap_quote, t.quote.as_mut()) {
            t.mode = Mode::Depth;
            q.oi = qty(s.open_interest);
            q.last_trade_time = Some(ms_to_s(s.last_traded_timestamp));
            let level = |e: &AngelBestFive| Level {
                price: px(e.price),
                quantity: qty(e.quantity),
                orders: u32::from(e.orders),
            };
            let mut d = Depth::default();
            for (slot, e) in d.buy.iter_mut().zip(s.best_5_buy()) {
                *slot = level(e);
            }
            for (slot, e) in d.sell.iter_mut().zip(s.best_5_sell()) {
                *slot = level(e);
            }
            t.depth = Some(d);
        }
        if let Some(d20) = &self.depth_20 {
            let level = |e: &AngelDepthLevel| Level {
                price: px(i64::from(e.price)),
                quantity: u64::try_from(e.quantity).unwrap_or(0),
                orders: u32::try_from(e.orders).unwrap_or(0),
            };
            t.mode = Mode::Depth;
            t.ltp = Price::default();
            let mut d = Depth::default();
            for (slot, e) in d.buy.iter_mut().zip(&d20.buy) {
                *slot = level(e);
            }
            for (slot, e) in d.sell.iter_mut().zip(&d20.sell) {
                *slot = level(e);
            }
            t.depth = Some(d);
        }
        t
    }
}

/// Quantities are never negative; a negative wire value is garbage and reads as 0.
#[inline]
fn qty(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[inline]
fn ms_to_s(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

// ---------------------------------------------------------------------------------------------
// Text frames (server → client)
// ---------------------------------------------------------------------------------------------

/// A server text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AngelText {
    /// `pong`, the reply to our text `ping`.
    Pong,
    /// `{"correlationID":..,"errorCode":"E1002","errorMessage":".."}`.
    Error {
        /// The request's correlationID, if it had one.
        correlation_id: Option<String>,
        /// `errorCode`, e.g. `E1002`.
        code: String,
        /// `errorMessage` (empty when absent).
        message: String,
    },
}

/// Documented error codes and their meaning (brokers.md §2.4).
pub const ERROR_CODES: [(&str, &str); 2] = [
    ("E1001", "Invalid Request Payload"),
    ("E1002", "Subscription Limit Exceeded"),
];

impl AngelText {
    /// One line for the event log: code, message (or the documented meaning), correlationID.
    pub fn describe(&self) -> String {
        match self {
            AngelText::Pong => "pong".into(),
            AngelText::Error {
                correlation_id,
                code,
                message,
            } => {
                let known = ERROR_CODES.iter().find(|(c, _)| c == code).map(|(_, m)| *m);
                let text = match (message.is_empty(), known) {
                    (true, Some(k)) => k.to_string(),
                    _ => snippet(message),
                };
                match correlation_id.as_deref() {
                    Some(id) if !id.is_empty() => {
                        format!("{} {text} (correlationID {})", snippet(code), snippet(id))
                    }
                    _ => format!("{} {text}", snippet(code)),
                }
            }
        }
    }
}

/// Longest excerpt of offending input quoted in an error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_number_edges() {
        assert_eq!(AngelToken::from_number(0).as_str(), Some("0"));
        assert_eq!(AngelToken::from_number(u32::MAX).number(), Some(u32::MAX));
        assert_eq!(AngelToken::new("4294967296").unwrap().number(), None);
        assert_eq!(AngelToken::new("12a").unwrap().number(), None);
        assert_eq!(AngelToken::new("").unwrap().number(), None);
        assert!(AngelToken::new(&"1".repeat(26)).is_none());
        assert!(AngelToken::new("1\0").is_none());
    }
}
