//! Built-in protocol simulator: a real Kite WebSocket + REST server on 127.0.0.1 with fault
//! injection, so the demo and every test exercise the same code path as a real broker.
//!
//! Layout: [`instruments`] (instrument master), [`market`] (seeded random walk), [`faults`]
//! (fault state and malformed frames), `server` (WebSocket), `rest` (Kite REST + `/sim` control).

pub mod faults;
pub mod instruments;
pub mod market;
mod rest;
mod server;

pub use faults::Fault;
pub use instruments::{is_synthetic, synthetic_instruments, synthetic_token, synthetic_tokens};

use crate::model::Mode;
use anyhow::Context as _;
use faults::FaultBoard;
use instruments::Instruments;
use market::Market;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The instrument master compiled into the binary (Kite CSV format).
pub const EMBEDDED_INSTRUMENTS: &str = include_str!("../../assets/instruments.csv");

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed for every instrument's random walk (same seed, same price paths).
    pub seed: u64,
    /// Total ticks per second per connection, spread over its subscribed tokens.
    pub tick_rate: u32,
    /// The only `api_key` accepted.
    pub api_key: String,
    /// The only `access_token` accepted.
    pub access_token: String,
    /// Idle time after which a 1-byte heartbeat is sent.
    pub heartbeat_interval: Duration,
    /// WebSocket port on 127.0.0.1 (0 = ephemeral).
    pub ws_port: u16,
    /// REST/control port on 127.0.0.1 (0 = ephemeral).
    pub http_port: u16,
    /// Instrument master: CSV text, or (a single line without commas) a path to a CSV file;
    /// `None` = [`EMBEDDED_INSTRUMENTS`].
    pub instruments_csv: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            tick_rate: 200,
            api_key: "sim_api_key".into(),
            access_token: "sim_access_token".into(),
            heartbeat_interval: Duration::from_secs(1),
            ws_port: 0,
            http_port: 0,
            instruments_csv: None,
        }
    }
}

/// Counters and per-connection views, as returned by [`SimControl::stats`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimStats {
    /// TCP connections accepted on the WebSocket port.
    pub accepted_tcp: u64,
    /// Successful WebSocket upgrades.
    pub upgrades: u64,
    /// Upgrades (and REST calls) answered 403.
    pub rejected_auth: u64,
    /// Upgrades (and REST calls) answered 429.
    pub rejected_limit: u64,
    /// Currently open WebSocket connections.
    pub open_connections: usize,
    /// Tick packets sent (all connections).
    pub ticks_sent: u64,
    /// 1-byte heartbeats sent.
    pub heartbeats_sent: u64,
    /// Binary data frames sent (tick frames and malformed frames; heartbeats not included).
    pub frames_sent: u64,
    /// REST requests to the Kite endpoints (not `/sim`), rejected ones included.
    pub rest_requests: u64,
    /// REST requests to `/quote`, `/quote/ltp` and `/quote/ohlc` (rejected ones included).
    pub quote_requests: u64,
    /// Currently open connections, oldest first.
    pub connections: Vec<ConnStats>,
}

/// One open WebSocket connection as the simulator sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnStats {
    /// Connection id (increasing).
    pub id: u64,
    /// Subscribed tokens and their modes.
    pub subscriptions: BTreeMap<u32, Mode>,
    /// Subscribe messages received.
    pub subscribe_messages: u64,
    /// Tokens over all subscribe messages (duplicates included).
    pub tokens_subscribed_total: u64,
    /// Tokens subscribed while already subscribed on this connection.
    pub duplicate_subscribes: u64,
}

/// Global counters; atomics so hot paths never take a lock for them.
#[derive(Default)]
pub(crate) struct Counters {
    pub accepted_tcp: AtomicU64,
    pub upgrades: AtomicU64,
    pub rejected_auth: AtomicU64,
    pub rejected_limit: AtomicU64,
    pub ticks_sent: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub rest_requests: AtomicU64,
    pub quote_requests: AtomicU64,
}

/// State shared by the listeners, every connection and the control handles.
pub(crate) struct Shared {
    pub api_key: String,
    pub access_token: String,
    pub heartbeat: Duration,
    pub instruments: Instruments,
    pub market: Mutex<Market>,
    pub faults: Arc<FaultBoard>,
    pub tick_rate: AtomicU32,
    pub counters: Counters,
    pub conns: Mutex<BTreeMap<u64, ConnStats>>,
    pub next_conn: AtomicU64,
    /// Becomes true (or its sender is dropped) when the simulator stops.
    pub shutdown: watch::Receiver<bool>,
    pub rt: tokio::runtime::Handle,
}

/// Resolve once the simulator is stopping (flag set or sender dropped). Returns `()` so no
/// non-Send watch guard lives in callers' futures.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Lock a std mutex, ignoring poisoning: simulator state stays usable after a panicking task.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn stats(&self) -> SimStats {
        let c = &self.counters;
        let conns = lock(&self.conns);
        SimStats {
            accepted_tcp: c.accepted_tcp.load(Ordering::Relaxed),
            upgrades: c.upgrades.load(Ordering::Relaxed),
            rejected_auth: c.rejected_auth.load(Ordering::Relaxed),
            rejected_limit: c.rejected_limit.load(Ordering::Relaxed),
            open_connections: conns.len(),
            ticks_sent: c.ticks_sent.load(Ordering::Relaxed),
            heartbeats_sent: c.heartbeats_sent.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            rest_requests: c.rest_requests.load(Ordering::Relaxed),
            quote_requests: c.quote_requests.load(Ordering::Relaxed),
            connections: conns.values().cloned().collect(),
        }
    }
}

/// A running simulator. Dropping it stops it too (without waiting).
pub struct Sim {
    shared: Arc<Shared>,
    ws_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sim {
    /// Bind both listeners on 127.0.0.1 and start serving.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        let csv = match cfg.instruments_csv {
            None => EMBEDDED_INSTRUMENTS.to_string(),
            Some(s) if s.contains('\n') || s.contains(',') => s,
            Some(path) => std::fs::read_to_string(&path)
                .with_context(|| format!("reading instrument master {path}"))?,
        };
        let instruments = Instruments::parse(csv)
            .map_err(|e| anyhow::anyhow!("simulator instrument master: {e}"))?;
        let ws = TcpListener::bind(("127.0.0.1", cfg.ws_port))
            .await
            .context("binding simulator WebSocket port")?;
        let http = TcpListener::bind(("127.0.0.1", cfg.http_port))
            .await
            .context("binding simulator REST port")?;
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            api_key: cfg.api_key,
            access_token: cfg.access_token,
            heartbeat: cfg.heartbeat_interval.max(Duration::from_millis(1)),
            instruments,
            market: Mutex::new(Market::new(cfg.seed)),
            faults: Arc::new(FaultBoard::new()),
            tick_rate: AtomicU32::new(cfg.tick_rate),
            counters: Counters::default(),
            conns: Mutex::new(BTreeMap::new()),
            next_conn: AtomicU64::new(1),
            shutdown: shutdown.clone(),
            rt: tokio::runtime::Handle::current(),
        });
        let (ws_addr, http_addr) = (ws.local_addr()?, http.local_addr()?);
        let tasks = vec![
            tokio::spawn(server::run(ws, shared.clone(), shutdown.clone())),
            tokio::spawn(rest::run(http, shared.clone(), shutdown)),
        ];
        tracing::info!(%ws_addr, %http_addr, instruments = shared.instruments.len(), "simulator listening");
        Ok(Sim {
            shared,
            ws_addr,
            http_addr,
            stop: Some(stop),
            tasks,
        })
    }

    /// WebSocket root, e.g. `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// REST root (also the `/sim` control root), e.g. `http://127.0.0.1:PORT`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// A cheap handle to inject faults and read stats.
    pub fn control(&self) -> SimControl {
        SimControl {
            shared: self.shared.clone(),
        }
    }

    /// Stop the listeners and every connection, and wait for them to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for mut t in std::mem::take(&mut self.tasks) {
            // Connections are aborted by the listener task; bound the wait anyway.
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

/// Control handle: fault injection, stats, tick rate. Clone freely.
#[derive(Clone)]
pub struct SimControl {
    shared: Arc<Shared>,
}

impl SimControl {
    /// Inject a fault; `None` = until [`SimControl::clear`]. One-shot faults ignore the duration.
    pub fn inject(&self, fault: Fault, duration: Option<Duration>) {
        faults::inject(&self.shared, fault, duration);
    }

    /// Clear all persistent faults.
    pub fn clear(&self) {
        self.shared.faults.clear();
    }

    /// A snapshot of the counters and open connections.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Change the per-connection tick rate (takes effect on the next 10 ms batch).
    pub fn set_tick_rate(&self, ticks_per_sec: u32) {
        self.shared
            .tick_rate
            .store(ticks_per_sec, Ordering::Relaxed);
    }

    /// Active persistent faults with the time left on each (`None` = until cleared).
    pub fn active_faults(&self) -> Vec<(Fault, Option<Duration>)> {
        self.shared.faults.active()
    }
}

fn control_endpoint(control_url: &str, path: &str) -> String {
    format!("{}{path}", control_url.trim_end_matches('/'))
}

async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    anyhow::bail!("simulator control answered HTTP {status}: {body}")
}

/// Inject a fault into a running simulator through its `/sim` control endpoint.
pub async fn inject_remote(
    control_url: &str,
    fault: &Fault,
    seconds: Option<f64>,
) -> anyhow::Result<()> {
    let mut body = serde_json::to_value(fault)?;
    if let (Some(s), Some(obj)) = (seconds, body.as_object_mut()) {
        obj.insert("seconds".into(), serde_json::json!(s));
    }
    let resp = reqwest::Client::new()
        .post(control_endpoint(control_url, "/sim/faults"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("contacting simulator at {control_url}"))?;
    check(resp).await.map(drop)
}

/// Clear every persistent fault of a running simulator.
pub async fn clear_remote(control_url: &str) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .delete(control_endpoint(control_url, "/sim/faults"))
        .send()
        .await
        .with_context(|| format!("contacting simulator at {control_url}"))?;
    check(resp).await.map(drop)
}

/// Stats and active faults of a running simulator (`GET /sim/state`).
pub async fn state_remote(control_url: &str) -> anyhow::Result<serde_json::Value> {
    let resp = reqwest::Client::new()
        .get(control_endpoint(control_url, "/sim/state"))
        .send()
        .await
        .with_context(|| format!("contacting simulator at {control_url}"))?;
    Ok(check(resp).await?.json().await?)
}

/// Change the tick rate of a running simulator (`POST /sim/tick_rate`).
pub async fn tick_rate_remote(control_url: &str, ticks_per_sec: u32) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .post(control_endpoint(control_url, "/sim/tick_rate"))
        .json(&serde_json::json!({ "ticks_per_sec": ticks_per_sec }))
        .send()
        .await
        .with_context(|| format!("contacting simulator at {control_url}"))?;
    check(resp).await.map(drop)
}
