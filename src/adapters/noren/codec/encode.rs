//! Noren encoders: login, subscribe / unsubscribe and heartbeat (client side); connect and
//! unsubscribe acks and tk/tf/dk/df messages from fields or ticks (server side, for the
//! simulator); and the request decoder the simulator needs.

use super::{
    Feed, FeedUpdate, Flavour, NorenFields, UnknownSegment, bad, default_precision, encode_keys,
    exchange_of, parse_keys, snippet,
};
use crate::adapters::CodecError;
use crate::model::{FeedKey, Mode, Price, Tick};
use crate::secret::Secret;
use serde_json::Value;
use std::fmt::Write as _;

/// The documented client heartbeat text (brokers.md §3.1; no reply is sent).
pub const HEARTBEAT: &str = r#"{"k":"","t":"h"}"#;
/// Payload of the WebSocket ping frames the official clients send every 3 s instead.
pub const PING_PAYLOAD: &str = r#"{"t":"h"}"#;
/// Scrips per subscribe / unsubscribe message. Noren documents no limit (brokers.md §3.1);
/// this is our choice, to keep each frame small (about 1.5 KB).
pub const MAX_KEYS_PER_MESSAGE: usize = 100;

/// A JSON string literal (escaped).
fn js(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Which credential the login message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `t:"c"` with `susertoken` (classic Noren, Shoonya).
    SuserToken,
    /// `t:"a"` with `accesstoken` (OAuth builds, Flattrade).
    AccessToken,
}

impl Flavour {
    /// The credential this flavour logs in with.
    pub fn token_kind(self) -> TokenKind {
        match self {
            Flavour::Classic => TokenKind::SuserToken,
            Flavour::OAuth | Flavour::Flattrade => TokenKind::AccessToken,
        }
    }
}

/// The first message after the upgrade, e.g. `{"t":"c","uid":"FA12345","actid":"FA12345",
/// "susertoken":"…","source":"API"}` (Flattrade / OAuth: `t:"a"`, `accesstoken`); `actid` is
/// the uid, as every official client sets it.
pub fn encode_login(flavour: Flavour, uid: &str, token: &str) -> String {
    let (t, field) = match flavour.token_kind() {
        TokenKind::SuserToken => ("c", "susertoken"),
        TokenKind::AccessToken => ("a", "accesstoken"),
    };
    let uid = js(uid);
    format!(
        r#"{{"t":"{t}","uid":{uid},"actid":{uid},"{field}":{},"source":"API"}}"#,
        js(token)
    )
}

fn keyed(t: &str, keys: &[FeedKey]) -> Result<Vec<String>, UnknownSegment> {
    keys.chunks(MAX_KEYS_PER_MESSAGE)
        .map(|c| Ok(format!(r#"{{"t":"{t}","k":"{}"}}"#, encode_keys(c)?)))
        .collect()
}

/// Subscribe messages: `{"t":"t","k":"NSE|22#NSE|26000"}` (touchline) or `t:"d"` (depth), at
/// most [`MAX_KEYS_PER_MESSAGE`] scrips each; none for no keys.
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_subscribe(feed: Feed, keys: &[FeedKey]) -> Result<Vec<String>, UnknownSegment> {
    keyed(
        match feed {
            Feed::Touchline => "t",
            Feed::Depth => "d",
        },
        keys,
    )
}

/// Unsubscribe messages: `t:"u"` (touchline) or `t:"ud"` (depth), batched as subscribe.
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_unsubscribe(feed: Feed, keys: &[FeedKey]) -> Result<Vec<String>, UnknownSegment> {
    keyed(
        match feed {
            Feed::Touchline => "u",
            Feed::Depth => "ud",
        },
        keys,
    )
}

// ---------------------------------------------------------------------------------------------
// Server side (simulator)
// ---------------------------------------------------------------------------------------------

/// Which connect acknowledgement a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ack {
    /// `ck` (every build).
    Ck,
    /// `ak` (the Flattrade documentation's name; only the Flattrade client accepts it).
    Ak,
}

impl Ack {
    fn wire(self) -> &'static str {
        match self {
            Ack::Ck => "ck",
            Ack::Ak => "ak",
        }
    }
}

/// `{"t":"ck","s":"OK","uid":"FA12345"}`: `"OK"` exactly, the only status the clients accept.
pub fn encode_connect_ack(ack: Ack, uid: &str) -> String {
    format!(r#"{{"t":"{}","s":"OK","uid":{}}}"#, ack.wire(), js(uid))
}

/// `{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}`.
pub fn encode_connect_rejected(ack: Ack, emsg: &str) -> String {
    format!(
        r#"{{"t":"{}","s":"Not_Ok","emsg":{}}}"#,
        ack.wire(),
        js(emsg)
    )
}

/// `{"t":"uk","k":"NSE|22"}` (touchline) or `t:"udk"` (depth).
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_unsubscribe_ack(feed: Feed, keys: &[FeedKey]) -> Result<String, UnknownSegment> {
    let t = match feed {
        Feed::Touchline => "uk",
        Feed::Depth => "udk",
    };
    Ok(format!(r#"{{"t":"{t}","k":"{}"}}"#, encode_keys(keys)?))
}

/// A price as Noren writes it: at least `min_decimals` places (at most 7), more only when the
/// value needs them, so parsing it back gives exactly the same [`Price`].
pub fn format_price(p: Price, min_decimals: u8) -> String {
    let scale = Price::SCALE.unsigned_abs();
    let abs = p.0.unsigned_abs();
    let (int, mut frac) = (abs / scale, abs % scale);
    let (mut digits, min) = (7usize, usize::from(min_decimals.min(7)));
    while digits > min && frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let sign = if p.0 < 0 { "-" } else { "" };
    if digits == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0digits$}")
    }
}

/// Largest |pc| we write: beyond it `{:.2}` would not parse back as a price.
const MAX_PERCENT: f64 = 1e11;

/// Encode a tk/tf/dk/df message with exactly the fields present in `u.fields`, prices with
/// `pp` decimals (the message's own `pp`, else the exchange's default).
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_update(u: &FeedUpdate) -> Result<String, UnknownSegment> {
    let ex = exchange_of(u.key.seg).ok_or(UnknownSegment(u.key.seg))?;
    let f = &u.fields;
    let dec = f.precision.unwrap_or(default_precision(u.key.seg));
    let mut s = String::with_capacity(640);
    let _ = write!(
        s,
        r#"{{"t":"{}","e":"{ex}","tk":"{}""#,
        u.wire_type(),
        u.key.token
    );
    // Writing to a String cannot fail.
    let px = |s: &mut String, k: &str, v: Option<Price>| {
        if let Some(v) = v {
            let _ = write!(s, r#","{k}":"{}""#, format_price(v, dec));
        }
    };
    let n = |s: &mut String, k: &str, v: Option<u64>| {
        if let Some(v) = v {
            let _ = write!(s, r#","{k}":"{v}""#);
        }
    };
    if let Some(sym) = &f.symbol {
        let _ = write!(s, r#","ts":{}"#, js(sym));
    }
    n(&mut s, "pp", f.precision.map(u64::from));
    px(&mut s, "ti", f.tick_size);
    n(&mut s, "ls", f.lot_size);
    px(&mut s, "lp", f.ltp);
    if let Some(pc) = f.change_percent.filter(|p| p.abs() < MAX_PERCENT) {
        let _ = write!(s, r#","pc":"{pc:.2}""#);
    }
    n(&mut s, "v", f.volume);
    px(&mut s, "o", f.open);
    px(&mut s, "h", f.high);
    px(&mut s, "l", f.low);
    px(&mut s, "c", f.close);
    px(&mut s, "ap", f.average_price);
    n(&mut s, "oi", f.oi);
    n(&mut s, "poi", f.prev_oi);
    n(&mut s, "toi", f.total_oi);
    if let Some(t) = f.last_trade_time {
        let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60);
        let _ = write!(s, r#","ltt":"{h:02}:{m:02}:{sec:02}""#);
    }
    n(&mut s, "ltq", f.last_quantity);
    n(&mut s, "tbq", f.total_buy_quantity);
    n(&mut s, "tsq", f.total_sell_quantity);
    for (side, levels) in [('b', &f.bids), ('s', &f.asks)] {
        for (i, l) in levels.iter().enumerate() {
            px(&mut s, &format!("{side}p{}", i + 1), l.price);
        }
        for (i, l) in levels.iter().enumerate() {
            n(&mut s, &format!("{side}q{}", i + 1), l.quantity);
        }
        for (i, l) in levels.iter().enumerate() {
            n(
                &mut s,
                &format!("{side}o{}", i + 1),
                l.orders.map(u64::from),
            );
        }
    }
    px(&mut s, "uc", f.upper_circuit);
    px(&mut s, "lc", f.lower_circuit);
    px(&mut s, "52h", f.high_52);
    px(&mut s, "52l", f.low_52);
    if let Some(ft) = f.feed_time {
        let _ = write!(s, r#","ft":"{ft}""#);
    }
    s.push('}');
    Ok(s)
}

impl NorenFields {
    /// The fields a server sends for a tick (the inverse of
    /// [`fields_to_tick`](super::fields_to_tick) for ticks that fit the wire): LTP, OHLC,
    /// volume, average, OI, `pc` (the tick's `change`) and `ft` always; depth feeds add `ltq`,
    /// `tbq`, `tsq`, `ltt` (the IST time of day of `last_trade_time`) and the 5 levels;
    /// snapshots add `pp`. An LTP-only tick carries only `lp`.
    pub fn from_tick(t: &Tick, snapshot: bool) -> NorenFields {
        let mut f = NorenFields {
            precision: snapshot.then(|| default_precision(t.key.seg)),
            ltp: Some(t.ltp),
            ..NorenFields::default()
        };
        let Some(q) = t.quote else {
            return f;
        };
        f.change_percent = q.change.is_finite().then_some(q.change);
        f.volume = Some(q.volume);
        f.open = Some(q.ohlc.open);
        f.high = Some(q.ohlc.high);
        f.low = Some(q.ohlc.low);
        f.close = Some(q.ohlc.close);
        f.average_price = Some(q.average_price);
        f.oi = Some(q.oi);
        f.feed_time = q.exchange_time;
        if t.mode == Mode::Depth {
            f.last_quantity = Some(q.last_quantity);
            f.total_buy_quantity = Some(q.total_buy_quantity);
            f.total_sell_quantity = Some(q.total_sell_quantity);
            f.last_trade_time = q.last_trade_time.map(|e| {
                // rem_euclid keeps it in 0..86400, so the cast is lossless.
                e.saturating_add(19_800).rem_euclid(86_400) as u32
            });
            let d = t.depth.unwrap_or_default();
            for (dst, src) in f
                .bids
                .iter_mut()
                .zip(&d.buy)
                .chain(f.asks.iter_mut().zip(&d.sell))
            {
                dst.price = Some(src.price);
                dst.quantity = Some(src.quantity);
                dst.orders = Some(src.orders);
            }
        }
        f
    }
}

fn feed_of(t: &Tick) -> Feed {
    if t.mode == Mode::Depth {
        Feed::Depth
    } else {
        Feed::Touchline
    }
}

/// The snapshot a server sends first for a tick: `dk` for a Depth tick, else `tk`.
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_snapshot(t: &Tick) -> Result<String, UnknownSegment> {
    encode_update(&FeedUpdate {
        feed: feed_of(t),
        snapshot: true,
        key: t.key,
        fields: NorenFields::from_tick(t, true),
    })
}

/// The delta (`tf`/`df`) from `prev` to `next` with only the fields that changed (every field
/// when the keys differ). A field cannot be removed by a delta: one that is absent in `next`
/// (`ft`, `ltt`) keeps its old value at the client.
///
/// # Errors
/// A key whose seg is not in the exchange table.
pub fn encode_delta(prev: &Tick, next: &Tick) -> Result<String, UnknownSegment> {
    let new = NorenFields::from_tick(next, false);
    let fields = if prev.key == next.key {
        new.diff(&NorenFields::from_tick(prev, false))
    } else {
        new
    };
    encode_update(&FeedUpdate {
        feed: feed_of(next),
        snapshot: false,
        key: next.key,
        fields,
    })
}

/// A client message as the server sees it (simulator side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NorenRequest {
    /// `t:"c"` / `t:"a"` login.
    Login {
        /// Which credential was sent.
        kind: TokenKind,
        /// `uid`.
        uid: String,
        /// `actid`.
        actid: String,
        /// `susertoken` / `accesstoken` (redacted in Debug).
        token: Secret,
    },
    /// `t:"t"` / `t:"d"`.
    Subscribe {
        /// Touchline or depth.
        feed: Feed,
        /// The scrips of `k`.
        keys: Vec<FeedKey>,
    },
    /// `t:"u"` / `t:"ud"`.
    Unsubscribe {
        /// Touchline or depth.
        feed: Feed,
        /// The scrips of `k`.
        keys: Vec<FeedKey>,
    },
    /// `t:"o"` with `actid`.
    OrderSubscribe {
        /// `actid`.
        actid: String,
    },
    /// `t:"uo"`.
    OrderUnsubscribe,
    /// `t:"h"` heartbeat.
    Heartbeat,
}

/// Decode a client message (simulator side).
///
/// # Errors
/// `BadText` (with at most ~80 characters of the input) for anything but the requests above
/// with their string fields (a `k` must parse as `EXCH|TOKEN#…`).
pub fn decode_request(s: &str) -> Result<NorenRequest, CodecError> {
    let v: Value = serde_json::from_str(s).map_err(|_| bad("not JSON", s))?;
    let get = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("no string {k:?}"), s))
    };
    let login = |kind: TokenKind, field: &str| -> Result<NorenRequest, CodecError> {
        Ok(NorenRequest::Login {
            kind,
            uid: get("uid")?.to_string(),
            actid: get("actid")?.to_string(),
            token: Secret::new(get(field)?),
        })
    };
    let keys = || get("k").and_then(parse_keys);
    match get("t")? {
        "c" => login(TokenKind::SuserToken, "susertoken"),
        "a" => login(TokenKind::AccessToken, "accesstoken"),
        "t" => Ok(NorenRequest::Subscribe {
            feed: Feed::Touchline,
            keys: keys()?,
        }),
        "d" => Ok(NorenRequest::Subscribe {
            feed: Feed::Depth,
            keys: keys()?,
        }),
        "u" => Ok(NorenRequest::Unsubscribe {
            feed: Feed::Touchline,
            keys: keys()?,
        }),
        "ud" => Ok(NorenRequest::Unsubscribe {
            feed: Feed::Depth,
            keys: keys()?,
        }),
        "o" => Ok(NorenRequest::OrderSubscribe {
            actid: get("actid")?.to_string(),
        }),
        "uo" => Ok(NorenRequest::OrderUnsubscribe),
        "h" => Ok(NorenRequest::Heartbeat),
        other => Err(CodecError::BadText(format!(
            "unknown request type {:?}",
            snippet(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::ltt_epoch;
    use super::*;

    #[test]
    fn ltt_roundtrips_near_feed_time() {
        // `ltt` written by `from_tick` reads back as the same second within 12 h of `ft`.
        let ft = 1_704_432_004;
        for dt in [-43_199i64, -3_600, 0, 59, 43_200] {
            let e = ft + dt;
            let tod = e.saturating_add(19_800).rem_euclid(86_400) as u32;
            assert_eq!(ltt_epoch(ft, tod), e, "dt {dt}");
        }
    }

    #[test]
    fn prices_format_minimally_but_exactly() {
        assert_eq!(format_price(Price(20_014_500_000), 2), "2001.45");
        assert_eq!(format_price(Price(19_950_000_000), 2), "1995.00");
        assert_eq!(format_price(Price(-37_600_000), 2), "-3.76");
        assert_eq!(format_price(Price(832_512_500), 4), "83.25125");
        assert_eq!(format_price(Price(1), 2), "0.0000001");
        assert_eq!(format_price(Price(70_000_000), 0), "7");
        assert_eq!(format_price(Price(i64::MIN), 2), "-922337203685.4775808");
    }
}
