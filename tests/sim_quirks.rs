//! Broker quirks as simulator faults (Flattrade's reconnect cooldown, connection limits, a
//! close right after subscribe), the same seeded walk whatever protocol asks, the stats
//! across protocols, and `tickmux sim`'s handshake line with every broker's URLs.

mod sim_common;

use serde_json::{Value, json};
use sim_common::*;
use std::time::Duration;
use tickmux::adapters::angel::codec as ac;
use tickmux::adapters::kite::codec as kc;
use tickmux::adapters::noren::codec::{self as nc, Feed, Flavour, NorenDecoder};
use tickmux::model::{FeedKey, Price, Tick};
use tickmux::sim::{self, Fault, Sim, SimBroker, SimConfig};
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const INFY: FeedKey = FeedKey {
    seg: 1,
    token: 1594,
};

async fn kite(sim: &Sim) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "{}/?api_key=sim_api_key&access_token=sim_access_token",
        sim.ws_url_for(SimBroker::Kite)
    );
    connect_async(url).await.map(|(ws, _)| ws)
}

/// Log in on a Noren path; the reply, or `None` when the socket closed instead.
async fn noren_login(ws: &mut Client, b: SimBroker) -> Option<Value> {
    let f = if b == SimBroker::Flattrade {
        Flavour::Flattrade
    } else {
        Flavour::Classic
    };
    send(ws, nc::encode_login(f, "SIM001", "sim_access_token")).await;
    match next(ws, LONG).await {
        Some(Ok(Message::Text(t))) => Some(serde_json::from_str(&t).unwrap()),
        _ => None,
    }
}

#[tokio::test]
async fn cooldown_closes_reconnects_within_the_window() {
    let sim = start().await;
    let ctl = sim.control();
    let b = SimBroker::Flattrade;
    ctl.inject(
        Fault::Cooldown {
            window_seconds: 1.0,
        },
        None,
    );
    // No session closed yet: the first connection is served.
    let mut ws = try_plain(&sim, b).await.unwrap();
    assert_eq!(noren_login(&mut ws, b).await.unwrap()["s"], "OK");
    ws.close(None).await.unwrap();
    eventually(LONG, "session closed", || ctl.stats().open_connections == 0).await;
    let closed = Instant::now();
    // Reconnecting at once: upgraded, then closed 1000 without any login ack.
    let mut ws = try_plain(&sim, b).await.expect("upgrade still succeeds");
    send(
        &mut ws,
        nc::encode_login(Flavour::Flattrade, "SIM001", "sim_access_token"),
    )
    .await;
    let end = next(&mut ws, LONG).await;
    assert_eq!(close_of(end), (1000, "session cooldown".to_string()));
    assert_eq!(ctl.stats().rejected_cooldown, 1);
    // Another broker is not cooling down.
    let mut k = kite(&sim).await.unwrap();
    assert!(
        next(&mut k, Duration::from_millis(300)).await.is_some(),
        "Kite heartbeats"
    );
    drop(k);
    // Retrying like the official client (every 100 ms) gets in once the window has passed;
    // refused attempts do not restart it.
    let served = loop {
        let mut ws = try_plain(&sim, b).await.unwrap();
        if let Some(ack) = noren_login(&mut ws, b).await {
            assert_eq!(ack["s"], "OK");
            break closed.elapsed();
        }
        assert!(closed.elapsed() < LONG, "cooldown never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(served >= Duration::from_millis(900), "{served:?}");
    assert!(ctl.stats().rejected_cooldown >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn connection_limit_fault_applies_per_broker() {
    let sim = start().await;
    let ctl = sim.control();
    ctl.inject(Fault::ConnectionLimit { max: 1 }, None);
    let _k1 = kite(&sim).await.unwrap();
    let (status, msg, _) = rejected(kite(&sim).await);
    assert_eq!(
        (status, msg.as_deref()),
        (429, Some("Connection limit exceeded"))
    );
    let _a1 = angel(&sim).await;
    assert_eq!(
        rejected(try_angel(&sim, &AngelAuth::default()).await).0,
        429
    );
    let _s1 = try_plain(&sim, SimBroker::Shoonya).await.unwrap();
    let _f1 = try_plain(&sim, SimBroker::Flattrade).await.unwrap();
    assert_eq!(rejected(try_plain(&sim, SimBroker::Shoonya).await).0, 429);
    assert_eq!(ctl.stats().rejected_limit, 3);
    ctl.clear();
    let _k2 = kite(&sim).await.unwrap();
    let _a2 = angel(&sim).await;
    let _a3 = angel(&sim).await;
    assert_eq!(
        rejected(try_angel(&sim, &AngelAuth::default()).await).0,
        429
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn close_after_subscribe_on_every_protocol() {
    let sim = start().await;
    sim.control().inject(Fault::CloseAfterSubscribe, None);
    // Noren: logged in fine, the subscribe gets no tk, only a close.
    let mut ws = try_plain(&sim, SimBroker::Shoonya).await.unwrap();
    assert_eq!(
        noren_login(&mut ws, SimBroker::Shoonya).await.unwrap()["s"],
        "OK"
    );
    send(
        &mut ws,
        nc::encode_subscribe(Feed::Touchline, &[INFY])
            .unwrap()
            .remove(0),
    )
    .await;
    assert_eq!(close_of(next(&mut ws, LONG).await).0, 1000);
    // Angel and Kite.
    let mut ws = angel(&sim).await;
    send(
        &mut ws,
        r#"{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":["1594"]}]}}"#,
    )
    .await;
    assert_eq!(close_of(next(&mut ws, LONG).await).0, 1000);
    let mut ws = kite(&sim).await.unwrap();
    send(&mut ws, kc::encode_subscribe(&[408065])).await;
    assert_eq!(close_of(until_end(&mut ws).await).0, 1000);
    sim.shutdown().await;
}

/// The first `n` INFY prices a fresh simulator with `seed` sends on `broker`'s protocol.
async fn infy_prices(seed: u64, broker: SimBroker, n: usize) -> Vec<Price> {
    let sim = Sim::start(SimConfig { seed, ..cfg() }).await.unwrap();
    let mut prices = Vec::new();
    let deadline = Instant::now() + LONG;
    let mut ticks: Vec<Tick> = Vec::new();
    match broker {
        SimBroker::Kite => {
            let mut ws = kite(&sim).await.unwrap();
            send(&mut ws, kc::encode_subscribe(&[408065])).await;
            while ticks.len() < n {
                if let Some(Ok(Message::Binary(b))) = next(&mut ws, deadline - Instant::now()).await
                {
                    kc::decode_frame(&b, &mut ticks).unwrap();
                }
            }
        }
        SimBroker::Angel => {
            let mut ws = angel(&sim).await;
            send(&mut ws, r#"{"action":1,"params":{"mode":2,"tokenList":[{"exchangeType":1,"tokens":["1594"]}]}}"#).await;
            while ticks.len() < n {
                if let Some(Ok(Message::Binary(b))) = next(&mut ws, deadline - Instant::now()).await
                {
                    ticks.push(ac::decode_tick(&b).unwrap());
                }
            }
        }
        b => {
            let mut ws = try_plain(&sim, b).await.unwrap();
            let f = if b == SimBroker::Flattrade {
                Flavour::Flattrade
            } else {
                Flavour::Classic
            };
            noren_login(&mut ws, b).await.unwrap();
            send(
                &mut ws,
                nc::encode_subscribe(Feed::Touchline, &[INFY])
                    .unwrap()
                    .remove(0),
            )
            .await;
            let mut dec = NorenDecoder::new(f);
            while ticks.len() < n {
                if let Some(Ok(Message::Text(t))) = next(&mut ws, deadline - Instant::now()).await {
                    dec.decode(&t, &mut ticks).unwrap();
                }
            }
        }
    }
    prices.extend(ticks.iter().take(n).map(|t| t.ltp));
    sim.shutdown().await;
    prices
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_walk_on_every_protocol() {
    let n = 25;
    let kite = infy_prices(11, SimBroker::Kite, n).await;
    assert_eq!(kite.len(), n);
    assert!(
        kite.windows(2).any(|w| w[0] != w[1]),
        "the price moves: {kite:?}"
    );
    for b in [SimBroker::Angel, SimBroker::Shoonya, SimBroker::Flattrade] {
        assert_eq!(infy_prices(11, b, n).await, kite, "{b:?}");
    }
    assert_ne!(
        infy_prices(12, SimBroker::Angel, n).await,
        kite,
        "another seed"
    );
}

#[tokio::test]
async fn state_reports_brokers_and_keys() {
    let sim = start().await;
    let mut a = angel(&sim).await;
    send(
        &mut a,
        r#"{"action":1,"params":{"mode":3,"tokenList":[{"exchangeType":1,"tokens":["1594"]}]}}"#,
    )
    .await;
    let mut n = try_plain(&sim, SimBroker::Shoonya).await.unwrap();
    noren_login(&mut n, SimBroker::Shoonya).await.unwrap();
    send(
        &mut n,
        nc::encode_subscribe(Feed::Depth, &[INFY])
            .unwrap()
            .remove(0),
    )
    .await;
    let mut k = kite(&sim).await.unwrap();
    send(&mut k, kc::encode_subscribe(&[408065])).await;
    let ctl = sim.control();
    eventually(LONG, "three subscribed", || {
        let s = ctl.stats();
        s.connections.len() == 3 && s.connections.iter().all(|c| c.keys.len() == 1)
    })
    .await;
    let st = sim::state_remote(&sim.rest_url()).await.unwrap();
    let conns = st["connections"].as_array().unwrap();
    let by = |b: &str| conns.iter().find(|c| c["broker"] == b).unwrap();
    assert_eq!(by("angel")["keys"], json!({"1|1594": "depth"}));
    assert_eq!(by("shoonya")["keys"], json!({"1|1594": "depth"}));
    assert_eq!(by("kite")["keys"], json!({"1|408065": "quote"}));
    assert_eq!(by("kite")["subscriptions"], json!({"408065": "quote"}));
    assert_eq!(by("angel")["subscriptions"], json!({}));
    assert_eq!(by("shoonya")["authenticated"], true);
    sim.shutdown().await;
}

#[tokio::test]
async fn tickmux_sim_prints_every_brokers_urls() {
    let home = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickmux"))
        .args(["sim", "--seed", "3"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let line = tokio::time::timeout(LONG, tokio::io::BufReader::new(out).lines().next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&v["client_code"], &v["feed_token"]),
        (&json!("SIM001"), &json!("sim_feed_token"))
    );
    let ws = |b: &str| v["brokers"][b]["ws_url"].as_str().unwrap().to_string();
    assert_eq!(ws("kite"), v["ws_url"].as_str().unwrap());
    assert!(ws("angel").ends_with("/smart-stream"));
    assert!(ws("shoonya").ends_with("/NorenWSTP/"));
    assert!(ws("flattrade").ends_with("/PiConnectWSAPI/"));
    assert!(
        v["brokers"]["shoonya"]["rest_url"]
            .as_str()
            .unwrap()
            .ends_with("/NorenWClientTP/")
    );
    assert!(
        v["brokers"]["angel"]["instruments_url"]
            .as_str()
            .unwrap()
            .ends_with("OpenAPIScripMaster.json")
    );
    // The printed Angel URL really serves Angel.
    let (mut a, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = ws("angel").into_client_request().unwrap();
        for (k, val) in [
            ("Authorization", "Bearer sim_access_token"),
            ("x-api-key", "sim_api_key"),
            ("x-client-code", "SIM001"),
            ("x-feed-token", "sim_feed_token"),
        ] {
            req.headers_mut().insert(k, val.parse().unwrap());
        }
        connect_async(req).await.unwrap()
    };
    send(&mut a, "ping").await;
    assert_eq!(next_text(&mut a, LONG).await.as_deref(), Some("pong"));
    child.kill().await.unwrap();
}
