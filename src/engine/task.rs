//! The engine task: the state machine around one upstream connection. Connect, (re)subscribe,
//! read, watchdogs and backoff live here once, for every adapter.

use super::backoff::Backoff;
use super::book::QuoteBook;
use super::fanout::{Slot, StreamItem};
use super::health::{BackoffInfo, EngineState, Health, LastError, Quality, QualityLabel};
use super::registry::{ConsumerId, Diff, Registry};
use super::{Command, EngineConfig, EngineError, EngineEvent, IdlePolicy};
use crate::adapters::{Adapter, Credentials, ErrorKind, Inbound, TokenCheck, WsOut};
use crate::model::{FeedKey, Instrument, Mode, Tick};
use crate::secret::redact;
use futures_util::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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

type Fanout = HashMap<FeedKey, (Arc<Instrument>, Vec<(Mode, Arc<Slot>)>)>;

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
    got_tick: bool,
    buf: Vec<Tick>,
}

fn now_unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A tick as a consumer asked for it (lower modes do not see higher-mode fields).
fn trim(t: &Tick, m: Mode) -> Tick {
    if t.mode <= m {
        return *t;
    }
    let mut x = *t;
    x.mode = m;
    if m < Mode::Depth {
        x.depth = None;
    }
    if m < Mode::Quote {
        x.quote = None;
    }
    x
}

fn to_message(m: WsOut) -> Message {
    match m {
        WsOut::Text(t) => Message::text(t),
        WsOut::Binary(b) => Message::binary(b),
    }
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
            got_tick: false,
            buf: Vec::with_capacity(1024),
        }
    }

    pub(super) async fn run(mut self) {
        let mut health_tick = interval(self.cfg.health_interval);
        health_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.stopping {
            if self.registry.consumer_count() == 0 {
                self.set_state(EngineState::Idle);
                self.wait_until(None, &mut health_tick, |s| {
                    s.registry.consumer_count() > 0
                })
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
                    .wait_until(None, &mut health_tick, |s| {
                        s.registry.consumer_count() == 0
                    })
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
                    self.error(kind, &text);
                    self.event("connect_failed", format!("{}: {text}", kind.as_str()));
                    if kind == ErrorKind::Auth {
                        self.enter_token_invalid(text);
                        continue;
                    }
                    self.wait_backoff(&mut health_tick).await;
                    continue;
                }
            };
            let end = self.run_connection(ws, &mut health_tick).await;
            self.h.upstream_connections = 0;
            self.registry.clear_applied();
            match end {
                End::Shutdown => break,
                End::Idle => {
                    self.event("disconnected", "no consumers left: connection closed".into());
                }
                End::Forced => {
                    self.h.reconnects += 1;
                    self.backoff.reset();
                    self.event("reconnect", "forced reconnect".into());
                }
                End::Lost(kind, text) => {
                    self.h.reconnects += 1;
                    self.error(kind, &text);
                    self.event("disconnected", format!("{}: {text}", kind.as_str()));
                    if kind == ErrorKind::Auth {
                        self.enter_token_invalid(text);
                        continue;
                    }
                    self.wait_backoff(&mut health_tick).await;
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

    // ---- token check, connect, backoff -----------------------------------------------

    /// Ok(true) = go on to connect; Ok(false) = token invalid; Err = interrupted.
    async fn check_token(&mut self, health_tick: &mut tokio::time::Interval) -> Result<bool, ()> {
        self.set_state(EngineState::ValidatingToken);
        let (path, headers) = self.adapter.token_check_request(&self.creds);
        let url = format!(
            "{}{}",
            self.cfg.endpoints.rest_url.trim_end_matches('/'),
            path
        );
        let mut req = self.http.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let fut = async move {
            let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        let r = self.interruptible(fut, health_tick).await?;
        match r {
            Ok((status, body)) => match self.adapter.token_check_response(status, &body) {
                TokenCheck::Valid(user) => {
                    self.token_checked = true;
                    self.h.account = user;
                    Ok(true)
                }
                TokenCheck::Invalid(msg) => {
                    let msg = redact(&msg);
                    self.error(ErrorKind::Auth, &msg);
                    self.enter_token_invalid(msg);
                    Ok(false)
                }
                TokenCheck::Unknown(msg) => {
                    tracing::warn!("token check inconclusive: {}", redact(&msg));
                    Ok(true)
                }
            },
            Err(e) => {
                // REST unreachable: the WebSocket attempt decides (and backs off if down).
                tracing::warn!("token check failed: {}", redact(&e));
                Ok(true)
            }
        }
    }

    /// Run a future that does not borrow the engine while still serving commands. A stop,
    /// force-reconnect or credential change interrupts it (Err).
    async fn interruptible<F: std::future::Future>(
        &mut self,
        fut: F,
        health_tick: &mut tokio::time::Interval,
    ) -> Result<F::Output, ()> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { self.stopping = true; return Err(()); };
                    let e = self.handle(cmd);
                    if e.stop { return Err(()); }
                    if e.force || e.creds { self.backoff.reset(); return Err(()); }
                }
                out = &mut fut => return Ok(out),
                _ = health_tick.tick() => { self.reap_closed(); self.publish(); }
            }
        }
    }

    /// Err(None) = interrupted; Err(Some) = failed with kind and text.
    async fn connect(
        &mut self,
        health_tick: &mut tokio::time::Interval,
    ) -> Result<Ws, Option<(ErrorKind, String)>> {
        let url = self.adapter.ws_url(&self.cfg.endpoints, &self.creds);
        let mut req = url.into_client_request().map_err(|e| {
            Some((
                ErrorKind::Other,
                redact(&format!("bad WebSocket URL: {e}")),
            ))
        })?;
        for (k, v) in self.adapter.ws_headers(&self.creds) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                req.headers_mut().insert(k, v);
            }
        }
        let limit = self.cfg.connect_timeout;
        let fut = timeout(
            limit,
            tokio_tungstenite::connect_async_with_config(req, None, true),
        );
        let r = self.interruptible(fut, health_tick).await.map_err(|_| None)?;
        match r {
            Err(_) => Err(Some((
                ErrorKind::Timeout,
                format!("connect + upgrade did not finish within {limit:?}"),
            ))),
            Ok(Ok((ws, _resp))) => Ok(ws),
            Ok(Err(e)) => Err(Some(self.classify(e))),
        }
    }

    fn classify(&self, e: tungstenite::Error) -> (ErrorKind, String) {
        match e {
            tungstenite::Error::Http(resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                    .unwrap_or_default();
                (
                    self.adapter.classify_rejection(status),
                    redact(format!("upgrade rejected: HTTP {status} {body}").trim()),
                )
            }
            tungstenite::Error::Io(io) => (ErrorKind::Connect, redact(&io.to_string())),
            other => (ErrorKind::Other, redact(&other.to_string())),
        }
    }

    async fn wait_backoff(&mut self, health_tick: &mut tokio::time::Interval) {
        let Some(delay) = self.backoff.next_delay() else {
            self.exhausted = true;
            let last = self
                .h
                .last_error
                .as_ref()
                .map(|e| e.text.clone())
                .unwrap_or_default();
            self.event(
                "exhausted",
                format!(
                    "gave up after {} reconnect attempts (last error: {last}); force a reconnect to retry",
                    self.backoff.max_attempts()
                ),
            );
            return;
        };
        let next_at = Instant::now() + delay;
        self.h.backoff = Some(BackoffInfo {
            attempt: self.backoff.attempt(),
            max: self.backoff.max_attempts(),
            delay_ms: delay.as_millis() as u64,
            next_in_ms: delay.as_millis() as u64,
            next_at_unix_ms: now_unix_ms() + delay.as_millis() as i64,
        });
        self.set_state(EngineState::Backoff);
        let w = self
            .wait_until(Some(next_at), health_tick, |s| {
                s.registry.consumer_count() == 0
            })
            .await;
        if matches!(w, Wake::Force | Wake::Creds) {
            self.backoff.reset();
        }
        self.h.backoff = None;
    }

    // ---- the connection ----------------------------------------------------------------

    async fn run_connection(
        &mut self,
        mut ws: Ws,
        health_tick: &mut tokio::time::Interval,
    ) -> End {
        let now = Instant::now();
        self.h.upstream_connections = 1;
        self.h.epoch += 1;
        self.last_frame = now;
        self.data_ref = now;
        self.stale_since = None;
        self.got_tick = false;
        self.registry.clear_applied();
        let mut decoder = self.adapter.decoder();
        let reconnect = self.h.epoch > 1;
        self.event(
            "connected",
            format!("connected (connection #{})", self.h.epoch),
        );
        let login = self.adapter.login(&self.creds);
        if let Err(e) = self.send(&mut ws, login).await {
            return End::Lost(ErrorKind::Closed, e);
        }
        let n = self.registry.desired_len();
        if let Err(e) = self.sync(&mut ws).await {
            return End::Lost(ErrorKind::Closed, e);
        }
        if n > 0 {
            let verb = if reconnect { "re-subscribed" } else { "subscribed" };
            self.event("resubscribed", format!("{verb} {n} instruments"));
            self.set_state(EngineState::Subscribing);
        } else {
            self.set_state(EngineState::Live);
        }
        let check = (self.transport_timeout.min(self.cfg.stale_after) / 10)
            .clamp(Duration::from_millis(5), Duration::from_millis(250));
        let mut watchdog = interval(check);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let keepalive = self.adapter.keepalive();
        let mut ka = interval(keepalive.as_ref().map(|k| k.0).unwrap_or(Duration::from_secs(3600)));
        ka.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ka.tick().await;

        loop {
            tokio::select! {
                biased;
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else {
                        self.stopping = true;
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        return End::Shutdown;
                    };
                    let e = self.handle(cmd);
                    if e.stop {
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        return End::Shutdown;
                    }
                    if e.force {
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        return End::Forced;
                    }
                    if let Some(end) = self.after_change(&mut ws).await { return end; }
                    if e.resync {
                        if let Err(err) = self.sync(&mut ws).await {
                            return End::Lost(ErrorKind::Closed, err);
                        }
                    }
                }
                msg = ws.next() => {
                    let now = Instant::now();
                    match msg {
                        None => return End::Lost(ErrorKind::Closed, "connection closed without a close frame (EOF)".into()),
                        Some(Err(e)) => return End::Lost(ErrorKind::Closed, redact(&format!("read error: {e}"))),
                        Some(Ok(Message::Close(f))) => {
                            let why = f.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "no code".into());
                            return End::Lost(ErrorKind::Closed, format!("server closed the connection: {}", why.trim()));
                        }
                        Some(Ok(Message::Binary(b))) => {
                            self.last_frame = now;
                            let r = decoder.binary(&b, &mut self.buf);
                            self.inbound(r, now);
                        }
                        Some(Ok(Message::Text(t))) => {
                            self.last_frame = now;
                            let r = decoder.text(&t, &mut self.buf);
                            self.inbound(r, now);
                        }
                        Some(Ok(_)) => self.last_frame = now,
                    }
                }
                _ = watchdog.tick() => {
                    if let Some(end) = self.watchdogs(&mut ws).await { return end; }
                }
                _ = ka.tick(), if keepalive.is_some() => {
                    if let Some((_, m)) = &keepalive {
                        if let Err(e) = self.send(&mut ws, vec![m.clone()]).await {
                            return End::Lost(ErrorKind::Closed, e);
                        }
                    }
                }
                _ = health_tick.tick() => {
                    if self.reap_closed() {
                        if let Some(end) = self.after_change(&mut ws).await { return end; }
                        if let Err(err) = self.sync(&mut ws).await {
                            return End::Lost(ErrorKind::Closed, err);
                        }
                    }
                    self.publish();
                }
            }
        }
    }

    /// After consumers changed: apply the idle policy when the last one left.
    async fn after_change(&mut self, ws: &mut Ws) -> Option<End> {
        if self.registry.consumer_count() == 0 && self.cfg.idle_policy == IdlePolicy::Disconnect
        {
            let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
            return Some(End::Idle);
        }
        None
    }

    /// Send what the registry says is missing upstream.
    async fn sync(&mut self, ws: &mut Ws) -> Result<(), String> {
        let d: Diff = self.registry.diff();
        if d.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::new();
        if !d.unsubscribe.is_empty() {
            msgs.extend(self.adapter.unsubscribe(&d.unsubscribe));
        }
        if !d.subscribe.is_empty() {
            msgs.extend(self.adapter.subscribe(&d.subscribe));
        }
        if !d.mode.is_empty() {
            msgs.extend(self.adapter.set_mode(&d.mode));
        }
        self.send(ws, msgs).await?;
        self.registry.mark_sent(&d);
        self.h.applied = self.registry.applied_len();
        self.h.desired = self.registry.desired_len();
        Ok(())
    }

    async fn send(&mut self, ws: &mut Ws, msgs: Vec<WsOut>) -> Result<(), String> {
        if msgs.is_empty() {
            return Ok(());
        }
        let fut = async {
            for m in msgs {
                ws.feed(to_message(m)).await?;
            }
            ws.flush().await
        };
        // A peer that stops reading must not wedge the engine: bound the write.
        match timeout(self.transport_timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(redact(&format!("write failed: {e}"))),
            Err(_) => Err(format!(
                "write did not complete within {:?}",
                self.transport_timeout
            )),
        }
    }

    fn inbound(&mut self, r: Result<Inbound, crate::adapters::CodecError>, now: Instant) {
        match r {
            Ok(Inbound::Ticks { skipped }) => {
                self.h.skipped_packets += skipped as u64;
                if !self.buf.is_empty() {
                    self.on_ticks(now);
                }
            }
            Ok(Inbound::Heartbeat) | Ok(Inbound::Ignored) => {}
            Ok(Inbound::Notice(m)) => self.event("broker_message", redact(&m)),
            Ok(Inbound::ServerError(m)) => {
                let m = redact(&m);
                self.error(ErrorKind::Server, &m);
                self.event("broker_error", m);
            }
            Err(e) => {
                self.h.malformed_frames += 1;
                let text = format!("malformed frame skipped: {e}");
                // One log line per 1000 malformed frames keeps a hostile server from
                // flooding the log; health counts every one.
                if self.h.malformed_frames % 1000 == 1 {
                    tracing::warn!("{text} (total {})", self.h.malformed_frames);
                }
                self.record_error(ErrorKind::Protocol, &text);
            }
        }
        self.buf.clear();
    }

    fn on_ticks(&mut self, now: Instant) {
        if !self.got_tick {
            self.got_tick = true;
            self.backoff.reset();
            self.set_state(EngineState::Live);
            self.event(
                "live",
                format!("first tick on connection #{}: live", self.h.epoch),
            );
        } else if self.h.state == EngineState::Stale {
            self.stale_since = None;
            self.set_state(EngineState::Live);
            self.event("recovered", "ticks flowing again".into());
        } else if self.h.state != EngineState::Live {
            self.set_state(EngineState::Live);
        }
        self.last_tick = Some(now);
        self.data_ref = now;
        self.h.ticks_total += self.buf.len() as u64;
        if self.fanout_dirty {
            self.rebuild_fanout();
        }
        // Only instruments someone wants reach the book and the streams (late ticks after
        // an unsubscribe are dropped).
        let fan = &self.fanout;
        let reg = &self.registry;
        self.buf
            .retain(|t| fan.contains_key(&t.key) || reg.desired_mode(&t.key).is_some());
        self.book.apply(&self.buf, now);
        for t in &self.buf {
            if let Some((inst, subs)) = fan.get(&t.key) {
                for (mode, slot) in subs {
                    slot.push(StreamItem {
                        instrument: inst.clone(),
                        tick: trim(t, *mode),
                        read_at: now,
                    });
                }
            }
        }
    }

    fn rebuild_fanout(&mut self) {
        self.fanout.clear();
        for (id, slot) in &self.slots {
            if !slot.is_streaming() || slot.is_closed() {
                continue;
            }
            for (k, m) in self.registry.consumer_keys(*id) {
                let Some(inst) = self.registry.instrument(&k) else {
                    continue;
                };
                self.fanout
                    .entry(k)
                    .or_insert_with(|| (inst.clone(), Vec::new()))
                    .1
                    .push((m, slot.clone()));
            }
        }
        self.fanout_dirty = false;
    }

    async fn watchdogs(&mut self, ws: &mut Ws) -> Option<End> {
        let now = Instant::now();
        let silent = now.saturating_duration_since(self.last_frame);
        if silent >= self.transport_timeout {
            return Some(End::Lost(
                ErrorKind::TransportStall,
                format!(
                    "no frame (not even a heartbeat) for {:.1} s",
                    silent.as_secs_f64()
                ),
            ));
        }
        if !self.h.market_open || self.registry.desired_len() == 0 {
            if self.h.state == EngineState::Stale {
                self.stale_since = None;
                self.set_state(if self.got_tick {
                    EngineState::Live
                } else {
                    EngineState::Subscribing
                });
            }
            return None;
        }
        let quiet = now.saturating_duration_since(self.data_ref);
        match self.stale_since {
            None if quiet >= self.cfg.stale_after => {
                self.stale_since = Some(now);
                self.h.stale_events += 1;
                self.set_state(EngineState::Stale);
                let n = self.registry.desired_len();
                self.error(
                    ErrorKind::DataStale,
                    &format!("no tick for any of {n} instruments for {:.1} s", quiet.as_secs_f64()),
                );
                self.event(
                    "stale",
                    format!(
                        "stale: no tick for {:.1} s; re-subscribing {n} instruments",
                        quiet.as_secs_f64()
                    ),
                );
                // Re-send the whole desired set on this connection first; reconnect only if
                // that does not bring ticks back.
                self.registry.clear_applied();
                if let Err(e) = self.sync(ws).await {
                    return Some(End::Lost(ErrorKind::Closed, e));
                }
                None
            }
            Some(since) if now.saturating_duration_since(since) >= self.cfg.stale_after => {
                Some(End::Lost(
                    ErrorKind::DataStale,
                    format!(
                        "still no tick {:.1} s after re-subscribing; reconnecting",
                        now.saturating_duration_since(since).as_secs_f64()
                    ),
                ))
            }
            _ => None,
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
