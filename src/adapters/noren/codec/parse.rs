//! Noren message parsing: one serde pass over the JSON object that borrows every string it can
//! (no allocation for a tick message), then strict parsing of the string values.

use super::{
    Feed, FeedUpdate, Flavour, NorenFields, NorenLevel, NorenMessage, bad, parse_keys, seg_of,
    snippet,
};
use crate::adapters::CodecError;
use crate::model::{FeedKey, Price};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// One JSON value: a string (borrowed unless it had escapes) or anything else.
enum Val<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Val<'a> {
    fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s),
            Val::Other => None,
        }
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val<'de>, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val<'de>, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Other)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// An object key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(ValVisitor)? {
            Val::Str(s) => Ok(Key(s)),
            // JSON object keys are always strings; serde_json never gets here.
            Val::Other => Ok(Key(Cow::Borrowed(""))),
        }
    }
}

/// Everything one pass collects: the control keys and the parsed feed fields. A bad field is
/// remembered, not returned, because only feed messages care about feed fields.
#[derive(Default)]
struct Raw<'a> {
    t: Option<Val<'a>>,
    e: Option<Val<'a>>,
    tk: Option<Val<'a>>,
    s: Option<Val<'a>>,
    uid: Option<Val<'a>>,
    emsg: Option<Val<'a>>,
    k: Option<Val<'a>>,
    fields: NorenFields,
    error: Option<String>,
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw<'de>, A::Error> {
                let mut raw = Raw::default();
                while let Some(Key(k)) = a.next_key()? {
                    let v: Val<'de> = a.next_value()?;
                    raw.set(&k, v);
                }
                Ok(raw)
            }
        }
        d.deserialize_map(RawVisitor)
    }
}

/// Where one feed field goes, and how its string parses.
enum Slot<'f> {
    Price(&'f mut Option<Price>),
    U64(&'f mut Option<u64>),
    U32(&'f mut Option<u32>),
    U8(&'f mut Option<u8>),
    Epoch(&'f mut Option<i64>),
    Percent(&'f mut Option<f64>),
    TimeOfDay(&'f mut Option<u32>),
    Text(&'f mut Option<String>),
}

fn level_slot<'f>(f: &'f mut NorenFields, key: &str) -> Option<Slot<'f>> {
    let b = key.as_bytes();
    let [side, part, n @ b'1'..=b'5'] = *b else {
        return None;
    };
    let i = usize::from(n - b'1');
    let levels: &mut [NorenLevel; 5] = match side {
        b'b' => &mut f.bids,
        b's' => &mut f.asks,
        _ => return None,
    };
    let l = levels.get_mut(i)?;
    match part {
        b'p' => Some(Slot::Price(&mut l.price)),
        b'q' => Some(Slot::U64(&mut l.quantity)),
        b'o' => Some(Slot::U32(&mut l.orders)),
        _ => None,
    }
}

fn slot<'f>(f: &'f mut NorenFields, key: &str) -> Option<Slot<'f>> {
    Some(match key {
        "ts" => Slot::Text(&mut f.symbol),
        "pp" => Slot::U8(&mut f.precision),
        "ti" => Slot::Price(&mut f.tick_size),
        "ls" => Slot::U64(&mut f.lot_size),
        "lp" => Slot::Price(&mut f.ltp),
        "pc" => Slot::Percent(&mut f.change_percent),
        "v" => Slot::U64(&mut f.volume),
        "o" => Slot::Price(&mut f.open),
        "h" => Slot::Price(&mut f.high),
        "l" => Slot::Price(&mut f.low),
        "c" => Slot::Price(&mut f.close),
        "ap" => Slot::Price(&mut f.average_price),
        "oi" => Slot::U64(&mut f.oi),
        "poi" => Slot::U64(&mut f.prev_oi),
        "toi" => Slot::U64(&mut f.total_oi),
        "ltt" => Slot::TimeOfDay(&mut f.last_trade_time),
        "ltq" => Slot::U64(&mut f.last_quantity),
        "tbq" => Slot::U64(&mut f.total_buy_quantity),
        "tsq" => Slot::U64(&mut f.total_sell_quantity),
        "uc" => Slot::Price(&mut f.upper_circuit),
        "lc" => Slot::Price(&mut f.lower_circuit),
        "52h" => Slot::Price(&mut f.high_52),
        "52l" => Slot::Price(&mut f.low_52),
        "ft" => Slot::Epoch(&mut f.feed_time),
        _ => return level_slot(f, key),
    })
}

impl<'a> Raw<'a> {
    fn set(&mut self, key: &str, v: Val<'a>) {
        let control = match key {
            "t" => &mut self.t,
            "e" => &mut self.e,
            "tk" => &mut self.tk,
            "s" => &mut self.s,
            "uid" => &mut self.uid,
            "emsg" => &mut self.emsg,
            "k" => &mut self.k,
            _ => {
                let Some(slot) = slot(&mut self.fields, key) else {
                    return; // unknown field: ignored
                };
                let ok = match &v {
                    Val::Str(s) => fill(slot, s),
                    Val::Other => false,
                };
                if !ok && self.error.is_none() {
                    self.error = Some(match v {
                        Val::Str(s) => format!("bad {key} {:?}", snippet(&s)),
                        Val::Other => format!("{key} is not a string"),
                    });
                }
                return;
            }
        };
        *control = Some(v);
    }
}

/// Parse `s` into the slot; false when it does not parse.
fn fill(slot: Slot<'_>, s: &str) -> bool {
    fn put<T>(dst: &mut Option<T>, v: Option<T>) -> bool {
        let ok = v.is_some();
        *dst = v;
        ok
    }
    match slot {
        Slot::Price(d) => put(d, parse_price(s)),
        Slot::U64(d) => put(d, parse_u64(s)),
        Slot::U32(d) => put(d, parse_u64(s).and_then(|v| u32::try_from(v).ok())),
        Slot::U8(d) => put(d, parse_u64(s).and_then(|v| u8::try_from(v).ok())),
        Slot::Epoch(d) => put(d, parse_u64(s).and_then(|v| i64::try_from(v).ok())),
        // A percent parses exactly as a decimal; the division is then correctly rounded.
        Slot::Percent(d) => put(d, parse_price(s).map(|p| p.to_f64())),
        Slot::TimeOfDay(d) => put(d, parse_time_of_day(s)),
        Slot::Text(d) => put(d, Some(s.to_string())),
    }
}

/// Unsigned decimal integer: ASCII digits only (no sign, no spaces), fitting a u64.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A decimal price (`-12.5`, `2001.45`, `42949672.95`) exactly as [`Price`] units: an optional
/// `-`, digits, and optionally `.` and digits; digits past the 7th decimal must be zeros (they
/// cannot be represented). `None` for anything else or on overflow.
pub fn parse_price(s: &str) -> Option<Price> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    // '.' is ASCII, so its byte position is a char boundary and the split cannot fail.
    let (int, frac) = match body.bytes().position(|b| b == b'.') {
        Some(i) => match body.split_at_checked(i) {
            Some((int, dot_frac)) => match dot_frac.get(1..) {
                Some(f) if !f.is_empty() => (int, Some(f)),
                _ => return None,
            },
            None => return None,
        },
        None => (body, None),
    };
    let mut units = i64::try_from(parse_u64(int)?)
        .ok()?
        .checked_mul(Price::SCALE)?;
    if let Some(f) = frac {
        let mut place = Price::SCALE / 10;
        for d in f.bytes() {
            if !d.is_ascii_digit() {
                return None;
            }
            let d = i64::from(d - b'0');
            if place == 0 {
                if d != 0 {
                    return None;
                }
                continue;
            }
            units = units.checked_add(d * place)?;
            place /= 10;
        }
    }
    Some(Price(if neg { -units } else { units }))
}

/// `HH:MM:SS` as seconds after midnight.
fn parse_time_of_day(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let mut next = |max: u64| {
        let p = parts.next()?;
        (p.len() <= 2).then_some(())?;
        parse_u64(p).filter(|v| *v < max)
    };
    let (h, m, sec) = (next(24)?, next(60)?, next(60)?);
    if parts.next().is_some() {
        return None;
    }
    u32::try_from(h * 3600 + m * 60 + sec).ok()
}

fn required<'a>(v: Option<Val<'a>>, what: &str, s: &str) -> Result<Cow<'a, str>, CodecError> {
    v.and_then(Val::text)
        .ok_or_else(|| bad(&format!("no string {what:?}"), s))
}

/// Parse and classify one server message for `flavour` (stateless: a delta comes back as
/// sent, unmerged).
///
/// # Errors
/// `BadText` (with at most ~80 characters of the input) for text that is not a JSON object
/// with a string `t`; a connect ack without a string `s`; a feed message without string `e` /
/// `tk`, with an unknown exchange, a non-u32 token, or a known field that is not a string of
/// the right kind; an unsubscribe ack whose `k` does not parse.
pub fn parse_message(s: &str, flavour: Flavour) -> Result<NorenMessage, CodecError> {
    let raw: Raw<'_> = serde_json::from_str(s).map_err(|_| bad("not a JSON object", s))?;
    let t = required(raw.t, "t", s)?;
    let feed = |f: Feed, snapshot: bool| -> Result<NorenMessage, CodecError> {
        if let Some(e) = &raw.error {
            return Err(CodecError::BadText(format!("{t}: {e}")));
        }
        let e = required(raw.e, "e", s)?;
        let seg = seg_of(&e).ok_or_else(|| bad("unknown exchange", &e))?;
        let tk = required(raw.tk, "tk", s)?;
        let token = parse_u64(&tk)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("token is not a u32", &tk))?;
        Ok(NorenMessage::Feed(FeedUpdate {
            feed: f,
            snapshot,
            key: FeedKey { seg, token },
            fields: raw.fields,
        }))
    };
    match &*t {
        "tk" => feed(Feed::Touchline, true),
        "tf" => feed(Feed::Touchline, false),
        "dk" => feed(Feed::Depth, true),
        "df" => feed(Feed::Depth, false),
        "ck" | "ak" if t == "ck" || flavour.accepts_ak() => {
            let status = required(raw.s, "s", s)?;
            Ok(match &*status {
                "OK" => NorenMessage::Connected {
                    uid: raw.uid.and_then(Val::text).map(Cow::into_owned),
                },
                "Not_Ok" => NorenMessage::LoginRejected(
                    raw.emsg
                        .and_then(Val::text)
                        .map_or_else(|| "Not_Ok".to_string(), |m| snippet(&m)),
                ),
                other => NorenMessage::ConnectStatus(snippet(other)),
            })
        }
        "uk" | "udk" => Ok(NorenMessage::UnsubscribeAck {
            feed: if t == "uk" {
                Feed::Touchline
            } else {
                Feed::Depth
            },
            keys: parse_keys(&required(raw.k, "k", s)?)?,
        }),
        "ok" => Ok(NorenMessage::OrderSubscribeAck),
        "uok" => Ok(NorenMessage::OrderUnsubscribeAck),
        // Order updates are rare and passed through whole: a second, owning parse is fine.
        "om" => match serde_json::from_str(s) {
            Ok(serde_json::Value::Object(o)) => Ok(NorenMessage::OrderUpdate(o)),
            _ => Err(bad("not a JSON object", s)),
        },
        "h" => Ok(NorenMessage::Heartbeat),
        other => Ok(NorenMessage::Other(snippet(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly() {
        let p = |s| parse_price(s).map(|p| p.0);
        assert_eq!(p("2001.45"), Some(20_014_500_000));
        assert_eq!(p("-3.76"), Some(-37_600_000));
        assert_eq!(p("0.0001"), Some(1_000));
        assert_eq!(p("1.2345678"), Some(12_345_678));
        assert_eq!(p("1.23456780000"), Some(12_345_678));
        assert_eq!(p("42949672.95"), Some(429_496_729_500_000));
        assert_eq!(p("7"), Some(70_000_000));
        for bad in [
            "",
            "-",
            ".",
            "1.",
            ".5",
            "1.2.3",
            "+1",
            " 1",
            "1e5",
            "NaN",
            "1.23456789",
            "--1",
            "922337203685.4775808",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(p("922337203685.4775807"), Some(i64::MAX));
    }

    #[test]
    fn integers_and_times_parse_strictly() {
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_time_of_day("10:50:01"), Some(39_001));
        assert_eq!(parse_time_of_day("23:59:59"), Some(86_399));
        for bad in [
            "24:00:00",
            "10:60:00",
            "10:00:60",
            "10:00",
            "10:00:00:00",
            "100:0:0",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
