//! Fault matrix (../shared/fault-matrix.md §10) against the real simulator over loopback, one
//! suite parameterised over every broker the simulator speaks (Kite, Angel, Shoonya,
//! Flattrade): each row is a function of the broker, and `fault_matrix!` makes one named test
//! per (broker, row), e.g. `angel::f03_blackhole_trips_transport_watchdog_and_recovers`.
//! Timers are scaled down (tests/common); nothing sleeps blindly.

mod common;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tickmux::adapters::ErrorKind;
use tickmux::engine::{EngineState, IdlePolicy};
use tickmux::model::{FeedKey, Mode};
use tickmux::sim::{Fault, Sim, SimBroker};
use tokio::time::Instant;

/// Watches health and the simulator in the background and records the highest number of
/// upstream connections ever seen, from both sides.
fn track_connections(rig: &Rig) -> Arc<AtomicUsize> {
    let max = Arc::new(AtomicUsize::new(0));
    let m = max.clone();
    let mut h = rig.health();
    let ctl = rig.ctl.clone();
    tokio::spawn(async move {
        loop {
            let n = h
                .borrow()
                .upstream_connections
                .max(ctl.stats().open_connections);
            m.fetch_max(n, Ordering::Relaxed);
            if h.changed().await.is_err() {
                break;
            }
        }
    });
    max
}

async fn standard_subscriptions(
    rig: &Rig,
) -> (tickmux::engine::Consumer, tickmux::engine::Consumer) {
    let a = rig.engine.stream().await.unwrap();
    let b = rig.engine.stream().await.unwrap();
    a.subscribe(rig.inst(&["NSE:INFY", "NSE:NIFTY 50"]), Mode::Quote)
        .await
        .unwrap();
    b.subscribe(rig.inst(&["NSE:RELIANCE"]), Mode::Depth)
        .await
        .unwrap();
    b.subscribe(rig.inst(&["NSE:INFY"]), Mode::Ltp)
        .await
        .unwrap();
    (a, b)
}

fn standard_want(rig: &Rig) -> BTreeMap<FeedKey, Mode> {
    rig.want(&[
        ("NSE:INFY", Mode::Quote),
        ("NSE:NIFTY 50", Mode::Quote),
        ("NSE:RELIANCE", Mode::Depth),
    ])
}

/// A drop of the live connection: reconnect, full re-subscribe with modes, live only after
/// the first tick of the new connection, never more than one upstream connection.
async fn drop_and_recover(b: SimBroker, fault: Fault) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let max_conns = track_connections(&rig);
    let (a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.wait_sim_keys(&standard_want(&rig)).await;
    let mut events = rig.engine.events();

    rig.ctl.inject(fault, None);
    let h = rig
        .wait_health("reconnect counted", |h| h.reconnects >= 1)
        .await;
    assert_eq!(h.last_error.as_ref().unwrap().kind, ErrorKind::Closed);
    let h = rig.wait_live(2).await;
    assert_eq!(h.upstream_connections, 1);
    rig.wait_sim_keys(&standard_want(&rig)).await;

    // Order of events on the new connection: connected → re-subscribed → live (first tick).
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.kind);
    }
    let pos = |k: &str| {
        seen.iter()
            .rposition(|s| *s == k)
            .unwrap_or_else(|| panic!("{k} in {seen:?}"))
    };
    assert!(pos("disconnected") < pos("connected"), "{seen:?}");
    assert!(pos("connected") < pos("resubscribed"), "{seen:?}");
    assert!(pos("resubscribed") < pos("live"), "{seen:?}");

    // Ticks flow to the consumer again after the reconnect.
    let since = Instant::now();
    loop {
        let it = tokio::time::timeout(WAIT, a.recv()).await.unwrap().unwrap();
        if it.read_at >= since {
            break;
        }
    }
    assert_eq!(max_conns.load(Ordering::Relaxed), 1);
    assert_eq!(rig.ctl.stats().open_connections, 1);
    rig.stop().await;
}

async fn f01_close_frame_reconnects_and_resubscribes(b: SimBroker) {
    drop_and_recover(b, Fault::Close { code: 1001 }).await;
}

async fn f02_tcp_reset_reconnects_and_resubscribes(b: SimBroker) {
    drop_and_recover(b, Fault::Reset).await;
}

async fn f03_blackhole_trips_transport_watchdog_and_recovers(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    let t0 = Instant::now();
    rig.ctl.inject(Fault::Blackhole, None);
    let h = rig
        .wait_health("transport stall detected", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::TransportStall)
        })
        .await;
    // Detected after the threshold (400 ms), not before; the benchmark measures how soon.
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
    assert!(h.reconnects >= 1);
    // While the partition lasts, new attempts hang at the handshake and time out.
    rig.wait_health("handshake timeout during partition", |h| {
        h.last_error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::Timeout)
    })
    .await;
    rig.ctl.clear();
    rig.wait_live(2).await;
    rig.wait_sim_keys(&standard_want(&rig)).await;
    rig.stop().await;
}

async fn f04_heartbeats_only_goes_stale_resubscribes_then_reconnects(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    let subs_before = rig.ctl.stats().connections[0].subscribe_messages;
    let mut events = rig.engine.events();
    rig.ctl.inject(Fault::HeartbeatsOnly, None);
    let h = rig
        .wait_health("stale", |h| h.state == EngineState::Stale)
        .await;
    assert_eq!(h.stale_events, 1);
    assert_eq!(
        h.reconnects, 0,
        "stale first re-subscribes on the same connection"
    );
    // The re-subscribe reached the server on the same connection.
    let ctl = rig.ctl.clone();
    poll(WAIT, "re-subscribe on the same connection", move || {
        ctl.stats()
            .connections
            .first()
            .is_some_and(|c| c.subscribe_messages > subs_before)
    })
    .await
    .unwrap();
    // Still nothing → reconnect, caused by the data watchdog, never the transport one
    // (heartbeats keep arriving and must not reset the data watchdog).
    let h = rig
        .wait_health("reconnect after stale", |h| h.reconnects >= 1)
        .await;
    assert_eq!(h.last_error.as_ref().unwrap().kind, ErrorKind::DataStale);
    while let Ok(e) = events.try_recv() {
        assert!(!e.text.contains("transport_stall"), "{}", e.text);
    }
    rig.ctl.clear();
    rig.wait_live(2).await;
    rig.wait_sim_keys(&standard_want(&rig)).await;
    rig.stop().await;
}

async fn f05_quiet_instrument_or_closed_market_never_trips_data_watchdog(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    // One quiet instrument among ticking ones.
    rig.ctl.inject(
        Fault::Quiet {
            tokens: vec![rig.token("NSE:INFY")],
        },
        None,
    );
    let infy_count = rig
        .engine
        .book()
        .get(&rig.inst(&["NSE:INFY"])[0].key)
        .unwrap()
        .count;
    // Let three stale_after periods pass while RELIANCE keeps ticking.
    let rel = rig.inst(&["NSE:RELIANCE"])[0].key;
    let start = rig.engine.book().get(&rel).unwrap().updated;
    let book = rig.engine.book().clone();
    poll(WAIT, "three stale periods of RELIANCE ticks", move || {
        book.get(&rel)
            .is_some_and(|e| e.updated.duration_since(start) >= Duration::from_millis(1800))
    })
    .await
    .unwrap();
    let h = rig.health().borrow().clone();
    assert_eq!(h.state, EngineState::Live);
    assert_eq!(h.stale_events, 0);
    assert_eq!(h.reconnects, 0);
    // Per-instrument age is visible: INFY's entry stopped updating.
    let infy = rig
        .engine
        .book()
        .get(&rig.inst(&["NSE:INFY"])[0].key)
        .unwrap();
    assert!(
        infy.count <= infy_count + 2,
        "quiet instrument kept ticking"
    );
    assert!(infy.updated.elapsed() >= Duration::from_millis(1000));

    // Market closed: heartbeats only, no ticks at all → still no stale, no reconnect.
    rig.ctl.clear();
    rig.engine.set_market_open(false).await.unwrap();
    rig.ctl.inject(Fault::HeartbeatsOnly, None);
    // 2.5 s (125 health snapshots at 20 ms) = 4 stale periods. Not the simulator's heartbeat
    // count: Noren servers send none.
    wait_health_ticks(&mut rig.health(), 125).await;
    let h = rig.health().borrow().clone();
    assert!(!h.market_open);
    assert_eq!(h.state, EngineState::Live);
    assert_eq!(h.stale_events, 0);
    assert_eq!(h.reconnects, 0);
    rig.stop().await;
}

async fn f06_acked_but_silent_is_detected_counted_and_recovered(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    rig.ctl.inject(Fault::IgnoreSubscriptions, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("stale on an acked-but-silent feed", |h| h.stale_events >= 1)
        .await;
    assert!(h.state == EngineState::Stale || h.reconnects >= 1);
    let h = rig
        .wait_health("reconnect after resubscribe failed", |h| h.reconnects >= 1)
        .await;
    assert_eq!(h.last_error.as_ref().unwrap().kind, ErrorKind::DataStale);
    rig.ctl.clear();
    let h = rig
        .wait_health("live after the fault clears", |h| {
            h.state == EngineState::Live
        })
        .await;
    assert!(h.stale_events >= 1);
    rig.wait_sim_keys(&standard_want(&rig)).await;
    rig.stop().await;
}

async fn f07_hanging_handshake_times_out_and_backs_off(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    rig.ctl.inject(Fault::HangHandshake, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("second attempt timed out", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Timeout)
                && h.backoff.is_some_and(|b| b.attempt >= 2)
        })
        .await;
    assert!(h.last_error.unwrap().text.contains("did not finish"));
    rig.ctl.clear();
    rig.wait_live(1).await;
    rig.wait_sim_keys(&standard_want(&rig)).await;
    rig.stop().await;
}

async fn f08_accept_then_close_backs_off_without_hot_loop(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    rig.ctl.inject(Fault::AcceptThenClose, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    // Backoff keeps growing: upgrades succeed but no tick ever arrives, so it never resets.
    let mut h = rig.health();
    let mut delays = Vec::new();
    let mut last_attempt = 0;
    while delays.len() < 5 {
        let s = wait_health(&mut h, WAIT, "next backoff", |s| {
            s.backoff.is_some_and(|b| b.attempt > last_attempt)
        })
        .await;
        let b = s.backoff.unwrap();
        assert_eq!(
            b.attempt,
            last_attempt + 1,
            "attempts never reset without a tick"
        );
        last_attempt = b.attempt;
        delays.push(b.delay_ms);
    }
    // 40 ms base, x2, 20 % jitter, cap 400: 32-40, 64-80, 128-160, 256-320, 320-400.
    for (i, d) in delays.iter().enumerate() {
        let nominal = (40u64 << i).min(400);
        assert!(
            *d <= nominal && *d >= nominal * 8 / 10 - 1,
            "attempt {i}: {d} ms vs {nominal}"
        );
    }
    // The connect rate is bounded by the delays: no more upgrades than attempts (+1).
    let up = rig.ctl.stats().upgrades;
    assert!(
        up <= last_attempt as u64 + 2,
        "{up} upgrades for {last_attempt} attempts"
    );
    rig.ctl.clear();
    let h = rig.wait_live(2).await;
    assert!(h.backoff.is_none());
    rig.stop().await;
}

async fn f09_rejected_token_stops_retrying_and_resumes_on_new_token(b: SimBroker) {
    // validate_token off so the WebSocket upgrade itself meets the 403.
    let rig = Rig::start_for(b, sim_config(), |c| c.validate_token = false).await;
    rig.ctl.inject(Fault::Reject403, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("token_invalid", |h| h.state == EngineState::TokenInvalid)
        .await;
    let e = h.last_error.unwrap();
    assert_eq!(e.kind, ErrorKind::Auth, "{}", e.text);
    // No retry storm: time passes (observed through 50 health snapshots = 1 s) and the
    // simulator sees no further attempt.
    let attempts = rig.ctl.stats().rejected_auth;
    assert_eq!(attempts, 1);
    wait_health_ticks(&mut rig.health(), 50).await;
    assert_eq!(rig.ctl.stats().rejected_auth, attempts);
    assert_eq!(rig.health().borrow().state, EngineState::TokenInvalid);
    // A new token arrives (the fault clears as a rotated token would be accepted).
    rig.ctl.clear();
    rig.engine
        .set_credentials(sim_creds(&rig.sim_cfg))
        .await
        .unwrap();
    rig.wait_live(1).await;
    rig.stop().await;
}

async fn f09_rejected_token_on_rest_check_never_opens_the_socket(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    rig.ctl.inject(Fault::Reject403, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("token_invalid from the REST check", |h| {
            h.state == EngineState::TokenInvalid
        })
        .await;
    assert_eq!(h.last_error.unwrap().kind, ErrorKind::Auth);
    assert_eq!(rig.ctl.stats().accepted_tcp, 0);
    rig.stop().await;
}

async fn f11_connection_limit_backs_off_with_cap_and_one_upstream(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let max_conns = track_connections(&rig);
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.ctl.inject(Fault::Reject429, None);
    rig.ctl.inject(Fault::Close { code: 1000 }, None);
    let h = rig
        .wait_health("backoff reaches the cap under 429", |h| {
            h.backoff.is_some_and(|b| b.attempt >= 6)
                && h.last_error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorKind::RateLimited)
        })
        .await;
    assert!(h.backoff.unwrap().delay_ms <= 400);
    assert!(h.last_error.unwrap().text.contains("429"));
    assert!(rig.ctl.stats().rejected_limit >= 5);
    rig.ctl.clear();
    rig.wait_live(2).await;
    assert_eq!(max_conns.load(Ordering::Relaxed), 1);
    rig.stop().await;
}

async fn f14_rejected_subscription_leaves_others_and_is_retried(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (infy, reliance) = (rig.key("NSE:INFY"), rig.key("NSE:RELIANCE"));
    rig.ctl.inject(
        Fault::RejectTokens {
            tokens: vec![infy.token],
        },
        None,
    );
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY", "NSE:RELIANCE"]), Mode::Quote)
        .await
        .unwrap();
    // Kite and Angel answer a refused subscription with an error text; Noren sends nothing
    // (no snapshot), so there the refusal shows only as the instrument's silence.
    if !matches!(b, SimBroker::Shoonya | SimBroker::Flattrade) {
        rig.wait_health("server error surfaced", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Server)
        })
        .await;
    }
    rig.wait_health("the rejected instrument stays desired", |h| h.desired == 2)
        .await;
    // RELIANCE ticks regardless.
    loop {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        assert_ne!(it.tick.key, infy);
        if it.tick.key == reliance {
            break;
        }
    }
    // Next connection retries it; with the rejection gone it ticks.
    rig.ctl.clear();
    rig.engine.force_reconnect().await.unwrap();
    rig.wait_live(2).await;
    rig.wait_sim_keys(&rig.want(&[("NSE:INFY", Mode::Quote), ("NSE:RELIANCE", Mode::Quote)]))
        .await;
    loop {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        if it.tick.key == infy {
            break;
        }
    }
    rig.stop().await;
}

async fn f15_unsubscribed_before_disconnect_is_not_resubscribed(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    a.unsubscribe(vec![rig.inst(&["NSE:NIFTY 50"])[0].key])
        .await
        .unwrap();
    let w = rig.want(&[("NSE:INFY", Mode::Quote), ("NSE:RELIANCE", Mode::Depth)]);
    rig.wait_sim_keys(&w).await;
    rig.ctl.inject(Fault::Reset, None);
    rig.wait_live(2).await;
    rig.wait_sim_keys(&w).await;
    let c = &rig.ctl.stats().connections[0];
    assert_eq!(c.tokens_subscribed_total, 2, "NIFTY was sent again: {c:?}");
    rig.stop().await;
}

async fn f16_subscription_churn_racing_reconnects_ends_with_applied_equal_desired(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let consumers = [
        rig.engine.stream().await.unwrap(),
        rig.engine.stream().await.unwrap(),
    ];
    let names = [
        "NSE:INFY",
        "NSE:RELIANCE",
        "NSE:TCS",
        "NSE:HDFCBANK",
        "NSE:NIFTY 50",
        "NSE:NIFTY BANK",
    ];
    let mut model: [BTreeMap<FeedKey, Mode>; 2] = Default::default();
    let mut rng = SmallRng::seed_from_u64(16);
    consumers[0]
        .subscribe(rig.inst(&names[..2]), Mode::Ltp)
        .await
        .unwrap();
    for n in &names[..2] {
        model[0].insert(rig.key(n), Mode::Ltp);
    }
    rig.wait_live(1).await;
    for round in 0..6 {
        // Drop the connection (close, reset or accept-then-close for a while) and churn
        // subscriptions while the engine is backing off / reconnecting.
        match round % 3 {
            0 => rig.ctl.inject(Fault::Reset, None),
            1 => rig.ctl.inject(Fault::Close { code: 1000 }, None),
            _ => {
                rig.ctl
                    .inject(Fault::AcceptThenClose, Some(Duration::from_millis(150)));
                rig.ctl.inject(Fault::Close { code: 1000 }, None);
            }
        }
        for _ in 0..8 {
            let c = rng.random_range(0..2usize);
            let n = names[rng.random_range(0..names.len())];
            let tok = rig.key(n);
            if rng.random_bool(0.6) {
                let m = [Mode::Ltp, Mode::Quote, Mode::Depth][rng.random_range(0..3)];
                consumers[c].subscribe(rig.inst(&[n]), m).await.unwrap();
                model[c].insert(tok, m);
            } else {
                consumers[c]
                    .unsubscribe(vec![rig.inst(&[n])[0].key])
                    .await
                    .unwrap();
                model[c].remove(&tok);
            }
        }
        let mut desired: BTreeMap<FeedKey, Mode> = BTreeMap::new();
        for m in &model {
            for (k, v) in m {
                let e = desired.entry(*k).or_insert(*v);
                *e = (*e).max(*v);
            }
        }
        rig.wait_live(round + 2).await;
        rig.wait_sim_keys(&desired).await;
        let h = rig.health().borrow().clone();
        assert_eq!(h.desired, desired.len());
    }
    rig.stop().await;
}

async fn f17_fifty_seeded_drop_cycles_keep_applied_equal_desired(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut rng = SmallRng::seed_from_u64(17);
    for cycle in 0..50u64 {
        let fault = match rng.random_range(0..3) {
            0 => Fault::Close { code: 1000 },
            1 => Fault::Close { code: 1001 },
            _ => Fault::Reset,
        };
        rig.ctl.inject(fault.clone(), None);
        let h = rig.wait_live(cycle + 2).await;
        assert_eq!(h.reconnects, cycle + 1, "cycle {cycle} ({fault:?})");
        rig.wait_sim_keys(&standard_want(&rig)).await;
        let s = rig.ctl.stats();
        assert_eq!(s.open_connections, 1, "cycle {cycle}");
        let c = &s.connections[0];
        assert_eq!(
            c.duplicate_subscribes, 0,
            "cycle {cycle}: duplicate subscriptions {c:?}"
        );
        assert_eq!(c.tokens_subscribed_total, 3, "cycle {cycle}: {c:?}");
        // The consumer's queue stays bounded whatever happens.
        while a.try_recv().is_some() {}
    }
    let tasks_after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        tasks_after <= tasks_before + 2,
        "tasks grew from {tasks_before} to {tasks_after}"
    );
    rig.stop().await;
}

async fn f18_shutdown_during_connect_or_long_backoff_returns_promptly(b: SimBroker) {
    // During a hanging connect.
    let rig = Rig::start_for(b, sim_config(), |c| {
        c.connect_timeout = Duration::from_secs(30)
    })
    .await;
    rig.ctl.inject(Fault::HangHandshake, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_health("connecting", |h| h.state == EngineState::Connecting)
        .await;
    let ctl = rig.ctl.clone();
    poll(WAIT, "TCP accepted", move || ctl.stats().accepted_tcp >= 1)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), rig.engine.shutdown())
        .await
        .expect("shutdown during a hanging connect returns promptly");
    assert_eq!(rig.health().borrow().state, EngineState::Stopped);
    rig.sim.shutdown().await;

    // During a long backoff.
    let rig = Rig::start_for(b, sim_config(), |c| {
        c.backoff.base = Duration::from_secs(30);
        c.backoff.cap = Duration::from_secs(60);
    })
    .await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.ctl.inject(Fault::Close { code: 1000 }, None);
    rig.wait_health("long backoff", |h| {
        h.backoff.is_some_and(|b| b.delay_ms >= 20_000)
    })
    .await;
    let accepted = rig.ctl.stats().accepted_tcp;
    tokio::time::timeout(Duration::from_secs(2), rig.engine.shutdown())
        .await
        .expect("shutdown during a 30 s backoff returns promptly");
    assert_eq!(rig.health().borrow().state, EngineState::Stopped);
    assert_eq!(
        rig.ctl.stats().accepted_tcp,
        accepted,
        "no reconnect after shutdown"
    );
    rig.sim.shutdown().await;
}

async fn f19_ticks_before_live_are_delivered_not_dropped(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY", "NSE:RELIANCE"]), Mode::Quote)
        .await
        .unwrap();
    rig.wait_live(1).await;
    rig.ctl.inject(Fault::Reset, None);
    rig.wait_live(2).await;
    // Stop the flow, wait until the engine's count stops moving, then compare: every tick
    // the engine accepted (including the first frame of each connection, which arrives while
    // the state is still `subscribing`) reached the consumer.
    rig.ctl.inject(Fault::HeartbeatsOnly, None);
    let mut h = rig.health();
    let engine_total = loop {
        let before = h.borrow().ticks_total;
        wait_health_ticks(&mut h, 10).await;
        let after = h.borrow().ticks_total;
        if after == before {
            break after;
        }
    };
    let mut got = 0u64;
    while c.try_recv().is_some() {
        got += 1;
    }
    assert_eq!(got, engine_total);
    assert!(engine_total > 0);
    assert_eq!(c.dropped(), 0);
    rig.stop().await;
}

async fn f21_malformed_frames_are_counted_and_the_connection_kept(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.ctl.inject(Fault::Malformed, None);
    let h = rig
        .wait_health("malformed frames counted", |h| h.malformed_frames >= 5)
        .await;
    assert_eq!(h.reconnects, 0);
    assert_eq!(h.epoch, 1);
    assert_eq!(h.state, EngineState::Live);
    let ticks = h.ticks_total;
    rig.wait_health("ticks keep flowing", |h| h.ticks_total > ticks + 50)
        .await;
    rig.ctl.clear();
    rig.stop().await;
}

async fn many_consumers_share_one_upstream_connection(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let max_conns = track_connections(&rig);
    let names = ["NSE:INFY", "NSE:RELIANCE", "NSE:TCS", "NSE:NIFTY 50"];
    let mut cs = Vec::new();
    for i in 0..20 {
        let c = rig.engine.stream().await.unwrap();
        c.subscribe(rig.inst(&[names[i % 4], names[(i + 1) % 4]]), Mode::Quote)
            .await
            .unwrap();
        cs.push(c);
    }
    let h = rig
        .wait_health("live with all 20 consumers", |h| {
            h.state == EngineState::Live && h.consumers == 20
        })
        .await;
    assert_eq!(h.desired, 4);
    for c in &cs {
        tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
    }
    let s = rig.ctl.stats();
    assert_eq!(s.accepted_tcp, 1);
    assert_eq!(s.upgrades, 1);
    assert_eq!(rig.health().borrow().upstream_connections, 1);
    // One consumer leaving does not stop the others' instruments (refcounts).
    let gone = cs.remove(0);
    drop(gone);
    rig.wait_health("consumer reaped", |h| h.consumers == 19)
        .await;
    assert_eq!(rig.health().borrow().desired, 4);
    assert_eq!(max_conns.load(Ordering::Relaxed), 1);
    rig.stop().await;
}

async fn slow_stream_consumer_is_conflated_and_never_slows_others(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let names = ["NSE:INFY", "NSE:RELIANCE", "NSE:TCS"];
    let stalled = rig.engine.stream_with_capacity(8).await.unwrap();
    stalled
        .subscribe(rig.inst(&names), Mode::Quote)
        .await
        .unwrap();
    let reader = rig.engine.stream_with_capacity(8).await.unwrap();
    reader
        .subscribe(rig.inst(&names), Mode::Quote)
        .await
        .unwrap();
    rig.wait_live(1).await;
    // The reader keeps up and sees every tick; the stalled one never reads.
    let mut got = 0u64;
    let target = rig.health().borrow().ticks_total + 400;
    while got < 400 || rig.health().borrow().ticks_total < target {
        tokio::time::timeout(WAIT, reader.recv())
            .await
            .unwrap()
            .unwrap();
        got += 1;
    }
    assert_eq!(reader.dropped(), 0, "the fast consumer lost nothing");
    // The stalled consumer's queue is bounded (8 + one latest value per instrument) and it
    // holds the latest value of every instrument; everything else is counted as dropped.
    let mut pending = Vec::new();
    while let Some(it) = stalled.try_recv() {
        pending.push(it);
    }
    assert!(
        pending.len() <= 8 + names.len(),
        "{} pending",
        pending.len()
    );
    let dropped = stalled.dropped();
    let total = rig
        .wait_health("health caught up", |h| h.stream_drops >= dropped)
        .await
        .ticks_total;
    assert!(dropped > 0);
    assert!(
        dropped + pending.len() as u64 <= total,
        "{dropped} + {} > {total}",
        pending.len()
    );
    for n in names {
        let key = rig.inst(&[n])[0].key;
        let last = pending.iter().rev().find(|i| i.tick.key == key).expect(n);
        let book = rig.engine.book().get(&key).unwrap();
        // The stalled consumer's last value for each instrument is at most a few ticks behind
        // the book (ticks keep arriving while we read), never an old queued one.
        assert!(
            last.read_at >= book.updated - Duration::from_millis(500),
            "{n}"
        );
    }
    rig.wait_health("drops shown in health", |h| h.stream_drops > 0)
        .await;
    rig.stop().await;
}

async fn f27_network_down_at_startup_is_retried_with_backoff(b: SimBroker) {
    // Reserve two ports and leave them closed: nothing listens at startup.
    let ws = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (ws_port, http_port) = (
        ws.local_addr().unwrap().port(),
        http.local_addr().unwrap().port(),
    );
    drop((ws, http));
    let mut sim_cfg = sim_config();
    sim_cfg.ws_port = ws_port;
    sim_cfg.http_port = http_port;
    let ep = tickmux::config::sim_endpoints(
        kind(b),
        &format!("ws://127.0.0.1:{ws_port}"),
        &format!("http://127.0.0.1:{http_port}"),
    );
    let mut cfg = fast_config(&ep.ws_url, &ep.rest_url);
    cfg.endpoints = ep;
    let adapter = kind(b).adapter();
    let engine = tickmux::engine::spawn(adapter.clone(), sim_creds(&sim_cfg), cfg, true);
    let c = engine.stream().await.unwrap();
    // INFY by raw token, the broker's way (no master: the network is down).
    let token = if b == SimBroker::Kite { 408065 } else { 1594 };
    let infy = Arc::new(tickmux::model::Instrument {
        exchange: "NSE".into(),
        symbol: "INFY".into(),
        key: adapter.raw_key("NSE", token).unwrap(),
    });
    c.subscribe(vec![infy], Mode::Quote).await.unwrap();
    let h = wait_health(&mut engine.health(), WAIT, "initial connect retried", |h| {
        h.backoff.is_some_and(|b| b.attempt >= 3)
    })
    .await;
    assert_eq!(h.last_error.unwrap().kind, ErrorKind::Connect);
    // The network comes up.
    let sim = Sim::start(sim_cfg).await.unwrap();
    wait_health(
        &mut engine.health(),
        WAIT,
        "live once the network is up",
        |h| h.state == EngineState::Live,
    )
    .await;
    tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
    engine.shutdown().await;
    sim.shutdown().await;
}

/// F20: beyond the broker's instrument limit (Kite and Noren 3000, Angel 1000) a subscribe
/// fails with an error naming it and nothing is applied; up to it everything is.
async fn subscribing_beyond_the_broker_limit_fails_clearly_and_applies_nothing(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let max = rig.adapter.limits().max_instruments;
    let c = rig.engine.stream().await.unwrap();
    let many: Vec<_> = (0..max as u32 + 1)
        .map(|i| {
            Arc::new(tickmux::model::Instrument {
                exchange: "NFO".into(),
                symbol: format!("SYN{i}"),
                key: tickmux::sim::synthetic_key(b, i),
            })
        })
        .collect();
    let err = c.subscribe(many.clone(), Mode::Ltp).await.unwrap_err();
    assert!(err.to_string().contains(&max.to_string()), "{err}");
    assert_eq!(rig.health().borrow().desired, 0);
    c.subscribe(many[..max].to_vec(), Mode::Ltp).await.unwrap();
    let h = rig.wait_live(1).await;
    assert_eq!(h.desired, max);
    rig.wait_health("all applied", |h| h.applied == max).await;
    let ctl = rig.ctl.clone();
    poll(WAIT, "the simulator holds them all", move || {
        ctl.stats()
            .connections
            .first()
            .is_some_and(|c| c.keys.len() == max)
    })
    .await
    .unwrap();
    rig.stop().await;
}

/// The broker's idle policy when the last consumer leaves: Kite and Angel disconnect; Noren
/// keeps the session (only unsubscribing), so a new consumer causes no reconnect and so
/// never meets Flattrade's reconnect cooldown, which is active throughout here.
async fn idle_policy_follows_the_broker(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY"]), Mode::Ltp)
        .await
        .unwrap();
    rig.wait_live(1).await;
    rig.ctl.inject(
        Fault::Cooldown {
            window_seconds: 60.0,
        },
        None,
    );
    drop(c);
    if rig.adapter.idle_policy() == IdlePolicy::Disconnect {
        rig.wait_health("idle without consumers", |h| {
            h.state == EngineState::Idle && h.upstream_connections == 0
        })
        .await;
        let ctl = rig.ctl.clone();
        poll(WAIT, "simulator sees the close", move || {
            ctl.stats().open_connections == 0
        })
        .await
        .unwrap();
    } else {
        rig.wait_health("idle with the session kept", |h| {
            h.state == EngineState::Idle && h.upstream_connections == 1 && h.applied == 0
        })
        .await;
        let ctl = rig.ctl.clone();
        poll(WAIT, "everything unsubscribed upstream", move || {
            ctl.stats()
                .connections
                .first()
                .is_some_and(|c| c.keys.is_empty())
        })
        .await
        .unwrap();
        let accepted = rig.ctl.stats().accepted_tcp;
        let c = rig.engine.stream().await.unwrap();
        c.subscribe(rig.inst(&["NSE:TCS"]), Mode::Quote)
            .await
            .unwrap();
        tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        let s = rig.ctl.stats();
        assert_eq!(s.accepted_tcp, accepted, "no reconnect");
        assert_eq!(s.rejected_cooldown, 0, "so no cooldown rejection");
        let h = rig.health().borrow().clone();
        assert_eq!((h.reconnects, h.epoch), (0, 1));
        assert_eq!(h.state, EngineState::Live);
    }
    rig.stop().await;
}

/// F12: reconnects refused during a cooldown after a close (Flattrade's) are transient
/// failures: backed off and retried until one is accepted, never `token_invalid`.
async fn f12_reconnect_cooldown_is_waited_out_without_operator_action(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.ctl.inject(
        Fault::Cooldown {
            window_seconds: 0.5,
        },
        None,
    );
    rig.ctl.inject(Fault::Close { code: 1000 }, None);
    rig.wait_live(2).await;
    let s = rig.ctl.stats();
    assert!(s.rejected_cooldown >= 1, "a retry met the cooldown: {s:?}");
    let h = rig.health().borrow().clone();
    assert!(h.reconnects >= 1);
    rig.wait_sim_keys(&standard_want(&rig)).await;
    rig.stop().await;
}

/// The server closing right after a subscribe (Noren's, OpenAlgo issue 1965) is a lost
/// connection like any other: reconnect, resubscribe, and converge once it stops.
async fn server_close_after_subscribe_is_recovered(b: SimBroker) {
    let rig = Rig::start_for(b, sim_config(), |_| {}).await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.ctl
        .inject(Fault::CloseAfterSubscribe, Some(Duration::from_millis(300)));
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:TCS"]), Mode::Quote)
        .await
        .unwrap();
    rig.wait_health("the close counted", |h| h.reconnects >= 1)
        .await;
    let mut w = standard_want(&rig);
    w.insert(rig.key("NSE:TCS"), Mode::Quote);
    rig.wait_health("live again", |h| {
        h.state == EngineState::Live && h.epoch >= 2
    })
    .await;
    rig.wait_sim_keys(&w).await;
    rig.stop().await;
}

/// One test per (broker, row): the same rows for every broker the simulator speaks.
macro_rules! rows {
    ($broker:expr; $($row:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $row() {
                super::$row($broker).await
            }
        )*
    };
}

macro_rules! fault_matrix {
    ($($module:ident => $broker:expr),* $(,)?) => {
        $(
            mod $module {
                rows!($broker;
                    f01_close_frame_reconnects_and_resubscribes,
                    f02_tcp_reset_reconnects_and_resubscribes,
                    f03_blackhole_trips_transport_watchdog_and_recovers,
                    f04_heartbeats_only_goes_stale_resubscribes_then_reconnects,
                    f05_quiet_instrument_or_closed_market_never_trips_data_watchdog,
                    f06_acked_but_silent_is_detected_counted_and_recovered,
                    f07_hanging_handshake_times_out_and_backs_off,
                    f08_accept_then_close_backs_off_without_hot_loop,
                    f09_rejected_token_stops_retrying_and_resumes_on_new_token,
                    f09_rejected_token_on_rest_check_never_opens_the_socket,
                    f11_connection_limit_backs_off_with_cap_and_one_upstream,
                    f12_reconnect_cooldown_is_waited_out_without_operator_action,
                    f14_rejected_subscription_leaves_others_and_is_retried,
                    f15_unsubscribed_before_disconnect_is_not_resubscribed,
                    f16_subscription_churn_racing_reconnects_ends_with_applied_equal_desired,
                    f17_fifty_seeded_drop_cycles_keep_applied_equal_desired,
                    f18_shutdown_during_connect_or_long_backoff_returns_promptly,
                    f19_ticks_before_live_are_delivered_not_dropped,
                    f21_malformed_frames_are_counted_and_the_connection_kept,
                    f27_network_down_at_startup_is_retried_with_backoff,
                    many_consumers_share_one_upstream_connection,
                    subscribing_beyond_the_broker_limit_fails_clearly_and_applies_nothing,
                    idle_policy_follows_the_broker,
                    server_close_after_subscribe_is_recovered,
                    slow_stream_consumer_is_conflated_and_never_slows_others,
                );
            }
        )*
    };
}

fault_matrix! {
    kite => tickmux::sim::SimBroker::Kite,
    angel => tickmux::sim::SimBroker::Angel,
    shoonya => tickmux::sim::SimBroker::Shoonya,
    flattrade => tickmux::sim::SimBroker::Flattrade,
}
