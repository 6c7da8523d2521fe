//! The simulator's Angel One SmartAPI WebSocket 2.0 and REST, over real sockets on
//! 127.0.0.1, driven with tokio-tungstenite and tickmux's Angel codec: handshake headers,
//! every mode, dedupe, limits and E-codes, ping/pong, every generic fault, the default
//! 3-connection limit, REST quotes and profile, and the scrip master.

mod sim_common;

use serde_json::{Value, json};
use sim_common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use tickmux::adapters::angel::codec::{self as ac, AngelMode, AngelPacket, AngelText};
use tickmux::model::{FeedKey, Mode};
use tickmux::sim::{self, Fault, Sim, SimBroker, SimConfig};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const INFY: &str = "1594";
const RELIANCE: &str = "2885";
const TCS: &str = "11536";
const SBIN: &str = "3045";
const NIFTY: &str = "99926000";

/// A request in the SDK's own bytes (Python `json.dumps`, spaces after `:` and `,`).
fn request(action: u8, cid: Option<&str>, mode: u8, exch: u8, tokens: &[&str]) -> String {
    let mut v = json!({
        "action": action,
        "params": {"mode": mode, "tokenList": [{"exchangeType": exch, "tokens": tokens}]},
    });
    if let Some(c) = cid {
        v["correlationID"] = json!(c);
    }
    let s = v.to_string();
    s.replace("\":", "\": ").replace(",\"", ", \"")
}

fn sub(mode: u8, exch: u8, tokens: &[&str]) -> String {
    request(1, Some("t1"), mode, exch, tokens)
}

/// Read binary packets (every one must decode) and texts until `done`.
async fn read_until(
    ws: &mut Client,
    limit: Duration,
    mut done: impl FnMut(&[AngelPacket], &[String]) -> bool,
) -> (Vec<AngelPacket>, Vec<String>) {
    let deadline = Instant::now() + limit;
    let (mut packets, mut texts) = (Vec::new(), Vec::new());
    while !done(&packets, &texts) {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await {
            Some(Ok(Message::Binary(b))) => {
                let p = ac::decode_packet(&b).expect("one valid packet per message");
                assert_eq!(b.len(), p.subscription_mode.packet_len());
                packets.push(p);
            }
            Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
            Some(Ok(Message::Pong(_))) => {}
            other => panic!(
                "unexpected {other:?} ({} packets, texts {texts:?})",
                packets.len()
            ),
        }
    }
    (packets, texts)
}

fn token(p: &AngelPacket) -> &str {
    p.token.as_str().unwrap()
}

fn error_of(text: &str) -> (Option<String>, String, String) {
    match ac::decode_text(text).expect("an Angel text") {
        AngelText::Error {
            correlation_id,
            code,
            message,
        } => (correlation_id, code, message),
        AngelText::Pong => panic!("expected an error, got pong"),
    }
}

#[tokio::test]
async fn handshake_needs_all_four_headers() {
    let sim = start().await;
    let _bearer = angel(&sim).await;
    let bare = AngelAuth {
        jwt: Some("sim_access_token"),
        ..AngelAuth::default()
    };
    let _no_prefix = try_angel(&sim, &bare).await.expect("JWT without Bearer");
    let cases = [
        (
            AngelAuth {
                jwt: Some("Bearer nope"),
                ..AngelAuth::default()
            },
            "Invalid Auth token",
        ),
        (
            AngelAuth {
                jwt: None,
                ..AngelAuth::default()
            },
            "Invalid Auth token",
        ),
        (
            AngelAuth {
                client_code: Some("X1"),
                ..AngelAuth::default()
            },
            "Invalid Client Code",
        ),
        (
            AngelAuth {
                api_key: None,
                ..AngelAuth::default()
            },
            "Invalid API Key",
        ),
        (
            AngelAuth {
                feed_token: Some("stale"),
                ..AngelAuth::default()
            },
            "Invalid Feed Token",
        ),
    ];
    for (auth, want) in &cases {
        let (status, msg, _) = rejected(try_angel(&sim, auth).await);
        assert_eq!((status, msg.as_deref()), (401, Some(*want)));
    }
    // The browser variant: no Authorization header, the three others in the query.
    let q = format!(
        "{}?clientCode=SIM001&feedToken=sim_feed_token&apiKey=sim_api_key",
        sim.ws_url_for(SimBroker::Angel)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(q)
        .await
        .expect("query auth");
    send(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws, LONG).await.as_deref(), Some("pong"));
    let s = sim.control().stats();
    assert_eq!((s.upgrades, s.rejected_auth), (3, 5));
    assert!(s.connections.iter().all(|c| c.broker == SimBroker::Angel));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_mode_ticks_one_packet_per_message() {
    let sim = start().await;
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(1, 1, &[INFY])).await;
    send(&mut ws, sub(2, 1, &[RELIANCE, NIFTY])).await;
    send(&mut ws, sub(3, 1, &[TCS])).await;
    send(&mut ws, sub(4, 1, &[SBIN])).await;
    let want: BTreeSet<(u8, &str)> =
        [(1, INFY), (2, RELIANCE), (2, NIFTY), (3, TCS), (4, SBIN)].into();
    let (packets, texts) = read_until(&mut ws, LONG, |p, _| {
        let seen: BTreeSet<(u8, &str)> = p
            .iter()
            .map(|p| (p.subscription_mode.wire(), token(p)))
            .collect();
        want.iter().all(|w| seen.contains(w))
    })
    .await;
    assert!(texts.is_empty(), "no errors: {texts:?}");
    for p in &packets {
        assert_eq!(p.exchange_type, 1);
        let t = p.to_tick().unwrap();
        match p.subscription_mode {
            AngelMode::Ltp => {
                assert_eq!(token(p), INFY);
                assert_eq!(p.last_traded_price % 5, 0, "paise on the 0.05 grid");
                assert!((100_000..220_000).contains(&p.last_traded_price));
                assert!(p.sequence_number > 0 && p.exchange_timestamp > 1_600_000_000_000);
            }
            AngelMode::Quote => {
                let q = p.quote.unwrap();
                assert!(q.low_price_of_the_day <= p.last_traded_price);
                assert!(p.last_traded_price <= q.high_price_of_the_day);
                if token(p) == NIFTY {
                    assert_eq!(p.sequence_number, 0, "indices carry no sequence number");
                    assert!(p.last_traded_price > 2_000_000);
                } else {
                    assert!(q.volume_trade_for_the_day > 0);
                }
                assert_eq!(t.mode, Mode::Quote);
            }
            AngelMode::SnapQuote => {
                let s = p.snap_quote.unwrap();
                assert_eq!(s.best_5_buy().count(), 5);
                assert_eq!(s.best_5_sell().count(), 5);
                let d = t.depth.unwrap();
                assert!(d.buy[0].price <= t.ltp && t.ltp < d.sell[0].price);
                // Circuits and the 52-week range, as the REST quote gives them.
                let ltp = p.last_traded_price;
                assert!(s.lower_circuit_limit < ltp && ltp < s.upper_circuit_limit);
                let q = p.quote.unwrap();
                assert!(s.week_52_low_price <= q.low_price_of_the_day);
                assert!(q.high_price_of_the_day <= s.week_52_high_price);
            }
            AngelMode::Depth20 => {
                let d = p.depth_20.unwrap();
                assert!(
                    d.buy
                        .iter()
                        .zip(&d.buy[1..])
                        .all(|(a, b)| a.price > b.price)
                );
                assert!(
                    d.sell
                        .iter()
                        .zip(&d.sell[1..])
                        .all(|(a, b)| a.price < b.price)
                );
                assert!(d.buy.iter().chain(&d.sell).all(|l| l.quantity > 0));
                assert!(d.buy[0].price < d.sell[0].price);
            }
        }
    }
    let keys = &sim.control().stats().connections[0].keys;
    let k = |t: &str| FeedKey {
        seg: 1,
        token: t.parse().unwrap(),
    };
    assert_eq!(keys.get(&k(INFY)), Some(&Mode::Ltp));
    assert_eq!(keys.get(&k(RELIANCE)), Some(&Mode::Quote));
    assert_eq!(keys.get(&k(TCS)), Some(&Mode::Depth));
    assert_eq!(keys.get(&k(SBIN)), Some(&Mode::Depth));
    sim.shutdown().await;
}

#[tokio::test]
async fn doubled_lists_are_deduped_and_modes_unsubscribe_separately() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = angel(&sim).await;
    // The official client's doubled list after a reconnect.
    send(&mut ws, sub(1, 1, &[INFY, SBIN, INFY, SBIN])).await;
    send(&mut ws, sub(3, 1, &[INFY])).await;
    read_until(&mut ws, LONG, |p, _| {
        p.iter()
            .any(|p| p.subscription_mode == AngelMode::SnapQuote)
            && p.iter().any(|p| token(p) == SBIN)
    })
    .await;
    let c = ctl.stats().connections[0].clone();
    assert_eq!(c.keys.len(), 2, "{:?}", c.keys);
    assert_eq!(
        (c.subscribe_messages, c.tokens_subscribed_total),
        (2, 5),
        "{c:?}"
    );
    assert_eq!(c.duplicate_subscribes, 2);
    // Unsubscribing LTP leaves INFY's SnapQuote subscription. The pong is a barrier: the
    // server handles messages in order, so nothing after it predates the unsubscribe.
    send(&mut ws, request(0, None, 1, 1, &[INFY, "999999"])).await;
    send(&mut ws, "ping").await;
    read_until(&mut ws, LONG, |_, t| t.iter().any(|t| t == "pong")).await;
    assert_eq!(ctl.stats().connections[0].keys.len(), 2);
    let (mut seen_ltp_after, mut snaps) = (0, 0);
    let (packets, _) = read_until(&mut ws, LONG, |p, _| p.len() >= 60).await;
    for p in &packets {
        match (token(p), p.subscription_mode) {
            (INFY, AngelMode::Ltp) => seen_ltp_after += 1,
            (INFY, AngelMode::SnapQuote) => snaps += 1,
            _ => {}
        }
    }
    assert_eq!(seen_ltp_after, 0, "INFY's LTP stream stopped");
    assert!(snaps > 0, "INFY's SnapQuote stream goes on");
    sim.shutdown().await;
}

#[tokio::test]
async fn limits_and_error_codes() {
    let sim = start().await;
    let mut ws = angel(&sim).await;
    let synth: Vec<String> = (0..1001)
        .map(|n| sim::synthetic_key(SimBroker::Angel, n).token.to_string())
        .collect();
    let refs: Vec<&str> = synth.iter().map(String::as_str).collect();
    send(&mut ws, request(1, Some("big"), 1, 2, &refs)).await;
    let (cid, code, msg) = error_of(&next_text(&mut ws, LONG).await.unwrap());
    assert_eq!(
        (cid.as_deref(), code.as_str(), msg.as_str()),
        (
            Some("big"),
            "E1002",
            "Invalid Request. Subscription Limit Exceeded"
        )
    );
    assert!(sim.control().stats().connections[0].keys.is_empty());
    send(&mut ws, request(1, Some("fits"), 1, 2, &refs[..1000])).await;
    eventually(LONG, "1000 subscribed", || {
        sim.control().stats().connections[0].keys.len() == 1000
    })
    .await;
    // One more distinct token is over the session's 1000; a known one is not.
    send(&mut ws, sub(1, 1, &[INFY])).await;
    assert_eq!(
        error_of(&next_text(&mut ws, LONG).await.unwrap()).1,
        "E1002"
    );
    send(&mut ws, sub(2, 2, &[refs[0]])).await;
    // Depth-20 is nse_cm only, bad payloads are E1001 (correlationID echoed when readable).
    for (text, cid) in [
        (sub(4, 2, &[refs[1]]), Some("t1")),
        ("not json".to_string(), None),
        (sub(1, 1, &["12ab"]), Some("t1")),
        (sub(7, 1, &[INFY]), Some("t1")),
        (sub(1, 99, &[INFY]), Some("t1")),
        (
            r#"{"correlationID":"c9","action":1}"#.to_string(),
            Some("c9"),
        ),
    ] {
        send(&mut ws, text.clone()).await;
        let (got, code, msg) = error_of(&next_text(&mut ws, LONG).await.unwrap());
        assert_eq!(
            (code.as_str(), msg.as_str()),
            ("E1001", "Invalid Request Payload")
        );
        assert_eq!(got.as_deref(), cid, "{text}");
    }
    sim.shutdown().await;

    let sim = start().await;
    let mut ws = angel(&sim).await;
    let nse: Vec<String> = (0..51).map(|i| (100_000 + i).to_string()).collect();
    let nse: Vec<&str> = nse.iter().map(String::as_str).collect();
    send(&mut ws, sub(4, 1, &nse[..50])).await;
    send(&mut ws, sub(4, 1, &nse[50..])).await;
    assert_eq!(
        error_of(&next_text(&mut ws, LONG).await.unwrap()).1,
        "E1002"
    );
    assert_eq!(sim.control().stats().connections[0].keys.len(), 50);
    sim.shutdown().await;
}

#[tokio::test]
async fn text_ping_and_ping_frames_are_answered() {
    let sim = start().await;
    let mut ws = angel(&sim).await;
    send(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws, LONG).await.as_deref(), Some("pong"));
    assert!(ping_is_answered(&mut ws, b"").await);
    assert!(ping_is_answered(&mut ws, b"ping").await);
    // No server heartbeat: an idle connection stays silent.
    assert!(goes_silent(&mut ws, Duration::from_millis(300)).await);
    assert_eq!(sim.control().stats().heartbeats_sent, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn three_connections_by_default_then_429() {
    let sim = start().await;
    let ctl = sim.control();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(angel(&sim).await);
    }
    let (status, msg, _) = rejected(try_angel(&sim, &AngelAuth::default()).await);
    assert_eq!(
        (status, msg.as_deref()),
        (429, Some("Connection limit exceeded"))
    );
    // Other brokers are not counted against Angel's limit.
    let _shoonya = try_plain(&sim, SimBroker::Shoonya).await.unwrap();
    drop(open.pop());
    eventually(LONG, "a slot frees up", || {
        ctl.stats()
            .connections
            .iter()
            .filter(|c| c.broker == SimBroker::Angel)
            .count()
            == 2
    })
    .await;
    let _again = angel(&sim).await;
    assert_eq!(ctl.stats().rejected_limit, 1);
    sim.shutdown().await;

    let sim = Sim::start(SimConfig {
        angel_connection_limit: 5,
        ..cfg()
    })
    .await
    .unwrap();
    let mut five = Vec::new();
    for _ in 0..5 {
        five.push(angel(&sim).await);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn generic_faults_on_angel() {
    let sim = start().await;
    let ctl = sim.control();

    // close
    let mut ws = angel(&sim).await;
    ctl.inject(Fault::Close { code: 4001 }, None);
    assert_eq!(close_of(until_end(&mut ws).await).0, 4001);
    eventually(LONG, "closed", || ctl.stats().open_connections == 0).await;

    // reset
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(1, 1, &[INFY])).await;
    read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    ctl.inject(Fault::Reset, None);
    assert!(matches!(until_end(&mut ws).await, Some(Err(_))));
    eventually(LONG, "reset", || ctl.stats().open_connections == 0).await;

    // blackhole: no ticks, no pongs; new upgrades hang
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(1, 1, &[INFY])).await;
    read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    ctl.inject(Fault::Blackhole, None);
    assert!(goes_silent(&mut ws, Duration::from_millis(300)).await);
    send(&mut ws, "ping").await;
    assert!(next(&mut ws, Duration::from_millis(300)).await.is_none());
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            try_angel(&sim, &AngelAuth::default())
        )
        .await
        .is_err()
    );
    ctl.clear();
    // The ping sent during the blackhole is answered once it lifts.
    let (_, texts) = read_until(&mut ws, LONG, |p, t| !p.is_empty() && !t.is_empty()).await;
    assert_eq!(texts, ["pong"]);
    drop(ws);

    // heartbeats_only: pings answered, no ticks
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(2, 1, &[INFY])).await;
    read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    ctl.inject(Fault::HeartbeatsOnly, None);
    assert!(goes_silent(&mut ws, Duration::from_millis(200)).await);
    send(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws, LONG).await.as_deref(), Some("pong"));
    assert!(ping_is_answered(&mut ws, b"x").await);
    assert!(next(&mut ws, Duration::from_millis(200)).await.is_none());
    ctl.clear();
    read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    drop(ws);
    eventually(LONG, "all closed", || ctl.stats().open_connections == 0).await;

    // reject403 is Angel's token rejection; reject429 a plain 429
    ctl.inject(Fault::Reject403, None);
    let (status, msg, _) = rejected(try_angel(&sim, &AngelAuth::default()).await);
    assert_eq!((status, msg.as_deref()), (401, Some("Invalid Auth token")));
    ctl.clear();
    ctl.inject(Fault::Reject429, None);
    assert_eq!(
        rejected(try_angel(&sim, &AngelAuth::default()).await).0,
        429
    );
    ctl.clear();

    // accept_then_close
    ctl.inject(Fault::AcceptThenClose, None);
    let mut ws = angel(&sim).await;
    assert_eq!(close_of(next(&mut ws, LONG).await).0, 1000);
    ctl.clear();

    // hang_handshake
    ctl.inject(Fault::HangHandshake, None);
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            try_angel(&sim, &AngelAuth::default())
        )
        .await
        .is_err()
    );
    ctl.clear();
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_ignored_quiet_and_rejected_tokens_on_angel() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = angel(&sim).await;
    ctl.inject(Fault::Malformed, None);
    send(&mut ws, sub(2, 1, &[INFY])).await;
    let (mut good, mut bad) = (0, 0);
    let deadline = Instant::now() + LONG;
    while good < 5 || bad < 5 {
        match next(&mut ws, deadline - Instant::now()).await {
            Some(Ok(Message::Binary(b))) => match ac::decode_tick(&b) {
                Ok(t) => {
                    assert_eq!(t.key.token, 1594);
                    good += 1
                }
                Err(_) => bad += 1,
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    ctl.clear();
    drop(ws);

    // Quiet by the Angel token or by the Kite token of the instrument; rejected tokens get
    // an E1001 naming them.
    ctl.inject(Fault::Quiet { tokens: vec![1594] }, None);
    ctl.inject(
        Fault::Quiet {
            tokens: vec![738561],
        },
        None,
    ); // RELIANCE's Kite token
    ctl.inject(Fault::RejectTokens { tokens: vec![3045] }, None);
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(1, 1, &[INFY, RELIANCE, TCS, SBIN])).await;
    let (packets, texts) = read_until(&mut ws, LONG, |p, t| p.len() >= 30 && !t.is_empty()).await;
    assert!(packets.iter().all(|p| token(p) == TCS));
    let (_, code, msg) = error_of(&texts[0]);
    assert!(code == "E1001" && msg.contains("3045"), "{msg}");
    ctl.clear();
    read_until(&mut ws, LONG, |p, _| p.iter().any(|p| token(p) == INFY)).await;

    // Acked-but-silent: subscriptions made under the fault never tick.
    ctl.inject(Fault::IgnoreSubscriptions, None);
    send(&mut ws, sub(1, 1, &[NIFTY])).await;
    eventually(LONG, "NIFTY recorded", || {
        ctl.stats().connections[0].keys.contains_key(&FeedKey {
            seg: 1,
            token: 99926000,
        })
    })
    .await;
    let (packets, _) = read_until(&mut ws, LONG, |p, _| p.len() >= 60).await;
    assert!(packets.iter().all(|p| token(p) != NIFTY));
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_writes_delay_angel_packets() {
    let sim = Sim::start(SimConfig {
        tick_rate: 1000,
        ..cfg()
    })
    .await
    .unwrap();
    let mut ws = angel(&sim).await;
    send(&mut ws, sub(1, 1, &[INFY])).await;
    read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    sim.control()
        .inject(Fault::SlowWrites { delay_ms: 150 }, None);
    read_until(&mut ws, LONG, |p, _| p.len() >= 2).await;
    let t0 = Instant::now();
    read_until(&mut ws, LONG, |p, _| p.len() >= 3).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn synthetic_nse_fo_tokens_tick() {
    let sim = start().await;
    let mut ws = angel(&sim).await;
    let k = sim::synthetic_key(SimBroker::Angel, 42);
    assert_eq!((k.seg, k.token), (2, 65_578));
    send(&mut ws, sub(3, 2, &["65578"])).await;
    let (p, _) = read_until(&mut ws, LONG, |p, _| !p.is_empty()).await;
    assert_eq!((p[0].exchange_type, token(&p[0])), (2, "65578"));
    assert!(p[0].snap_quote.unwrap().open_interest > 0);
    sim.shutdown().await;
}

// ------------------------------------------------------------------------------------------
// REST
// ------------------------------------------------------------------------------------------

const JWT: &str = "Bearer sim_access_token";

async fn call(
    sim: &Sim,
    method: &str,
    route: &str,
    jwt: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let url = format!(
        "{}/rest/secure/angelbroking/{route}",
        sim.rest_url_for(SimBroker::Angel)
    );
    let c = reqwest::Client::new();
    let mut req = if method == "GET" {
        c.get(url)
    } else {
        c.post(url).json(&body)
    };
    req = req
        .header("X-PrivateKey", "sim_api_key")
        .header("X-UserType", "USER")
        .header("X-SourceID", "WEB");
    if let Some(j) = jwt {
        req = req.header("Authorization", j);
    }
    let r = req.send().await.expect("REST reachable");
    (r.status().as_u16(), r.json().await.expect("JSON body"))
}

#[tokio::test]
async fn rest_profile_and_token_errors() {
    let sim = start().await;
    // The SDK puts its params in the query string; ignored.
    let route = "user/v1/getProfile?%7B%22refreshToken%22:%20%22rt%22%7D";
    let (status, v) = call(&sim, "GET", route, Some(JWT), Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&v["status"], &v["message"], &v["errorcode"]),
        (&json!(true), &json!("SUCCESS"), &json!(""))
    );
    assert_eq!(v["data"]["clientcode"], "SIM001");
    let (status, _) = call(&sim, "GET", route, Some("sim_access_token"), Value::Null).await;
    assert_eq!(status, 200, "the Bearer prefix is optional");
    for jwt in [None, Some("Bearer expired")] {
        let (status, v) = call(&sim, "GET", route, jwt, Value::Null).await;
        assert_eq!(status, 401);
        assert_eq!(
            v,
            json!({"status":false,"message":"Invalid Token","errorcode":"AG8001","data":null})
        );
    }
    let ctl = sim.control();
    ctl.inject(Fault::Reject403, None);
    assert_eq!(
        call(&sim, "GET", route, Some(JWT), Value::Null).await.1["errorcode"],
        "AG8001"
    );
    ctl.clear();
    ctl.inject(Fault::Reject429, None);
    assert_eq!(
        call(&sim, "GET", route, Some(JWT), Value::Null).await.0,
        429
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rest_quotes_in_every_mode() {
    let sim = start().await;
    let body = |mode: &str| json!({"mode": mode, "exchangeTokens": {"NSE": [SBIN, INFY, "424242"], "NFO": ["38007"]}});
    let (status, v) = call(&sim, "POST", "market/v1/quote", Some(JWT), body("LTP")).await;
    assert_eq!((status, &v["status"]), (200, &json!(true)));
    let fetched = v["data"]["fetched"].as_array().unwrap();
    assert_eq!(fetched.len(), 3, "{v}");
    let by = |v: &Value, t: &str| {
        v["data"]["fetched"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["symbolToken"] == t)
            .cloned()
            .unwrap()
    };
    let sbin = &by(&v, SBIN);
    assert_eq!(
        (&sbin["tradingSymbol"], &sbin["symbolToken"]),
        (&json!("SBIN-EQ"), &json!(SBIN))
    );
    assert!(sbin["ltp"].as_f64().unwrap() > 500.0 && sbin.get("open").is_none());
    assert_eq!(by(&v, "38007")["tradingSymbol"], "NIFTY24NOV2626100CE");
    assert_eq!(by(&v, "38007")["exchange"], "NFO");
    let unfetched = v["data"]["unfetched"].as_array().unwrap();
    assert_eq!(unfetched[0]["symbolToken"], "424242");
    let (_, v) = call(&sim, "POST", "market/v1/quote", Some(JWT), body("OHLC")).await;
    let q = &by(&v, INFY);
    assert!(q["high"].as_f64() >= q["low"].as_f64() && q.get("depth").is_none());
    let (_, v) = call(&sim, "POST", "market/v1/quote", Some(JWT), body("FULL")).await;
    let q = &by(&v, INFY);
    for k in [
        "tradeVolume",
        "avgPrice",
        "netChange",
        "percentChange",
        "upperCircuit",
        "totBuyQuan",
        "exchFeedTime",
        "52WeekHigh",
    ] {
        assert!(!q[k].is_null(), "{k} missing: {q}");
    }
    assert_eq!(q["depth"]["buy"].as_array().unwrap().len(), 5);
    let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
    let (status, v) = call(
        &sim,
        "POST",
        "market/v1/quote",
        Some(JWT),
        json!({"mode": "LTP", "exchangeTokens": {"NSE": many}}),
    )
    .await;
    assert_eq!((status, &v["status"]), (400, &json!(false)));
    let (status, _) = call(
        &sim,
        "POST",
        "market/v1/quote",
        Some(JWT),
        json!({"mode":"BAD"}),
    )
    .await;
    assert_eq!(status, 400);
    let (_, v) = call(
        &sim,
        "POST",
        "order/v1/getLtpData",
        Some(JWT),
        json!({"exchange":"NSE","tradingsymbol":"SBIN-EQ","symboltoken":SBIN}),
    )
    .await;
    assert_eq!(v["data"]["tradingsymbol"], "SBIN-EQ");
    assert!(v["data"]["ltp"].as_f64().unwrap() > 500.0);
    assert_eq!(sim.control().stats().quote_requests, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn scrip_master_json() {
    let sim = start().await;
    let url = sim.instruments_url_for(SimBroker::Angel);
    assert!(url.ends_with("/OpenAPI_File/files/OpenAPIScripMaster.json"));
    let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let all = v.as_array().unwrap();
    assert!(all.len() > 150);
    let infy = all.iter().find(|e| e["token"] == INFY).unwrap();
    assert_eq!(
        infy,
        &json!({"token":"1594","symbol":"INFY-EQ","name":"INFY","expiry":"","strike":"-1.000000",
                "lotsize":"1","instrumenttype":"","exch_seg":"NSE","tick_size":"5.000000"})
    );
    assert!(
        all.iter()
            .any(|e| e["token"] == "99926009" && e["symbol"] == "Nifty Bank")
    );
    for e in all {
        for k in [
            "token",
            "symbol",
            "name",
            "expiry",
            "strike",
            "lotsize",
            "instrumenttype",
            "exch_seg",
            "tick_size",
        ] {
            assert!(e[k].is_string(), "{k} in {e}");
        }
        assert!(
            ac::exchange_type(e["exch_seg"].as_str().unwrap()).is_some(),
            "{e}"
        );
    }
    sim.shutdown().await;
}
