//! Built-in protocol simulator: real broker WebSocket + REST servers on 127.0.0.1 with fault
//! injection, so the demo and every test exercise the same code path as a real broker.
//!
//! One WebSocket port serves every protocol by path — Angel One SmartAPI WS 2.0 at
//! `/smart-stream`, Shoonya (Noren) at `/NorenWSTP/`, Flattrade (Noren) at `/PiConnectWSAPI/`,
//! Kite at any other path — and one HTTP port serves their REST endpoints, the instrument
//! masters and the `/sim` control API. One set of credentials ([`SimConfig`]) works for all.
//!
//! Layout: [`instruments`] (instrument master and broker keys), `masters` (the brokers'
//! master formats), [`market`] (seeded random walk), [`faults`] (fault state), `server`
//! (accept, routing, upgrade gate), `conn` (the connection loop, written once for every
//! protocol), `proto/` (one file per protocol), `rest/` (REST per broker + `/sim` control).

mod conn;
pub mod faults;
pub mod instruments;
pub mod market;
mod masters;
mod proto;
mod rest;
mod server;
mod stats;

pub use faults::Fault;
pub use instruments::{
    is_synthetic, synthetic_instruments, synthetic_key, synthetic_token, synthetic_tokens,
};
pub use stats::{ConnStats, SimStats};

use anyhow::Context as _;
use faults::FaultBoard;
use instruments::{Family, Instruments};
use market::Market;
use serde::Serialize;
use stats::Counters;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The instrument master compiled into the binary (Kite CSV format).
pub const EMBEDDED_INSTRUMENTS: &str = include_str!("../../assets/instruments.csv");

/// Exchanges with a Noren master file (`/{EXCH}_symbols.txt.zip`).
pub const NOREN_EXCHANGES: [&str; 8] = ["NSE", "NFO", "CDS", "BSE", "BFO", "BCD", "MCX", "NCX"];

/// A broker the simulator speaks for; each has its own paths (and so its own protocol).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimBroker {
    /// Zerodha Kite Connect (any WebSocket path not claimed by another broker).
    #[default]
    Kite,
    /// Angel One SmartAPI WebSocket 2.0 (`/smart-stream`).
    Angel,
    /// Shoonya / Finvasia, NorenOMS (`/NorenWSTP/`).
    Shoonya,
    /// Flattrade, NorenOMS (`/PiConnectWSAPI/`).
    Flattrade,
}

impl SimBroker {
    /// Every broker, in a fixed order.
    pub const ALL: [SimBroker; 4] = [
        SimBroker::Kite,
        SimBroker::Angel,
        SimBroker::Shoonya,
        SimBroker::Flattrade,
    ];

    /// Snake-case name (`kite`, `angel`, `shoonya`, `flattrade`).
    pub fn as_str(self) -> &'static str {
        match self {
            SimBroker::Kite => "kite",
            SimBroker::Angel => "angel",
            SimBroker::Shoonya => "shoonya",
            SimBroker::Flattrade => "flattrade",
        }
    }

    /// The broker whose WebSocket path this is (trailing slash and case ignored).
    pub fn for_ws_path(path: &str) -> SimBroker {
        let p = path.trim_end_matches('/');
        let is = |s: &str| p.eq_ignore_ascii_case(s);
        if is("/smart-stream") {
            SimBroker::Angel
        } else if is("/NorenWSTP") {
            SimBroker::Shoonya
        } else if is("/PiConnectWSAPI") || is("/PiConnectWSTp") {
            SimBroker::Flattrade
        } else {
            SimBroker::Kite
        }
    }

    pub(crate) fn family(self) -> Family {
        match self {
            SimBroker::Kite => Family::Kite,
            SimBroker::Angel => Family::Angel,
            SimBroker::Shoonya | SimBroker::Flattrade => Family::Noren,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed for every instrument's random walk (same seed, same price paths).
    pub seed: u64,
    /// Total ticks per second per connection, spread over its subscribed tokens.
    pub tick_rate: u32,
    /// The only `api_key` accepted.
    pub api_key: String,
    /// The only `access_token` accepted (also Angel's JWT and Noren's susertoken /
    /// accesstoken).
    pub access_token: String,
    /// The only client code / user id accepted (Angel `x-client-code`, Noren `uid`).
    pub client_code: String,
    /// The only Angel feed token accepted (`x-feed-token`).
    pub feed_token: String,
    /// Concurrent connections the Angel path allows without any fault (Angel's real limit: 3).
    pub angel_connection_limit: usize,
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
            client_code: "SIM001".into(),
            feed_token: "sim_feed_token".into(),
            angel_connection_limit: 3,
            heartbeat_interval: Duration::from_secs(1),
            ws_port: 0,
            http_port: 0,
            instruments_csv: None,
        }
    }
}

/// State shared by the listeners, every connection and the control handles.
pub(crate) struct Shared {
    pub api_key: String,
    pub access_token: String,
    pub client_code: String,
    pub feed_token: String,
    pub angel_connection_limit: usize,
    pub heartbeat: Duration,
    pub instruments: Instruments,
    /// Broker masters, built on first request.
    pub masters: Masters,
    /// When a session of each broker last closed (the cooldown fault's reference).
    pub last_close: Mutex<[Option<Instant>; 4]>,
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

/// Lazily built broker masters (immutable once built).
#[derive(Default)]
pub(crate) struct Masters {
    pub angel: OnceLock<String>,
    /// Per Noren exchange: the CSV and its zip.
    pub noren: [OnceLock<(String, Vec<u8>)>; 8],
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
    /// Count a refused credential.
    pub(crate) fn count_rejected_auth(&self) {
        self.counters.rejected_auth.fetch_add(1, Ordering::Relaxed);
    }

    /// Remember that a session of `broker` just closed.
    pub(crate) fn session_closed(&self, broker: SimBroker) {
        lock(&self.last_close)[broker.index()] = Some(Instant::now());
    }

    /// Whether a session of `broker` closed less than `window` ago.
    pub(crate) fn in_cooldown(&self, broker: SimBroker, window: Duration) -> bool {
        lock(&self.last_close)[broker.index()].is_some_and(|t| t.elapsed() < window)
    }

    fn stats(&self) -> SimStats {
        let c = &self.counters;
        let conns = lock(&self.conns);
        SimStats {
            accepted_tcp: c.accepted_tcp.load(Ordering::Relaxed),
            upgrades: c.upgrades.load(Ordering::Relaxed),
            rejected_auth: c.rejected_auth.load(Ordering::Relaxed),
            rejected_limit: c.rejected_limit.load(Ordering::Relaxed),
            rejected_cooldown: c.rejected_cooldown.load(Ordering::Relaxed),
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
            client_code: cfg.client_code,
            feed_token: cfg.feed_token,
            angel_connection_limit: cfg.angel_connection_limit,
            masters: Masters::default(),
            last_close: Mutex::new([None; 4]),
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

    /// Kite's WebSocket root, e.g. `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// Kite's REST root (also the `/sim` control root), e.g. `http://127.0.0.1:PORT`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// A broker's WebSocket URL as its official client takes it: Kite `ws://H:P`, Angel
    /// `ws://H:P/smart-stream`, Shoonya `ws://H:P/NorenWSTP/`, Flattrade
    /// `ws://H:P/PiConnectWSAPI/`.
    pub fn ws_url_for(&self, broker: SimBroker) -> String {
        let path = match broker {
            SimBroker::Kite => "",
            SimBroker::Angel => "/smart-stream",
            SimBroker::Shoonya => "/NorenWSTP/",
            SimBroker::Flattrade => "/PiConnectWSAPI/",
        };
        format!("ws://{}{path}", self.ws_addr)
    }

    /// A broker's REST root as its official client takes it: Kite and Angel `http://H:P`
    /// (routes `/user/profile`, `/rest/secure/angelbroking/...`), Shoonya
    /// `http://H:P/NorenWClientTP/`, Flattrade `http://H:P/PiConnectAPI/` (routes appended
    /// with their leading slash, `//GetQuotes`, are accepted).
    pub fn rest_url_for(&self, broker: SimBroker) -> String {
        let path = match broker {
            SimBroker::Kite | SimBroker::Angel => "",
            SimBroker::Shoonya => "/NorenWClientTP/",
            SimBroker::Flattrade => "/PiConnectAPI/",
        };
        format!("http://{}{path}", self.http_addr)
    }

    /// Where a broker's instrument master lives: Kite `http://H:P/instruments` (CSV), Angel
    /// `http://H:P/OpenAPI_File/files/OpenAPIScripMaster.json`; Shoonya and Flattrade the
    /// directory `http://H:P/` holding `{EXCH}_symbols.txt.zip` (and the unzipped
    /// `{EXCH}_symbols.txt`) for each of [`NOREN_EXCHANGES`].
    pub fn instruments_url_for(&self, broker: SimBroker) -> String {
        let path = match broker {
            SimBroker::Kite => "/instruments",
            SimBroker::Angel => "/OpenAPI_File/files/OpenAPIScripMaster.json",
            SimBroker::Shoonya | SimBroker::Flattrade => "/",
        };
        format!("http://{}{path}", self.http_addr)
    }

    /// Every broker's URLs as JSON: `{"kite":{"ws_url","rest_url","instruments_url"},...}`.
    pub fn broker_urls(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for b in SimBroker::ALL {
            m.insert(
                b.as_str().into(),
                serde_json::json!({
                    "ws_url": self.ws_url_for(b),
                    "rest_url": self.rest_url_for(b),
                    "instruments_url": self.instruments_url_for(b),
                }),
            );
        }
        serde_json::Value::Object(m)
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
