//! Proxy benchmarks (a bench command that prints figures; not a timed test):
//!   cargo bench --bench proxy                      # fan-out scenarios
//!   cargo bench --bench proxy -- fanout
//!   cargo bench --bench proxy -- stall [MINUTES]   # RSS with one stalled client (default 10)
//!
//! `tickmux sim` runs in a child process at 10 000 ticks/s over 500 instruments (quote mode).
//! The engine, the proxy and the WebSocket clients run in this process on a 2-worker runtime,
//! so the clients' own frame decoding shares the two cores with the proxy (the figures are
//! pessimistic for that). Latency is from the engine's socket read of a tick to a client
//! receiving its `market_data` message: a probe consumer records each tick's read time by
//! (token, volume), which is unique per tick in the simulator's quote stream.

#[path = "support/mod.rs"]
mod support;

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{SimProc, cpu_secs, rss_mb, start_sim};
use tickmux::adapters::Endpoints;
use tickmux::adapters::kite::Kite;
use tickmux::engine::{self, EngineConfig, EngineHandle, EngineState};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::{FeedKey, Instrument, Mode};
use tickmux::proxy::{Proxy, ProxyConfig};
use tickmux::secret::Secret;
use tokio::time::Instant;

const RATE: u32 = 10_000;
const INSTRUMENTS: u32 = 500;
const KEY: &str = "bench-proxy-key-0123456789abcdef";
const SHARDS: usize = 64;

/// Synthetic NFO tokens the simulator generates on demand (clients name them by token).
fn token(i: u32) -> u32 {
    0x0100_0000 + (i << 8) + 2
}

fn instruments() -> Vec<Arc<Instrument>> {
    (0..INSTRUMENTS)
        .map(|i| {
            Arc::new(Instrument {
                exchange: "NFO".into(),
                symbol: token(i).to_string(),
                key: FeedKey::kite(token(i)),
            })
        })
        .collect()
}

/// Read times of ticks by (token, volume), sharded so clients rarely contend.
struct ReadTimes {
    shards: Vec<Mutex<HashMap<(u32, u64), Instant>>>,
}

impl ReadTimes {
    fn new() -> ReadTimes {
        ReadTimes {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
    fn shard(&self, token: u32) -> &Mutex<HashMap<(u32, u64), Instant>> {
        &self.shards[(token >> 8) as usize % SHARDS]
    }
    fn put(&self, token: u32, volume: u64, at: Instant) {
        // A run is seconds long: at most a few hundred thousand entries, kept to the end.
        self.shard(token)
            .lock()
            .unwrap()
            .insert((token, volume), at);
    }
    fn get(&self, token: u32, volume: u64) -> Option<Instant> {
        self.shard(token)
            .lock()
            .unwrap()
            .get(&(token, volume))
            .copied()
    }
}

struct Setup {
    _sim: SimProc,
    engine: EngineHandle,
    proxy: Proxy,
}

async fn setup(pcfg: ProxyConfig) -> Setup {
    let sim = start_sim(RATE);
    let cfg = EngineConfig::new(Endpoints {
        ws_url: sim.ws_url.clone(),
        rest_url: sim.rest_url.clone(),
        instruments_url: None,
    });
    let master = InstrumentMaster::fetch(&Kite, &cfg.endpoints, &sim.creds)
        .await
        .expect("instrument master");
    let engine = engine::spawn(Arc::new(Kite), sim.creds.clone(), cfg, true);
    let proxy = Proxy::start(pcfg, engine.clone(), Arc::new(master), Secret::new(KEY))
        .await
        .expect("proxy");
    Setup {
        _sim: sim,
        engine,
        proxy,
    }
}

fn sub_msg(tokens: &[u32], mode: u8) -> String {
    let items: Vec<serde_json::Value> = tokens
        .iter()
        .map(|t| serde_json::json!({"symbol": t.to_string(), "exchange": "NFO"}))
        .collect();
    serde_json::json!({"action": "subscribe", "symbols": items, "mode": mode}).to_string()
}

/// The number after `"key":` in a JSON text (no full parse on the hot path).
fn num_after(s: &str, key: &str) -> Option<u64> {
    let at = s.find(key)? + key.len();
    let rest = s[at..].trim_start_matches([':', '"', ' ']);
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

struct ClientResult {
    hist: Histogram<u64>,
    received: u64,
    unmatched: u64,
    /// Messages that beat the probe to it: resolved after the run.
    pending: Vec<(u32, u64, Instant)>,
}

async fn client(
    url: String,
    tokens: Vec<u32>,
    times: Arc<ReadTimes>,
    measuring: Arc<AtomicBool>,
    ready: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ClientResult {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let auth = serde_json::json!({"action": "authenticate", "api_key": KEY}).to_string();
    ws.send(Message::Text(auth.into())).await.unwrap();
    ws.send(Message::Text(sub_msg(&tokens, 2).into()))
        .await
        .unwrap();
    let mut r = ClientResult {
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap(),
        received: 0,
        unmatched: 0,
        pending: Vec::new(),
    };
    let mut counted_ready = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            m = ws.next() => {
                let Some(Ok(m)) = m else { break };
                let Message::Text(t) = m else { continue };
                let t = t.as_str();
                if !t.starts_with("{\"type\":\"market_data\"") {
                    continue;
                }
                if !counted_ready {
                    counted_ready = true;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let now = Instant::now();
                r.received += 1;
                match (num_after(t, "\"symbol\""), num_after(t, "\"volume\"")) {
                    (Some(tok), Some(vol)) => match times.get(tok as u32, vol) {
                        Some(at) => {
                            let ns = now.saturating_duration_since(at).as_nanos() as u64;
                            let _ = r.hist.record(ns.max(1));
                        }
                        None => r.pending.push((tok as u32, vol, now)),
                    },
                    _ => r.unmatched += 1,
                }
            }
        }
    }
    r
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `clients` clients; each subscribes `per_client` instruments, either all the same first
/// ones (`shared`) or its own slice.
async fn fanout(clients: usize, per_client: usize, shared: bool, secs: u64) {
    let s = setup(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_clients: 1000,
        ..ProxyConfig::default()
    })
    .await;
    let all = instruments();
    // The probe: every instrument, quote mode, recording read times.
    let probe = s.engine.stream().await.unwrap();
    probe.subscribe(all.clone(), Mode::Quote).await.unwrap();
    let times = Arc::new(ReadTimes::new());
    let measuring = Arc::new(AtomicBool::new(false));
    let upstream = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let probe_task = {
        let (times, measuring, upstream) = (times.clone(), measuring.clone(), upstream.clone());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(1024);
            while probe.recv_many(&mut batch, 1024).await > 0 {
                for it in batch.drain(..) {
                    if let Some(q) = it.tick.quote {
                        times.put(it.tick.key.token, q.volume, it.read_at);
                    }
                    if measuring.load(Ordering::Relaxed) {
                        upstream.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let ready = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let tokens: Vec<u32> = if shared {
            (0..per_client as u32).map(token).collect()
        } else {
            (0..per_client as u32)
                .map(|i| token((c * per_client) as u32 % INSTRUMENTS + i))
                .collect()
        };
        tasks.push(tokio::spawn(client(
            s.proxy.url(),
            tokens,
            times.clone(),
            measuring.clone(),
            ready.clone(),
            stop_rx.clone(),
        )));
    }
    let mut h = s.engine.health();
    tokio::time::timeout(
        Duration::from_secs(30),
        h.wait_for(|h| h.state == EngineState::Live),
    )
    .await
    .expect("live")
    .unwrap();
    let t0 = std::time::Instant::now();
    while ready.load(Ordering::Relaxed) < clients as u64 {
        assert!(t0.elapsed() < Duration::from_secs(60), "clients not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    // Before the run's own bookkeeping grows: the proxy's steady state.
    let rss = rss_mb();
    let cpu0 = cpu_secs();
    let w0 = std::time::Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let wall = w0.elapsed().as_secs_f64();
    let cpu = (cpu_secs() - cpu0) / wall * 100.0;
    let _ = stop_tx.send(true);
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let (mut received, mut unmatched) = (0u64, 0u64);
    // Let the probe catch up, then resolve what raced it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in tasks {
        let r = t.await.unwrap();
        total.add(&r.hist).unwrap();
        received += r.received;
        unmatched += r.unmatched;
        for (tok, vol, at) in r.pending {
            match times.get(tok, vol) {
                Some(read) => {
                    let ns = at.saturating_duration_since(read).as_nanos() as u64;
                    let _ = total.record(ns.max(1));
                }
                None => unmatched += 1,
            }
        }
    }
    let dropped: u64 = s
        .proxy
        .stats()
        .borrow()
        .clients
        .iter()
        .map(|c| c.dropped)
        .sum();
    println!(
        "  {clients:>3} clients x {per_client:>3} instr ({}) | upstream {:>6.0} ticks/s | delivered {:>8.0} msg/s | p50 {:>7.0} µs  p99 {:>7.0} µs  p99.9 {:>7.0} µs  max {:>7.0} µs | CPU {:>5.1} % | RSS {:>5.1} MB | conflated {dropped} | unmatched {unmatched}",
        if shared { "same" } else { "own slices" },
        upstream.load(Ordering::Relaxed) as f64 / wall,
        received as f64 / wall,
        us(&total, 0.5),
        us(&total, 0.99),
        us(&total, 0.999),
        total.max() as f64 / 1000.0,
        cpu,
        rss,
    );
    probe_task.abort();
    s.proxy.shutdown().await;
    s.engine.shutdown().await;
}

/// One stalled client (never reads, a 4 KiB receive buffer, not closed: stall limit 1 h)
/// next to one reading client, for `minutes`; RSS sampled every 30 s must stay flat.
async fn stall(minutes: u64) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let s = setup(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        stall_timeout: Duration::from_secs(3600),
        ..ProxyConfig::default()
    })
    .await;
    let tokens: Vec<u32> = (0..INSTRUMENTS).map(token).collect();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.proxy.local_addr()).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(s.proxy.url(), tcp)
        .await
        .unwrap();
    let auth = serde_json::json!({"action": "authenticate", "api_key": KEY}).to_string();
    stalled
        .send(Message::Text(auth.clone().into()))
        .await
        .unwrap();
    stalled
        .send(Message::Text(sub_msg(&tokens, 3).into()))
        .await
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let good = {
        let (url, tokens, received) = (s.proxy.url(), tokens.clone(), received.clone());
        tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            ws.send(Message::Text(auth.into())).await.unwrap();
            ws.send(Message::Text(sub_msg(&tokens, 3).into()))
                .await
                .unwrap();
            while let Some(Ok(_)) = ws.next().await {
                received.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    println!(
        "stall: 1 stalled + 1 reading client, 500 instruments in depth mode, 10 000 ticks/s, {minutes} min"
    );
    let start = std::time::Instant::now();
    let mut samples = Vec::new();
    let mut last = 0u64;
    while start.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let st = s.proxy.stats().borrow().clone();
        let dropped: Vec<u64> = st.clients.iter().map(|c| c.dropped).collect();
        let got = received.load(Ordering::Relaxed);
        let rss = rss_mb();
        samples.push(rss);
        println!(
            "  t={:>4.0} s  RSS {:>6.1} MB  reading client {:>7.0} msg/s  conflated per client {:?}  clients {}",
            start.elapsed().as_secs_f64(),
            rss,
            (got - last) as f64 / 30.0,
            dropped,
            st.clients.len()
        );
        last = got;
    }
    let first = samples.first().copied().unwrap_or(0.0);
    let max = samples.iter().copied().fold(0.0, f64::max);
    println!(
        "  RSS first sample {first:.1} MB, max {max:.1} MB, last {:.1} MB",
        samples.last().copied().unwrap_or(0.0)
    );
    good.abort();
    drop(stalled);
    s.proxy.shutdown().await;
    s.engine.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    // `cargo bench --bench proxy -- 10x500` runs one fan-out scenario.
    rt.block_on(async {
        // (name, clients, instruments per client, all the same ones?)
        let scenarios = [
            ("1x500", 1, 500, true),
            ("10x500", 10, 500, true),
            ("100x500", 100, 500, true),
            ("100x5", 100, 5, false),
            ("100x50", 100, 50, false),
        ];
        let picked: Vec<_> = scenarios
            .iter()
            .filter(|s| args.iter().any(|a| a == s.0))
            .collect();
        if want("fanout") || !picked.is_empty() {
            println!(
                "fanout: 10 000 ticks/s upstream over 500 instruments (quote mode), 10 s per run"
            );
            for (_, n, per, same) in if picked.is_empty() {
                scenarios.iter().collect()
            } else {
                picked
            } {
                fanout(*n, *per, *same, 10).await;
            }
        }
        if args.iter().any(|a| a == "stall") {
            let minutes = args
                .iter()
                .find_map(|a| a.parse::<u64>().ok())
                .unwrap_or(10);
            stall(minutes).await;
        }
    });
}
