//! Fault matrix (../shared/fault-matrix.md §10) against the real simulator over loopback.
//! Each row is a named test; timers are scaled down (tests/common); nothing sleeps blindly.

mod common;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tickmux::adapters::ErrorKind;
use tickmux::engine::EngineState;
use tickmux::model::Mode;
use tickmux::sim::{Fault, Sim};
use tokio::time::Instant;

const INFY: u32 = 408065;
const RELIANCE: u32 = 738561;
const NIFTY: u32 = 256265;

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

fn standard_want() -> BTreeMap<u32, Mode> {
    want(&[
        (INFY, Mode::Quote),
        (NIFTY, Mode::Quote),
        (RELIANCE, Mode::Depth),
    ])
}

/// A drop of the live connection: reconnect, full re-subscribe with modes, live only after
/// the first tick of the new connection, never more than one upstream connection.
async fn drop_and_recover(fault: Fault) {
    let rig = Rig::start().await;
    let max_conns = track_connections(&rig);
    let (a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    rig.wait_sim_subscriptions(&standard_want()).await;
    let mut events = rig.engine.events();

    rig.ctl.inject(fault, None);
    let h = rig
        .wait_health("reconnect counted", |h| h.reconnects >= 1)
        .await;
    assert_eq!(h.last_error.as_ref().unwrap().kind, ErrorKind::Closed);
    let h = rig.wait_live(2).await;
    assert_eq!(h.upstream_connections, 1);
    rig.wait_sim_subscriptions(&standard_want()).await;

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

#[tokio::test]
async fn f01_close_frame_reconnects_and_resubscribes() {
    drop_and_recover(Fault::Close { code: 1001 }).await;
}

#[tokio::test]
async fn f02_tcp_reset_reconnects_and_resubscribes() {
    drop_and_recover(Fault::Reset).await;
}

#[tokio::test]
async fn f03_blackhole_trips_transport_watchdog_and_recovers() {
    let rig = Rig::start().await;
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
    rig.wait_sim_subscriptions(&standard_want()).await;
    rig.stop().await;
}

#[tokio::test]
async fn f04_heartbeats_only_goes_stale_resubscribes_then_reconnects() {
    let rig = Rig::start().await;
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
    rig.wait_sim_subscriptions(&standard_want()).await;
    rig.stop().await;
}

#[tokio::test]
async fn f05_quiet_instrument_or_closed_market_never_trips_data_watchdog() {
    let rig = Rig::start().await;
    let (_a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    // One quiet instrument among ticking ones.
    rig.ctl.inject(Fault::Quiet { tokens: vec![INFY] }, None);
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
    wait_sim_progress(&rig.ctl, 25).await; // 2.5 s of heartbeats = 4 stale periods
    let h = rig.health().borrow().clone();
    assert!(!h.market_open);
    assert_eq!(h.state, EngineState::Live);
    assert_eq!(h.stale_events, 0);
    assert_eq!(h.reconnects, 0);
    rig.stop().await;
}

#[tokio::test]
async fn f06_acked_but_silent_is_detected_counted_and_recovered() {
    let rig = Rig::start().await;
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
    rig.wait_sim_subscriptions(&standard_want()).await;
    rig.stop().await;
}

#[tokio::test]
async fn f07_hanging_handshake_times_out_and_backs_off() {
    let rig = Rig::start().await;
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
    rig.wait_sim_subscriptions(&standard_want()).await;
    rig.stop().await;
}

#[tokio::test]
async fn f08_accept_then_close_backs_off_without_hot_loop() {
    let rig = Rig::start().await;
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

#[tokio::test]
async fn f09_rejected_token_stops_retrying_and_resumes_on_new_token() {
    // validate_token off so the WebSocket upgrade itself meets the 403.
    let rig = Rig::start_with(sim_config(), |c| c.validate_token = false).await;
    rig.ctl.inject(Fault::Reject403, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("token_invalid", |h| h.state == EngineState::TokenInvalid)
        .await;
    let e = h.last_error.unwrap();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.text.contains("403"), "{}", e.text);
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

#[tokio::test]
async fn f09_rejected_token_on_rest_check_never_opens_the_socket() {
    let rig = Rig::start().await;
    rig.ctl.inject(Fault::Reject403, None);
    let (_a, _b) = standard_subscriptions(&rig).await;
    let h = rig
        .wait_health("token_invalid from the REST check", |h| {
            h.state == EngineState::TokenInvalid
        })
        .await;
    assert!(h.last_error.unwrap().text.contains("TokenException"));
    assert_eq!(rig.ctl.stats().accepted_tcp, 0);
    rig.stop().await;
}

#[tokio::test]
async fn f11_connection_limit_backs_off_with_cap_and_one_upstream() {
    let rig = Rig::start().await;
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

#[tokio::test]
async fn f14_rejected_subscription_leaves_others_and_is_retried() {
    let rig = Rig::start().await;
    rig.ctl
        .inject(Fault::RejectTokens { tokens: vec![INFY] }, None);
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY", "NSE:RELIANCE"]), Mode::Quote)
        .await
        .unwrap();
    let h = rig
        .wait_health("server error surfaced", |h| {
            h.last_error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Server)
        })
        .await;
    assert_eq!(h.desired, 2, "the rejected instrument stays desired");
    // RELIANCE ticks regardless.
    loop {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        assert_ne!(it.tick.key.token, INFY);
        if it.tick.key.token == RELIANCE {
            break;
        }
    }
    // Next connection retries it; with the rejection gone it ticks.
    rig.ctl.clear();
    rig.engine.force_reconnect().await.unwrap();
    rig.wait_live(2).await;
    rig.wait_sim_subscriptions(&want(&[(INFY, Mode::Quote), (RELIANCE, Mode::Quote)]))
        .await;
    loop {
        let it = tokio::time::timeout(WAIT, c.recv()).await.unwrap().unwrap();
        if it.tick.key.token == INFY {
            break;
        }
    }
    rig.stop().await;
}

#[tokio::test]
async fn f15_unsubscribed_before_disconnect_is_not_resubscribed() {
    let rig = Rig::start().await;
    let (a, _b) = standard_subscriptions(&rig).await;
    rig.wait_live(1).await;
    a.unsubscribe(vec![rig.inst(&["NSE:NIFTY 50"])[0].key])
        .await
        .unwrap();
    let w = want(&[(INFY, Mode::Quote), (RELIANCE, Mode::Depth)]);
    rig.wait_sim_subscriptions(&w).await;
    rig.ctl.inject(Fault::Reset, None);
    rig.wait_live(2).await;
    rig.wait_sim_subscriptions(&w).await;
    let c = &rig.ctl.stats().connections[0];
    assert_eq!(c.tokens_subscribed_total, 2, "NIFTY was sent again: {c:?}");
    rig.stop().await;
}

#[tokio::test]
async fn f16_subscription_churn_racing_reconnects_ends_with_applied_equal_desired() {
    let rig = Rig::start().await;
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
    let mut model: [BTreeMap<u32, Mode>; 2] = Default::default();
    let mut rng = SmallRng::seed_from_u64(16);
    consumers[0]
        .subscribe(rig.inst(&names[..2]), Mode::Ltp)
        .await
        .unwrap();
    for n in &names[..2] {
        model[0].insert(rig.inst(&[n])[0].key.token, Mode::Ltp);
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
            let tok = rig.inst(&[n])[0].key.token;
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
        let mut desired: BTreeMap<u32, Mode> = BTreeMap::new();
        for m in &model {
            for (k, v) in m {
                let e = desired.entry(*k).or_insert(*v);
                *e = (*e).max(*v);
            }
        }
        rig.wait_live(round + 2).await;
        rig.wait_sim_subscriptions(&desired).await;
        let h = rig.health().borrow().clone();
        assert_eq!(h.desired, desired.len());
    }
    rig.stop().await;
}

#[tokio::test]
async fn f17_fifty_seeded_drop_cycles_keep_applied_equal_desired() {
    let rig = Rig::start().await;
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
        rig.wait_sim_subscriptions(&standard_want()).await;
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

#[tokio::test]
async fn f18_shutdown_during_connect_or_long_backoff_returns_promptly() {
    // During a hanging connect.
    let rig = Rig::start_with(sim_config(), |c| {
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
    let rig = Rig::start_with(sim_config(), |c| {
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

#[tokio::test]
async fn f19_ticks_before_live_are_delivered_not_dropped() {
    let rig = Rig::start().await;
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

#[tokio::test]
async fn f21_malformed_frames_are_counted_and_the_connection_kept() {
    let rig = Rig::start().await;
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

#[tokio::test]
async fn f27_network_down_at_startup_is_retried_with_backoff() {
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
    let cfg = fast_config(
        &format!("ws://127.0.0.1:{ws_port}"),
        &format!("http://127.0.0.1:{http_port}"),
    );
    let engine = tickmux::engine::spawn(
        Arc::new(tickmux::adapters::kite::Kite),
        sim_creds(&sim_cfg),
        cfg,
        true,
    );
    let c = engine.stream().await.unwrap();
    let infy = Arc::new(tickmux::model::Instrument {
        exchange: "NSE".into(),
        symbol: "INFY".into(),
        key: tickmux::model::FeedKey::kite(INFY),
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

#[tokio::test]
async fn many_consumers_share_one_upstream_connection() {
    let rig = Rig::start().await;
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
    let h = rig.wait_live(1).await;
    assert_eq!(h.consumers, 20);
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

#[tokio::test]
async fn subscribing_beyond_the_broker_limit_fails_clearly_and_applies_nothing() {
    let rig = Rig::start().await;
    let c = rig.engine.stream().await.unwrap();
    let many: Vec<_> = (0..3001u32)
        .map(|i| {
            Arc::new(tickmux::model::Instrument {
                exchange: "NFO".into(),
                symbol: format!("SYN{i}"),
                key: tickmux::model::FeedKey::kite(0x0100_0000 + (i << 8) + 2),
            })
        })
        .collect();
    let err = c.subscribe(many.clone(), Mode::Ltp).await.unwrap_err();
    assert!(err.to_string().contains("3000"), "{err}");
    assert_eq!(rig.health().borrow().desired, 0);
    c.subscribe(many[..3000].to_vec(), Mode::Ltp).await.unwrap();
    let h = rig.wait_live(1).await;
    assert_eq!(h.desired, 3000);
    rig.wait_health("3000 applied", |h| h.applied == 3000).await;
    rig.stop().await;
}

#[tokio::test]
async fn last_consumer_leaving_closes_the_connection_under_disconnect_policy() {
    let rig = Rig::start().await;
    let c = rig.engine.stream().await.unwrap();
    c.subscribe(rig.inst(&["NSE:INFY"]), Mode::Ltp)
        .await
        .unwrap();
    rig.wait_live(1).await;
    drop(c);
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
    rig.stop().await;
}

#[tokio::test]
async fn slow_stream_consumer_is_conflated_and_never_slows_others() {
    let rig = Rig::start().await;
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
