//! The engine task: the state machine around one upstream connection. Connect, (re)subscribe,
//! read, watchdogs and backoff live here once, for every adapter.

use super::backoff::Backoff;
use super::book::QuoteBook;
use super::fanout::Slot;
use super::health::{EngineState, Health, LastError, Quality, QualityLabel};
use super::registry::{ConsumerId, Registry};
use super::{Command, EngineConfig, EngineError, EngineEvent};
use crate::adapters::{Adapter, Credentials, ErrorKind};
use crate::model::{FeedKey, Instrument, Mode, Tick};
use crate::secret::redact;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod session;
mod upstream;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection (or a wait) ended.
enum End {
    Shutdown,
    Forced,
    Idle,
    Lost(ErrorKind, String),
}

/// What a command changed, for the loop that received it.
#[derive(Default)]
struct Effect {
    stop: bool,
    force: bool,
    creds: bool,
    resync: bool,
}

/// Why a wait returned.
#[derive(PartialEq, Eq)]
enum Wake {
    Timer,
    Stop,
    Force,
    Creds,
    Changed,
}

/// Who gets each instrument: (mode, index into `fan_slots`).
type Fanout = HashMap<FeedKey, (Arc<Instrument>, Vec<(Mode, usize)>)>;

pub(super) struct EngineTask {
    adapter: Arc<dyn Adapter>,
    creds: Credentials,
    cfg: EngineConfig,
    rx: mpsc::Receiver<Command>,
    health_tx: watch::Sender<Health>,
    events: broadcast::Sender<EngineEvent>,
    book: Arc<QuoteBook>,
    registry: Registry,
    slots: HashMap<ConsumerId, Arc<Slot>>,
    fanout: Fanout,
    fan_slots: Vec<Arc<Slot>>,
    /// Per-slot batch for the frame being fanned out (capacity reused across frames).
    fan_batches: Vec<Vec<super::fanout::StreamItem>>,
    fanout_dirty: bool,
    backoff: Backoff,
    http: reqwest::Client,
    h: Health,
    quality: Quality,
    rate: VecDeque<(Instant, u64)>,
    last_tick: Option<Instant>,
    token_checked: bool,
    token_invalid: bool,
    exhausted: bool,
    stopping: bool,
    shutdown_acks: Vec<oneshot::Sender<()>>,
    transport_timeout: Duration,
    // Per-connection state, reset when a connection opens.
    last_frame: Instant,
    data_ref: Instant,
    stale_since: Option<Instant>,
    /// When the data watchdog last re-subscribed on this connection.
    stale_resubscribed: Option<Instant>,
    got_tick: bool,
    /// False between the login message and the broker's ack (adapters with a login ack).
    logged_in: bool,
    /// When an unanswered login gives up.
    login_deadline: Instant,
    /// Set by the decoder path: the login was answered (Ok) or refused (Err).
    login_result: Option<Result<(), String>>,
    buf: Vec<Tick>,
}

fn now_unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl EngineTask {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        adapter: Arc<dyn Adapter>,
        creds: Credentials,
        cfg: EngineConfig,
        market_open: bool,
        rx: mpsc::Receiver<Command>,
        health_tx: watch::Sender<Health>,
        events: broadcast::Sender<EngineEvent>,
        book: Arc<QuoteBook>,
    ) -> EngineTask {
        let now = Instant::now();
        let h = health_tx.borrow().clone();
        let transport_timeout = cfg
            .transport_timeout
            .unwrap_or_else(|| adapter.transport_timeout());
        let mut h = h;
        h.market_open = market_open;
        EngineTask {
            registry: Registry::new(adapter.limits().max_instruments),
            backoff: Backoff::new(cfg.backoff, cfg.seed),
            quality: Quality::new(cfg.quality_window, now, false),
            http: reqwest::Client::builder()
                .connect_timeout(cfg.connect_timeout)
                .timeout(cfg.connect_timeout)
                .build()
                .unwrap_or_default(),
            transport_timeout,
            adapter,
            creds,
            cfg,
            rx,
            health_tx,
            events,
            book,
            slots: HashMap::new(),
            fanout: HashMap::new(),
            fan_slots: Vec::new(),
            fan_batches: Vec::new(),
            fanout_dirty: false,
            h,
            rate: VecDeque::new(),
            last_tick: None,
            token_checked: false,
            token_invalid: false,
            exhausted: false,
            stopping: false,
            shutdown_acks: Vec::new(),
            last_frame: now,
            data_ref: now,
            stale_since: None,
            stale_resubscribed: None,
            got_tick: false,
            logged_in: true,
            login_deadline: now,
            login_result: None,
            buf: Vec::with_capacity(1024),
        }
    }

    pub(super) async fn run(mut self) {
        let mut health_tick = interval(self.cfg.health_interval);
        health_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.stopping {
            if self.registry.consumer_count() == 0 {
                self.set_state(EngineState::Idle);
                self.wait_until(None, &mut health_tick, |s| s.registry.consumer_count() > 0)
                    .await;
                continue;
            }
            if self.token_invalid || self.exhausted {
                let st = if self.token_invalid {
                    EngineState::TokenInvalid
                } else {
                    EngineState::Exhausted
                };
                self.set_state(st);
                let w = self
                    .wait_until(None, &mut health_tick, |s| s.registry.consumer_count() == 0)
                    .await;
                if matches!(w, Wake::Force | Wake::Creds) {
                    self.token_invalid = false;
                    self.exhausted = false;
                    self.backoff.reset();
                }
                continue;
            }
            if self.cfg.validate_token && !self.token_checked {
                match self.check_token(&mut health_tick).await {
                    Ok(true) => {}
                    Ok(false) => continue, // token invalid
                    Err(()) => continue,   // interrupted by a command
                }
            }
            self.set_state(EngineState::Connecting);
            let ws = match self.connect(&mut health_tick).await {
                Ok(ws) => ws,
                Err(None) => continue,
                Err(Some((kind, text))) => {
                    self.failed("connect_failed", kind, text, &mut health_tick)
                        .await;
                    continue;
                }
            };
            let end = self.run_connection(ws, &mut health_tick).await;
            self.h.upstream_connections = 0;
            self.registry.clear_applied();
            match end {
                End::Shutdown => break,
                End::Idle => {
                    self.event(
                        "disconnected",
                        "no consumers left: connection closed".into(),
                    );
                }
                End::Forced => {
                    self.h.reconnects += 1;
                    self.backoff.reset();
                    self.event("reconnect", "forced reconnect".into());
                }
                End::Lost(kind, text) => {
                    self.h.reconnects += 1;
                    self.failed("disconnected", kind, text, &mut health_tick)
                        .await;
                }
            }
        }
        self.set_state(EngineState::Stopped);
        for s in self.slots.values() {
            s.close();
        }
        for a in self.shutdown_acks.drain(..) {
            let _ = a.send(());
        }
    }

    /// An attempt or a connection failed: auth → token_invalid (no retries), else back off.
    async fn failed(
        &mut self,
        event: &'static str,
        kind: ErrorKind,
        text: String,
        health_tick: &mut tokio::time::Interval,
    ) {
        self.error(kind, &text);
        self.event(event, format!("{}: {text}", kind.as_str()));
        if kind == ErrorKind::Auth {
            self.enter_token_invalid(text);
        } else {
            self.wait_backoff(health_tick).await;
        }
    }

    fn enter_token_invalid(&mut self, text: String) {
        self.token_invalid = true;
        self.token_checked = false;
        self.event(
            "token_invalid",
            format!("{text} — waiting for a new token (no retries with this one)"),
        );
    }

    // ---- commands --------------------------------------------------------------------

    fn handle(&mut self, cmd: Command) -> Effect {
        let mut e = Effect::default();
        match cmd {
            Command::AddConsumer(id, slot) => {
                self.registry.add_consumer(id);
                self.slots.insert(id, slot);
                self.fanout_dirty = true;
            }
            Command::RemoveConsumer(id) => {
                self.remove_consumer(id);
                e.resync = true;
            }
            Command::Subscribe(id, instruments, mode, reply) => {
                let was_empty = self.registry.desired_len() == 0;
                self.registry.add_consumer(id);
                let r = self.registry.subscribe(id, &instruments, mode);
                if let Err(err) = &r {
                    tracing::warn!("subscribe refused: {err}");
                    self.error(ErrorKind::Subscription, &err.to_string());
                } else {
                    self.fanout_dirty = true;
                    e.resync = true;
                    if was_empty {
                        self.data_ref = Instant::now();
                    }
                }
                let _ = reply.send(r.map_err(EngineError::from));
            }
            Command::Unsubscribe(id, keys, reply) => {
                self.registry.unsubscribe(id, &keys);
                self.after_unsubscribe();
                e.resync = true;
                let _ = reply.send(());
            }
            Command::UnsubscribeAll(id, reply) => {
                self.registry.unsubscribe_all(id);
                self.after_unsubscribe();
                e.resync = true;
                let _ = reply.send(());
            }
            Command::ForceReconnect => e.force = true,
            Command::SetCredentials(c) => {
                self.creds = c;
                self.token_checked = false;
                e.creds = true;
            }
            Command::SetMarketOpen(open) => {
                if open && !self.h.market_open {
                    self.data_ref = Instant::now();
                }
                self.h.market_open = open;
                self.stale_since = None;
            }
            Command::Shutdown(ack) => {
                self.shutdown_acks.push(ack);
                self.stopping = true;
                e.stop = true;
            }
        }
        e
    }

    fn remove_consumer(&mut self, id: ConsumerId) {
        self.registry.remove_consumer(id);
        if let Some(s) = self.slots.remove(&id) {
            s.close();
        }
        self.after_unsubscribe();
    }

    fn after_unsubscribe(&mut self) {
        self.fanout_dirty = true;
        let reg = &self.registry;
        self.book.retain(|k| reg.desired_mode(k).is_some());
    }

    fn reap_closed(&mut self) -> bool {
        let closed: Vec<ConsumerId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in &closed {
            self.remove_consumer(*id);
        }
        !closed.is_empty()
    }

    /// Wait for a command, a timer, or a condition; handles commands as they come.
    async fn wait_until(
        &mut self,
        deadline: Option<Instant>,
        health_tick: &mut tokio::time::Interval,
        cond: impl Fn(&Self) -> bool,
    ) -> Wake {
        loop {
            if self.stopping {
                return Wake::Stop;
            }
            if cond(self) {
                return Wake::Changed;
            }
            tokio::select! {
                biased;
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else {
                        self.stopping = true;
                        return Wake::Stop;
                    };
                    let e = self.handle(cmd);
                    if e.stop { return Wake::Stop; }
                    if e.force { return Wake::Force; }
                    if e.creds { return Wake::Creds; }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return Wake::Timer;
                }
                _ = health_tick.tick() => {
                    self.reap_closed();
                    self.publish();
                }
            }
        }
    }

    // ---- health ------------------------------------------------------------------------

    fn set_state(&mut self, s: EngineState) {
        if self.h.state != s {
            tracing::info!(state = s.as_str(), "engine state");
            self.h.state = s;
            self.publish();
        }
    }

    fn record_error(&mut self, kind: ErrorKind, text: &str) {
        self.h.last_error = Some(LastError {
            kind,
            text: redact(text),
            at_unix_ms: now_unix_ms(),
        });
    }

    fn error(&mut self, kind: ErrorKind, text: &str) {
        tracing::warn!(kind = kind.as_str(), "{}", redact(text));
        self.record_error(kind, text);
    }

    fn event(&self, kind: &'static str, text: String) {
        let text = redact(&text);
        tracing::info!(event = kind, "{text}");
        let _ = self.events.send(EngineEvent {
            at_unix_ms: now_unix_ms(),
            kind,
            text,
        });
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let fresh = self
            .last_tick
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.stale_after);
        let good = match self.h.state {
            EngineState::Live => fresh || !self.h.market_open || self.registry.desired_len() == 0,
            EngineState::Idle | EngineState::Closed => true,
            _ => false,
        };
        self.quality.set(now, good);
        let pct = self.quality.pct(now);
        self.h.quality_pct = (pct * 10.0).round() / 10.0;
        self.h.quality = QualityLabel::from_pct(pct);
        self.h.last_tick_age_ms = self
            .last_tick
            .map(|t| now.saturating_duration_since(t).as_millis() as u64);
        self.rate.push_back((now, self.h.ticks_total));
        while self.rate.len() > 2
            && now.saturating_duration_since(self.rate[0].0) > Duration::from_secs(5)
        {
            self.rate.pop_front();
        }
        let (t0, n0) = self.rate[0];
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        self.h.ticks_per_sec = if dt > 0.0 {
            ((self.h.ticks_total - n0) as f64 / dt * 10.0).round() / 10.0
        } else {
            0.0
        };
        if let Some(b) = self.h.backoff.as_mut() {
            b.next_in_ms = (b.next_at_unix_ms - now_unix_ms()).max(0) as u64;
        }
        self.h.desired = self.registry.desired_len();
        self.h.applied = self.registry.applied_len();
        self.h.consumers = self.registry.consumer_count();
        self.h.stream_drops = self.slots.values().map(|s| s.dropped()).sum();
        self.health_tx.send_replace(self.h.clone());
    }
}
