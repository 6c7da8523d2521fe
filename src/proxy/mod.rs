//! The local proxy: an OpenAlgo-compatible WebSocket server (openalgo.md §1) on 127.0.0.1
//! through which strategy scripts share this process's one upstream connection. Every
//! authenticated client is one consumer of the engine (refcounted subscriptions), with its own
//! bounded, conflating queue; nothing a client sends can touch another client's stream.
//!
//! Layout: `protocol` (parse client frames, build replies: pure), `market_data` (tick →
//! message: pure), `status` (connection_status / heartbeat: pure), `symbols` (OpenAlgo
//! symbology), `limits` (rate limits: pure), `apikey` (the key file), `client` (one task per
//! connection).

pub mod apikey;
pub mod cache;
mod client;
pub mod limits;
pub mod market_data;
pub mod protocol;
pub mod status;
pub mod symbols;

use crate::engine::EngineHandle;
use crate::instruments::InstrumentMaster;
use crate::secret::Secret;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Proxy settings (`[proxy]` in config.toml).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Listen address (default 127.0.0.1:8765, OpenAlgo's port).
    pub listen: SocketAddr,
    /// Interval of the `heartbeat` message.
    pub heartbeat: Duration,
    /// A socket that has not authenticated within this is closed with 4401.
    pub auth_grace: Duration,
    /// Bound of each client's queue; when full it conflates per instrument.
    pub client_queue: usize,
    /// A client whose socket accepts nothing for this long is closed as stalled.
    pub stall_timeout: Duration,
    /// WebSocket ping interval; a client silent for ping interval + `pong_timeout` is closed.
    pub ping_interval: Duration,
    /// See `ping_interval`.
    pub pong_timeout: Duration,
    /// Largest client message handled; larger ones get an error (up to 1 MiB the connection
    /// is kept; beyond that the WebSocket layer closes it with 1009).
    pub max_message: usize,
    /// Client messages per second allowed (token bucket)...
    pub rate: f64,
    /// ...with bursts up to this.
    pub burst: u32,
    /// Messages refused for the rate limit in one flood before the client is closed (1008).
    pub flood_close: u32,
    /// Failed authentications on one connection before it is closed.
    pub auth_failures_per_connection: u32,
    /// Failed authentications across all connections per `auth_window` before every attempt
    /// is refused until the window clears.
    pub auth_failures_max: usize,
    /// See `auth_failures_max`.
    pub auth_window: Duration,
    /// Most connections at once; more are closed with 1013 (try again later).
    pub max_clients: usize,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8765)),
            heartbeat: Duration::from_secs(5),
            auth_grace: Duration::from_secs(15),
            client_queue: 1024,
            stall_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            max_message: 64 * 1024,
            rate: 100.0,
            burst: 200,
            flood_close: 1000,
            auth_failures_per_connection: 3,
            auth_failures_max: 10,
            auth_window: Duration::from_secs(60),
            max_clients: 256,
        }
    }
}

/// One connection as the health pane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// Connection id (unique in this process).
    pub id: u64,
    /// Peer address.
    pub peer: String,
    /// Whether it authenticated (only authenticated clients are engine consumers).
    pub authenticated: bool,
    /// Subscriptions held (instrument × mode).
    pub subscriptions: usize,
    /// Ticks conflated away because it was slow.
    pub dropped: u64,
}

/// The proxy's counters and clients, published on a watch channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Address actually bound.
    pub listen: String,
    /// Open connections.
    pub clients: Vec<ClientInfo>,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Failed authentications since start.
    pub auth_failures: u64,
    /// Clients closed because they stopped reading.
    pub closed_stalled: u64,
    /// Clients closed for flooding.
    pub closed_flood: u64,
    /// Connections refused at `max_clients`.
    pub refused: u64,
}

impl ProxyStats {
    /// Authenticated clients.
    pub fn authenticated(&self) -> usize {
        self.clients.iter().filter(|c| c.authenticated).count()
    }

    fn client_mut(&mut self, id: u64) -> Option<&mut ClientInfo> {
        self.clients.iter_mut().find(|c| c.id == id)
    }
}

/// What every client task shares.
struct Shared {
    cfg: ProxyConfig,
    engine: EngineHandle,
    master: Arc<InstrumentMaster>,
    key: Secret,
    broker: String,
    auth: Mutex<limits::AuthLimiter>,
    stats: watch::Sender<ProxyStats>,
    cache: cache::MessageCache,
}

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    stats: watch::Receiver<ProxyStats>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Bind and start serving. A busy port is an error naming the address.
    pub async fn start(
        cfg: ProxyConfig,
        engine: EngineHandle,
        master: Arc<InstrumentMaster>,
        key: Secret,
    ) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind(cfg.listen).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another tickmux or OpenAlgo proxy is probably running; set [proxy] listen)"
            } else {
                ""
            };
            anyhow::anyhow!("proxy: cannot listen on {}: {e}{hint}", cfg.listen)
        })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "proxy listening beyond loopback: anyone who can reach it and knows the key can use the feed");
        }
        let broker = engine.health().borrow().broker.clone();
        let (stats_tx, stats_rx) = watch::channel(ProxyStats {
            listen: addr.to_string(),
            ..Default::default()
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            auth: Mutex::new(limits::AuthLimiter::new(
                cfg.auth_failures_max,
                cfg.auth_window,
            )),
            cfg,
            engine,
            master,
            key,
            broker,
            stats: stats_tx,
            cache: cache::MessageCache::default(),
        });
        tracing::info!(%addr, "proxy listening");
        let accept = tokio::spawn(accept_loop(listener, shared, stop_rx));
        Ok(Proxy {
            addr,
            stop: stop_tx,
            stats: stats_rx,
            accept,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Clients and counters.
    pub fn stats(&self) -> watch::Receiver<ProxyStats> {
        self.stats.clone()
    }

    /// Stop accepting, close every client with 1001 (going away), and wait (bounded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut stats = self.stats.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            stats.wait_for(|s| s.clients.is_empty()),
        )
        .await;
        self.accept.abort();
    }
}

/// Resolves once shutdown was asked for (the guard `wait_for` returns must not live across
/// an await in a select arm).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = next_id;
                    next_id += 1;
                    let full = {
                        let mut full = false;
                        shared.stats.send_modify(|s| {
                            s.accepted += 1;
                            if s.clients.len() >= shared.cfg.max_clients {
                                s.refused += 1;
                                full = true;
                            } else {
                                s.clients.push(ClientInfo {
                                    id,
                                    peer: peer.to_string(),
                                    authenticated: false,
                                    subscriptions: 0,
                                    dropped: 0,
                                });
                            }
                        });
                        full
                    };
                    tokio::spawn(client::serve(stream, peer, id, full, shared.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
