//! Noren codec against the official clients' dispatch (`tests/fixtures/noren_vectors.json`,
//! three builds), snapshot + delta merging per exchange and token, ticks, encoders both ways,
//! malformed input, and properties (no panic, exact round trips, truncation at every cut).

use proptest::prelude::*;
use serde_json::Value;
use tickmux::adapters::kite::codec::change_percent;
use tickmux::adapters::noren::codec::{
    self, Ack, Feed, FeedUpdate, Flavour, NorenDecoder, NorenFields, NorenLevel, NorenMessage,
    NorenRequest, OfficialCallback, TokenKind, UnknownSegment, decode_request, encode_connect_ack,
    encode_connect_rejected, encode_delta, encode_login, encode_snapshot, encode_subscribe,
    encode_unsubscribe, encode_unsubscribe_ack, encode_update, parse_message,
};
use tickmux::adapters::{CodecError, Decoder, Inbound};
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};

const VECTORS: &str = include_str!("fixtures/noren_vectors.json");

/// Every vector name in the fixture, in order.
const NAMES: [&str; 13] = [
    "connect_ok",
    "connect_ok_mixedcase",
    "connect_fail",
    "connect_ok_ak",
    "touchline_ack",
    "touchline_delta",
    "touchline_delta_no_lp",
    "depth_ack",
    "depth_delta",
    "unsub_touchline_ack",
    "unsub_depth_ack",
    "order_sub_ack",
    "order_update",
];

/// The three official builds in the fixture and the flavour that behaves like each.
const BUILDS: [(&str, Flavour); 3] = [
    ("NorenRestApiPy-0.0.22", Flavour::Classic),
    ("norenrestapi-0.0.37", Flavour::OAuth),
    ("NorenRestApi-0.0.29", Flavour::Flattrade),
];

fn all_vectors() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    doc["vectors"].as_array().expect("vectors").clone()
}

fn vector(name: &str) -> Value {
    all_vectors()
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn text(name: &str) -> String {
    vector(name)["text"].as_str().unwrap().to_string()
}

fn callback_name(c: OfficialCallback) -> &'static str {
    match c {
        OfficialCallback::SocketOpen => "socket_open_callback",
        OfficialCallback::SocketError => "socket_error_callback",
        OfficialCallback::Subscribe => "subscribe_callback",
        OfficialCallback::OrderUpdate => "order_update_callback",
    }
}

/// For every build: our classification invokes the callbacks the official client invokes; the
/// text is the message; feed messages re-encode to exactly the message's fields and values.
/// Returns the Classic classification for the test's own assertions.
fn check_vector(name: &str) -> NorenMessage {
    let v = vector(name);
    let text = v["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        v["message"],
        "{name}: text"
    );
    let dispatch = v["dispatch"].as_object().unwrap();
    assert_eq!(dispatch.len(), BUILDS.len(), "{name}: builds");
    for (build, calls) in dispatch {
        let (_, flavour) = BUILDS
            .iter()
            .find(|(prefix, _)| build.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: unknown build {build}"));
        let msg = parse_message(text, *flavour).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours: Vec<&str> = msg
            .official_callback()
            .map(callback_name)
            .into_iter()
            .collect();
        let theirs: Vec<&str> = calls
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(ours, theirs, "{name}: dispatch for {build}");
        if let NorenMessage::Feed(u) = &msg {
            let enc: Value = serde_json::from_str(&encode_update(u).unwrap()).unwrap();
            assert_eq!(enc, v["message"], "{name}: encode(parse(x)) != x");
        }
    }
    parse_message(text, Flavour::Classic).unwrap()
}

fn px(s: &str) -> Price {
    codec::parse_price(s).unwrap()
}

fn nse(token: u32) -> FeedKey {
    FeedKey { seg: 1, token }
}

#[test]
fn vector_connect_ok() {
    assert_eq!(
        check_vector("connect_ok"),
        NorenMessage::Connected {
            uid: Some("FA12345".into())
        }
    );
}

#[test]
fn vector_connect_ok_mixedcase() {
    // "Ok" is what the docs write, but every client compares with "OK": an error, not a login.
    assert_eq!(
        check_vector("connect_ok_mixedcase"),
        NorenMessage::ConnectStatus("Ok".into())
    );
}

#[test]
fn vector_connect_fail() {
    assert_eq!(
        check_vector("connect_fail"),
        NorenMessage::LoginRejected("Invalid Session Key".into())
    );
}

#[test]
fn vector_connect_ok_ak() {
    assert_eq!(
        check_vector("connect_ok_ak"),
        NorenMessage::Other("ak".into())
    );
    assert_eq!(
        parse_message(&text("connect_ok_ak"), Flavour::Flattrade),
        Ok(NorenMessage::Connected {
            uid: Some("FZ00000".into())
        })
    );
}

#[test]
fn vector_touchline_ack() {
    let NorenMessage::Feed(u) = check_vector("touchline_ack") else {
        panic!("not a feed message")
    };
    assert_eq!(
        (u.feed, u.snapshot, u.key),
        (Feed::Touchline, true, nse(22))
    );
    assert_eq!(u.fields.symbol.as_deref(), Some("ACC-EQ"));
    assert_eq!((u.fields.precision, u.fields.lot_size), (Some(2), Some(1)));
    assert_eq!(u.fields.tick_size, Some(Price(500_000)));
    assert_eq!(u.fields.change_percent, Some(0.52));
    let t = codec::fields_to_tick(u.key, u.feed, &u.fields);
    let ohlc = Ohlc {
        open: px("1995"),
        high: px("2010"),
        low: px("1990.1"),
        close: px("1991.1"),
    };
    let want = Tick {
        key: nse(22),
        mode: Mode::Quote,
        tradable: true,
        ltp: px("2001.45"),
        quote: Some(Quote {
            volume: 162_220,
            average_price: px("2001.12"),
            ohlc,
            change: change_percent(px("2001.45"), ohlc.close),
            exchange_time: Some(1_704_432_001),
            ..Quote::default()
        }),
        depth: None,
    };
    assert_eq!(t, want);
    assert_eq!(t.ltp.0, 20_014_500_000); // exact, no float on the way
}

#[test]
fn vector_touchline_delta() {
    let NorenMessage::Feed(u) = check_vector("touchline_delta") else {
        panic!("not a feed message")
    };
    assert_eq!((u.feed, u.snapshot), (Feed::Touchline, false));
    let only = NorenFields {
        ltp: Some(px("2001.60")),
        volume: Some(166_637),
        feed_time: Some(1_704_432_002),
        ..NorenFields::default()
    };
    assert_eq!(u.fields, only);
}

#[test]
fn vector_touchline_delta_no_lp() {
    let NorenMessage::Feed(u) = check_vector("touchline_delta_no_lp") else {
        panic!("not a feed message")
    };
    assert_eq!(u.fields.ltp, None);
    assert_eq!(u.fields.bids[0].quantity, Some(3135));
}

#[test]
fn vector_depth_ack() {
    let NorenMessage::Feed(u) = check_vector("depth_ack") else {
        panic!("not a feed message")
    };
    assert_eq!((u.feed, u.snapshot), (Feed::Depth, true));
    let t = codec::fields_to_tick(u.key, u.feed, &u.fields);
    assert_eq!(t.mode, Mode::Depth);
    let d = t.depth.unwrap();
    assert_eq!(
        d.buy[0],
        Level {
            price: px("2001.55"),
            quantity: 4,
            orders: 1
        }
    );
    assert_eq!(
        d.buy[4],
        Level {
            price: px("2001.35"),
            quantity: 393,
            orders: 9
        }
    );
    assert_eq!(
        d.sell[4],
        Level {
            price: px("2001.80"),
            quantity: 94,
            orders: 4
        }
    );
    let q = t.quote.unwrap();
    assert_eq!(
        (q.last_quantity, q.total_buy_quantity, q.total_sell_quantity),
        (5, 120_952, 131_730)
    );
    // ltt 10:50:01 IST on the day of ft (2024-01-05 10:50:04 IST).
    assert_eq!(
        (q.last_trade_time, q.exchange_time),
        (Some(1_704_432_001), Some(1_704_432_004))
    );
    assert_eq!(
        (u.fields.upper_circuit, u.fields.high_52),
        (Some(px("2190.2")), Some(px("2400")))
    );
}

#[test]
fn vector_depth_delta() {
    let NorenMessage::Feed(u) = check_vector("depth_delta") else {
        panic!("not a feed message")
    };
    assert_eq!((u.feed, u.snapshot), (Feed::Depth, false));
    assert_eq!(
        u.fields.asks[0],
        NorenLevel {
            price: Some(px("2001.65")),
            quantity: Some(12),
            orders: None
        }
    );
}

#[test]
fn vector_unsub_touchline_ack() {
    assert_eq!(
        check_vector("unsub_touchline_ack"),
        NorenMessage::UnsubscribeAck {
            feed: Feed::Touchline,
            keys: vec![nse(22)]
        }
    );
}

#[test]
fn vector_unsub_depth_ack() {
    assert_eq!(
        check_vector("unsub_depth_ack"),
        NorenMessage::UnsubscribeAck {
            feed: Feed::Depth,
            keys: vec![nse(22)]
        }
    );
}

#[test]
fn vector_order_sub_ack() {
    assert_eq!(
        check_vector("order_sub_ack"),
        NorenMessage::OrderSubscribeAck
    );
}

#[test]
fn vector_order_update() {
    let NorenMessage::OrderUpdate(o) = check_vector("order_update") else {
        panic!("not an order")
    };
    assert_eq!(Value::Object(o), vector("order_update")["message"]);
}

#[test]
fn every_vector_has_a_test() {
    let names: Vec<String> = all_vectors()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, NAMES);
    // One `vector_<name>` function per name: this file's source lists them.
    let src = include_str!("noren_codec.rs");
    for n in NAMES {
        assert!(src.contains(&format!("fn vector_{n}()")), "no test for {n}");
    }
}

#[test]
fn non_json_text_is_an_error_as_the_clients_report_one() {
    for flavour in [Flavour::Classic, Flavour::OAuth, Flavour::Flattrade] {
        assert!(matches!(
            parse_message("hello", flavour),
            Err(CodecError::BadText(_))
        ));
    }
}

// ---- merging ---------------------------------------------------------------------------------

fn decode(d: &mut NorenDecoder, text: &str) -> (Inbound, Vec<Tick>) {
    let mut out = Vec::new();
    let r = d
        .text(text, &mut out)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (r, out)
}

#[test]
fn touchline_deltas_merge_into_the_snapshot() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    let (_, tk) = decode(&mut d, &text("touchline_ack"));
    let (r, tf) = decode(&mut d, &text("touchline_delta"));
    assert_eq!(r, Inbound::Ticks { skipped: 0 });
    let (q0, q1) = (tk[0].quote.unwrap(), tf[0].quote.unwrap());
    assert_eq!(
        (tf[0].ltp, q1.volume, q1.exchange_time),
        (px("2001.60"), 166_637, Some(1_704_432_002))
    );
    assert_eq!((q1.ohlc, q1.average_price), (q0.ohlc, q0.average_price));
    assert_eq!(q1.change, change_percent(px("2001.60"), q0.ohlc.close));
    // No lp: the LTP stays; only bq1 and ft change.
    let (_, nolp) = decode(&mut d, &text("touchline_delta_no_lp"));
    assert_eq!(nolp[0].ltp, px("2001.60"));
    assert_eq!(nolp[0].quote.unwrap().exchange_time, Some(1_704_432_003));
    let snap = d.snapshot(Feed::Touchline, nse(22)).unwrap();
    assert_eq!(
        (snap.bids[0].quantity, snap.symbol.as_deref()),
        (Some(3135), Some("ACC-EQ"))
    );
}

#[test]
fn depth_deltas_merge_per_level_part() {
    let mut d = NorenDecoder::new(Flavour::Flattrade);
    decode(&mut d, &text("depth_ack"));
    let (_, df) = decode(&mut d, &text("depth_delta"));
    let dep = df[0].depth.unwrap();
    assert_eq!(
        dep.sell[0],
        Level {
            price: px("2001.65"),
            quantity: 12,
            orders: 1
        }
    );
    assert_eq!(
        dep.sell[1],
        Level {
            price: px("2001.65"),
            quantity: 63,
            orders: 2
        }
    );
    assert_eq!(df[0].ltp, px("2001.60"));
    // The touchline feed of the same key is separate: no snapshot there.
    assert!(d.snapshot(Feed::Touchline, nse(22)).is_none());
}

#[test]
fn same_token_on_two_exchanges_never_aliases() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    let nfo = text("touchline_ack")
        .replace(r#""e":"NSE""#, r#""e":"NFO""#)
        .replace("2001.45", "99.95");
    decode(&mut d, &text("touchline_ack"));
    decode(&mut d, &nfo);
    let (_, t) = decode(&mut d, r#"{"t":"tf","e":"NFO","tk":"22","lp":"101.00"}"#);
    assert_eq!(
        (t[0].key, t[0].ltp),
        (FeedKey { seg: 2, token: 22 }, px("101"))
    );
    let (_, t) = decode(&mut d, r#"{"t":"tf","e":"NSE","tk":"22","v":"1"}"#);
    assert_eq!((t[0].key, t[0].ltp), (nse(22), px("2001.45")));
    assert_eq!(
        d.snapshot(Feed::Touchline, FeedKey { seg: 2, token: 22 })
            .unwrap()
            .ltp,
        Some(px("101"))
    );
}

#[test]
fn delta_without_snapshot_is_skipped_and_unsubscribe_drops_state() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    let (r, t) = decode(&mut d, &text("touchline_delta"));
    assert_eq!((r, t.len()), (Inbound::Ticks { skipped: 1 }, 0));
    decode(&mut d, &text("touchline_ack"));
    assert_eq!(
        decode(&mut d, &text("unsub_touchline_ack")).0,
        Inbound::Ignored
    );
    assert!(d.snapshot(Feed::Touchline, nse(22)).is_none());
    assert_eq!(
        decode(&mut d, &text("touchline_delta")).0,
        Inbound::Ticks { skipped: 1 }
    );
}

#[test]
fn decoder_trait_maps_control_messages() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    assert!(
        matches!(decode(&mut d, &text("connect_ok")).0, Inbound::Notice(m) if m.contains("FA12345"))
    );
    assert!(matches!(decode(&mut d, &text("connect_fail")).0,
        Inbound::ServerError(m) if m.contains("Not_Ok") && m.contains("Invalid Session Key")));
    assert!(
        matches!(decode(&mut d, &text("connect_ok_mixedcase")).0, Inbound::ServerError(m) if m.contains("\"Ok\""))
    );
    assert_eq!(decode(&mut d, &text("order_update")).0, Inbound::Ignored);
    assert_eq!(decode(&mut d, &text("order_sub_ack")).0, Inbound::Ignored);
    assert_eq!(decode(&mut d, r#"{"t":"zz"}"#).0, Inbound::Ignored);
    assert_eq!(decode(&mut d, codec::HEARTBEAT).0, Inbound::Heartbeat);
    assert!(matches!(
        d.binary(&[1, 2], &mut Vec::new()),
        Err(CodecError::BadText(_))
    ));
    // Not_Ok without emsg still names the failure.
    assert_eq!(
        parse_message(r#"{"t":"ck","s":"Not_Ok"}"#, Flavour::Classic),
        Ok(NorenMessage::LoginRejected("Not_Ok".into()))
    );
}

#[path = "noren_codec/props.rs"]
mod props;
