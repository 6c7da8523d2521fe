//! Kite codec against the pykiteconnect 5.2.2 vectors (`tests/fixtures/kite_vectors.json`),
//! round trips, malformed frames, text messages, and properties (no panic, all-or-nothing).

use proptest::prelude::*;
use serde_json::{Value, json};
use tickmux::adapters::CodecError;
use tickmux::adapters::kite::codec::{
    self, FrameInfo, Request, TextMessage, change_percent, decode_frame, decode_request,
    decode_text, divisor, encode_frame, encode_mode, encode_subscribe, encode_text,
    encode_unsubscribe,
};
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};

const VECTORS: &str = include_str!("fixtures/kite_vectors.json");

/// Every vector name in the fixture; `every_vector_has_a_test` keeps this list and the
/// `vector_*` tests honest.
const NAMES: [&str; 15] = [
    "ltp_nse_1",
    "ltp_two_packets",
    "ltp_cds",
    "ltp_bcd",
    "quote_nse_1",
    "quote_mcx_close0",
    "full_nse_1",
    "full_nfo_oi",
    "index_quote_nifty",
    "index_full_banknifty",
    "mixed_frame",
    "heartbeat",
    "unknown_len_dropped",
    "mock_ticker_quote",
    "mock_ticker_full",
];

// ---- fixture loading ---------------------------------------------------------------------

/// Replace every JSON number outside strings by the string `"#num:<lexeme>"`. serde_json's
/// default float parser is not guaranteed correctly rounded (no `float_roundtrip` feature
/// here); Rust's `f64::from_str` is, so exact comparisons parse the lexeme themselves.
fn quote_numbers(src: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut chars = src.chars().peekable();
    let (mut in_str, mut esc) = (false, false);
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            out.push_str("\"#num:");
            out.push(c);
            while let Some(&n) = chars.peek() {
                if n.is_ascii_digit() || "+-.eE".contains(n) {
                    out.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push('"');
        } else {
            out.push(c);
        }
    }
    out
}

struct Vector {
    frame: Vec<u8>,
    parsed: Value,
    on_ticks_called: bool,
}

fn all_vectors() -> Vec<(String, Vector)> {
    let doc: Value = serde_json::from_str(&quote_numbers(VECTORS)).expect("fixture is JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            let frame = hex(v["frame_hex"].as_str().unwrap());
            let len = v["frame_len"].as_str().unwrap();
            assert_eq!(len, format!("#num:{}", frame.len()), "{name}: frame_len");
            (
                name,
                Vector {
                    frame,
                    parsed: v["parsed"].clone(),
                    on_ticks_called: v["on_ticks_called"].as_bool().unwrap(),
                },
            )
        })
        .collect()
}

fn vector(name: &str) -> Vector {
    all_vectors()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
        .1
}

fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---- our ticks in pykiteconnect's dict shape ------------------------------------------------

fn epoch(t: Option<i64>, what: &str) -> Value {
    json!({ "epoch": t.unwrap_or_else(|| panic!("{what} missing")) })
}

/// A tick rendered with pykiteconnect's keys, asserting that the fields pykiteconnect does not
/// produce for this packet kind are zero/None in ours (so nothing goes unchecked).
fn pykite_shape(t: &Tick) -> Value {
    let mode = match t.mode {
        Mode::Ltp => "ltp",
        Mode::Quote => "quote",
        Mode::Depth => "full",
    };
    assert_eq!(t.key, FeedKey::kite(t.key.token));
    let mut m = json!({
        "tradable": t.tradable,
        "mode": mode,
        "instrument_token": t.key.token,
        "last_price": t.ltp.to_f64(),
    });
    if t.mode == Mode::Ltp {
        assert!(
            t.quote.is_none() && t.depth.is_none(),
            "ltp carries extras: {t:?}"
        );
        return m;
    }
    let q = t.quote.expect("quote part");
    m["ohlc"] = json!({
        "open": q.ohlc.open.to_f64(),
        "high": q.ohlc.high.to_f64(),
        "low": q.ohlc.low.to_f64(),
        "close": q.ohlc.close.to_f64(),
    });
    m["change"] = json!(q.change);
    if !t.tradable {
        let bare = Quote {
            ohlc: q.ohlc,
            change: q.change,
            exchange_time: q.exchange_time,
            ..Quote::default()
        };
        assert_eq!(q, bare, "index quote carries extras");
        assert!(t.depth.is_none(), "index tick has depth");
        if t.mode == Mode::Depth {
            m["exchange_timestamp"] = epoch(q.exchange_time, "exchange_time");
        } else {
            assert!(q.exchange_time.is_none());
        }
        return m;
    }
    m["last_traded_quantity"] = json!(q.last_quantity);
    m["average_traded_price"] = json!(q.average_price.to_f64());
    m["volume_traded"] = json!(q.volume);
    m["total_buy_quantity"] = json!(q.total_buy_quantity);
    m["total_sell_quantity"] = json!(q.total_sell_quantity);
    if t.mode == Mode::Quote {
        assert_eq!((q.oi, q.oi_day_high, q.oi_day_low), (0, 0, 0));
        assert!(q.last_trade_time.is_none() && q.exchange_time.is_none());
        assert!(t.depth.is_none());
        return m;
    }
    m["last_trade_time"] = epoch(q.last_trade_time, "last_trade_time");
    m["oi"] = json!(q.oi);
    m["oi_day_high"] = json!(q.oi_day_high);
    m["oi_day_low"] = json!(q.oi_day_low);
    m["exchange_timestamp"] = epoch(q.exchange_time, "exchange_time");
    let d = t.depth.expect("depth");
    let side = |ls: &[Level; 5]| -> Value {
        ls.iter()
            .map(|l| json!({"quantity": l.quantity, "price": l.price.to_f64(), "orders": l.orders}))
            .collect()
    };
    m["depth"] = json!({ "buy": side(&d.buy), "sell": side(&d.sell) });
    m
}

/// Drop the local-time rendering of datetimes: only the epoch is TZ-independent.
fn strip_datetime_local(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("datetime_local");
            o.values_mut().for_each(strip_datetime_local);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_datetime_local),
        _ => {}
    }
}

/// Exact comparison: same keys, same array lengths, and numbers equal bit for bit to the
/// correctly-rounded parse of the vector's lexeme.
fn assert_same(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::String(e), _) if e.starts_with("#num:") => {
            let lex = &e[5..];
            let a = actual
                .as_f64()
                .unwrap_or_else(|| panic!("{path}: expected number {lex}, got {actual}"));
            if lex.contains(['.', 'e', 'E']) {
                let x: f64 = lex.parse().unwrap();
                assert_eq!(a.to_bits(), x.to_bits(), "{path}: {a:?} != {lex}");
            } else {
                let x: i128 = lex.parse().unwrap();
                let a_int = actual
                    .as_u64()
                    .map(i128::from)
                    .or(actual.as_i64().map(i128::from));
                match a_int {
                    Some(ai) => assert_eq!(ai, x, "{path}"),
                    // pykiteconnect's `change = 0` is an int; ours is the float 0.0.
                    None => assert!(a == x as f64 && a.fract() == 0.0, "{path}: {a} != {x}"),
                }
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            assert_eq!(ek, ak, "{path}: key sets differ");
            for (k, ev) in e {
                assert_same(ev, &a[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: lengths differ");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_same(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

/// Decode a vector's frame and compare every field with pykiteconnect's output.
fn check_vector(name: &str) {
    let v = vector(name);
    let mut out = Vec::new();
    let info = decode_frame(&v.frame, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(info.packets, out.len());
    // pykiteconnect skips on_ticks for frames of <= 4 bytes (the heartbeat).
    assert_eq!(info.heartbeat, !v.on_ticks_called, "{name}: heartbeat");
    let mut expected = v.parsed.clone();
    strip_datetime_local(&mut expected);
    let actual = Value::Array(out.iter().map(pykite_shape).collect());
    assert_same(&expected, &actual, name);
}

/// Encoding the decoded ticks gives the frame back (see the tests for the exceptions).
fn check_roundtrip(name: &str) -> (Vec<u8>, Vec<u8>) {
    let v = vector(name);
    let mut ticks = Vec::new();
    decode_frame(&v.frame, &mut ticks).unwrap();
    let mut enc = vec![0xAA]; // encode_frame appends
    encode_frame(&ticks, &mut enc);
    assert_eq!(enc[0], 0xAA);
    enc.remove(0);
    // Whatever the bytes, re-decoding the re-encoding gives the same ticks.
    let mut again = Vec::new();
    decode_frame(&enc, &mut again).unwrap();
    assert_eq!(
        again, ticks,
        "{name}: decode(encode(decode(x))) != decode(x)"
    );
    (v.frame, enc)
}

macro_rules! vector_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_vector(stringify!($name).trim_start_matches("vector_"));
            }
        )*
        /// The `vector_*` tests, by vector name.
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

vector_tests!(
    vector_ltp_nse_1,
    vector_ltp_two_packets,
    vector_ltp_cds,
    vector_ltp_bcd,
    vector_quote_nse_1,
    vector_quote_mcx_close0,
    vector_full_nse_1,
    vector_full_nfo_oi,
    vector_index_quote_nifty,
    vector_index_full_banknifty,
    vector_mixed_frame,
    vector_heartbeat,
    vector_unknown_len_dropped,
    vector_mock_ticker_quote,
    vector_mock_ticker_full,
);

#[test]
fn every_vector_has_a_test() {
    let in_file: Vec<String> = all_vectors().into_iter().map(|(n, _)| n).collect();
    assert_eq!(in_file, NAMES);
    let tested: Vec<&str> = TESTED
        .iter()
        .map(|t| t.trim_start_matches("vector_"))
        .collect();
    assert_eq!(tested, NAMES);
}

// ---- vector specifics ----------------------------------------------------------------------

#[test]
fn heartbeat_has_no_ticks() {
    let mut out = Vec::new();
    let info = decode_frame(&vector("heartbeat").frame, &mut out).unwrap();
    assert_eq!(
        info,
        FrameInfo {
            heartbeat: true,
            packets: 0,
            skipped: 0
        }
    );
    assert!(out.is_empty());
    assert_eq!(
        codec::encode_heartbeat().as_slice(),
        vector("heartbeat").frame
    );
}

#[test]
fn unknown_length_is_skipped_and_counted() {
    let mut out = Vec::new();
    let info = decode_frame(&vector("unknown_len_dropped").frame, &mut out).unwrap();
    assert_eq!(
        info,
        FrameInfo {
            heartbeat: false,
            packets: 0,
            skipped: 1
        }
    );
    assert!(out.is_empty());
}

#[test]
fn mode_and_tradable_mapping() {
    let mut out = Vec::new();
    decode_frame(&vector("mixed_frame").frame, &mut out).unwrap();
    let got: Vec<_> = out
        .iter()
        .map(|t| (t.mode, t.tradable, t.depth.is_some(), t.key.seg))
        .collect();
    assert_eq!(
        got,
        [
            (Mode::Ltp, true, false, 1),
            (Mode::Quote, true, false, 1),
            // Index "full" (32 B) is Depth mode but carries no depth.
            (Mode::Depth, false, false, 9),
        ]
    );
}

#[test]
fn divisors() {
    assert_eq!(divisor(3), 10_000_000);
    assert_eq!(divisor(6), 10_000);
    assert_eq!(divisor(12), 10_000);
    for seg in [0u16, 1, 2, 4, 5, 7, 8, 9, 255] {
        assert_eq!(divisor(seg), 100, "seg {seg}");
    }
}

#[test]
fn quote_vector_equals_official_mock() {
    assert_eq!(
        vector("quote_nse_1").frame,
        vector("mock_ticker_quote").frame
    );
}

// ---- round trips ---------------------------------------------------------------------------

macro_rules! roundtrip_tests {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let (orig, enc) = check_roundtrip($name);
            assert_eq!(enc, orig, "{}: encode(decode(x)) != x", $name);
        }
    )*};
}

roundtrip_tests!(
    roundtrip_ltp_nse_1 => "ltp_nse_1",
    roundtrip_ltp_two_packets => "ltp_two_packets",
    roundtrip_ltp_cds => "ltp_cds",
    roundtrip_ltp_bcd => "ltp_bcd",
    roundtrip_quote_nse_1 => "quote_nse_1",
    roundtrip_quote_mcx_close0 => "quote_mcx_close0",
    roundtrip_full_nse_1 => "full_nse_1",
    roundtrip_full_nfo_oi => "full_nfo_oi",
    // These two vectors carry price change = ltp - close (raw), which is what we write.
    roundtrip_index_quote_nifty => "index_quote_nifty",
    roundtrip_index_full_banknifty => "index_full_banknifty",
    roundtrip_mock_ticker_quote => "mock_ticker_quote",
    roundtrip_mock_ticker_full => "mock_ticker_full",
);

/// mixed_frame's index packet has 0 in the ignored price-change field (bytes 84..88 of the
/// frame); the decoder drops that field and the encoder writes ltp - close, so exactly those
/// four bytes differ.
#[test]
fn roundtrip_mixed_frame_differs_only_in_index_price_change() {
    let (orig, mut enc) = check_roundtrip("mixed_frame");
    assert_eq!(orig.len(), enc.len());
    assert_eq!(orig[84..88], [0, 0, 0, 0]);
    assert_eq!(enc[84..88], (2_245_055i32 - 2_228_025).to_be_bytes());
    enc[84..88].fill(0);
    assert_eq!(enc, orig);
}

/// unknown_len_dropped cannot round-trip: the skipped packet leaves no tick to encode.
#[test]
fn roundtrip_unknown_len_dropped_gives_empty_frame() {
    let (_, enc) = check_roundtrip("unknown_len_dropped");
    assert_eq!(enc, [0, 0]);
}

#[test]
fn encode_appends_multiple_frames() {
    let t = Tick::ltp(FeedKey::kite(408_065), Price::from_raw(157_315, 100));
    let mut out = Vec::new();
    encode_frame(&[t], &mut out);
    encode_frame(&[t, t], &mut out);
    assert_eq!(out.len(), 12 + 22);
    assert_eq!(&out[..12], vector("ltp_nse_1").frame.as_slice());
}

// ---- malformed frames ----------------------------------------------------------------------

fn prefilled() -> Vec<Tick> {
    vec![Tick::ltp(FeedKey::kite(1), Price(7)); 3]
}

/// Decode into a non-empty vector and check the all-or-nothing rule on error.
fn decode_err(frame: &[u8]) -> CodecError {
    let mut out = prefilled();
    let e = decode_frame(frame, &mut out).expect_err("expected an error");
    assert_eq!(out, prefilled(), "out changed on error");
    e
}

fn frame_of(packets: &[&[u8]]) -> Vec<u8> {
    let mut f = (packets.len() as u16).to_be_bytes().to_vec();
    for p in packets {
        f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        f.extend_from_slice(p);
    }
    f
}

const LTP_PKT: [u8; 8] = [0, 6, 0x3a, 1, 0, 2, 0x66, 0x83];

#[test]
fn malformed_empty() {
    assert_eq!(decode_err(&[]), CodecError::Empty);
}

#[test]
fn malformed_truncated_length() {
    // Count 1, then half a length prefix.
    assert_eq!(
        decode_err(&[0, 1, 0]),
        CodecError::Truncated {
            offset: 2,
            needed: 2,
            have: 1
        }
    );
}

#[test]
fn malformed_truncated_packet() {
    let f = frame_of(&[&LTP_PKT]);
    assert_eq!(
        decode_err(&f[..f.len() - 3]),
        CodecError::Truncated {
            offset: 4,
            needed: 8,
            have: 5
        }
    );
}

#[test]
fn malformed_count_exceeds_packets() {
    let mut f = frame_of(&[&LTP_PKT, &LTP_PKT]);
    f[1] = 3;
    assert_eq!(
        decode_err(&f),
        CodecError::Truncated {
            offset: 22,
            needed: 2,
            have: 0
        }
    );
}

#[test]
fn malformed_count_below_packets() {
    let mut f = frame_of(&[&LTP_PKT, &LTP_PKT]);
    f[1] = 1;
    assert_eq!(
        decode_err(&f),
        CodecError::Trailing {
            packets: 1,
            extra: 10
        }
    );
}

#[test]
fn malformed_length_longer_than_frame() {
    let mut f = frame_of(&[&LTP_PKT]);
    f[3] = 44; // claims a quote packet but holds 8 bytes
    assert_eq!(
        decode_err(&f),
        CodecError::Truncated {
            offset: 4,
            needed: 44,
            have: 8
        }
    );
}

#[test]
fn malformed_trailing_bytes() {
    let mut f = vector("full_nse_1").frame;
    f.push(0);
    assert_eq!(
        decode_err(&f),
        CodecError::Trailing {
            packets: 1,
            extra: 1
        }
    );
}

#[test]
fn malformed_error_after_good_packets_keeps_nothing() {
    // Two good packets decode before the third one is found truncated.
    let mut f = frame_of(&[&LTP_PKT, &LTP_PKT, &LTP_PKT]);
    f.truncate(f.len() - 1);
    assert!(matches!(decode_err(&f), CodecError::Truncated { .. }));
}

#[test]
fn short_frames() {
    let mut out = prefilled();
    // Any single byte is a heartbeat.
    for b in [0u8, 1, 0xff] {
        let info = decode_frame(&[b], &mut out).unwrap();
        assert!(info.heartbeat);
    }
    // Well formed with zero packets.
    let info = decode_frame(&[0, 0], &mut out).unwrap();
    assert_eq!(info, FrameInfo::default());
    // One zero-length packet: unknown kind, skipped.
    let info = decode_frame(&[0, 1, 0, 0], &mut out).unwrap();
    assert_eq!((info.packets, info.skipped), (0, 1));
    assert_eq!(out, prefilled());
    assert_eq!(
        decode_err(&[0, 0, 0]),
        CodecError::Trailing {
            packets: 0,
            extra: 1
        }
    );
    assert_eq!(
        decode_err(&[0, 5]),
        CodecError::Truncated {
            offset: 2,
            needed: 2,
            have: 0
        }
    );
}

#[test]
fn ok_appends_after_existing() {
    let mut out = prefilled();
    let info = decode_frame(&vector("mixed_frame").frame, &mut out).unwrap();
    assert_eq!(info.packets, 3);
    assert_eq!(out.len(), 6);
    assert_eq!(out[..3], prefilled()[..]);
}

#[test]
fn hostile_count_does_not_overallocate() {
    let mut out: Vec<Tick> = Vec::new();
    assert!(decode_frame(&[0xff, 0xff, 0, 8, 1, 2], &mut out).is_err());
    assert!(out.capacity() < 16, "capacity {}", out.capacity());
}

// ---- text messages and requests ------------------------------------------------------------

#[test]
fn text_messages_decode() {
    assert_eq!(
        decode_text(r#"{"type": "error", "data": "Invalid token"}"#).unwrap(),
        TextMessage::Error("Invalid token".into())
    );
    assert_eq!(
        decode_text(r#"{"type":"message","data":"Market closed"}"#).unwrap(),
        TextMessage::Message("Market closed".into())
    );
    assert_eq!(
        decode_text(r#"{"type":"order","data":{"order_id":"1","status":"COMPLETE"}}"#).unwrap(),
        TextMessage::Order(json!({"order_id":"1","status":"COMPLETE"}))
    );
    // Non-string data stays readable.
    assert_eq!(
        decode_text(r#"{"type":"error","data":{"code":1}}"#).unwrap(),
        TextMessage::Error(r#"{"code":1}"#.into())
    );
}

#[test]
fn text_messages_reject_garbage_briefly() {
    let huge_json = format!(r#"{{"type":"{}","data":""}}"#, "x".repeat(100_000));
    let huge_text = "y".repeat(100_000);
    for bad in [
        "",
        "pong",
        "[1,2]",
        r#"{"data":"x"}"#,
        r#"{"type":7,"data":"x"}"#,
        r#"{"type":"quote","data":"x"}"#,
        r#"{"type":"error"}"#,
        &huge_json,
        &huge_text,
    ] {
        match decode_text(bad) {
            Err(CodecError::BadText(m)) => assert!(m.len() < 300, "long message: {m}"),
            other => panic!("{bad:.40}: expected BadText, got {other:?}"),
        }
    }
}

#[test]
fn text_messages_roundtrip() {
    for m in [
        TextMessage::Error("bad \"token\"\n".into()),
        TextMessage::Message("hello ₹".into()),
        TextMessage::Order(json!({"order_id": "220101000000001", "quantity": 5})),
    ] {
        assert_eq!(decode_text(&encode_text(&m)).unwrap(), m);
    }
    // Compact JSON with exactly the two documented keys (key order is serde_json's choice).
    let v: Value = serde_json::from_str(&encode_text(&TextMessage::Error("x".into()))).unwrap();
    assert_eq!(v, json!({"type": "error", "data": "x"}));
    assert!(!encode_text(&TextMessage::Message("a".into())).contains(' '));
}

#[test]
fn requests_encode_compactly() {
    assert_eq!(
        encode_subscribe(&[408_065, 738_561]),
        r#"{"a":"subscribe","v":[408065,738561]}"#
    );
    assert_eq!(
        encode_unsubscribe(&[408_065]),
        r#"{"a":"unsubscribe","v":[408065]}"#
    );
    assert_eq!(encode_subscribe(&[]), r#"{"a":"subscribe","v":[]}"#);
    assert_eq!(
        encode_mode(Mode::Depth, &[738_561]),
        r#"{"a":"mode","v":["full",[738561]]}"#
    );
    assert_eq!(
        encode_mode(Mode::Ltp, &[1, 2]),
        r#"{"a":"mode","v":["ltp",[1,2]]}"#
    );
    assert_eq!(
        encode_mode(Mode::Quote, &[3]),
        r#"{"a":"mode","v":["quote",[3]]}"#
    );
}

#[test]
fn requests_decode_pykiteconnect_bytes() {
    // Exact bytes pykiteconnect sends (json.dumps with spaces), brokers.md §1.2.
    assert_eq!(
        decode_request(r#"{"a": "subscribe", "v": [408065, 738561]}"#).unwrap(),
        Request::Subscribe(vec![408_065, 738_561])
    );
    assert_eq!(
        decode_request(r#"{"a": "unsubscribe", "v": [408065]}"#).unwrap(),
        Request::Unsubscribe(vec![408_065])
    );
    assert_eq!(
        decode_request(r#"{"a": "mode", "v": ["full", [738561]]}"#).unwrap(),
        Request::Mode(Mode::Depth, vec![738_561])
    );
    for (m, mode) in [
        ("ltp", Mode::Ltp),
        ("quote", Mode::Quote),
        ("full", Mode::Depth),
    ] {
        let s = encode_mode(mode, &[u32::MAX]);
        assert!(s.contains(m));
        assert_eq!(
            decode_request(&s).unwrap(),
            Request::Mode(mode, vec![u32::MAX])
        );
    }
}

#[test]
fn requests_reject_garbage() {
    for bad in [
        "",
        "subscribe",
        r#"{"v":[1]}"#,
        r#"{"a":"subscribe"}"#,
        r#"{"a":"subscribe","v":1}"#,
        r#"{"a":"subscribe","v":[-1]}"#,
        r#"{"a":"subscribe","v":[4294967296]}"#,
        r#"{"a":"subscribe","v":["408065"]}"#,
        r#"{"a":"subscribe","v":[1.5]}"#,
        r#"{"a":"mode","v":["depth",[1]]}"#,
        r#"{"a":"mode","v":["full"]}"#,
        r#"{"a":"mode","v":["full",[1],2]}"#,
        r#"{"a":"mode","v":[["full"],[1]]}"#,
        r#"{"a":"resubscribe","v":[1]}"#,
    ] {
        assert!(
            matches!(decode_request(bad), Err(CodecError::BadText(_))),
            "{bad}: expected BadText"
        );
    }
}

// ---- properties ----------------------------------------------------------------------------

/// Tokens with interesting segments in the low byte (CDS, BCD, NCO, indices) and random ones.
fn token() -> impl Strategy<Value = u32> {
    (
        any::<u32>(),
        prop_oneof![
            prop::sample::select(vec![1u32, 2, 3, 4, 5, 6, 7, 8, 9, 12]),
            any::<u8>().prop_map(u32::from),
        ],
    )
        .prop_map(|(hi, seg)| (hi & !0xff) | seg)
}

/// A tick exactly as the decoder would produce it: every value representable on the wire,
/// `change` computed, fields the packet kind lacks zero/None.
fn canonical_tick() -> impl Strategy<Value = Tick> {
    (
        token(),
        0u8..3,
        prop::collection::vec(any::<u32>(), 14),
        prop::collection::vec((any::<u32>(), any::<i32>(), any::<u16>()), 10),
    )
        .prop_map(|(token, m, w, lv)| {
            let key = FeedKey::kite(token);
            let div = divisor(key.seg);
            let px = |x: u32| Price::from_raw(i64::from(x as i32), div);
            let tradable = key.seg != 9;
            let mode = [Mode::Ltp, Mode::Quote, Mode::Depth][m as usize];
            let ltp = px(w[0]);
            if mode == Mode::Ltp {
                return Tick {
                    key,
                    mode,
                    tradable,
                    ltp,
                    quote: None,
                    depth: None,
                };
            }
            let ohlc = Ohlc {
                open: px(w[1]),
                high: px(w[2]),
                low: px(w[3]),
                close: px(w[4]),
            };
            let mut q = Quote {
                ohlc,
                change: change_percent(ltp, ohlc.close),
                ..Quote::default()
            };
            let full = mode == Mode::Depth;
            if full {
                q.exchange_time = Some(i64::from(w[5]));
            }
            let mut depth = None;
            if tradable {
                q.last_quantity = u64::from(w[6]);
                q.average_price = px(w[7]);
                q.volume = u64::from(w[8]);
                q.total_buy_quantity = u64::from(w[9]);
                q.total_sell_quantity = u64::from(w[10]);
                if full {
                    q.last_trade_time = Some(i64::from(w[11]));
                    q.oi = u64::from(w[12]);
                    q.oi_day_high = u64::from(w[13]);
                    q.oi_day_low = u64::from(w[0] ^ w[1]);
                    let l = |i: usize| Level {
                        quantity: u64::from(lv[i].0),
                        price: Price::from_raw(i64::from(lv[i].1), div),
                        orders: u32::from(lv[i].2),
                    };
                    depth = Some(Depth {
                        buy: [l(0), l(1), l(2), l(3), l(4)],
                        sell: [l(5), l(6), l(7), l(8), l(9)],
                    });
                }
            }
            Tick {
                key,
                mode,
                tradable,
                ltp,
                quote: Some(q),
                depth,
            }
        })
}

/// Frames shaped like the real thing but hostile: random counts, known and unknown packet
/// lengths with random contents, and optional truncation or trailing garbage.
fn hostile_frame() -> impl Strategy<Value = Vec<u8>> {
    let packet = prop_oneof![
        prop::sample::select(vec![0usize, 8, 28, 32, 44, 184]),
        0usize..300,
    ]
    .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n));
    (
        prop::collection::vec(packet, 0..6),
        -2i32..3,
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(packets, count_delta, cut, tail, mangle)| {
            let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
            let mut f = frame_of(&refs);
            let count = (packets.len() as i32 + count_delta).max(0) as u16;
            f[..2].copy_from_slice(&count.to_be_bytes());
            if mangle {
                let cut = usize::from(cut) % (f.len() + 1);
                f.truncate(cut);
            } else {
                f.extend_from_slice(&tail);
            }
            f
        })
}

/// Decoding anything: never panics, and obeys all-or-nothing.
fn check_any(bytes: &[u8]) -> Result<(), TestCaseError> {
    let before = prefilled();
    let mut out = before.clone();
    match decode_frame(bytes, &mut out) {
        Ok(info) => {
            prop_assert_eq!(&out[..before.len()], &before[..]);
            prop_assert_eq!(out.len(), before.len() + info.packets);
            if info.heartbeat {
                prop_assert_eq!(bytes.len(), 1);
            } else {
                let count = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
                prop_assert_eq!(info.packets + info.skipped, count);
            }
        }
        Err(_) => prop_assert_eq!(&out, &before),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_any(&bytes)?;
    }

    #[test]
    fn prop_hostile_frames_never_panic(bytes in hostile_frame()) {
        check_any(&bytes)?;
    }

    #[test]
    fn prop_ticks_roundtrip(ticks in prop::collection::vec(canonical_tick(), 0..8)) {
        let mut frame = Vec::new();
        encode_frame(&ticks, &mut frame);
        let mut out = Vec::new();
        let info = decode_frame(&frame, &mut out).unwrap();
        prop_assert_eq!(info, FrameInfo { heartbeat: false, packets: ticks.len(), skipped: 0 });
        prop_assert_eq!(&out, &ticks);
        // And the bytes are stable.
        let mut again = Vec::new();
        encode_frame(&out, &mut again);
        prop_assert_eq!(again, frame);
    }

    #[test]
    fn prop_truncated_frames_fail_cleanly(
        ticks in prop::collection::vec(canonical_tick(), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = Vec::new();
        encode_frame(&ticks, &mut frame);
        let cut = cut.index(frame.len());
        let before = prefilled();
        let mut out = before.clone();
        let r = decode_frame(&frame[..cut], &mut out);
        match cut {
            0 => prop_assert_eq!(r, Err(CodecError::Empty)),
            1 => prop_assert!(r.unwrap().heartbeat),
            _ => prop_assert!(matches!(r, Err(CodecError::Truncated { .. })), "{:?}", r),
        }
        prop_assert_eq!(out, before);
    }

    #[test]
    fn prop_text_never_panics(s in ".{0,200}") {
        let _ = decode_text(&s);
        let _ = decode_request(&s);
    }

    #[test]
    fn prop_requests_roundtrip(tokens in prop::collection::vec(any::<u32>(), 0..50), m in 0u8..3) {
        let mode = [Mode::Ltp, Mode::Quote, Mode::Depth][m as usize];
        prop_assert_eq!(decode_request(&encode_subscribe(&tokens)).unwrap(), Request::Subscribe(tokens.clone()));
        prop_assert_eq!(decode_request(&encode_unsubscribe(&tokens)).unwrap(), Request::Unsubscribe(tokens.clone()));
        prop_assert_eq!(decode_request(&encode_mode(mode, &tokens)).unwrap(), Request::Mode(mode, tokens));
    }
}
