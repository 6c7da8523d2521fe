//! Simulator tests over real sockets on 127.0.0.1: handshake, subscriptions, ticks, every
//! fault kind, REST and the /sim control API. Conditions are polled with deadlines; the only
//! fixed waits are "nothing arrives within X" checks, which are inherently time-bounded.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tickmux::adapters::kite::codec::{self, FrameInfo};
use tickmux::model::{Mode, Tick};
use tickmux::sim::{self, Fault, Sim, SimConfig};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const INFY: u32 = 408065;
const RELIANCE: u32 = 738561;
const NIFTY: u32 = 256265;
const LONG: Duration = Duration::from_secs(5);

fn cfg() -> SimConfig {
    SimConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..SimConfig::default()
    }
}

async fn start() -> Sim {
    Sim::start(cfg()).await.expect("simulator starts")
}

fn url(sim: &Sim, key: &str, token: &str) -> String {
    format!("{}/?api_key={key}&access_token={token}", sim.ws_url())
}

async fn try_connect(sim: &Sim) -> Result<Client, WsError> {
    connect_async(url(sim, "sim_api_key", "sim_access_token"))
        .await
        .map(|(ws, _)| ws)
}

async fn connect(sim: &Sim) -> Client {
    timeout(LONG, try_connect(sim))
        .await
        .expect("upgrade in time")
        .expect("upgrade succeeds")
}

/// Poll `f` every 10 ms until true; panic with `what` after `limit`.
async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Next message within `limit` (None = nothing arrived).
async fn next(ws: &mut Client, limit: Duration) -> Option<Result<Message, WsError>> {
    timeout(limit, ws.next()).await.ok().flatten()
}

async fn send(ws: &mut Client, text: String) {
    ws.send(Message::text(text)).await.expect("client send");
}

/// Read until `done(ticks, heartbeats)` holds; decodes every binary frame.
async fn read_until(
    ws: &mut Client,
    limit: Duration,
    mut done: impl FnMut(&[Tick], usize) -> bool,
) -> (Vec<Tick>, usize) {
    let deadline = Instant::now() + limit;
    let (mut ticks, mut hb) = (Vec::new(), 0);
    while !done(&ticks, hb) {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Some(Ok(Message::Binary(b))) => {
                let info = codec::decode_frame(&b, &mut ticks).expect("valid frame");
                hb += usize::from(info.heartbeat);
            }
            Some(Ok(Message::Text(_))) | Some(Ok(Message::Ping(_))) => {}
            other => panic!(
                "unexpected {other:?} (ticks {}, heartbeats {hb})",
                ticks.len()
            ),
        }
    }
    (ticks, hb)
}

/// Skip binary frames; the next other item within [`LONG`] (None = nothing came).
async fn next_non_binary(ws: &mut Client) -> Option<Result<Message, WsError>> {
    let deadline = Instant::now() + LONG;
    loop {
        match next(ws, deadline - Instant::now()).await {
            Some(Ok(Message::Binary(_))) => {}
            other => return other,
        }
    }
}

fn close_code(m: Option<Result<Message, WsError>>) -> u16 {
    match m {
        Some(Ok(Message::Close(Some(f)))) => f.code.into(),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// True when an upgrade attempt does not complete within 400 ms.
async fn upgrade_hangs(sim: &Sim) -> bool {
    timeout(Duration::from_millis(400), try_connect(sim))
        .await
        .is_err()
}

fn rejected_status(r: Result<Client, WsError>) -> (u16, String) {
    match r {
        Err(WsError::Http(resp)) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("expected an HTTP rejection, got {e}"),
        Ok(_) => panic!("expected an HTTP rejection, got an upgrade"),
    }
}

#[tokio::test]
async fn handshake_accepts_good_and_rejects_bad_credentials() {
    let sim = start().await;
    let _ok = connect(&sim).await;
    for (k, t) in [("sim_api_key", "wrong"), ("nope", "sim_access_token")] {
        let (status, body) = rejected_status(connect_async(url(&sim, k, t)).await.map(|x| x.0));
        assert_eq!(status, 403);
        assert!(body.contains("TokenException"), "{body}");
    }
    let bare = connect_async(sim.ws_url()).await.map(|x| x.0);
    assert_eq!(rejected_status(bare).0, 403);
    let s = sim.control().stats();
    assert_eq!((s.upgrades, s.rejected_auth, s.open_connections), (1, 3, 1));
    assert_eq!(s.accepted_tcp, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn subscribe_ticks_in_quote_mode_then_mode_changes() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[INFY, NIFTY])).await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| {
        t.iter().any(|x| x.key.token == INFY) && t.iter().any(|x| x.key.token == NIFTY)
    })
    .await;
    for t in &ticks {
        assert!(
            [INFY, NIFTY].contains(&t.key.token),
            "unexpected token {}",
            t.key.token
        );
        assert_eq!(t.mode, Mode::Quote, "Kite's default mode is quote");
        assert_eq!(t.tradable, t.key.token != NIFTY, "indices are not tradable");
        let q = t.quote.expect("quote fields");
        assert!(q.ohlc.low <= t.ltp && t.ltp <= q.ohlc.high);
        if t.key.token == INFY {
            assert_eq!(t.ltp.0 % 500_000, 0, "LTP on the 0.05 tick grid");
            assert!(q.volume > 0 && q.average_price.0 > 0);
        }
    }
    send(&mut ws, codec::encode_mode(Mode::Depth, &[INFY])).await;
    send(&mut ws, codec::encode_mode(Mode::Ltp, &[NIFTY])).await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| {
        t.iter()
            .any(|x| x.key.token == INFY && x.mode == Mode::Depth)
            && t.iter()
                .any(|x| x.key.token == NIFTY && x.mode == Mode::Ltp)
    })
    .await;
    let full = ticks.iter().rfind(|t| t.mode == Mode::Depth).unwrap();
    let d = full.depth.expect("depth in full mode");
    assert!(d.buy[0].price <= full.ltp && full.ltp < d.sell[0].price);
    assert!(
        d.buy
            .iter()
            .zip(&d.buy[1..])
            .all(|(a, b)| a.price > b.price)
    );
    let conn = &sim.control().stats().connections[0];
    assert_eq!(conn.subscriptions.get(&INFY), Some(&Mode::Depth));
    assert_eq!(conn.subscriptions.get(&NIFTY), Some(&Mode::Ltp));
    sim.shutdown().await;
}

#[tokio::test]
async fn heartbeats_when_idle_and_pings_answered() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    let (ticks, hb) = read_until(&mut ws, LONG, |_, hb| hb >= 3).await;
    assert!(ticks.is_empty() && hb == 3);
    assert!(sim.control().stats().heartbeats_sent >= 3);
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let deadline = Instant::now() + LONG;
    loop {
        match next(&mut ws, deadline - Instant::now()).await {
            Some(Ok(Message::Pong(p))) => break assert_eq!(&p[..], b"hi"),
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[0]),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicates_counted_unsubscribe_and_bad_text_tolerated() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[INFY, RELIANCE])).await;
    send(&mut ws, codec::encode_subscribe(&[RELIANCE, NIFTY])).await;
    send(&mut ws, codec::encode_unsubscribe(&[NIFTY])).await;
    send(&mut ws, "not json".to_string()).await;
    let Some(Ok(Message::Text(err))) = next_non_binary(&mut ws).await else {
        panic!("expected an error text");
    };
    let decoded = codec::decode_text(&err).unwrap();
    assert!(matches!(decoded, codec::TextMessage::Error(e) if !e.is_empty()));
    let c = ctl.stats().connections[0].clone();
    assert_eq!(c.subscribe_messages, 2);
    assert_eq!(c.tokens_subscribed_total, 4);
    assert_eq!(c.duplicate_subscribes, 1);
    assert_eq!(
        c.subscriptions.keys().copied().collect::<Vec<_>>(),
        vec![INFY, RELIANCE]
    );
    // Still serving after the bad message: both remaining tokens tick, NIFTY no longer does.
    read_until(&mut ws, LONG, |t, _| {
        let seen: BTreeSet<u32> = t.iter().map(|x| x.key.token).collect();
        seen.contains(&INFY) && seen.contains(&RELIANCE)
    })
    .await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| t.len() >= 20).await;
    assert!(ticks.iter().all(|t| t.key.token != NIFTY));
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_tokens_are_subscribed_but_silent() {
    let sim = start().await;
    let unknown = 12_345 << 8 | 1;
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[unknown, INFY])).await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| t.len() >= 20).await;
    assert!(ticks.iter().all(|t| t.key.token == INFY));
    let subs = &sim.control().stats().connections[0].subscriptions;
    assert!(subs.contains_key(&unknown));
    sim.shutdown().await;
}

#[tokio::test]
async fn close_and_reset_faults() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = connect(&sim).await;
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    ctl.inject(Fault::Close { code: 4001 }, None);
    assert_eq!(close_code(next_non_binary(&mut ws).await), 4001);
    eventually(LONG, "closed", || ctl.stats().open_connections == 0).await;

    let mut ws = connect(&sim).await;
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    ctl.inject(Fault::Reset, None);
    let end = next_non_binary(&mut ws).await;
    assert!(
        matches!(end, Some(Err(_))),
        "read error, no close frame: {end:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn blackhole_silences_open_and_new_connections_until_cleared() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = connect(&sim).await;
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    ctl.inject(Fault::Blackhole, None);
    // Drain what was in flight, then nothing for 3+ heartbeat intervals.
    let quiet_for = Duration::from_millis(350);
    let deadline = Instant::now() + LONG;
    while next(&mut ws, quiet_for).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "frames kept coming under blackhole"
        );
    }
    let accepted = ctl.stats().accepted_tcp;
    assert!(upgrade_hangs(&sim).await);
    assert_eq!(
        ctl.stats().accepted_tcp,
        accepted + 1,
        "TCP accepted, upgrade never answered"
    );
    ctl.clear();
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    let _again = connect(&sim).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn heartbeats_only_stops_ticks_keeps_heartbeats() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[INFY])).await;
    read_until(&mut ws, LONG, |t, _| !t.is_empty()).await;
    sim.control().inject(Fault::HeartbeatsOnly, None);
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    let (ticks, _) = read_until(&mut ws, LONG, |_, hb| hb >= 3).await;
    assert!(ticks.is_empty(), "no ticks once heartbeats-only is active");
    sim.control().clear();
    read_until(&mut ws, LONG, |t, _| !t.is_empty()).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn reject_403_and_429_faults_then_expiry() {
    let sim = start().await;
    let ctl = sim.control();
    ctl.inject(Fault::Reject403, None);
    let (status, body) = rejected_status(try_connect(&sim).await);
    assert!(
        status == 403 && body.contains("TokenException"),
        "{status} {body}"
    );
    ctl.clear();
    ctl.inject(Fault::Reject429, Some(Duration::from_millis(300)));
    let (status, body) = rejected_status(try_connect(&sim).await);
    assert!(
        status == 429 && body.contains("NetworkException"),
        "{status} {body}"
    );
    assert_eq!(ctl.active_faults().len(), 1);
    eventually(LONG, "fault expiry", || ctl.active_faults().is_empty()).await;
    let _ok = connect(&sim).await;
    let s = ctl.stats();
    assert_eq!((s.rejected_auth, s.rejected_limit, s.upgrades), (1, 1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_handshake_and_accept_then_close() {
    let sim = start().await;
    let ctl = sim.control();
    ctl.inject(Fault::HangHandshake, None);
    assert!(upgrade_hangs(&sim).await);
    let s = ctl.stats();
    assert_eq!((s.accepted_tcp, s.upgrades), (1, 0));
    ctl.clear();
    ctl.inject(Fault::AcceptThenClose, None);
    let mut ws = connect(&sim).await;
    assert_eq!(close_code(next(&mut ws, LONG).await), 1000);
    assert_eq!(ctl.stats().upgrades, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_interleaved_with_valid_ones() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    sim.control().inject(Fault::Malformed, None);
    send(&mut ws, codec::encode_subscribe(&[INFY, RELIANCE])).await;
    let (mut good, mut bad, mut skipped) = (0, 0, 0);
    let deadline = Instant::now() + LONG;
    let mut ticks = Vec::new();
    while good < 5 || bad < 5 || skipped < 1 {
        match next(&mut ws, deadline - Instant::now()).await {
            Some(Ok(Message::Binary(b))) => match codec::decode_frame(&b, &mut ticks) {
                Ok(FrameInfo {
                    heartbeat: true, ..
                }) => {}
                Ok(FrameInfo { skipped: s, .. }) if s > 0 => skipped += 1,
                Ok(_) => good += 1,
                Err(_) => bad += 1,
            },
            other => panic!("unexpected {other:?} (good {good}, bad {bad}, skipped {skipped})"),
        }
    }
    assert!(
        ticks
            .iter()
            .all(|t| [INFY, RELIANCE].contains(&t.key.token))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_writes_delay_every_frame() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    sim.control()
        .inject(Fault::SlowWrites { delay_ms: 300 }, None);
    read_until(&mut ws, LONG, |_, hb| hb >= 1).await;
    let t0 = Instant::now();
    read_until(&mut ws, LONG, |_, hb| hb >= 2).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn quiet_and_ignored_tokens_stay_silent() {
    let sim = start().await;
    let ctl = sim.control();
    ctl.inject(Fault::Quiet { tokens: vec![INFY] }, None);
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[INFY, RELIANCE])).await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| t.len() >= 30).await;
    assert!(ticks.iter().all(|t| t.key.token == RELIANCE));
    ctl.clear();
    read_until(&mut ws, LONG, |t, _| t.iter().any(|x| x.key.token == INFY)).await;

    // Acked but silent: subscriptions made under the fault never tick, older ones do.
    ctl.inject(Fault::IgnoreSubscriptions, None);
    send(&mut ws, codec::encode_subscribe(&[NIFTY])).await;
    eventually(LONG, "NIFTY recorded", || {
        ctl.stats().connections[0]
            .subscriptions
            .contains_key(&NIFTY)
    })
    .await;
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| t.len() >= 60).await;
    assert!(ticks.iter().all(|t| t.key.token != NIFTY));
    sim.shutdown().await;
}

#[tokio::test]
async fn rejected_tokens_get_error_text_others_tick() {
    let sim = start().await;
    sim.control().inject(
        Fault::RejectTokens {
            tokens: vec![RELIANCE],
        },
        None,
    );
    let mut ws = connect(&sim).await;
    send(&mut ws, codec::encode_subscribe(&[INFY, RELIANCE])).await;
    let Some(Ok(Message::Text(text))) = next_non_binary(&mut ws).await else {
        panic!("expected an error text");
    };
    let msg = codec::decode_text(&text).unwrap();
    let named = matches!(&msg, codec::TextMessage::Error(e) if e.contains("738561"));
    assert!(named, "error names the rejected token: {msg:?}");
    let (ticks, _) = read_until(&mut ws, LONG, |t, _| t.len() >= 30).await;
    assert!(ticks.iter().all(|t| t.key.token == INFY));
    let subs = &sim.control().stats().connections[0].subscriptions;
    assert!(subs.contains_key(&INFY) && !subs.contains_key(&RELIANCE));
    sim.shutdown().await;
}

const AUTH: &str = "token sim_api_key:sim_access_token";

/// GET (with an optional Authorization header) → status and body (JSON, or a JSON string).
async fn get(url: String, auth: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let r = req.send().await.expect("REST reachable");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(url: String, body: &'static str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn rest_profile_auth_and_faults() {
    let sim = start().await;
    let url = format!("{}/user/profile", sim.rest_url());
    let (status, v) = get(url.clone(), Some(AUTH)).await;
    assert_eq!((status, &v["status"]), (200, &json!("success")));
    assert_eq!(v["data"]["user_id"], "SIM001");
    assert_eq!(v["data"]["meta"]["demat_consent"], "physical");
    for auth in [None, Some("token sim_api_key:bad")] {
        let (status, v) = get(url.clone(), auth).await;
        assert_eq!((status, &v["error_type"]), (403, &json!("TokenException")));
        assert_eq!(v["message"], "Incorrect `api_key` or `access_token`.");
    }
    let ctl = sim.control();
    ctl.inject(Fault::Reject403, None);
    assert_eq!(get(url.clone(), Some(AUTH)).await.0, 403);
    ctl.clear();
    ctl.inject(Fault::Reject429, None);
    let (status, v) = get(url, Some(AUTH)).await;
    assert_eq!(
        (status, &v["error_type"]),
        (429, &json!("NetworkException"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rest_quotes_and_instruments() {
    let sim = start().await;
    let base = sim.rest_url();
    let q = "/quote/ltp?i=NSE%3AINFY&i=NSE%3ANIFTY+50&i=NSE%3ANOPE";
    let (status, v) = get(format!("{base}{q}"), Some(AUTH)).await;
    let data = v["data"].as_object().unwrap();
    assert_eq!(
        (status, data.len()),
        (200, 2),
        "unknown instruments are absent: {v}"
    );
    assert_eq!(data["NSE:INFY"]["instrument_token"], INFY);
    assert!(data["NSE:NIFTY 50"]["last_price"].as_f64().unwrap() > 1000.0);
    let (_, v) = get(format!("{base}/quote/ohlc?i=NFO:SYNTH5"), Some(AUTH)).await;
    let q = &v["data"]["NFO:SYNTH5"];
    assert_eq!(q["instrument_token"], sim::synthetic_token(5));
    assert!(q["ohlc"]["high"].as_f64() >= q["ohlc"]["low"].as_f64());
    let (_, v) = get(format!("{base}/quote?i=NSE:RELIANCE"), Some(AUTH)).await;
    let q = &v["data"]["NSE:RELIANCE"];
    assert_eq!(q["depth"]["buy"].as_array().unwrap().len(), 5);
    assert_eq!(q["last_trade_time"].as_str().unwrap().len(), 19);
    for k in [
        "volume",
        "average_price",
        "buy_quantity",
        "oi",
        "net_change",
    ] {
        assert!(!q[k].is_null(), "{k} missing: {q}");
    }
    assert_eq!(
        get(format!("{base}/quote/ltp?i=NSE:INFY"), None).await.0,
        403
    );
    let (status, csv) = get(format!("{base}/instruments"), None).await;
    let csv = csv.as_str().unwrap();
    assert!(status == 200 && csv.starts_with("instrument_token,exchange_token,tradingsymbol,"));
    assert!(csv.lines().count() > 150);
    assert_eq!(sim.control().stats().quote_requests, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_control_endpoints() {
    let sim = start().await;
    let rest = sim.rest_url();
    let quiet = Fault::Quiet { tokens: vec![INFY] };
    sim::inject_remote(&rest, &quiet, Some(30.0)).await.unwrap();
    sim::inject_remote(&rest, &Fault::Reject429, None)
        .await
        .unwrap();
    let st = sim::state_remote(&rest).await.unwrap();
    let faults = st["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{st}");
    assert_eq!(faults[0]["fault"], "quiet");
    assert!(faults[0]["remaining_seconds"].as_f64().unwrap() > 20.0);
    assert!(faults[1]["remaining_seconds"].is_null());
    assert_eq!(st["open_connections"], 0);
    assert_eq!(rejected_status(try_connect(&sim).await).0, 429);
    sim::clear_remote(&rest).await.unwrap();
    assert!(sim.control().active_faults().is_empty());
    sim::tick_rate_remote(&rest, 1234).await.unwrap();
    assert_eq!(sim::state_remote(&rest).await.unwrap()["tick_rate"], 1234);
    let (status, _) = post(format!("{rest}/sim/faults"), r#"{"fault":"meteor"}"#).await;
    assert_eq!(status, 400);
    let (status, v) = post(
        format!("{rest}/sim/faults"),
        r#"{"fault":"close","code":1001}"#,
    )
    .await;
    assert_eq!((status, &v["injected"]["code"]), (200, &json!(1001)));
    assert!(
        sim.control().active_faults().is_empty(),
        "one-shots are not persistent"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_listeners() {
    let sim = start().await;
    let mut ws = connect(&sim).await;
    let ws_url = url(&sim, "sim_api_key", "sim_access_token");
    sim.shutdown().await;
    let deadline = Instant::now() + LONG;
    loop {
        match next(&mut ws, deadline - Instant::now()).await {
            Some(Ok(Message::Binary(_))) => {}
            Some(Err(_)) | None | Some(Ok(Message::Close(_))) => break,
            other => panic!("expected the connection to end, got {other:?}"),
        }
    }
    assert!(connect_async(ws_url).await.is_err());
}

/// Functional capacity check: 3000 synthetic tokens at 20 000 ticks/s reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustains_20k_ticks_per_second_over_3000_tokens() {
    let sim = Sim::start(SimConfig {
        tick_rate: 20_000,
        ..cfg()
    })
    .await
    .unwrap();
    let mut ws = connect(&sim).await;
    let tokens = sim::synthetic_tokens(3000);
    send(&mut ws, codec::encode_subscribe(&tokens)).await;
    read_until(&mut ws, LONG, |t, _| !t.is_empty()).await;
    let start = Instant::now();
    let (ticks, _) = read_until(&mut ws, Duration::from_secs(3), |_, _| {
        start.elapsed() >= Duration::from_secs(1)
    })
    .await;
    let seen: HashSet<u32> = ticks.iter().map(|t| t.key.token).collect();
    let elapsed = start.elapsed().as_secs_f64();
    let rate = ticks.len() as f64 / elapsed;
    eprintln!(
        "received {} ticks in {elapsed:.2}s ({rate:.0}/s), {} tokens",
        ticks.len(),
        seen.len()
    );
    assert!(rate >= 15_000.0, "only {rate:.0} ticks/s");
    assert!(
        seen.len() >= 2900,
        "every token ticks regularly: {}",
        seen.len()
    );
    sim.shutdown().await;
}
