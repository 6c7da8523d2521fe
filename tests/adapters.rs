//! Broker specifics the shared fault matrix does not cover: Angel's 3-connection limit
//! surfacing with the broker's own words, its E-codes in health and the event log, and
//! Noren's exchange-and-token keying when tokens collide across exchanges.

mod common;

use common::{Rig, WAIT, poll, sim_config, wait_health};
use tickmux::adapters::ErrorKind;
use tickmux::engine::EngineState;
use tickmux::model::Mode;
use tickmux::sim::{Fault, SimBroker};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// An Angel connection of someone else (another app on the same client code).
async fn angel_socket(rig: &Rig) -> impl Sized + use<> {
    let ep = tickmux::config::sim_endpoints(
        tickmux::config::BrokerKind::Angel,
        &rig.sim.ws_url(),
        &rig.sim.rest_url(),
    );
    let mut req = ep.ws_url.into_client_request().unwrap();
    let c = &rig.sim_cfg;
    for (k, v) in [
        ("Authorization", format!("Bearer {}", c.access_token)),
        ("x-api-key", c.api_key.clone()),
        ("x-client-code", c.client_code.clone()),
        ("x-feed-token", c.feed_token.clone()),
    ] {
        req.headers_mut().insert(k, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("an Angel socket")
        .0
}

#[tokio::test]
async fn angel_connection_limit_is_backed_off_with_the_brokers_words_then_recovered() {
    let rig = Rig::start_for(SimBroker::Angel, sim_config(), |_| {}).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(angel_socket(&rig).await);
    }
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY"]), Mode::Quote)
        .await
        .unwrap();
    let h = rig
        .wait_health("refused for the connection limit", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::RateLimited)
                && h.backoff.is_some()
        })
        .await;
    let text = h.last_error.unwrap().text;
    assert!(
        text.contains("429") && text.contains("Connection limit exceeded"),
        "{text}"
    );
    assert_eq!(h.upstream_connections, 0, "never a second upstream of ours");
    // Another app lets go of one: we get in.
    others.pop();
    rig.wait_live(1).await;
    tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
    rig.stop().await;
}

#[tokio::test]
async fn angel_error_codes_reach_health_and_the_event_log() {
    let rig = Rig::start_for(SimBroker::Angel, sim_config(), |_| {}).await;
    let mut events = rig.engine.events();
    rig.ctl.inject(
        Fault::RejectTokens {
            tokens: vec![rig.token("NSE:TCS")],
        },
        None,
    );
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:TCS", "NSE:INFY"]), Mode::Quote)
        .await
        .unwrap();
    let h = rig
        .wait_health("the E-code in health", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Server && e.text.contains("E100"))
        })
        .await;
    assert_eq!(h.state, EngineState::Live, "INFY still ticks");
    let e = tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.kind == "broker_error" {
                return e;
            }
        }
    })
    .await
    .expect("a broker_error event");
    assert!(e.text.contains("E100"), "{}", e.text);
    rig.stop().await;
}

#[tokio::test]
async fn noren_keys_by_exchange_and_token_never_token_alone() {
    // Two instruments whose Noren tokens are equal on different exchanges must stay apart.
    let rig = Rig::start_for(SimBroker::Shoonya, sim_config(), |_| {}).await;
    let nse = rig.master.resolve("NSE:INFY").unwrap();
    let other = rig.adapter.raw_key("NFO", nse.key.token).unwrap();
    assert_ne!(
        nse.key, other,
        "same token, different exchange, different key"
    );
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(vec![nse.clone()], Mode::Quote).await.unwrap();
    rig.wait_live(1).await;
    let ctl = rig.ctl.clone();
    let key = nse.key;
    poll(WAIT, "subscribed as NSE|token", move || {
        ctl.stats()
            .connections
            .first()
            .is_some_and(|c| c.keys.contains_key(&key) && !c.keys.contains_key(&other))
    })
    .await
    .unwrap();
    for _ in 0..20 {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        assert_eq!(it.tick.key, nse.key);
    }
    let h = wait_health(&mut rig.health(), WAIT, "live", |h| {
        h.state == EngineState::Live
    })
    .await;
    assert_eq!(h.desired, 1);
    rig.stop().await;
}
