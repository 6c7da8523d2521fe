//! Angel codec: malformed frames and properties (no panic, exact re-encoding, tick round trips,
//! truncation at every cut, request round trips).

use super::*;
use tickmux::adapters::angel::codec::decode_packet_into;

fn vector_frame(name: &str) -> Vec<u8> {
    vector(name).frame
}

// ---- malformed frames ------------------------------------------------------------------------

#[test]
fn malformed_empty() {
    assert_eq!(decode_packet(&[]), Err(CodecError::Empty));
    assert_eq!(
        AngelDecoder::new().binary(&[], &mut Vec::new()),
        Err(CodecError::Empty)
    );
}

#[test]
fn malformed_unknown_mode() {
    for m in [0u8, 5, 255] {
        let mut f = vector("ltp_nse_sbin").frame;
        f[0] = m;
        assert!(
            matches!(decode_packet(&f), Err(CodecError::BadText(_))),
            "mode {m}"
        );
    }
}

#[test]
fn malformed_truncated_at_every_cut() {
    for (name, v) in all_vectors() {
        for cut in 1..v.frame.len() {
            assert_eq!(
                decode_packet(&v.frame[..cut]),
                Err(CodecError::Truncated {
                    offset: 0,
                    needed: v.frame.len(),
                    have: cut
                }),
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn malformed_trailing_bytes() {
    for (name, mut v) in all_vectors() {
        v.frame.push(0);
        assert_eq!(
            decode_packet(&v.frame),
            Err(CodecError::Trailing {
                packets: 1,
                extra: 1
            }),
            "{name}"
        );
    }
}

#[test]
fn malformed_mode_byte_disagrees_with_length() {
    // An LTP-sized frame claiming Quote, and a SnapQuote-sized one claiming LTP.
    let mut f = vector("ltp_nse_sbin").frame;
    f[0] = 2;
    assert_eq!(
        decode_packet(&f),
        Err(CodecError::Truncated {
            offset: 0,
            needed: QUOTE_LEN,
            have: LTP_LEN
        })
    );
    let mut f = vector("snapquote_nse_infy").frame;
    f[0] = 1;
    assert_eq!(
        decode_packet(&f),
        Err(CodecError::Trailing {
            packets: 1,
            extra: SNAP_QUOTE_LEN - LTP_LEN
        })
    );
}

#[test]
fn malformed_token_is_an_error_for_the_tick_only() {
    let mut f = vector("ltp_nse_sbin").frame;
    f[2] = b'x';
    let p = decode_packet(&f).unwrap();
    assert_eq!(p.token.as_str(), Some("x045"));
    assert!(matches!(p.to_tick(), Err(CodecError::BadText(_))));
    assert!(matches!(
        AngelDecoder::new().binary(&f, &mut Vec::new()),
        Err(CodecError::BadText(_))
    ));
    // A token too large for a u32, and an empty one.
    let mut p = AngelPacket::empty(AngelMode::Ltp, 1, AngelToken::new("4294967296").unwrap());
    assert!(p.to_tick().is_err());
    p.token = AngelToken::default();
    assert!(p.to_tick().is_err());
}

#[test]
fn huge_values_saturate_instead_of_panicking() {
    let mut p = AngelPacket::empty(AngelMode::SnapQuote, 1, AngelToken::from_number(7));
    p.last_traded_price = i64::MAX;
    let q = p.quote.as_mut().unwrap();
    q.closed_price = i64::MIN;
    q.total_buy_quantity = f64::NAN;
    q.total_sell_quantity = f64::INFINITY;
    q.volume_trade_for_the_day = -5;
    p.exchange_timestamp = i64::MIN;
    let t = p.to_tick().unwrap();
    assert_eq!(t.ltp, Price(i64::MAX));
    let q = t.quote.unwrap();
    assert_eq!(
        (q.total_buy_quantity, q.total_sell_quantity, q.volume),
        (0, u64::MAX, 0)
    );
    // And a tick full of extremes encodes without panicking.
    let mut f = Vec::new();
    encode_tick(&t, &mut f);
    assert_eq!(f.len(), SNAP_QUOTE_LEN);
}

// ---- properties ------------------------------------------------------------------------------

fn mode_of(i: u8) -> AngelMode {
    [
        AngelMode::Ltp,
        AngelMode::Quote,
        AngelMode::SnapQuote,
        AngelMode::Depth20,
    ][usize::from(i % 4)]
}

/// Bytes of exactly a mode's length with that mode in byte 0.
fn exact_frame() -> impl Strategy<Value = Vec<u8>> {
    (0u8..4).prop_flat_map(|m| {
        let mode = mode_of(m);
        prop::collection::vec(any::<u8>(), mode.packet_len()).prop_map(move |mut b| {
            b[0] = mode.wire();
            b
        })
    })
}

/// A tick exactly as `decode_tick` produces it for LTP/Quote/SnapQuote packets.
fn canonical_tick() -> impl Strategy<Value = Tick> {
    let bound = i64::MAX / 100_000;
    (
        prop::sample::select(vec![1u8, 2, 3, 4, 5, 7, 13]),
        any::<u32>(),
        0u8..3,
        prop::collection::vec(-bound..bound, 6),
        prop::collection::vec(0u64..(1 << 53), 6),
        prop::collection::vec(0i64..4_000_000_000, 2),
        prop::collection::vec((-bound..bound, 0u64..(1 << 62), any::<u16>()), 10),
    )
        .prop_map(|(exch, token, m, p, q, ts, lv)| {
            let div = codec::divisor(exch);
            let px = |raw: i64| Price::from_raw(raw, div);
            let key = FeedKey {
                seg: u16::from(exch),
                token,
            };
            let ltp = px(p[0]);
            let mode = [Mode::Ltp, Mode::Quote, Mode::Depth][usize::from(m)];
            if mode == Mode::Ltp {
                return Tick::ltp(key, ltp);
            }
            let ohlc = Ohlc {
                open: px(p[1]),
                high: px(p[2]),
                low: px(p[3]),
                close: px(p[4]),
            };
            let mut quote = Quote {
                volume: q[0],
                average_price: px(p[5]),
                last_quantity: q[1],
                total_buy_quantity: q[2],
                total_sell_quantity: q[3],
                ohlc,
                change: change_percent(ltp, ohlc.close),
                exchange_time: Some(ts[0]),
                ..Quote::default()
            };
            let depth = (mode == Mode::Depth).then(|| {
                quote.oi = q[4];
                quote.last_trade_time = Some(ts[1]);
                let l = |i: usize| Level {
                    price: px(lv[i].0),
                    quantity: lv[i].1,
                    orders: u32::from(lv[i].2),
                };
                Depth {
                    buy: std::array::from_fn(l),
                    sell: std::array::from_fn(|i| l(i + 5)),
                }
            });
            Tick {
                key,
                mode,
                tradable: true,
                ltp,
                quote: Some(quote),
                depth,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..500)) {
        let _ = decode_tick(&bytes);
        // In place: an error leaves the previous packet untouched.
        let mut p = decode_packet(&vector_frame("snapquote_nfo_interleaved")).unwrap();
        let before = p;
        if decode_packet_into(&bytes, &mut p).is_err() {
            prop_assert_eq!(p, before);
        }
        let mut out = Vec::new();
        let mut d = AngelDecoder::new();
        match d.binary(&bytes, &mut out) {
            Ok(_) => prop_assert_eq!(out.len(), 1),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn prop_exact_length_frames_reencode_byte_for_byte(mut bytes in exact_frame()) {
        let p = decode_packet(&bytes).unwrap();
        let _ = p.to_tick();
        let mut enc = Vec::new();
        encode_packet(&p, &mut enc);
        if bytes[0] == AngelMode::Depth20.wire() {
            // The SDK reads and drops a sequence number there; we write zeros.
            bytes[27..35].fill(0);
        }
        prop_assert_eq!(enc, bytes);
    }

    #[test]
    fn prop_ticks_roundtrip(t in canonical_tick()) {
        let mut f = Vec::new();
        encode_tick(&t, &mut f);
        prop_assert_eq!(f.len(), AngelMode::for_mode(t.mode).packet_len());
        prop_assert_eq!(decode_tick(&f).unwrap(), t);
    }

    #[test]
    fn prop_depth20_from_tick_roundtrips_the_top_five(t in canonical_tick()) {
        let p = AngelPacket::from_tick(&t, AngelMode::Depth20);
        let mut f = Vec::new();
        encode_packet(&p, &mut f);
        prop_assert_eq!(f.len(), DEPTH20_LEN);
        let back = decode_packet(&f).unwrap();
        prop_assert_eq!(back, p);
        prop_assert!(back.depth_20.unwrap().buy[5..].iter().all(|l| *l == Default::default()));
    }

    #[test]
    fn prop_truncated_frames_fail_cleanly(bytes in exact_frame(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len());
        let r = decode_packet(&bytes[..cut]);
        if cut == 0 {
            prop_assert_eq!(r, Err(CodecError::Empty));
        } else {
            prop_assert_eq!(r, Err(CodecError::Truncated { offset: 0, needed: bytes.len(), have: cut }));
        }
    }

    #[test]
    fn prop_text_never_panics(s in ".{0,200}") {
        let _ = decode_text(&s);
        let _ = decode_request(&s);
        let _ = AngelDecoder::new().text(&s, &mut Vec::new());
    }

    #[test]
    fn prop_requests_roundtrip(
        keys in prop::collection::vec((prop::sample::select(vec![1u16, 2, 3, 5, 13]), any::<u32>()), 0..60),
        m in 0u8..3,
        sub in any::<bool>(),
    ) {
        let keys: Vec<FeedKey> = keys.into_iter().map(|(seg, token)| k(seg, token)).collect();
        let mode = mode_of(m);
        let msgs = if sub {
            encode_subscribe(Some("rt"), mode, &keys)
        } else {
            encode_unsubscribe(Some("rt"), mode, &keys)
        }.unwrap();
        let mut got = Vec::new();
        for msg in &msgs {
            let s = match decode_request(msg).unwrap() {
                AngelRequest::Subscribe(s) if sub => s,
                AngelRequest::Unsubscribe(s) if !sub => s,
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(s.mode, mode);
            got.extend(s.keys().unwrap());
        }
        let mut want = keys;
        want.sort_by_key(|k| k.seg);
        prop_assert_eq!(got, want);
    }
}
