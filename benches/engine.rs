//! Engine benchmarks (a bench command that prints figures; not a timed test):
//!   cargo bench --bench engine              # all scenarios
//!   cargo bench --bench engine -- fanout    # throughput / latency / CPU / RSS only
//!   cargo bench --bench engine -- recovery  # recovery and detection times only
//!
//! The simulator runs as a separate `tickmux sim` process so the CPU and RSS figures are the
//! engine's and its consumers' alone.

#[path = "support/mod.rs"]
mod support;

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Duration;
use support::{SimProc, cpu_secs, rss_mb, start_sim};
use tickmux::adapters::kite::Kite;
use tickmux::adapters::{Endpoints, ErrorKind};
use tickmux::engine::{self, EngineConfig, EngineHandle, EngineState};
use tickmux::model::{FeedKey, Instrument, Mode};
use tickmux::sim::Fault;
use tokio::time::Instant;

/// Synthetic NFO instruments the simulator generates on demand.
fn synthetic(n: u32) -> Vec<Arc<Instrument>> {
    (0..n)
        .map(|i| {
            Arc::new(Instrument {
                exchange: "NFO".into(),
                symbol: format!("SYN{i}"),
                key: FeedKey::kite(0x0100_0000 + (i << 8) + 2),
            })
        })
        .collect()
}

fn engine_for(sim: &SimProc, tweak: impl FnOnce(&mut EngineConfig)) -> EngineHandle {
    let mut cfg = EngineConfig::new(Endpoints {
        ws_url: sim.ws_url.clone(),
        rest_url: sim.rest_url.clone(),
        instruments_url: None,
    });
    tweak(&mut cfg);
    engine::spawn(Arc::new(Kite), sim.creds.clone(), cfg, true)
}

async fn wait_state(e: &EngineHandle, s: EngineState, limit: Duration) {
    let mut h = e.health();
    tokio::time::timeout(limit, h.wait_for(|h| h.state == s))
        .await
        .expect("state reached")
        .expect("engine alive");
}

async fn fanout(consumers: usize, instruments: u32, rate: u32, secs: u64) {
    let sim = start_sim(rate);
    let e = engine_for(&sim, |_| {});
    let insts = synthetic(instruments);
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..consumers {
        let c = e.stream().await.unwrap();
        c.subscribe(insts.clone(), Mode::Quote).await.unwrap();
        let mut stop = stop_rx.clone();
        let measuring = measuring.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut n = 0u64;
            let mut batch = Vec::with_capacity(1024);
            loop {
                tokio::select! {
                    got = c.recv_many(&mut batch, 1024) => {
                        if got == 0 { break; }
                        if measuring.load(std::sync::atomic::Ordering::Relaxed) {
                            for it in &batch {
                                let ns = it.read_at.elapsed().as_nanos() as u64;
                                let _ = h.record(ns.max(1));
                            }
                            n += batch.len() as u64;
                        }
                        batch.clear();
                    }
                    _ = stop.changed() => break,
                }
            }
            (h, n, c.dropped())
        }));
    }
    wait_state(&e, EngineState::Live, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let t0 = Instant::now();
    let cpu0 = cpu_secs();
    let ticks0 = e.health().borrow().ticks_total;
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let dt = t0.elapsed().as_secs_f64();
    let cpu = (cpu_secs() - cpu0) / dt * 100.0;
    let ticks = e.health().borrow().ticks_total - ticks0;
    let rss = rss_mb();
    let _ = stop_tx.send(true);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut delivered = 0;
    let mut drops = 0;
    for t in tasks {
        let (h, n, d) = t.await.unwrap();
        all.add(h).unwrap();
        delivered += n;
        drops += d;
    }
    println!(
        "fanout consumers={consumers:<3} instruments={instruments} rate={rate}/s: upstream {:.0} ticks/s, delivered {:.0} items/s, latency socket-read→consumer p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs max {:.1} µs, CPU {:.1} % of a core, RSS {:.1} MB, conflated {drops}",
        ticks as f64 / dt,
        delivered as f64 / dt,
        all.value_at_quantile(0.50) as f64 / 1e3,
        all.value_at_quantile(0.99) as f64 / 1e3,
        all.value_at_quantile(0.999) as f64 / 1e3,
        all.max() as f64 / 1e3,
        cpu,
        rss,
    );
    e.shutdown().await;
}

async fn recovery() {
    // 1. Fault cleared → first tick, 3000 instruments, measured from the moment the retry
    //    fires (state connecting after a backoff) to state live (first tick).
    let sim = start_sim(10_000);
    let e = engine_for(&sim, |c| {
        c.backoff.base = Duration::from_millis(200);
        c.backoff.cap = Duration::from_millis(200);
        c.backoff.max_attempts = 1000;
    });
    let c = e.stream().await.unwrap();
    c.subscribe(synthetic(3000), Mode::Quote).await.unwrap();
    wait_state(&e, EngineState::Live, Duration::from_secs(10)).await;
    let mut samples = Vec::new();
    for _ in 0..10 {
        tickmux::sim::inject_remote(&sim.control_url, &Fault::Reject429, None)
            .await
            .unwrap();
        tickmux::sim::inject_remote(&sim.control_url, &Fault::Close { code: 1000 }, None)
            .await
            .unwrap();
        wait_state(&e, EngineState::Backoff, Duration::from_secs(10)).await;
        tickmux::sim::clear_remote(&sim.control_url).await.unwrap();
        let mut h = e.health();
        // Skip attempts that started before the clear took effect.
        h.wait_for(|h| h.state == EngineState::Backoff)
            .await
            .unwrap();
        h.wait_for(|h| h.state != EngineState::Backoff)
            .await
            .unwrap();
        let fired = Instant::now();
        h.wait_for(|h| h.state == EngineState::Live || h.state == EngineState::Backoff)
            .await
            .unwrap();
        if h.borrow().state == EngineState::Live {
            samples.push(fired.elapsed().as_secs_f64() * 1e3);
        }
        while c.try_recv().is_some() {}
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if samples.is_empty() {
        println!("recovery: no clean samples");
    } else {
        println!(
            "recovery with 3000 instruments, retry fired → first tick: n={} min {:.1} ms, median {:.1} ms, max {:.1} ms (target ≤ 300 ms)",
            samples.len(),
            samples[0],
            samples[samples.len() / 2],
            samples[samples.len() - 1]
        );
    }
    e.shutdown().await;
    drop(sim);

    // 2. Blackhole detection with the default Kite transport timeout (3 s).
    let sim = start_sim(1000);
    let e = engine_for(&sim, |_| {});
    let c = e.stream().await.unwrap();
    c.subscribe(synthetic(50), Mode::Quote).await.unwrap();
    let mut det = Vec::new();
    for _ in 0..3 {
        wait_state(&e, EngineState::Live, Duration::from_secs(70)).await;
        let t0 = Instant::now();
        tickmux::sim::inject_remote(&sim.control_url, &Fault::Blackhole, None)
            .await
            .unwrap();
        let mut h = e.health();
        h.wait_for(|h| {
            h.last_error.as_ref().is_some_and(|e| {
                e.kind == ErrorKind::TransportStall && h.state != EngineState::Live
            })
        })
        .await
        .unwrap();
        det.push(t0.elapsed().as_secs_f64());
        tickmux::sim::clear_remote(&sim.control_url).await.unwrap();
        e.force_reconnect().await.unwrap();
    }
    println!(
        "blackhole detected after: {} s (transport_timeout 3 s; target ≤ 3 s + one check period)",
        det.iter()
            .map(|d| format!("{d:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 3. Heartbeats-only stall detection with the default stale_after (10 s).
    let mut det = Vec::new();
    for _ in 0..2 {
        wait_state(&e, EngineState::Live, Duration::from_secs(70)).await;
        let t0 = Instant::now();
        tickmux::sim::inject_remote(&sim.control_url, &Fault::HeartbeatsOnly, None)
            .await
            .unwrap();
        wait_state(&e, EngineState::Stale, Duration::from_secs(30)).await;
        det.push(t0.elapsed().as_secs_f64());
        tickmux::sim::clear_remote(&sim.control_url).await.unwrap();
        e.force_reconnect().await.unwrap();
    }
    println!(
        "heartbeats-only stall detected after: {} s (stale_after 10 s; target ≤ 11 s)",
        det.iter()
            .map(|d| format!("{d:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    e.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if want("fanout") {
            fanout(1, 500, 10_000, 10).await;
            fanout(100, 500, 10_000, 10).await;
        }
        if want("recovery") {
            recovery().await;
        }
    });
}
