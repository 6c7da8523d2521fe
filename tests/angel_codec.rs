//! Angel SmartAPI WS 2.0 codec against the smartapi-python 1.5.5 vectors
//! (`tests/fixtures/angel_vectors.json`): every parsed field, the normalised tick, byte-exact
//! re-encoding, text frames, requests, the decoder's Depth-20 fill, malformed input, and
//! properties (no panic, exact round trips, truncation at every cut).

use proptest::prelude::*;
use serde_json::{Value, json};
use tickmux::adapters::angel::codec::{
    self, AngelDecoder, AngelMode, AngelPacket, AngelRequest, AngelText, AngelToken, DEPTH20_LEN,
    LTP_LEN, QUOTE_LEN, RequestError, SNAP_QUOTE_LEN, Subscription, TokenGroup, decode_packet,
    decode_request, decode_text, decode_tick, encode_error, encode_packet, encode_subscribe,
    encode_tick, encode_unsubscribe,
};
use tickmux::adapters::kite::codec::change_percent;
use tickmux::adapters::{CodecError, Decoder, Inbound};
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};

const VECTORS: &str = include_str!("fixtures/angel_vectors.json");

/// Every vector name in the fixture, in order; `every_vector_has_a_test` keeps this list and
/// the `vector_*` tests honest.
const NAMES: [&str; 8] = [
    "ltp_nse_sbin",
    "ltp_mcx",
    "quote_nse_infy",
    "quote_index_nifty",
    "snapquote_nse_infy",
    "snapquote_nfo_interleaved",
    "depth20_nse",
    "depth20_signed",
];

// ---- fixture ---------------------------------------------------------------------------------

struct Vector {
    frame: Vec<u8>,
    parsed: Value,
}

fn all_vectors() -> Vec<(String, Vector)> {
    let doc: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            let frame = hex(v["frame_hex"].as_str().unwrap());
            assert_eq!(v["frame_len"].as_u64(), Some(frame.len() as u64), "{name}");
            let parsed = v["parsed"].clone();
            (name, Vector { frame, parsed })
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
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---- our packet in the SDK's dict shape ----------------------------------------------------

/// A packet rendered with the SDK's keys and number types (ints as ints, the two totals as
/// floats), asserting that what the SDK drops for a mode is absent or zero in ours.
fn sdk_shape(p: &AngelPacket) -> Value {
    let mut m = json!({
        "subscription_mode": p.subscription_mode.wire(),
        "exchange_type": p.exchange_type,
        "token": p.token.as_str().expect("ASCII token"),
        "exchange_timestamp": p.exchange_timestamp,
    });
    if let Some(d) = &p.depth_20 {
        assert_eq!(p.subscription_mode, AngelMode::Depth20);
        assert_eq!((p.sequence_number, p.last_traded_price), (0, 0));
        assert!(p.quote.is_none() && p.snap_quote.is_none());
        let side = |ls: &[codec::AngelDepthLevel; 20]| -> Value {
            ls.iter()
                .map(|l| json!({"quantity": l.quantity, "price": l.price, "num_of_orders": l.orders}))
                .collect()
        };
        m["packet_received_time"] = json!(p.packet_received_time());
        m["depth_20_buy_data"] = side(&d.buy);
        m["depth_20_sell_data"] = side(&d.sell);
        return m;
    }
    m["sequence_number"] = json!(p.sequence_number);
    m["last_traded_price"] = json!(p.last_traded_price);
    m["subscription_mode_val"] = json!(p.subscription_mode.name());
    let Some(q) = &p.quote else {
        assert_eq!(p.subscription_mode, AngelMode::Ltp);
        assert!(p.snap_quote.is_none());
        return m;
    };
    m["last_traded_quantity"] = json!(q.last_traded_quantity);
    m["average_traded_price"] = json!(q.average_traded_price);
    m["volume_trade_for_the_day"] = json!(q.volume_trade_for_the_day);
    m["total_buy_quantity"] = json!(q.total_buy_quantity);
    m["total_sell_quantity"] = json!(q.total_sell_quantity);
    m["open_price_of_the_day"] = json!(q.open_price_of_the_day);
    m["high_price_of_the_day"] = json!(q.high_price_of_the_day);
    m["low_price_of_the_day"] = json!(q.low_price_of_the_day);
    m["closed_price"] = json!(q.closed_price);
    let Some(s) = &p.snap_quote else {
        assert_eq!(p.subscription_mode, AngelMode::Quote);
        return m;
    };
    m["last_traded_timestamp"] = json!(s.last_traded_timestamp);
    m["open_interest"] = json!(s.open_interest);
    m["open_interest_change_percentage"] = json!(s.open_interest_change_percentage);
    m["upper_circuit_limit"] = json!(s.upper_circuit_limit);
    m["lower_circuit_limit"] = json!(s.lower_circuit_limit);
    m["52_week_high_price"] = json!(s.week_52_high_price);
    m["52_week_low_price"] = json!(s.week_52_low_price);
    let entries = |it: &mut dyn Iterator<Item = &codec::AngelBestFive>| -> Value {
        it.map(|e| json!({"flag": e.flag, "quantity": e.quantity, "price": e.price, "no of orders": e.orders}))
            .collect()
    };
    m["best_5_buy_data"] = entries(&mut s.best_5_buy());
    m["best_5_sell_data"] = entries(&mut s.best_5_sell());
    m
}

/// The tick the SDK's dict means, computed from the dict alone (not from our packet).
fn tick_from_sdk(p: &Value) -> Tick {
    let i = |k: &str| p[k].as_i64().unwrap_or_else(|| panic!("{k}"));
    let exch = i("exchange_type");
    let px = |raw: i64| Price::from_raw(raw, if exch == 13 { 10_000_000 } else { 100 });
    let key = FeedKey {
        seg: exch as u16,
        token: p["token"].as_str().unwrap().parse().unwrap(),
    };
    let level = |e: &Value, orders: &str| Level {
        price: px(e["price"].as_i64().unwrap()),
        quantity: e["quantity"].as_i64().unwrap().max(0) as u64,
        orders: e[orders].as_i64().unwrap().max(0) as u32,
    };
    let five = |k: &str, orders: &str| -> [Level; 5] {
        let v = p[k].as_array().unwrap();
        std::array::from_fn(|n| v.get(n).map(|e| level(e, orders)).unwrap_or_default())
    };
    match i("subscription_mode") {
        1 => Tick::ltp(key, px(i("last_traded_price"))),
        4 => Tick {
            key,
            mode: Mode::Depth,
            tradable: true,
            ltp: Price(0),
            quote: None,
            depth: Some(Depth {
                buy: five("depth_20_buy_data", "num_of_orders"),
                sell: five("depth_20_sell_data", "num_of_orders"),
            }),
        },
        m => {
            let ltp = px(i("last_traded_price"));
            let ohlc = Ohlc {
                open: px(i("open_price_of_the_day")),
                high: px(i("high_price_of_the_day")),
                low: px(i("low_price_of_the_day")),
                close: px(i("closed_price")),
            };
            let mut q = Quote {
                volume: i("volume_trade_for_the_day") as u64,
                average_price: px(i("average_traded_price")),
                last_quantity: i("last_traded_quantity") as u64,
                total_buy_quantity: p["total_buy_quantity"].as_f64().unwrap() as u64,
                total_sell_quantity: p["total_sell_quantity"].as_f64().unwrap() as u64,
                ohlc,
                change: change_percent(ltp, ohlc.close),
                exchange_time: Some(i("exchange_timestamp") / 1000),
                ..Quote::default()
            };
            let mut depth = None;
            if m == 3 {
                q.oi = i("open_interest") as u64;
                q.last_trade_time = Some(i("last_traded_timestamp") / 1000);
                depth = Some(Depth {
                    buy: five("best_5_buy_data", "no of orders"),
                    sell: five("best_5_sell_data", "no of orders"),
                });
            }
            Tick {
                key,
                mode: if m == 3 { Mode::Depth } else { Mode::Quote },
                tradable: true,
                ltp,
                quote: Some(q),
                depth,
            }
        }
    }
}

/// Decode a vector's frame: every SDK field equal (same keys, same numbers, same number
/// types), the tick equal to the one the SDK dict means, and re-encoding byte-exact.
fn check_vector(name: &str) {
    let v = vector(name);
    let p = decode_packet(&v.frame).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(sdk_shape(&p), v.parsed, "{name}: fields");
    assert_eq!(
        decode_tick(&v.frame).unwrap(),
        tick_from_sdk(&v.parsed),
        "{name}: tick"
    );
    let mut enc = vec![0xAA];
    encode_packet(&p, &mut enc);
    assert_eq!(enc[1..], v.frame[..], "{name}: encode(decode(x)) != x");
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
    vector_ltp_nse_sbin,
    vector_ltp_mcx,
    vector_quote_nse_infy,
    vector_quote_index_nifty,
    vector_snapquote_nse_infy,
    vector_snapquote_nfo_interleaved,
    vector_depth20_nse,
    vector_depth20_signed,
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
fn ltp_example_from_brokers_md() {
    let t = decode_tick(&vector("ltp_nse_sbin").frame).unwrap();
    assert_eq!(
        t,
        Tick::ltp(
            FeedKey {
                seg: 1,
                token: 3045
            },
            Price::from_raw(57_180, 100)
        )
    );
    assert_eq!(t.ltp.to_f64(), 571.8);
}

#[test]
fn interleaved_flags_group_by_side_in_wire_order() {
    let t = decode_tick(&vector("snapquote_nfo_interleaved").frame).unwrap();
    let d = t.depth.unwrap();
    let px = |raw| Price::from_raw(raw, 100);
    assert_eq!(
        (d.buy[0].price, d.buy[0].quantity, d.buy[0].orders),
        (px(2_250_000), 150, 2)
    );
    assert_eq!((d.buy[1].price, d.buy[1].quantity), (px(2_249_900), 75));
    assert_eq!(
        (d.sell[0].price, d.sell[0].quantity, d.sell[0].orders),
        (px(2_250_100), 300, 4)
    );
    assert_eq!(t.quote.unwrap().oi, 1_234_500);
    assert_eq!(
        t.key,
        FeedKey {
            seg: 2,
            token: 43_001
        }
    );
}

#[test]
fn depth20_keeps_all_levels_at_codec_level_and_top_five_in_tick() {
    let v = vector("depth20_nse");
    let p = decode_packet(&v.frame).unwrap();
    let d20 = p.depth_20.unwrap();
    assert_eq!(
        (d20.buy[19].quantity, d20.buy[19].price, d20.buy[19].orders),
        (119, 157_205, 20)
    );
    assert_eq!((d20.sell[19].quantity, d20.sell[19].orders), (219, 21));
    let t = p.to_tick().unwrap();
    let d = t.depth.unwrap();
    for i in 0..5 {
        assert_eq!(d.buy[i].quantity, d20.buy[i].quantity as u64);
        assert_eq!(
            d.sell[i].price,
            Price::from_raw(i64::from(d20.sell[i].price), 100)
        );
    }
}

#[test]
fn depth20_negative_values_are_signed_and_clamped_in_the_tick() {
    let p = decode_packet(&vector("depth20_signed").frame).unwrap();
    let s = p.depth_20.unwrap().sell[0];
    assert_eq!((s.quantity, s.price, s.orders), (-1, i32::MAX, -1));
    let l = p.to_tick().unwrap().depth.unwrap().sell[0];
    assert_eq!((l.quantity, l.orders), (0, 0));
    assert_eq!(l.price, Price::from_raw(i64::from(i32::MAX), 100));
}

#[test]
fn cde_fo_prices_divide_by_1e7_and_others_by_100() {
    let mut p = AngelPacket::empty(AngelMode::Ltp, codec::CDE_FO, AngelToken::from_number(1));
    p.last_traded_price = 832_512_500;
    let mut f = Vec::new();
    encode_packet(&p, &mut f);
    assert_eq!(decode_tick(&f).unwrap().ltp.to_f64(), 83.25125);
    for exch in [1u8, 2, 3, 4, 5, 7, 0, 200] {
        assert_eq!(codec::divisor(exch), 100, "exchange type {exch}");
    }
    assert_eq!(codec::divisor(13), 10_000_000);
    assert_eq!(codec::exchange_type("nfo"), Some(2));
    assert_eq!(codec::exchange_name(13), Some("CDS"));
}

// ---- decoder ---------------------------------------------------------------------------------

fn frame_of(p: &AngelPacket) -> Vec<u8> {
    let mut f = Vec::new();
    encode_packet(p, &mut f);
    f
}

#[test]
fn decoder_fills_depth20_from_the_same_exchange_and_token_only() {
    let mut d = AngelDecoder::new();
    let mut out = Vec::new();
    // A quote for NFO token 1594 (not NSE): no fill for NSE 1594's depth.
    let mut nfo = decode_packet(&vector("quote_nse_infy").frame).unwrap();
    nfo.exchange_type = 2;
    assert_eq!(
        d.binary(&frame_of(&nfo), &mut out),
        Ok(Inbound::Ticks { skipped: 0 })
    );
    d.binary(&vector("depth20_nse").frame, &mut out).unwrap();
    assert_eq!((out[1].ltp, out[1].quote), (Price(0), None));
    // Now the NSE quote: the next depth-20 tick carries its LTP and quote, stamped with the
    // depth packet's time.
    d.binary(&vector("quote_nse_infy").frame, &mut out).unwrap();
    d.binary(&vector("depth20_nse").frame, &mut out).unwrap();
    let quote_tick = out[2];
    let t = out[3];
    assert_eq!(
        t.key,
        FeedKey {
            seg: 1,
            token: 1594
        }
    );
    assert_eq!((t.mode, t.ltp), (Mode::Depth, quote_tick.ltp));
    let q = t.quote.unwrap();
    assert_eq!(q.ohlc, quote_tick.quote.unwrap().ohlc);
    assert_eq!(q.exchange_time, Some(1_704_432_007));
    // An LTP packet refreshes the LTP and keeps the remembered quote.
    let mut ltp = AngelPacket::empty(AngelMode::Ltp, 1, AngelToken::from_number(1594));
    ltp.last_traded_price = 157_400;
    d.binary(&frame_of(&ltp), &mut out).unwrap();
    d.binary(&vector("depth20_nse").frame, &mut out).unwrap();
    assert_eq!(out[5].ltp, Price::from_raw(157_400, 100));
    assert_eq!(out[5].quote.unwrap().ohlc, q.ohlc);
}

#[test]
fn decoder_text_frames() {
    let mut d = AngelDecoder::new();
    let mut out = Vec::new();
    assert_eq!(d.text("pong", &mut out), Ok(Inbound::Heartbeat));
    let e = r#"{"correlationID":"abcde12345","errorCode":"E1002","errorMessage":"Invalid Request. Subscription Limit Exceeded"}"#;
    assert_eq!(
        d.text(e, &mut out),
        Ok(Inbound::ServerError(
            "E1002 Invalid Request. Subscription Limit Exceeded (correlationID abcde12345)".into()
        ))
    );
    // No message: the documented meaning of the code.
    assert_eq!(
        d.text(r#"{"errorCode":"E1001"}"#, &mut out),
        Ok(Inbound::ServerError("E1001 Invalid Request Payload".into()))
    );
    assert!(out.is_empty());
    for bad in [
        "",
        "ping",
        "PONG",
        "pong ",
        "{}",
        "[]",
        r#"{"errorCode":1002}"#,
        r#"{"errorCode":"E1","errorMessage":5}"#,
        r#"{"errorCode":"E1","correlationID":[]}"#,
    ] {
        assert!(
            matches!(d.text(bad, &mut out), Err(CodecError::BadText(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn error_text_roundtrips_and_stays_short() {
    let e = encode_error(
        Some("abcde12345"),
        "E1002",
        "Invalid Request. Subscription Limit Exceeded",
    );
    assert_eq!(
        e,
        r#"{"correlationID":"abcde12345","errorCode":"E1002","errorMessage":"Invalid Request. Subscription Limit Exceeded"}"#
    );
    assert_eq!(
        decode_text(&e).unwrap(),
        AngelText::Error {
            correlation_id: Some("abcde12345".into()),
            code: "E1002".into(),
            message: "Invalid Request. Subscription Limit Exceeded".into(),
        }
    );
    let huge = decode_text(&encode_error(None, "E1001", &"x".repeat(100_000))).unwrap();
    assert!(huge.describe().len() < 200);
    let CodecError::BadText(m) = decode_text(&"y".repeat(100_000)).unwrap_err() else {
        panic!("expected BadText")
    };
    assert!(m.len() < 300);
}

// ---- requests --------------------------------------------------------------------------------

fn k(seg: u16, token: u32) -> FeedKey {
    FeedKey { seg, token }
}

#[test]
fn subscribe_matches_the_sdk_bytes() {
    // brokers.md §2.2, verified bytes (json.dumps adds spaces; ours is compact, same content).
    let sdk = r#"{"correlationID": "corr123456", "action": 1, "params": {"mode": 1, "tokenList": [{"exchangeType": 1, "tokens": ["3045", "1594"]}]}}"#;
    let ours = encode_subscribe(
        Some("corr123456"),
        AngelMode::Ltp,
        &[k(1, 3045), k(1, 1594)],
    )
    .unwrap();
    assert_eq!(ours, [sdk.replace(": ", ":").replace(", ", ",")]);
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    assert_eq!(parse(&ours[0]), parse(sdk));
}

#[test]
fn requests_group_by_exchange_and_omit_missing_correlation_id() {
    let keys = [k(5, 234_230), k(1, 10_626), k(5, 234_235), k(1, 5290)];
    let m = encode_unsubscribe(None, AngelMode::SnapQuote, &keys).unwrap();
    assert_eq!(
        m,
        [
            r#"{"action":0,"params":{"mode":3,"tokenList":[{"exchangeType":1,"tokens":["10626","5290"]},{"exchangeType":5,"tokens":["234230","234235"]}]}}"#
        ]
    );
    assert_eq!(
        encode_subscribe(None, AngelMode::Quote, &[]).unwrap().len(),
        0
    );
}

#[test]
fn requests_batch_within_limits() {
    let keys: Vec<FeedKey> = (0..2500).map(|t| k(1 + (t % 2) as u16, t)).collect();
    let msgs = encode_subscribe(Some("c1"), AngelMode::Quote, &keys).unwrap();
    assert_eq!(msgs.len(), 3);
    let mut seen = Vec::new();
    for m in &msgs {
        let AngelRequest::Subscribe(s) = decode_request(m).unwrap() else {
            panic!("not a subscribe")
        };
        let n = s.keys().unwrap();
        assert!(n.len() <= codec::MAX_TOKENS);
        assert_eq!(s.correlation_id.as_deref(), Some("c1"));
        seen.extend(n);
    }
    let mut want = keys.clone();
    want.sort_by_key(|k| k.seg); // grouped by exchange type, caller's order within a group
    assert_eq!(seen, want);
    let depth: Vec<FeedKey> = (0..120).map(|t| k(1, t)).collect();
    let msgs = encode_subscribe(None, AngelMode::Depth20, &depth).unwrap();
    let sizes: Vec<usize> = msgs
        .iter()
        .map(|m| match decode_request(m).unwrap() {
            AngelRequest::Subscribe(s) => s.keys().unwrap().len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
}

#[test]
fn requests_refuse_what_the_server_would() {
    assert_eq!(
        encode_subscribe(None, AngelMode::Depth20, &[k(1, 1), k(2, 2)]),
        Err(RequestError::DepthExchange(2))
    );
    assert_eq!(
        encode_subscribe(None, AngelMode::Ltp, &[k(256, 1)]),
        Err(RequestError::Segment(256))
    );
    assert!(matches!(
        encode_subscribe(Some("12345678901"), AngelMode::Ltp, &[k(1, 1)]),
        Err(RequestError::CorrelationId(_))
    ));
    assert!(encode_subscribe(Some("1234567890"), AngelMode::Ltp, &[k(1, 1)]).is_ok());
}

#[test]
fn requests_decode_sdk_bytes_and_ping() {
    assert_eq!(decode_request(codec::PING), Ok(AngelRequest::Ping));
    let sdk = r#"{"correlationID": "corr123456", "action": 1, "params": {"mode": 1, "tokenList": [{"exchangeType": 1, "tokens": ["3045", "1594", "3045"]}]}}"#;
    assert_eq!(
        decode_request(sdk),
        Ok(AngelRequest::Subscribe(Subscription {
            correlation_id: Some("corr123456".into()),
            mode: AngelMode::Ltp,
            token_list: vec![TokenGroup {
                exchange_type: 1,
                tokens: vec!["3045".into(), "1594".into(), "3045".into()],
            }],
        }))
    );
    let odd =
        r#"{"action":0,"params":{"mode":4,"tokenList":[{"exchangeType":1,"tokens":["x1"]}]}}"#;
    let AngelRequest::Unsubscribe(s) = decode_request(odd).unwrap() else {
        panic!("not an unsubscribe")
    };
    assert_eq!((s.mode, s.keys()), (AngelMode::Depth20, None));
    for bad in [
        "",
        "pong",
        "{}",
        r#"{"action":2,"params":{"mode":1,"tokenList":[]}}"#,
        r#"{"action":1,"params":{"mode":5,"tokenList":[]}}"#,
        r#"{"action":1,"params":{"mode":1}}"#,
        r#"{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":256,"tokens":[]}]}}"#,
        r#"{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":[3045]}]}}"#,
        r#"{"action":"1","params":{"mode":1,"tokenList":[]}}"#,
        r#"{"correlationID":7,"action":1,"params":{"mode":1,"tokenList":[]}}"#,
    ] {
        assert!(
            matches!(decode_request(bad), Err(CodecError::BadText(_))),
            "{bad}"
        );
    }
}

#[path = "angel_codec/props.rs"]
mod props;
