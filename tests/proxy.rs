//! The local proxy against the simulator, over real sockets on 127.0.0.1: authentication and
//! its limits, the OpenAlgo protocol, hostile input, many clients on one upstream, refcounted
//! unsubscribe, per-mode delivery, slow clients (F23), heartbeats and the idle policy.

mod common;

use common::{Rig, WAIT, poll, sim_config};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tickmux::engine::{EngineState, IdlePolicy};
use tickmux::model::Mode;
use tickmux::proxy::{Proxy, ProxyConfig, ProxyStats};
use tickmux::secret::Secret;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const KEY: &str = "test-proxy-key-0123456789abcdef";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn fast() -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: Duration::from_millis(200),
        auth_grace: Duration::from_secs(5),
        stall_timeout: Duration::from_millis(800),
        ..ProxyConfig::default()
    }
}

struct P {
    rig: Rig,
    proxy: Proxy,
}

impl P {
    async fn start(cfg: ProxyConfig) -> P {
        P::start_with(cfg, |_| {}).await
    }

    async fn start_with(
        cfg: ProxyConfig,
        tweak: impl FnOnce(&mut tickmux::engine::EngineConfig),
    ) -> P {
        let rig = Rig::start_with(sim_config(), tweak).await;
        let proxy = Proxy::start(
            cfg,
            rig.engine.clone(),
            Arc::new(rig.master.clone()),
            Secret::new(KEY),
        )
        .await
        .expect("proxy starts");
        P { rig, proxy }
    }

    async fn client(&self) -> C {
        C::connect(&self.proxy.url()).await
    }

    async fn authed(&self) -> C {
        let mut c = self.client().await;
        c.auth(KEY).await;
        c
    }

    fn stats(&self) -> ProxyStats {
        self.proxy.stats().borrow().clone()
    }

    async fn wait_stats(&self, what: &str, f: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
        let mut rx = self.proxy.stats();
        match tokio::time::timeout(WAIT, rx.wait_for(|s| f(s))).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("timed out waiting for {what}: {:#?}", self.stats()),
        }
    }

    async fn stop(self) {
        self.proxy.shutdown().await;
        self.rig.stop().await;
    }
}

/// A test client speaking JSON over WebSocket.
struct C {
    ws: Ws,
}

impl C {
    async fn connect(url: &str) -> C {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        C { ws }
    }

    async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    async fn send_text(&mut self, s: &str) {
        self.ws
            .send(Message::Text(s.to_string().into()))
            .await
            .expect("send");
    }

    /// Next JSON text message; panics on timeout or close.
    async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message within the wait")
                .expect("connection open")
                .expect("no error");
            match m {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    }

    /// Skip messages until one satisfies `f`.
    async fn recv_until(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let r = tokio::time::timeout(WAIT, async {
            loop {
                let v = self.recv().await;
                if f(&v) {
                    return v;
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// The next reply that is not market data or a status message.
    async fn reply(&mut self) -> Value {
        self.recv_until("a reply", |v| {
            !matches!(
                v["type"].as_str(),
                Some("market_data" | "heartbeat" | "connection_status")
            )
        })
        .await
    }

    async fn auth(&mut self, key: &str) {
        self.send(json!({"action": "authenticate", "api_key": key}))
            .await;
        let r = self.reply().await;
        assert_eq!(r["type"], "auth", "{r}");
        assert_eq!(r["status"], "success", "{r}");
    }

    /// Wait for the close frame; returns (code, reason).
    async fn closed(&mut self) -> (u16, String) {
        let r = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(Some(f)))) => {
                        return (u16::from(f.code), f.reason.to_string());
                    }
                    Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                        return (0, String::new());
                    }
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        r.expect("the server closes the connection")
    }

    /// Market data messages for `symbol` until `n` arrived.
    async fn ticks(&mut self, symbol: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let v = self
                .recv_until(&format!("market data for {symbol}"), |v| {
                    v["type"] == "market_data" && v["symbol"] == symbol
                })
                .await;
            out.push(v);
        }
        out
    }
}

fn sub(symbols: &[(&str, &str)], mode: Value) -> Value {
    json!({
        "action": "subscribe",
        "symbols": symbols.iter().map(|(s, e)| json!({"symbol": s, "exchange": e})).collect::<Vec<_>>(),
        "mode": mode,
    })
}

#[tokio::test]
async fn authentication_failures_grace_and_limits() {
    let p = P::start(ProxyConfig {
        auth_grace: Duration::from_millis(300),
        auth_failures_max: 5,
        ..fast()
    })
    .await;
    let mut c = p.client().await;
    c.send(json!({"action": "subscribe", "symbol": "INFY", "exchange": "NSE"}))
        .await;
    let r = c.reply().await;
    assert_eq!(
        (r["status"].clone(), r["code"].clone()),
        (json!("error"), json!("NOT_AUTHENTICATED"))
    );
    c.send(json!({"action": "authenticate"})).await;
    assert_eq!(c.reply().await["message"], "API key is required");
    c.send(json!({"action": "auth", "apikey": "wrong-key-wrong-key"}))
        .await;
    let r = c.reply().await;
    assert_eq!(
        (r["code"].clone(), r["message"].clone()),
        (json!("AUTHENTICATION_ERROR"), json!("Invalid API key"))
    );
    // ping needs no auth, and the connection is kept after errors.
    c.send(json!({"action": "ping", "_pingId": 7})).await;
    assert_eq!(c.reply().await["_pingId"], 7);
    // Never authenticated: closed with 4401 after the grace.
    assert_eq!(c.closed().await, (4401, "auth timeout".into()));

    // Three failures on one connection close it.
    let mut c = p.client().await;
    for _ in 0..3 {
        c.send(json!({"action": "authenticate", "api_key": "nope-nope-nope"}))
            .await;
    }
    for _ in 0..3 {
        assert_eq!(c.reply().await["code"], "AUTHENTICATION_ERROR");
    }
    assert_eq!(c.closed().await.0, 1008);
    // The fifth failure overall (another connection) locks everyone out, even the right key.
    let mut c = p.client().await;
    c.send(json!({"action": "authenticate", "api_key": "nope-nope-nope"}))
        .await;
    assert_eq!(c.reply().await["message"], "Invalid API key");
    c.send(json!({"action": "authenticate", "api_key": KEY}))
        .await;
    let r = c.reply().await;
    assert!(
        r["message"].as_str().unwrap().contains("Too many failed"),
        "{r}"
    );
    assert_eq!(p.stats().auth_failures, 5);
    assert_eq!(
        p.rig.engine.health().borrow().consumers,
        0,
        "no consumer before auth"
    );
    p.stop().await;
}

#[tokio::test]
async fn subscribe_each_mode_and_receive_openalgo_market_data() {
    let p = P::start(fast()).await;
    let mut c = p.authed().await;
    let st = c
        .recv_until("connection_status", |v| v["type"] == "connection_status")
        .await;
    assert!(st["state"].is_string() && st["quality"].is_string(), "{st}");
    // Bulk form, string mode, request_id echoed; an unknown symbol fails on its own.
    let mut m = sub(&[("INFY", "NSE"), ("NOPE", "NSE")], json!("ltp"));
    m["request_id"] = json!("r1");
    c.send(m).await;
    let ack = c.reply().await;
    assert_eq!(ack["type"], "subscribe");
    assert_eq!(ack["status"], "partial");
    assert_eq!(ack["request_id"], "r1");
    assert_eq!(ack["subscriptions"][0]["mode"], "LTP");
    assert_eq!(ack["subscriptions"][0]["status"], "success");
    assert_eq!(ack["subscriptions"][1]["status"], "error");
    // Single form, int modes; an OpenAlgo index name.
    c.send(json!({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2}))
        .await;
    assert_eq!(c.reply().await["status"], "success");
    c.send(
        json!({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 3, "depth": 5}),
    )
    .await;
    assert_eq!(c.reply().await["subscriptions"][0]["depth"], 5);
    c.send(sub(&[("NIFTY", "NSE_INDEX")], json!(1))).await;
    assert_eq!(c.reply().await["status"], "success");

    let t = &c.ticks("INFY", 1).await[0];
    assert_eq!(
        (
            t["mode"].clone(),
            t["exchange"].clone(),
            t["broker"].clone()
        ),
        (json!(1), json!("NSE"), json!("kite"))
    );
    assert!(
        t["data"]["ltp"].as_f64().unwrap() > 0.0 && t["data"].get("volume").is_none(),
        "{t}"
    );
    let t = &c.ticks("RELIANCE", 1).await[0];
    assert_eq!(t["mode"], 2);
    for f in [
        "open",
        "high",
        "low",
        "close",
        "volume",
        "average_price",
        "avg_trade_price",
        "last_quantity",
        "last_trade_quantity",
        "change_percent",
    ] {
        assert!(t["data"].get(f).is_some(), "{f} in {t}");
    }
    assert!(t["data"].get("depth").is_none());
    let t = &c.ticks("TCS", 1).await[0];
    assert_eq!(t["mode"], 3);
    assert_eq!(t["data"]["depth"]["buy"].as_array().unwrap().len(), 5);
    assert!(t["data"]["depth"]["sell"][0]["price"].as_f64().unwrap() > 0.0);
    let t = &c.ticks("NIFTY", 1).await[0];
    assert_eq!(t["exchange"], "NSE_INDEX");

    // A second client gets the latest value at once, before the next tick.
    let mut d = p.authed().await;
    d.send(sub(&[("TCS", "NSE")], json!(3))).await;
    let ack = d.reply().await;
    assert_eq!(ack["status"], "success");
    let snap = d.ticks("TCS", 1).await.remove(0);
    assert_eq!(snap["mode"], 3);

    // Info, brokers, orders, ping.
    c.send(json!({"action": "get_broker_info"})).await;
    let r = c.reply().await;
    assert_eq!(
        (r["type"].clone(), r["adapter_status"].clone()),
        (json!("broker_info"), json!("live"))
    );
    c.send(json!({"action": "get_supported_brokers"})).await;
    assert_eq!(c.reply().await["count"], 1);
    c.send(json!({"action": "subscribe_orders", "request_id": "o1"}))
        .await;
    let r = c.reply().await;
    assert_eq!(
        (r["type"].clone(), r["request_id"].clone()),
        (json!("subscribe_orders"), json!("o1"))
    );
    c.send(json!({"action": "ping", "timestamp": 1})).await;
    let r = c.reply().await;
    assert_eq!(
        (r["type"].clone(), r["client_timestamp"].clone()),
        (json!("pong"), json!(1))
    );
    // unsubscribe_all answers type "unsubscribe" with what it released.
    c.send(json!({"action": "unsubscribe_all"})).await;
    let r = c.reply().await;
    assert_eq!(
        (r["type"].clone(), r["status"].clone()),
        (json!("unsubscribe"), json!("success"))
    );
    assert_eq!(r["successful"].as_array().unwrap().len(), 4, "{r}");
    p.stop().await;
}

#[tokio::test]
async fn hostile_input_gets_errors_and_never_touches_other_clients() {
    let p = P::start(ProxyConfig {
        max_message: 4096,
        ..fast()
    })
    .await;
    let mut other = p.authed().await;
    other.send(sub(&[("INFY", "NSE")], json!(2))).await;
    assert_eq!(other.reply().await["status"], "success");
    other.ticks("INFY", 2).await;

    let mut c = p.authed().await;
    c.send(sub(&[("RELIANCE", "NSE")], json!(1))).await;
    assert_eq!(c.reply().await["status"], "success");
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "INVALID_JSON"),
        ("[1,2]".into(), "INVALID_JSON"),
        ("null".into(), "INVALID_JSON"),
        (r#"{"action":"bogus"}"#.into(), "INVALID_ACTION"),
        (r#"{"nothing":1}"#.into(), "INVALID_ACTION"),
        (r#"{"action":{"x":1}}"#.into(), "INVALID_ACTION"),
        (
            r#"{"action":"subscribe","symbol":"INFY","exchange":"NSE","mode":true}"#.into(),
            "INVALID_MODE",
        ),
        (
            r#"{"action":"subscribe","symbols":"INFY","mode":1}"#.into(),
            "INVALID_PARAMETERS",
        ),
        (
            r#"{"action":"subscribe","symbols":[]}"#.into(),
            "INVALID_PARAMETERS",
        ),
        (
            r#"{"action":"subscribe","symbols":[{"symbol":"A"}],"depth":-1}"#.into(),
            "INVALID_PARAMETERS",
        ),
        (
            format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(5000)),
            "MESSAGE_TOO_LARGE",
        ),
    ];
    for (frame, code) in &cases {
        c.send_text(frame).await;
        let r = c.reply().await;
        assert_eq!(
            (r["status"].as_str(), r["code"].as_str()),
            (Some("error"), Some(*code)),
            "{frame:.60}: {r}"
        );
        assert!(r.get("type").is_none(), "errors carry no type");
    }
    // Binary: JSON is answered, garbage is an error.
    c.ws.send(Message::Binary(br#"{"action":"ping"}"#.to_vec().into()))
        .await
        .unwrap();
    assert_eq!(c.reply().await["type"], "pong");
    c.ws.send(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
        .await
        .unwrap();
    assert_eq!(c.reply().await["code"], "INVALID_JSON");
    // Items that are not objects fail one by one; the rest subscribe.
    c.send(json!({"action": "subscribe", "symbols": ["NSE:TCS", {"symbol": "TCS", "exchange": "NSE"}], "mode": 1})).await;
    let r = c.reply().await;
    assert_eq!(r["status"], "partial");
    // The connection and its subscriptions survived all of it.
    c.ticks("RELIANCE", 1).await;
    c.ticks("TCS", 1).await;
    other.ticks("INFY", 2).await;
    assert_eq!(p.stats().authenticated(), 2);
    p.stop().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    let p = P::start(ProxyConfig {
        rate: 20.0,
        burst: 20,
        flood_close: 300,
        ..fast()
    })
    .await;
    let mut bystander = p.authed().await;
    bystander.send(sub(&[("INFY", "NSE")], json!(1))).await;
    assert_eq!(bystander.reply().await["status"], "success");
    let mut c = p.authed().await;
    for _ in 0..2000 {
        if c.ws
            .feed(Message::Text(r#"{"action":"ping"}"#.into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = c.ws.flush().await;
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "pong" {
                    pongs += 1;
                } else if v["code"] == "RATE_LIMITED" {
                    limited += 1;
                }
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break None,
        }
    };
    assert_eq!(code, Some(1008), "closed for flooding");
    // The burst (less the token authentication took) was served, then the limit bit.
    assert!((15..300).contains(&pongs), "the burst was served: {pongs}");
    assert!(limited >= 1, "told about the limit");
    assert_eq!(p.stats().closed_flood, 1);
    bystander.ticks("INFY", 3).await;
    p.stop().await;
}

#[tokio::test]
async fn many_clients_share_one_upstream_and_unsubscribe_is_refcounted() {
    let p = P::start(fast()).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut c = p.authed().await;
        c.send(sub(&[("INFY", "NSE"), ("TCS", "NSE")], json!(2)))
            .await;
        assert_eq!(c.reply().await["status"], "success");
        clients.push(c);
    }
    for c in &mut clients {
        c.ticks("INFY", 2).await;
    }
    let h = p.rig.health().borrow().clone();
    assert_eq!(h.upstream_connections, 1);
    assert_eq!(h.consumers, 10);
    assert_eq!(
        p.rig.ctl.stats().connections.len(),
        1,
        "one connection at the simulator"
    );
    assert_eq!(
        p.stats()
            .clients
            .iter()
            .map(|c| c.subscriptions)
            .sum::<usize>(),
        20
    );

    // Nine leave INFY: the tenth still streams it, upstream still has it.
    for c in clients.iter_mut().skip(1) {
        c.send(json!({"action": "unsubscribe", "symbols": [{"symbol": "INFY", "exchange": "NSE", "mode": 2}]})).await;
        assert_eq!(c.reply().await["status"], "success");
    }
    clients[0].ticks("INFY", 3).await;
    let infy = p.rig.inst(&["NSE:INFY"])[0].key.token;
    assert!(p.rig.sim_subscriptions().contains_key(&infy));
    // Drop the last holder: INFY leaves upstream, TCS stays.
    drop(clients.remove(0));
    let ctl = p.rig.ctl.clone();
    poll(WAIT, "INFY unsubscribed upstream", move || {
        let s = ctl.stats();
        s.connections.len() == 1 && !s.connections[0].subscriptions.contains_key(&infy)
    })
    .await
    .unwrap();
    for c in &mut clients {
        c.ticks("TCS", 1).await;
    }
    p.stop().await;
}

#[tokio::test]
async fn several_modes_on_one_symbol_get_one_message_each_and_downgrade_on_unsubscribe() {
    let p = P::start(fast()).await;
    let mut c = p.authed().await;
    c.send(sub(&[("INFY", "NSE")], json!(1))).await;
    c.reply().await;
    c.send(sub(&[("INFY", "NSE")], json!(3))).await;
    c.reply().await;
    let infy = p.rig.inst(&["NSE:INFY"])[0].key.token;
    let want = common::want(&[(infy, Mode::Depth)]);
    p.rig.wait_sim_subscriptions(&want).await;
    // Per tick: one LTP message and one Depth message, in that order; never duplicates.
    let msgs = c.ticks("INFY", 40).await;
    let start = msgs.iter().position(|m| m["mode"] == 1).unwrap();
    let modes: Vec<u64> = msgs[start..]
        .iter()
        .map(|m| m["mode"].as_u64().unwrap())
        .collect();
    for pair in modes.chunks(2).filter(|p| p.len() == 2) {
        assert_eq!(pair, [1, 3], "{modes:?}");
    }
    // Unsubscribe with a top-level mode (bulk form): we honour it (OpenAlgo would use Quote).
    c.send(json!({"action": "unsubscribe", "mode": 3, "symbols": [{"symbol": "INFY", "exchange": "NSE"}]})).await;
    let r = c.reply().await;
    assert_eq!(r["successful"][0]["mode"], "Depth", "{r}");
    p.rig
        .wait_sim_subscriptions(&common::want(&[(infy, Mode::Ltp)]))
        .await;
    c.recv_until("an LTP message after the downgrade", |v| {
        v["type"] == "market_data" && v["mode"] == 1
    })
    .await;
    p.stop().await;
}

/// A client that stops reading (F23): its queue conflates, drops are counted, it is closed
/// after the stall limit, and another client keeps receiving throughout.
#[tokio::test]
async fn a_stalled_client_is_conflated_counted_and_closed_without_hurting_others() {
    let mut simc = sim_config();
    simc.tick_rate = 4000;
    let rig = Rig::start_with(simc, |_| {}).await;
    let proxy = Proxy::start(
        ProxyConfig {
            client_queue: 64,
            stall_timeout: Duration::from_millis(1500),
            ..fast()
        },
        rig.engine.clone(),
        Arc::new(rig.master.clone()),
        Secret::new(KEY),
    )
    .await
    .unwrap();
    let p = P { rig, proxy };
    let all: Vec<(&str, &str)> = vec![
        ("INFY", "NSE"),
        ("TCS", "NSE"),
        ("RELIANCE", "NSE"),
        ("HDFCBANK", "NSE"),
        ("SBIN", "NSE"),
    ];
    let mut good = p.authed().await;
    good.send(sub(&all, json!(3))).await;
    good.reply().await;
    // The good client reads all the time, counting its market data.
    let (count_tx, count_rx) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(Ok(m)) = good.ws.next().await {
            if let Message::Text(t) = m
                && t.as_str().contains("\"market_data\"")
            {
                n += 1;
                count_tx.send_replace(n);
            }
        }
    });
    let more = |k: u64| {
        let mut rx = count_rx.clone();
        async move {
            let from = *rx.borrow();
            tokio::time::timeout(WAIT, rx.wait_for(|n| *n >= from + k))
                .await
                .expect("the good client keeps receiving")
                .expect("its reader is alive");
        }
    };

    // The stalled client: a tiny receive buffer, then it never reads again.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(p.proxy.local_addr()).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(p.proxy.url(), tcp)
        .await
        .unwrap();
    for m in [
        json!({"action": "authenticate", "api_key": KEY}),
        sub(&all, json!(3)),
    ] {
        stalled
            .send(Message::Text(m.to_string().into()))
            .await
            .unwrap();
    }
    let stalled_id = p
        .wait_stats("the stalled client subscribed", |s| {
            s.clients.len() == 2 && s.clients.iter().all(|c| c.subscriptions == 5)
        })
        .await
        .clients
        .iter()
        .map(|c| c.id)
        .max()
        .unwrap();

    // While it stalls, the good client keeps receiving and the stalled one's drops grow.
    more(10).await;
    p.wait_stats("drops counted for the stalled client", |s| {
        s.clients
            .iter()
            .any(|c| c.id == stalled_id && c.dropped > 0)
    })
    .await;
    more(100).await;
    // Then it is closed, and counted; the good one is untouched.
    let s = p
        .wait_stats("the stalled client closed", |s| s.closed_stalled == 1)
        .await;
    assert!(s.clients.iter().all(|c| c.id != stalled_id), "{s:#?}");
    assert_eq!(s.clients.len(), 1, "{s:#?}");
    assert!(p.rig.health().borrow().stream_drops > 0);
    more(100).await;
    p.rig
        .wait_health("the stalled consumer released", |h| h.consumers == 1)
        .await;
    assert_eq!(p.stats().closed_stalled, 1, "only the stalled one");
    drop(stalled);
    reader.abort();
    p.stop().await;
}

#[tokio::test]
async fn heartbeats_and_connection_status_follow_the_engine() {
    let p = P::start(fast()).await;
    let mut c = p.authed().await;
    c.send(sub(&[("INFY", "NSE")], json!(1))).await;
    c.reply().await;
    let hb = c
        .recv_until("a heartbeat", |v| v["type"] == "heartbeat")
        .await;
    assert_eq!(hb["client"]["subscriptions"], 1, "{hb}");
    assert_eq!(hb["upstream_connections"], 1, "{hb}");
    assert!(
        hb["rest_fallback"] == false && hb["state"] == "live",
        "{hb}"
    );
    // Drop the upstream: clients are told the state changed, then that it is live again.
    p.rig.ctl.inject(tickmux::sim::Fault::Reset, None);
    let down = c
        .recv_until("a non-live connection_status", |v| {
            v["type"] == "connection_status" && v["state"] != "live"
        })
        .await;
    assert!(down["reconnects"].as_u64().is_some(), "{down}");
    c.recv_until("live again", |v| {
        v["type"] == "connection_status" && v["state"] == "live"
    })
    .await;
    c.ticks("INFY", 1).await;
    p.stop().await;
}

#[tokio::test]
async fn idle_policy_disconnect_or_keep_the_session() {
    // Disconnect (Kite's): the last client leaving closes upstream.
    let p = P::start(fast()).await;
    let mut c = p.authed().await;
    c.send(sub(&[("INFY", "NSE")], json!(1))).await;
    c.reply().await;
    c.ticks("INFY", 1).await;
    drop(c);
    p.rig
        .wait_health("upstream closed", |h| {
            h.upstream_connections == 0 && h.state == EngineState::Idle
        })
        .await;
    p.stop().await;

    // Keep session (Noren's): it stays open, and the next client causes no reconnect.
    let p = P::start_with(fast(), |e| e.idle_policy = IdlePolicy::KeepSession).await;
    let mut c = p.authed().await;
    c.send(sub(&[("INFY", "NSE")], json!(1))).await;
    c.reply().await;
    c.ticks("INFY", 1).await;
    let accepted = p.rig.ctl.stats().accepted_tcp;
    let reconnects = p.rig.health().borrow().reconnects;
    drop(c);
    p.rig
        .wait_health("idle with the session kept", |h| {
            h.state == EngineState::Idle && h.upstream_connections == 1 && h.applied == 0
        })
        .await;
    let mut c = p.authed().await;
    c.send(sub(&[("TCS", "NSE")], json!(1))).await;
    c.reply().await;
    c.ticks("TCS", 2).await;
    assert_eq!(
        p.rig.ctl.stats().accepted_tcp,
        accepted,
        "no new upstream connection"
    );
    assert_eq!(p.rig.health().borrow().reconnects, reconnects);
    p.stop().await;
}

#[tokio::test]
async fn client_limit_and_shutdown_close_with_codes() {
    let p = P::start(ProxyConfig {
        max_clients: 2,
        ..fast()
    })
    .await;
    let mut a = p.authed().await;
    let _b = p.client().await;
    p.wait_stats("two clients", |s| s.clients.len() == 2).await;
    let mut third = p.client().await;
    assert_eq!(third.closed().await.0, 1013);
    assert_eq!(p.stats().refused, 1);
    let P { rig, proxy } = p;
    proxy.shutdown().await;
    assert_eq!(a.closed().await.0, 1001);
    rig.stop().await;
}

#[tokio::test]
async fn a_busy_port_is_an_error_naming_the_address() {
    let p = P::start(fast()).await;
    let err = Proxy::start(
        ProxyConfig {
            listen: p.proxy.local_addr(),
            ..fast()
        },
        p.rig.engine.clone(),
        Arc::new(p.rig.master.clone()),
        Secret::new(KEY),
    )
    .await
    .err()
    .expect("second bind fails");
    let msg = err.to_string();
    assert!(
        msg.contains(&p.proxy.local_addr().to_string()) && msg.contains("listen"),
        "{msg}"
    );
    p.stop().await;
}
