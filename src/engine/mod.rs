//! The shared-feed engine: one tokio task per upstream account owning the connection, the
//! subscription registry, backoff and both watchdogs, and publishing ticks (conflated book and
//! bounded streams), health (watch channel) and events (broadcast).

pub mod backoff;
pub mod book;
pub mod fanout;
pub mod health;
pub mod registry;
mod task;

use crate::adapters::{Adapter, Credentials, Endpoints};
use crate::model::{FeedKey, Instrument, Mode};
use backoff::BackoffConfig;
use book::QuoteBook;
use fanout::{Slot, StreamItem};
use health::Health;
use registry::{ConsumerId, SubscribeError};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use health::EngineState;

/// What the engine does when its last consumer leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// Close the upstream connection (Kite, Angel).
    #[default]
    Disconnect,
    /// Keep the session open and only unsubscribe everything (Noren: reconnect cooldown).
    KeepSession,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Account label shown until the token check names the user.
    pub account: String,
    /// Broker URLs.
    pub endpoints: Endpoints,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
    /// Transport watchdog (no frame at all); `None` = the adapter's default (Kite 3 s).
    pub transport_timeout: Option<Duration>,
    /// Data watchdog (no tick for any subscribed instrument while the market is open).
    pub stale_after: Duration,
    /// Bound on TCP connect + WebSocket upgrade.
    pub connect_timeout: Duration,
    /// Trailing window for the quality figure.
    pub quality_window: Duration,
    /// Check the token over REST before the first connection and after a token change.
    pub validate_token: bool,
    /// Idle policy.
    pub idle_policy: IdlePolicy,
    /// Seed for backoff jitter (random by default; fix it to reproduce a run).
    pub seed: u64,
    /// How often health is republished when nothing else changes.
    pub health_interval: Duration,
    /// Default bound of a stream consumer's queue.
    pub stream_capacity: usize,
}

impl EngineConfig {
    /// Defaults for these endpoints.
    pub fn new(endpoints: Endpoints) -> EngineConfig {
        EngineConfig {
            account: String::new(),
            endpoints,
            backoff: BackoffConfig::default(),
            transport_timeout: None,
            stale_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            quality_window: Duration::from_secs(60),
            validate_token: true,
            idle_policy: IdlePolicy::Disconnect,
            // Random per process: engines restarting together after an outage must not retry
            // in lockstep. Tests and benchmarks pass a fixed seed to reproduce a run.
            seed: rand::random(),
            health_interval: Duration::from_millis(500),
            stream_capacity: 4096,
        }
    }
}

/// Something that happened, for event logs (reconnects, resubscribes, stale, token problems).
#[derive(Debug, Clone, Serialize)]
pub struct EngineEvent {
    /// Unix ms.
    pub at_unix_ms: i64,
    /// Short kind: connected, disconnected, resubscribed, stale, recovered, token_invalid, ...
    pub kind: &'static str,
    /// Human text (secrets redacted).
    pub text: String,
}

/// Engine errors returned to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The subscription was refused.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// The engine task has stopped.
    #[error("the feed engine has stopped")]
    Stopped,
}

pub(crate) enum Command {
    AddConsumer(ConsumerId, Arc<Slot>),
    RemoveConsumer(ConsumerId),
    Subscribe(
        ConsumerId,
        Vec<Arc<Instrument>>,
        Mode,
        oneshot::Sender<Result<(), EngineError>>,
    ),
    Unsubscribe(ConsumerId, Vec<FeedKey>, oneshot::Sender<()>),
    UnsubscribeAll(ConsumerId, oneshot::Sender<()>),
    ForceReconnect,
    SetCredentials(Credentials),
    SetMarketOpen(bool),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap, cloneable handle to one engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    health: watch::Receiver<Health>,
    events: broadcast::Sender<EngineEvent>,
    book: Arc<QuoteBook>,
    next_id: Arc<AtomicU64>,
    stream_capacity: usize,
    join: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// A registered consumer. Dropping it removes its subscriptions (refcounted).
pub struct Consumer {
    id: ConsumerId,
    slot: Arc<Slot>,
    handle: EngineHandle,
}

/// Capacity of the command channel; senders wait when it is full (commands are rare).
const COMMAND_QUEUE: usize = 1024;
/// Capacity of the event broadcast; slow readers lose the oldest events (counted by tokio).
const EVENT_QUEUE: usize = 1024;

/// Start an engine task for one account.
pub fn spawn(
    adapter: Arc<dyn Adapter>,
    creds: Credentials,
    cfg: EngineConfig,
    market_open: bool,
) -> EngineHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let mut h0 = Health {
        broker: adapter.name().to_string(),
        account: cfg.account.clone(),
        market_open,
        ..Default::default()
    };
    h0.state = EngineState::Idle;
    let (htx, hrx) = watch::channel(h0);
    let (etx, _) = broadcast::channel(EVENT_QUEUE);
    let book = Arc::new(QuoteBook::default());
    let stream_capacity = cfg.stream_capacity;
    let task = task::EngineTask::new(
        adapter,
        creds,
        cfg,
        market_open,
        rx,
        htx,
        etx.clone(),
        book.clone(),
    );
    let join = tokio::spawn(task.run());
    EngineHandle {
        tx,
        health: hrx,
        events: etx,
        book,
        next_id: Arc::new(AtomicU64::new(1)),
        stream_capacity,
        join: Arc::new(std::sync::Mutex::new(Some(join))),
    }
}

impl EngineHandle {
    async fn send(&self, c: Command) -> Result<(), EngineError> {
        self.tx.send(c).await.map_err(|_| EngineError::Stopped)
    }

    async fn register(&self, cap: usize) -> Result<Consumer, EngineError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Slot::new(cap);
        self.send(Command::AddConsumer(id, slot.clone())).await?;
        Ok(Consumer {
            id,
            slot,
            handle: self.clone(),
        })
    }

    /// Register a rendering consumer (reads the book; no stream).
    pub async fn consumer(&self) -> Result<Consumer, EngineError> {
        self.register(0).await
    }

    /// Register a streaming consumer with the default queue bound.
    pub async fn stream(&self) -> Result<Consumer, EngineError> {
        self.register(self.stream_capacity.max(1)).await
    }

    /// Register a streaming consumer with its own queue bound.
    pub async fn stream_with_capacity(&self, cap: usize) -> Result<Consumer, EngineError> {
        self.register(cap.max(1)).await
    }

    /// Drop the connection now and reconnect at once, with backoff reset.
    pub async fn force_reconnect(&self) -> Result<(), EngineError> {
        self.send(Command::ForceReconnect).await
    }

    /// Replace the credentials (a new daily token). Leaves `token_invalid` at once.
    pub async fn set_credentials(&self, creds: Credentials) -> Result<(), EngineError> {
        self.send(Command::SetCredentials(creds)).await
    }

    /// Tell the engine whether the market is open (drives the data watchdog).
    pub async fn set_market_open(&self, open: bool) -> Result<(), EngineError> {
        self.send(Command::SetMarketOpen(open)).await
    }

    /// Stop the engine: close the connection and end the task. Returns when it has ended.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let join = self.join.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(j) = join {
            let _ = j.await;
        }
    }

    /// Health snapshots.
    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// Events.
    pub fn events(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// The conflated latest-value book.
    pub fn book(&self) -> &Arc<QuoteBook> {
        &self.book
    }

    /// Publish an event from a surface (the proxy's clients coming and going) to every event
    /// log that listens to this engine. Secrets are redacted.
    pub fn note(&self, kind: &'static str, text: impl Into<String>) {
        let text = crate::secret::redact(&text.into());
        tracing::info!(event = kind, "{text}");
        let _ = self.events.send(EngineEvent {
            at_unix_ms: chrono::Utc::now().timestamp_millis(),
            kind,
            text,
        });
    }
}

impl Consumer {
    /// This consumer's id.
    pub fn id(&self) -> ConsumerId {
        self.id
    }

    /// Subscribe instruments in a mode (replacing this consumer's earlier mode for them).
    pub async fn subscribe(
        &self,
        instruments: Vec<Arc<Instrument>>,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(Command::Subscribe(self.id, instruments, mode, tx))
            .await?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Unsubscribe instruments (other consumers keep theirs).
    pub async fn unsubscribe(&self, keys: Vec<FeedKey>) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(Command::Unsubscribe(self.id, keys, tx))
            .await?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Unsubscribe everything this consumer holds; the upstream session is kept.
    pub async fn unsubscribe_all(&self) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(Command::UnsubscribeAll(self.id, tx))
            .await?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Next streamed tick (`None` when the engine stopped). Rendering consumers never get any.
    pub async fn recv(&self) -> Option<StreamItem> {
        self.slot.recv().await
    }

    /// Wait for streamed ticks and move up to `max` of them into `out` (0 = engine stopped).
    pub async fn recv_many(&self, out: &mut Vec<StreamItem>, max: usize) -> usize {
        self.slot.recv_many(out, max).await
    }

    /// A streamed tick if one is ready.
    pub fn try_recv(&self) -> Option<StreamItem> {
        self.slot.try_recv()
    }

    /// Ticks conflated away because this consumer was slow.
    pub fn dropped(&self) -> u64 {
        self.slot.dropped()
    }

    /// The engine this consumer belongs to.
    pub fn engine(&self) -> &EngineHandle {
        &self.handle
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // The closed flag alone is enough: the engine reaps closed slots on its next health
        // tick. The message just makes it prompt when the command queue has room.
        self.slot.close();
        let _ = self.handle.tx.try_send(Command::RemoveConsumer(self.id));
    }
}
