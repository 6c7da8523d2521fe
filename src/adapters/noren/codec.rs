//! NorenOMS WebSocket codec (pure, no I/O) for Shoonya, Flattrade and other Noren brokers:
//! JSON text messages whose values are all strings, both directions (the simulator uses the
//! server side).
//!
//! Wire format: `shared/protocols/brokers.md` §3. The server acknowledges a login with
//! `ck` (Flattrade: also `ak`), sends one `tk`/`dk` full snapshot per subscribed scrip, then
//! sparse `tf`/`df` deltas carrying only the fields that changed. [`parse_message`] classifies
//! one message and parses its fields; [`NorenDecoder`] (one per connection) merges deltas into
//! the snapshot of the same exchange **and** token — tokens collide across exchanges — and
//! produces normalised ticks.
//!
//! Strictness, deliberately beyond the official clients (which pass the dict through): a known
//! field whose value is not a string, or whose string is not a number of the expected kind, is
//! an error for the whole message (nothing is merged). Prices are parsed from their decimal
//! text straight into [`Price`] units, exactly, never through f64. Unknown fields are ignored,
//! as are unknown message types (the official clients ignore them too).

mod encode;
mod parse;
mod state;

pub use encode::{
    Ack, HEARTBEAT, MAX_KEYS_PER_MESSAGE, NorenRequest, PING_PAYLOAD, TokenKind, decode_request,
    encode_connect_ack, encode_connect_rejected, encode_delta, encode_login, encode_snapshot,
    encode_subscribe, encode_unsubscribe, encode_unsubscribe_ack, encode_update, format_price,
};
pub use parse::{parse_message, parse_price};
pub use state::{NorenDecoder, fields_to_tick};

use crate::model::{FeedKey, Price};
use std::fmt::Write as _;

/// Noren exchanges and our `FeedKey::seg` for each (the codes follow Kite's where both have
/// the segment, so the two are easy to read side by side; they are Noren-specific all the same).
pub const EXCHANGES: [(&str, u16); 8] = [
    ("NSE", 1),
    ("NFO", 2),
    ("CDS", 3),
    ("BSE", 4),
    ("BFO", 5),
    ("BCD", 6),
    ("MCX", 7),
    ("NCX", 8),
];

/// Our seg of a Noren exchange name as the wire spells it (`NSE` → 1).
pub fn seg_of(exchange: &str) -> Option<u16> {
    EXCHANGES
        .iter()
        .find(|(n, _)| *n == exchange)
        .map(|(_, s)| *s)
}

/// The Noren exchange name of our seg (1 → `NSE`).
pub fn exchange_of(seg: u16) -> Option<&'static str> {
    EXCHANGES.iter().find(|(_, s)| *s == seg).map(|(n, _)| *n)
}

/// Decimal places Noren quotes prices with (`pp`): 4 for currency segments, else 2.
pub fn default_precision(seg: u16) -> u8 {
    match exchange_of(seg) {
        Some("CDS" | "BCD") => 4,
        _ => 2,
    }
}

/// A key our exchange table cannot name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("segment {0} is not a Noren exchange")]
pub struct UnknownSegment(pub u16);

/// `EXCH|TOKEN` of one key.
///
/// # Errors
/// A seg outside [`EXCHANGES`].
pub fn scrip(key: FeedKey) -> Result<String, UnknownSegment> {
    let ex = exchange_of(key.seg).ok_or(UnknownSegment(key.seg))?;
    Ok(format!("{ex}|{}", key.token))
}

/// `EXCH|TOKEN#EXCH|TOKEN…` for a request's `k`.
///
/// # Errors
/// A seg outside [`EXCHANGES`].
pub fn encode_keys(keys: &[FeedKey]) -> Result<String, UnknownSegment> {
    let mut s = String::with_capacity(keys.len() * 12);
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            s.push('#');
        }
        let ex = exchange_of(k.seg).ok_or(UnknownSegment(k.seg))?;
        // Writing to a String cannot fail.
        let _ = write!(s, "{ex}|{}", k.token);
    }
    Ok(s)
}

/// Which official client build, and so which login message and connect acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Shoonya and classic Noren (NorenRestApiPy 0.0.22/0.0.30): login `t:"c"` with
    /// `susertoken`; only `ck` acknowledges.
    Classic,
    /// OAuth Noren builds (norenrestapi 0.0.37): login `t:"a"` with `accesstoken`; only `ck`
    /// acknowledges (an `ak` is ignored).
    OAuth,
    /// Flattrade (NorenRestApi 0.0.29): login `t:"a"` with `accesstoken`; `ck` or `ak`.
    Flattrade,
}

impl Flavour {
    /// Whether an `ak` message is this flavour's connect acknowledgement.
    pub fn accepts_ak(self) -> bool {
        self == Flavour::Flattrade
    }
}

/// Touchline or depth feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// `t`/`tk`/`tf`/`u`/`uk`: LTP, OHLC, volume, best bid/ask.
    Touchline,
    /// `d`/`dk`/`df`/`ud`/`udk`: touchline plus 5-level depth, circuits, 52-week range.
    Depth,
}

/// One depth level as sent: any part may be absent from a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NorenLevel {
    /// `bpN` / `spN`.
    pub price: Option<Price>,
    /// `bqN` / `sqN`.
    pub quantity: Option<u64>,
    /// `boN` / `soN`.
    pub orders: Option<u32>,
}

/// The fields of a tk/tf/dk/df message, parsed; `None` = not in the message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NorenFields {
    /// `ts` trading symbol (tk only).
    pub symbol: Option<String>,
    /// `pp` price precision (tk only).
    pub precision: Option<u8>,
    /// `ti` tick size (tk only).
    pub tick_size: Option<Price>,
    /// `ls` lot size (tk only).
    pub lot_size: Option<u64>,
    /// `lp` last price.
    pub ltp: Option<Price>,
    /// `pc` percent change (the broker's, rounded; ticks compute their own).
    pub change_percent: Option<f64>,
    /// `v` volume.
    pub volume: Option<u64>,
    /// `o` open.
    pub open: Option<Price>,
    /// `h` high.
    pub high: Option<Price>,
    /// `l` low.
    pub low: Option<Price>,
    /// `c` previous close.
    pub close: Option<Price>,
    /// `ap` average price.
    pub average_price: Option<Price>,
    /// `oi` open interest.
    pub oi: Option<u64>,
    /// `poi` previous open interest.
    pub prev_oi: Option<u64>,
    /// `toi` total open interest of the underlying.
    pub total_oi: Option<u64>,
    /// `ltt` last trade time, seconds after midnight IST.
    pub last_trade_time: Option<u32>,
    /// `ltq` last traded quantity.
    pub last_quantity: Option<u64>,
    /// `tbq` total buy quantity.
    pub total_buy_quantity: Option<u64>,
    /// `tsq` total sell quantity.
    pub total_sell_quantity: Option<u64>,
    /// `bp1..5`, `bq1..5`, `bo1..5`.
    pub bids: [NorenLevel; 5],
    /// `sp1..5`, `sq1..5`, `so1..5`.
    pub asks: [NorenLevel; 5],
    /// `uc` upper circuit.
    pub upper_circuit: Option<Price>,
    /// `lc` lower circuit.
    pub lower_circuit: Option<Price>,
    /// `52h` 52-week high.
    pub high_52: Option<Price>,
    /// `52l` 52-week low.
    pub low_52: Option<Price>,
    /// `ft` feed time, epoch seconds.
    pub feed_time: Option<i64>,
}

/// Apply `$op` to every scalar field name of [`NorenFields`] (levels are handled apart).
macro_rules! scalar_fields {
    ($op:ident) => {
        $op!(
            symbol,
            precision,
            tick_size,
            lot_size,
            ltp,
            change_percent,
            volume,
            open,
            high,
            low,
            close,
            average_price,
            oi,
            prev_oi,
            total_oi,
            last_trade_time,
            last_quantity,
            total_buy_quantity,
            total_sell_quantity,
            upper_circuit,
            lower_circuit,
            high_52,
            low_52,
            feed_time
        )
    };
}

impl NorenFields {
    /// Merge a delta: every field present in `delta` replaces ours; absent ones are kept.
    pub fn merge(&mut self, delta: &NorenFields) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if delta.$f.is_some() {
                    self.$f.clone_from(&delta.$f);
                }
            )*};
        }
        scalar_fields!(take);
        for (mine, theirs) in self
            .bids
            .iter_mut()
            .chain(self.asks.iter_mut())
            .zip(delta.bids.iter().chain(delta.asks.iter()))
        {
            mine.price = theirs.price.or(mine.price);
            mine.quantity = theirs.quantity.or(mine.quantity);
            mine.orders = theirs.orders.or(mine.orders);
        }
    }

    /// The delta that turns `prev` into `self`: fields present here and different there.
    /// (Noren deltas can only add or change a field, never remove one.)
    pub fn diff(&self, prev: &NorenFields) -> NorenFields {
        let mut d = NorenFields::default();
        macro_rules! changed {
            ($($f:ident),*) => {$(
                if self.$f.is_some() && self.$f != prev.$f {
                    d.$f.clone_from(&self.$f);
                }
            )*};
        }
        scalar_fields!(changed);
        let pairs = self
            .bids
            .iter()
            .zip(&prev.bids)
            .chain(self.asks.iter().zip(&prev.asks));
        for (out, (new, old)) in d.bids.iter_mut().chain(d.asks.iter_mut()).zip(pairs) {
            out.price = pick(new.price, old.price);
            out.quantity = pick(new.quantity, old.quantity);
            out.orders = pick(new.orders, old.orders);
        }
        d
    }
}

/// `new` if present and different from `old`.
fn pick<T: PartialEq>(new: Option<T>, old: Option<T>) -> Option<T> {
    if new.is_some() && new != old {
        new
    } else {
        None
    }
}

/// A touchline or depth message: snapshot (`tk`/`dk`) or delta (`tf`/`df`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedUpdate {
    /// Touchline or depth.
    pub feed: Feed,
    /// `tk`/`dk` (true) or `tf`/`df` (false).
    pub snapshot: bool,
    /// `e` and `tk` as our key.
    pub key: FeedKey,
    /// Everything else the message carried.
    pub fields: NorenFields,
}

impl FeedUpdate {
    /// The message type on the wire: `tk`, `tf`, `dk` or `df`.
    pub fn wire_type(&self) -> &'static str {
        match (self.feed, self.snapshot) {
            (Feed::Touchline, true) => "tk",
            (Feed::Touchline, false) => "tf",
            (Feed::Depth, true) => "dk",
            (Feed::Depth, false) => "df",
        }
    }
}

/// One server message, classified as the official clients classify it for `Flavour`.
// Returned by value once per message; boxing the feed variant would add an allocation per tick.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum NorenMessage {
    /// `ck` (or `ak` where the flavour accepts it) with `s` exactly `"OK"`.
    Connected {
        /// `uid`, when sent as a string.
        uid: Option<String>,
    },
    /// `ck`/`ak` with `s:"Not_Ok"`: the broker refused the session token (the reason is `emsg`,
    /// or `Not_Ok` without one). An authentication failure: the engine should stop retrying
    /// with this token (token_invalid) rather than reconnect.
    LoginRejected(String),
    /// `ck`/`ak` with any other status, e.g. the documented-but-wrong `"Ok"`: the official
    /// clients compare `s == "OK"` exactly and report an error, so do we (not an auth failure).
    ConnectStatus(String),
    /// `tk`/`tf`/`dk`/`df`.
    Feed(FeedUpdate),
    /// `uk` (touchline) / `udk` (depth) with the keys of `k`.
    UnsubscribeAck {
        /// Which feed was unsubscribed.
        feed: Feed,
        /// The keys acknowledged.
        keys: Vec<FeedKey>,
    },
    /// `ok`: order updates subscribed.
    OrderSubscribeAck,
    /// `uok`: order updates unsubscribed.
    OrderUnsubscribeAck,
    /// `om`: an order update, passed through.
    OrderUpdate(serde_json::Map<String, serde_json::Value>),
    /// `h`: a heartbeat (only clients are documented to send one; harmless if echoed).
    Heartbeat,
    /// Any other `t` (and `ak` for flavours that ignore it): ignored, as the official clients do.
    Other(String),
}

/// The official clients' user callbacks (`__on_data_callback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfficialCallback {
    /// `socket_open_callback()`.
    SocketOpen,
    /// `socket_error_callback(dict)` (also for text that is not JSON).
    SocketError,
    /// `subscribe_callback(dict)`.
    Subscribe,
    /// `order_update_callback(dict)`.
    OrderUpdate,
}

impl NorenMessage {
    /// The callback the official client of the decoding flavour invokes, if any.
    pub fn official_callback(&self) -> Option<OfficialCallback> {
        match self {
            NorenMessage::Connected { .. } => Some(OfficialCallback::SocketOpen),
            NorenMessage::LoginRejected(_) | NorenMessage::ConnectStatus(_) => {
                Some(OfficialCallback::SocketError)
            }
            NorenMessage::Feed(_) => Some(OfficialCallback::Subscribe),
            NorenMessage::OrderUpdate(_) => Some(OfficialCallback::OrderUpdate),
            NorenMessage::UnsubscribeAck { .. }
            | NorenMessage::OrderSubscribeAck
            | NorenMessage::OrderUnsubscribeAck
            | NorenMessage::Heartbeat
            | NorenMessage::Other(_) => None,
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

fn bad(what: &str, input: &str) -> crate::adapters::CodecError {
    crate::adapters::CodecError::BadText(format!("{what}: {}", snippet(input)))
}

/// Parse a request's or ack's `k` (`EXCH|TOKEN#…`) into keys.
///
/// # Errors
/// `BadText` for an empty list, an unknown exchange, or a token that is not a u32.
pub fn parse_keys(k: &str) -> Result<Vec<FeedKey>, crate::adapters::CodecError> {
    k.split('#')
        .map(|one| {
            let (ex, tok) = one
                .split_once('|')
                .ok_or_else(|| bad("scrip is not EXCH|TOKEN", one))?;
            let seg = seg_of(ex).ok_or_else(|| bad("unknown exchange", ex))?;
            let token = parse::parse_u64(tok)
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| bad("token is not a u32", tok))?;
            Ok(FeedKey { seg, token })
        })
        .collect()
}
