//! The OpenAlgo upstream adapter through the engine, against tickmux's own proxy (the
//! VPS setup: a laptop's engine consuming `tickmux serve`): authenticate, subscribe by
//! symbol, receive each mode; a wrong key is `token_invalid`; the proxy going away and coming
//! back on the same port is reconnected and re-subscribed like any broker. Plus: the codec
//! never panics on hostile text.

mod common;

use common::{Rig, WAIT, fast_config, wait_health};
use proptest::prelude::*;
use std::sync::Arc;
use tickmux::adapters::openalgo::OpenAlgo;
use tickmux::adapters::{Adapter, Credentials, ErrorKind};
use tickmux::engine::{self, EngineHandle, EngineState};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::Mode;
use tickmux::proxy::{Proxy, ProxyConfig};
use tickmux::secret::Secret;

const KEY: &str = "upstream-proxy-key-0123456789";

async fn proxy_on(rig: &Rig, listen: &str) -> Proxy {
    Proxy::start(
        ProxyConfig {
            listen: listen.parse().unwrap(),
            ..ProxyConfig::default()
        },
        rig.engine.clone(),
        Arc::new(rig.master.clone()),
        Secret::new(KEY),
    )
    .await
    .expect("proxy starts")
}

fn downstream(url: &str, key: &str) -> (EngineHandle, InstrumentMaster) {
    let adapter: Arc<dyn Adapter> = Arc::new(OpenAlgo::default());
    let cfg = fast_config(url, "");
    let creds = Credentials {
        api_key: Secret::new(key),
        ..Default::default()
    };
    let master = InstrumentMaster::default().with_adapter(adapter.clone());
    (engine::spawn(adapter, creds, cfg, true), master)
}

#[tokio::test]
async fn consumes_a_tickmux_proxy_and_recovers_when_it_comes_back() {
    let rig = Rig::start().await;
    let proxy = proxy_on(&rig, "127.0.0.1:0").await;
    let addr = proxy.local_addr().to_string();
    let (down, master) = downstream(&proxy.url(), KEY);
    let c = down.stream().await.unwrap();
    let infy = master.resolve("NSE:INFY").unwrap();
    let nifty = master.resolve("NSE_INDEX:NIFTY").unwrap();
    let tcs = master.resolve("NSE:TCS").unwrap();
    c.subscribe(vec![infy.clone()], Mode::Quote).await.unwrap();
    c.subscribe(vec![nifty.clone()], Mode::Ltp).await.unwrap();
    c.subscribe(vec![tcs.clone()], Mode::Depth).await.unwrap();
    let mut h = down.health();
    wait_health(&mut h, WAIT, "downstream live", |h| {
        h.state == EngineState::Live
    })
    .await;
    // Every mode arrives, decoded.
    let (mut q, mut l, mut d) = (false, false, false);
    while !(q && l && d) {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        if it.tick.key == infy.key && it.tick.quote.is_some_and(|q| q.volume > 0) {
            q = true;
        }
        if it.tick.key == nifty.key {
            assert!(!it.tick.tradable, "an index");
            l = true;
        }
        if it.tick.key == tcs.key && it.tick.depth.is_some() {
            d = true;
        }
    }
    // One upstream connection at the broker for both engines' needs.
    assert_eq!(rig.health().borrow().upstream_connections, 1);

    // The proxy goes away: the downstream engine backs off...
    proxy.shutdown().await;
    wait_health(&mut h, WAIT, "downstream lost the proxy", |h| {
        h.reconnects >= 1 && h.state != EngineState::Live
    })
    .await;
    // ...and when it is back on the same port, reconnects, re-authenticates, re-subscribes.
    let proxy = proxy_on(&rig, &addr).await;
    wait_health(&mut h, WAIT, "downstream live again", |h| {
        h.state == EngineState::Live && h.epoch >= 2
    })
    .await;
    let since = tokio::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        if it.read_at >= since {
            seen.insert(it.tick.key);
        }
    }
    let s = proxy.stats().borrow().clone();
    assert_eq!(s.clients.len(), 1);
    assert_eq!(s.clients[0].subscriptions, 3, "{s:?}");
    drop(c);
    down.shutdown().await;
    proxy.shutdown().await;
    rig.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_token_invalid_without_a_retry_storm() {
    let rig = Rig::start().await;
    let proxy = proxy_on(&rig, "127.0.0.1:0").await;
    let (down, master) = downstream(&proxy.url(), "not-the-key-at-all");
    let c = down.stream().await.unwrap();
    c.subscribe(vec![master.resolve("NSE:INFY").unwrap()], Mode::Ltp)
        .await
        .unwrap();
    let h = wait_health(&mut down.health(), WAIT, "token_invalid", |h| {
        h.state == EngineState::TokenInvalid
    })
    .await;
    assert_eq!(h.last_error.unwrap().kind, ErrorKind::Auth);
    assert_eq!(proxy.stats().borrow().auth_failures, 1);
    // A new key arrives: it resumes without a restart.
    down.set_credentials(Credentials {
        api_key: Secret::new(KEY),
        ..Default::default()
    })
    .await
    .unwrap();
    wait_health(&mut down.health(), WAIT, "live with the right key", |h| {
        h.state == EngineState::Live
    })
    .await;
    tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
    assert_eq!(
        proxy.stats().borrow().auth_failures,
        1,
        "no retries with the bad key"
    );
    drop(c);
    down.shutdown().await;
    proxy.shutdown().await;
    rig.stop().await;
}

proptest! {
    #[test]
    fn the_codec_never_panics_on_hostile_text(s in ".{0,400}") {
        let a = OpenAlgo::default();
        a.unlisted("NSE", "INFY");
        let mut d = a.decoder();
        let mut out = Vec::new();
        let _ = d.text(&s, &mut out);
        let _ = d.binary(s.as_bytes(), &mut out);
    }

    #[test]
    fn market_data_with_arbitrary_values_is_a_tick_or_an_error(
        mode in any::<i64>(),
        ltp in prop_oneof![any::<f64>().prop_map(|x| x.to_string()), "\"[a-z0-9.]{0,8}\"", Just("null".to_string())],
        vol in prop_oneof![any::<f64>().prop_map(|x| x.to_string()), any::<i64>().prop_map(|x| x.to_string()), Just("\"x\"".to_string())],
    ) {
        let a = OpenAlgo::default();
        a.unlisted("NSE", "INFY");
        let mut d = a.decoder();
        let mut out = Vec::new();
        let m = format!(r#"{{"type":"market_data","symbol":"INFY","exchange":"NSE","mode":{mode},"data":{{"ltp":{ltp},"volume":{vol},"depth":{{"buy":[{{"price":{ltp},"quantity":{vol}}}]}}}}}}"#);
        let _ = d.text(&m, &mut out);
    }
}
