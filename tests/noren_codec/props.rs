//! Noren codec: malformed messages and properties (no panic, exact round trips of fields,
//! snapshots and deltas, truncation at every cut).

use super::*;

// ---- malformed -------------------------------------------------------------------------------

#[test]
fn malformed_messages_are_errors_and_change_nothing() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    decode(&mut d, &text("touchline_ack"));
    let before = d.snapshot(Feed::Touchline, nse(22)).cloned();
    let huge = format!(
        r#"{{"t":"tf","e":"NSE","tk":"22","lp":"{}"}}"#,
        "9".repeat(100_000)
    );
    for bad in [
        "",
        " ",
        "pong",
        "[]",
        "null",
        "{",
        r#"{"e":"NSE"}"#,
        r#"{"t":7}"#,
        r#"{"t":"tf","tk":"22","lp":"1"}"#,  // no e
        r#"{"t":"tf","e":"NSE","lp":"1"}"#,  // no tk
        r#"{"t":"tf","e":"XYZ","tk":"22"}"#, // unknown exchange
        r#"{"t":"tf","e":"nse","tk":"22"}"#, // exchange names are upper case
        r#"{"t":"tf","e":"NSE","tk":"abc"}"#,
        r#"{"t":"tf","e":"NSE","tk":"4294967296"}"#,
        r#"{"t":"tf","e":"NSE","tk":22}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","lp":2001.5}"#, // a number, not a string
        r#"{"t":"tf","e":"NSE","tk":"22","lp":"abc"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","lp":"1e3"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","lp":""}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","v":"-1"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","v":"99999999999999999999999"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","bo1":"4294967296"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","ft":"9223372036854775808"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","ltt":"25:00:00"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","pp":"300"}"#,
        r#"{"t":"tf","e":"NSE","tk":"22","lp":"2001.60","bq1":null}"#,
        r#"{"t":"ck","uid":"FA12345"}"#, // no status
        r#"{"t":"ck","s":1}"#,
        r#"{"t":"uk","k":"NSE-22"}"#,
        r#"{"t":"uk"}"#,
        &huge,
    ] {
        let mut out = Vec::new();
        match d.text(bad, &mut out) {
            Err(CodecError::BadText(m)) => {
                assert!(m.len() < 300, "long message for {bad:.40}: {m}")
            }
            other => panic!("{bad:.60}: expected BadText, got {other:?}"),
        }
        assert!(out.is_empty(), "{bad:.60}");
        assert_eq!(
            d.snapshot(Feed::Touchline, nse(22)).cloned(),
            before,
            "{bad:.60}"
        );
    }
}

#[test]
fn unknown_fields_and_escapes_are_fine() {
    let msg = r#"{"t":"tf","e":"NSE","tk":"22","zz":[1,{"a":null}],"lp":"2001.70","x\u0041":7}"#;
    let NorenMessage::Feed(u) = parse_message(msg, Flavour::Classic).unwrap() else {
        panic!()
    };
    assert_eq!(u.fields.ltp, Some(px("2001.70")));
    let esc = r#"{"t":"tk","e":"NSE","tk":"22","ts":"A\"B\u20b9","lp":"1.00"}"#;
    let NorenMessage::Feed(u) = parse_message(esc, Flavour::Classic).unwrap() else {
        panic!()
    };
    assert_eq!(u.fields.symbol.as_deref(), Some("A\"B₹"));
}

// ---- encoders --------------------------------------------------------------------------------

#[test]
fn login_messages_match_the_clients_bytes() {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    let classic = encode_login(Flavour::Classic, "FA12345", "tok");
    assert_eq!(
        classic,
        r#"{"t":"c","uid":"FA12345","actid":"FA12345","susertoken":"tok","source":"API"}"#
    );
    assert_eq!(
        parse(&classic),
        parse(
            r#"{"t": "c", "uid": "FA12345", "actid": "FA12345", "susertoken": "tok", "source": "API"}"#
        )
    );
    for f in [Flavour::OAuth, Flavour::Flattrade] {
        assert_eq!(
            parse(&encode_login(f, "FZ00000", "a\"b")),
            parse(
                r#"{"t": "a", "uid": "FZ00000", "actid": "FZ00000", "accesstoken": "a\"b", "source": "API"}"#
            )
        );
    }
    let NorenRequest::Login {
        kind,
        uid,
        actid,
        token,
    } = decode_request(&classic).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (kind, uid.as_str(), actid.as_str(), token.expose()),
        (TokenKind::SuserToken, "FA12345", "FA12345", "tok")
    );
    assert!(!format!("{:?}", decode_request(&classic).unwrap()).contains("tok\""));
}

#[test]
fn subscriptions_encode_keys_and_batch() {
    let keys = [nse(22), nse(26000)];
    assert_eq!(
        encode_subscribe(Feed::Touchline, &keys).unwrap(),
        [r#"{"t":"t","k":"NSE|22#NSE|26000"}"#]
    );
    assert_eq!(
        encode_subscribe(Feed::Depth, &keys[..1]).unwrap(),
        [r#"{"t":"d","k":"NSE|22"}"#]
    );
    assert_eq!(
        encode_unsubscribe(Feed::Touchline, &keys[..1]).unwrap(),
        [r#"{"t":"u","k":"NSE|22"}"#]
    );
    assert_eq!(
        encode_unsubscribe(Feed::Depth, &keys[..1]).unwrap(),
        [r#"{"t":"ud","k":"NSE|22"}"#]
    );
    assert!(encode_subscribe(Feed::Depth, &[]).unwrap().is_empty());
    assert_eq!(
        encode_subscribe(Feed::Depth, &[FeedKey { seg: 99, token: 1 }]),
        Err(UnknownSegment(99))
    );
    let many: Vec<FeedKey> = (0..250)
        .map(|t| FeedKey {
            seg: 1 + (t % 8) as u16,
            token: t,
        })
        .collect();
    let msgs = encode_subscribe(Feed::Touchline, &many).unwrap();
    assert_eq!(msgs.len(), 3);
    let mut got = Vec::new();
    for m in &msgs {
        let NorenRequest::Subscribe {
            feed: Feed::Touchline,
            keys,
        } = decode_request(m).unwrap()
        else {
            panic!("{m}")
        };
        assert!(keys.len() <= codec::MAX_KEYS_PER_MESSAGE);
        got.extend(keys);
    }
    assert_eq!(got, many);
    assert_eq!(
        decode_request(codec::HEARTBEAT),
        Ok(NorenRequest::Heartbeat)
    );
    // The client quirk: unsubscribe(feed_type='d') sends no "t" at all.
    assert!(decode_request(r#"{"k": "NSE|22"}"#).is_err());
    assert_eq!(
        codec::seg_of("MCX").and_then(codec::exchange_of),
        Some("MCX")
    );
    assert_eq!(codec::default_precision(codec::seg_of("CDS").unwrap()), 4);
}

#[test]
fn server_acks_decode_as_the_clients_expect() {
    assert_eq!(encode_connect_ack(Ack::Ck, "FA12345"), text("connect_ok"));
    assert_eq!(
        encode_connect_ack(Ack::Ak, "FZ00000"),
        text("connect_ok_ak")
    );
    assert_eq!(
        encode_connect_rejected(Ack::Ck, "Invalid Session Key"),
        text("connect_fail")
    );
    assert_eq!(
        encode_unsubscribe_ack(Feed::Touchline, &[nse(22)]).unwrap(),
        text("unsub_touchline_ack")
    );
    assert_eq!(
        encode_unsubscribe_ack(Feed::Depth, &[nse(22)]).unwrap(),
        text("unsub_depth_ack")
    );
}

#[test]
fn deltas_carry_only_what_changed() {
    let mut d = NorenDecoder::new(Flavour::Classic);
    let (_, t) = decode(&mut d, &text("depth_ack"));
    let mut next = t[0];
    next.quote.as_mut().unwrap().volume += 10;
    next.depth.as_mut().unwrap().sell[2].orders = 7;
    let delta = encode_delta(&t[0], &next).unwrap();
    let keys: Vec<String> = serde_json::from_str::<Value>(&delta)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["e", "so3", "t", "tk", "v"]);
    assert_eq!(decode(&mut d, &delta).1, [next]);
}

// ---- properties ------------------------------------------------------------------------------

fn price() -> impl Strategy<Value = Price> {
    (i64::MIN + 1..=i64::MAX).prop_map(Price)
}

/// A tick as the decoder produces it from a full snapshot (feed time near `ft`).
fn canonical_tick(depth: bool) -> impl Strategy<Value = Tick> {
    (
        (
            prop::sample::select(codec::EXCHANGES.to_vec()),
            any::<u32>(),
        ),
        prop::collection::vec(price(), 6),
        prop::collection::vec(any::<u64>(), 5),
        (0i64..4_000_000_000, -43_199i64..=43_200, any::<bool>()),
        prop::collection::vec((price(), any::<u64>(), any::<u32>()), 10),
    )
        .prop_map(move |((ex, token), p, q, (ft, dt, has_ft), lv)| {
            let key = FeedKey { seg: ex.1, token };
            let ohlc = Ohlc {
                open: p[1],
                high: p[2],
                low: p[3],
                close: p[4],
            };
            let ft = has_ft.then_some(ft);
            let quote = Quote {
                volume: q[0],
                average_price: p[5],
                oi: q[1],
                ohlc,
                change: change_percent(p[0], ohlc.close),
                exchange_time: ft,
                last_quantity: if depth { q[2] } else { 0 },
                total_buy_quantity: if depth { q[3] } else { 0 },
                total_sell_quantity: if depth { q[4] } else { 0 },
                last_trade_time: if depth { ft.map(|f| f + dt) } else { None },
                ..Quote::default()
            };
            let l = |i: usize| Level {
                price: lv[i].0,
                quantity: lv[i].1,
                orders: lv[i].2,
            };
            Tick {
                key,
                mode: if depth { Mode::Depth } else { Mode::Quote },
                tradable: true,
                ltp: p[0],
                quote: Some(quote),
                depth: depth.then(|| Depth {
                    buy: std::array::from_fn(l),
                    sell: std::array::from_fn(|i| l(i + 5)),
                }),
            }
        })
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

/// Arbitrary sparse fields, every value representable (pc with two decimals as on the wire).
fn fields() -> impl Strategy<Value = NorenFields> {
    let level = (opt(price()), opt(any::<u64>()), opt(any::<u32>())).prop_map(
        |(price, quantity, orders)| NorenLevel {
            price,
            quantity,
            orders,
        },
    );
    (
        (
            opt(".{0,12}"),
            opt(0u8..8),
            opt(price()),
            opt(any::<u64>()),
            opt(price()),
        ),
        (
            opt(-(10i64.pow(12))..10i64.pow(12)),
            opt(any::<u64>()),
            opt(price()),
            opt(price()),
        ),
        (
            opt(0u32..86_400),
            opt(any::<u64>()),
            opt(0i64..i64::MAX),
            opt(price()),
        ),
        prop::collection::vec(level, 10),
    )
        .prop_map(
            |(
                (symbol, precision, tick_size, lot_size, ltp),
                (pc, volume, close, low_52),
                (ltt, oi, ft, uc),
                lv,
            )| {
                NorenFields {
                    symbol,
                    precision,
                    tick_size,
                    lot_size,
                    ltp,
                    change_percent: pc.map(|c| Price(c * 100_000).to_f64()),
                    volume,
                    close,
                    low_52,
                    last_trade_time: ltt,
                    oi,
                    prev_oi: oi.map(|o| o / 2),
                    feed_time: ft,
                    upper_circuit: uc,
                    bids: std::array::from_fn(|i| lv[i]),
                    asks: std::array::from_fn(|i| lv[i + 5]),
                    ..NorenFields::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn prop_arbitrary_text_never_panics(s in ".{0,300}") {
        let mut d = NorenDecoder::new(Flavour::Flattrade);
        let mut out = Vec::new();
        match d.text(&s, &mut out) {
            Ok(_) => prop_assert!(out.len() <= 1),
            Err(_) => prop_assert!(out.is_empty()),
        }
        let _ = decode_request(&s);
    }

    #[test]
    fn prop_json_shaped_garbage_never_panics(
        t in prop::sample::select(vec!["tk", "tf", "dk", "df", "ck", "ak", "uk", "udk", "om", "h", "q"]),
        pairs in prop::collection::vec((
            prop::sample::select(vec!["e", "tk", "lp", "v", "bp1", "so5", "ltt", "ft", "pc", "s", "k", "ts", "pp", "x"]),
            prop_oneof![".{0,24}", "[0-9.:|#-]{0,24}", Just("NSE".to_string()), Just("22".to_string())],
        ), 0..12),
    ) {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(v.as_str()))).collect();
        let msg = format!(r#"{{"t":"{t}",{}}}"#, body.join(","));
        let mut d = NorenDecoder::new(Flavour::Flattrade);
        let _ = d.text(&msg, &mut Vec::new());
        let _ = d.text(&msg.replace("\"tf\"", "\"tk\""), &mut Vec::new());
    }

    #[test]
    fn prop_fields_roundtrip(f in fields(), snapshot in any::<bool>(), depth in any::<bool>(), token in any::<u32>()) {
        let u = FeedUpdate {
            feed: if depth { Feed::Depth } else { Feed::Touchline },
            snapshot,
            key: FeedKey { seg: 3, token },
            fields: f,
        };
        let NorenMessage::Feed(back) = parse_message(&encode_update(&u).unwrap(), Flavour::Classic).unwrap() else {
            return Err(TestCaseError::fail("not a feed message"));
        };
        prop_assert_eq!(back, u);
    }

    #[test]
    fn prop_snapshots_roundtrip(t in prop_oneof![canonical_tick(false), canonical_tick(true)]) {
        let mut d = NorenDecoder::new(Flavour::Classic);
        let mut out = Vec::new();
        d.text(&encode_snapshot(&t).unwrap(), &mut out).unwrap();
        prop_assert_eq!(out, vec![t]);
    }

    #[test]
    fn prop_deltas_roundtrip(pair in any::<bool>().prop_flat_map(|depth| (canonical_tick(depth), canonical_tick(depth)))) {
        let (prev, mut next) = pair;
        next.key = prev.key;
        // A delta cannot remove a field: where next has no feed time, it keeps prev's (and
        // prev's last trade time, which is read on the feed time's day).
        let (pq, nq) = (prev.quote.unwrap(), next.quote.as_mut().unwrap());
        if nq.exchange_time.is_none() {
            nq.exchange_time = pq.exchange_time;
            nq.last_trade_time = pq.last_trade_time;
        }
        let mut d = NorenDecoder::new(Flavour::Classic);
        let mut out = Vec::new();
        d.text(&encode_snapshot(&prev).unwrap(), &mut out).unwrap();
        d.text(&encode_delta(&prev, &next).unwrap(), &mut out).unwrap();
        prop_assert_eq!(out, vec![prev, next]);
    }

    #[test]
    fn prop_truncated_messages_fail_cleanly(t in canonical_tick(true), cut in any::<prop::sample::Index>()) {
        let s = encode_snapshot(&t).unwrap();
        let cut = cut.index(s.len()); // ASCII: every index is a char boundary
        let mut d = NorenDecoder::new(Flavour::Classic);
        let mut out = Vec::new();
        prop_assert!(d.text(&s[..cut], &mut out).is_err());
        prop_assert!(out.is_empty());
    }
}
