//! One proxy connection: the handshake, authentication (with its grace period and rate
//! limits), requests, and the client's stream of ticks, in one task. Reads and writes share
//! the task, so a client that stops reading only ever blocks itself: its engine queue
//! conflates meanwhile, and a write that makes no progress for `stall_timeout` closes it.

use super::protocol::{self, ItemResult, ProtoError, Request, SymbolRef};
use super::{Shared, apikey, limits::Bucket, market_data, status, stopped, symbols};
use crate::engine::fanout::StreamItem;
use crate::engine::{Consumer, EngineState};
use crate::model::{FeedKey, Instrument, Mode};
use futures_util::{SinkExt as _, StreamExt as _};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, WebSocketConfig};

type Ws = WebSocketStream<TcpStream>;

/// Bound on the WebSocket layer's own message size (OpenAlgo's library default).
const WS_MAX_MESSAGE: usize = 1 << 20;
/// Ticks moved from the engine queue per write batch (one flush per batch).
const BATCH: usize = 256;
/// The WebSocket write buffer goes to the socket whenever it holds this much.
const WRITE_BUFFER: usize = 128 * 1024;
/// Bound on the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on sending a close frame to a client that may not be reading.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a client holds on one instrument.
struct Held {
    instrument: Arc<Instrument>,
    /// The name the client used (echoed in its market_data messages).
    sym: SymbolRef,
    /// Modes it holds; upstream it is one consumer at the highest.
    modes: BTreeSet<Mode>,
}

impl Held {
    fn top(&self) -> Option<Mode> {
        self.modes.iter().next_back().copied()
    }
}

/// Why the connection ends (for the log and the stats).
enum End {
    /// The client closed or the socket failed.
    Gone,
    /// We closed it with this code and reason.
    Closed(u16, String),
    /// It stopped reading: closed without a handshake.
    Stalled,
}

struct Client {
    id: u64,
    peer: SocketAddr,
    sh: Arc<Shared>,
    consumer: Option<Consumer>,
    held: HashMap<FeedKey, Held>,
    auth_failures: u32,
    bucket: Bucket,
    /// Messages refused in the current flood, and when the last was refused.
    flood: (u32, Option<Instant>),
    last_rate_error: Option<Instant>,
    last_seen: Instant,
    last_state: Option<EngineState>,
    /// Replies and status messages to write.
    out: Vec<Message>,
    /// Ticks to write; serialised (or taken from the shared cache) as they are written.
    ticks: Vec<StreamItem>,
}

/// Serve one accepted TCP connection until it ends. `full`: refuse it (max clients).
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    full: bool,
    sh: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(4 << 20);
    let hs = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_async_with_config(stream, Some(config)),
    )
    .await;
    let mut ws = match hs {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "proxy: handshake failed");
            forget(&sh, id);
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "proxy: handshake timed out");
            forget(&sh, id);
            return;
        }
    };
    if full {
        let max = sh.cfg.max_clients;
        tracing::warn!(%peer, max, "proxy: too many clients; connection refused");
        close(
            &mut ws,
            CloseCode::Again,
            &format!("too many clients (limit {max})"),
        )
        .await;
        return;
    }
    let now = Instant::now();
    let mut c = Client {
        id,
        peer,
        bucket: Bucket::new(sh.cfg.rate, sh.cfg.burst, now),
        sh,
        consumer: None,
        held: HashMap::new(),
        auth_failures: 0,
        flood: (0, None),
        last_rate_error: None,
        last_seen: now,
        last_state: None,
        out: Vec::new(),
        ticks: Vec::new(),
    };
    tracing::info!(%peer, id, "proxy: client connected");
    let end = c.run(&mut ws, stop).await;
    let sh = c.sh.clone();
    match &end {
        End::Gone => {}
        End::Closed(code, reason) => {
            tracing::info!(%peer, id, code, "proxy: closing client: {reason}");
            close(&mut ws, CloseCode::from(*code), reason).await;
        }
        End::Stalled => {
            let secs = sh.cfg.stall_timeout.as_secs_f64();
            tracing::warn!(%peer, id, "proxy: client stalled (nothing written for {secs} s); closed");
            sh.engine.note(
                "client_stalled",
                format!("proxy client {peer} stopped reading for {secs} s; closed"),
            );
            sh.stats.send_modify(|s| s.closed_stalled += 1);
        }
    }
    // The consumer goes first, so its subscriptions are released before the stats say so.
    let authed = c.consumer.is_some();
    drop(c);
    drop(ws);
    if authed {
        sh.engine.note(
            "client_disconnected",
            format!("proxy client {peer} disconnected"),
        );
    }
    tracing::info!(%peer, id, "proxy: client gone");
    forget(&sh, id);
}

fn forget(sh: &Shared, id: u64) {
    sh.stats.send_modify(|s| s.clients.retain(|c| c.id != id));
}

/// Send a close frame if the client takes it promptly; a stalled client just loses the TCP.
async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

impl Client {
    async fn run(&mut self, ws: &mut Ws, mut stop: watch::Receiver<bool>) -> End {
        let cfg = self.sh.cfg.clone();
        let grace = Instant::now() + cfg.auth_grace;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + cfg.heartbeat, cfg.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ping =
            tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut health = self.sh.engine.health();
        let mut items: Vec<StreamItem> = Vec::with_capacity(BATCH);
        loop {
            let authed = self.consumer.is_some();
            tokio::select! {
                biased;
                () = stopped(&mut stop) => {
                    return End::Closed(1001, "tickmux is shutting down".into());
                }
                () = sleep_until(grace), if !authed => {
                    return End::Closed(4401, "auth timeout".into());
                }
                msg = ws.next() => {
                    let Some(Ok(msg)) = msg else { return End::Gone };
                    self.last_seen = Instant::now();
                    if let Some(end) = self.on_message(msg).await {
                        // Say why before closing (e.g. the last auth error).
                        let _ = self.flush(ws).await;
                        return end;
                    }
                }
                n = recv(&self.consumer, &mut items) => {
                    if n == 0 {
                        return End::Closed(1011, "the feed engine stopped".into());
                    }
                    self.ticks.append(&mut items);
                }
                r = health.changed(), if authed => {
                    if r.is_err() {
                        return End::Closed(1011, "the feed engine stopped".into());
                    }
                    let h = health.borrow_and_update().clone();
                    if self.last_state != Some(h.state) {
                        self.last_state = Some(h.state);
                        self.text(status::connection_status(&h, now_ms()));
                    }
                }
                _ = heartbeat.tick(), if authed => {
                    let h = self.sh.engine.health().borrow().clone();
                    let stats = self.sh.stats.borrow().clone();
                    let dropped = self.consumer.as_ref().map_or(0, Consumer::dropped);
                    self.publish_counts();
                    self.text(status::heartbeat(&h, now_ms(), self.sub_count(), dropped, &stats));
                }
                _ = ping.tick() => {
                    if self.last_seen.elapsed() > cfg.ping_interval + cfg.pong_timeout {
                        return End::Closed(1011, "keepalive timeout".into());
                    }
                    self.out.push(Message::Ping(Vec::new().into()));
                }
            }
            if let Err(end) = self.flush(ws).await {
                return end;
            }
        }
    }

    /// Write what is queued, bounded by the stall timeout: replies first, then ticks, each
    /// serialised as it is written so the socket gets the first ones while later ones are
    /// still being made (the write buffer goes out every `WRITE_BUFFER` bytes), one flush.
    async fn flush(&mut self, ws: &mut Ws) -> Result<(), End> {
        if self.out.is_empty() && self.ticks.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.out);
        let ticks = std::mem::take(&mut self.ticks);
        let (held, sh) = (&self.held, &self.sh);
        let write = async {
            for m in batch {
                ws.feed(m).await?;
            }
            for it in &ticks {
                for m in messages(held, sh, it) {
                    ws.feed(Message::Text(m)).await?;
                }
            }
            ws.flush().await
        };
        tokio::pin!(write);
        let deadline = sleep_until(Instant::now() + self.sh.cfg.stall_timeout);
        tokio::pin!(deadline);
        // While a write waits on a client that does not read, keep its drop count current.
        let mut counts = tokio::time::interval(Duration::from_millis(250));
        counts.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = &mut write => return r.map_err(|_| End::Gone),
                () = &mut deadline => return Err(End::Stalled),
                _ = counts.tick() => self.publish_counts(),
            }
        }
    }

    fn text(&mut self, s: String) {
        self.out.push(Message::Text(s.into()));
    }

    fn error(&mut self, e: ProtoError) {
        self.text(e.to_json());
    }

    fn sub_count(&self) -> usize {
        self.held.values().map(|h| h.modes.len()).sum()
    }

    fn publish_counts(&self) {
        let (id, subs) = (self.id, self.sub_count());
        let dropped = self.consumer.as_ref().map_or(0, Consumer::dropped);
        let authed = self.consumer.is_some();
        self.sh.stats.send_if_modified(|s| match s.client_mut(id) {
            Some(c) if (c.subscriptions, c.dropped, c.authenticated) != (subs, dropped, authed) => {
                c.subscriptions = subs;
                c.dropped = dropped;
                c.authenticated = authed;
                true
            }
            _ => false,
        });
    }

    /// Handle one frame; `Some` ends the connection.
    async fn on_message(&mut self, msg: Message) -> Option<End> {
        let text = match msg {
            Message::Text(t) => t.as_str().to_owned(),
            // OpenAlgo answers JSON in binary frames too.
            Message::Binary(b) => match String::from_utf8(b.to_vec()) {
                Ok(s) => s,
                Err(_) => {
                    self.error(ProtoError::new("INVALID_JSON", "Invalid JSON message"));
                    return None;
                }
            },
            Message::Close(_) => return Some(End::Gone),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return None,
        };
        if let Some(end) = self.rate_limit() {
            return end;
        }
        if text.len() > self.sh.cfg.max_message {
            self.error(ProtoError::new(
                "MESSAGE_TOO_LARGE",
                format!(
                    "Message of {} bytes is above the limit of {} bytes",
                    text.len(),
                    self.sh.cfg.max_message
                ),
            ));
            return None;
        }
        match protocol::parse(&text) {
            Ok(req) => self.on_request(req).await,
            Err(e) => {
                tracing::debug!(peer = %self.peer, code = e.code, "proxy: bad client message");
                self.error(e);
                None
            }
        }
    }

    /// `Some(None)` = drop this message; `Some(Some(end))` = close for flooding.
    fn rate_limit(&mut self) -> Option<Option<End>> {
        let now = Instant::now();
        if self.bucket.take(now) {
            if self
                .flood
                .1
                .is_some_and(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
            {
                self.flood = (0, None);
            }
            return None;
        }
        self.flood = (self.flood.0 + 1, Some(now));
        if self.flood.0 >= self.sh.cfg.flood_close {
            self.sh.stats.send_modify(|s| s.closed_flood += 1);
            tracing::warn!(peer = %self.peer, "proxy: message flood; client closed");
            return Some(Some(End::Closed(1008, "message flood".into())));
        }
        // One error a second, not one per refused message (that would feed the flood).
        if self
            .last_rate_error
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.last_rate_error = Some(now);
            self.error(ProtoError::new(
                "RATE_LIMITED",
                format!(
                    "Too many messages: limit {} per second (bursts of {}); messages are being dropped",
                    self.sh.cfg.rate, self.sh.cfg.burst
                ),
            ));
        }
        Some(None)
    }

    async fn on_request(&mut self, req: Request) -> Option<End> {
        if req.needs_auth() && self.consumer.is_none() {
            self.error(ProtoError::new(
                "NOT_AUTHENTICATED",
                "You must authenticate first",
            ));
            return None;
        }
        match req {
            Request::Auth(key) => return self.authenticate(key).await,
            Request::Subscribe {
                items, request_id, ..
            } => {
                // Five levels is what every feed we serve carries; the ack says so.
                let results = self.subscribe(items).await;
                let reply = protocol::subscribe_reply(&results, 5, &self.sh.broker, &request_id);
                self.text(reply);
                self.snapshots(&results);
            }
            Request::Unsubscribe { items, request_id } => {
                let results = self.unsubscribe(items).await;
                let reply = protocol::unsubscribe_reply(&results, &self.sh.broker, &request_id);
                self.text(reply);
            }
            Request::UnsubscribeAll { request_id } => {
                let results = self.unsubscribe_all().await;
                let reply = protocol::unsubscribe_reply(&results, &self.sh.broker, &request_id);
                self.text(reply);
            }
            Request::Orders {
                subscribe,
                request_id,
            } => self.text(protocol::orders_reply(subscribe, &request_id)),
            Request::BrokerInfo => {
                let h = self.sh.engine.health().borrow().clone();
                self.text(protocol::broker_info_reply(
                    &self.sh.broker,
                    h.state.as_str(),
                    &h.account,
                ));
            }
            Request::SupportedBrokers => {
                self.text(protocol::supported_brokers_reply(&self.sh.broker))
            }
            Request::Ping { timestamp, ping_id } => {
                self.text(protocol::pong_reply(&timestamp, &ping_id, now_ms()))
            }
        }
        self.publish_counts();
        None
    }

    async fn authenticate(&mut self, key: Option<String>) -> Option<End> {
        let Some(key) = key else {
            self.error(ProtoError::new(
                "AUTHENTICATION_ERROR",
                "API key is required",
            ));
            return None;
        };
        let now = Instant::now();
        let verdict = {
            let mut l = self.sh.auth.lock().unwrap_or_else(|e| e.into_inner());
            match l.check(now) {
                Err(wait) => Err(Some(wait)),
                Ok(()) if apikey::matches(&self.sh.key, &key) => Ok(()),
                Ok(()) => {
                    l.fail(now);
                    Err(None)
                }
            }
        };
        match verdict {
            Ok(()) => {}
            Err(Some(wait)) => {
                self.error(ProtoError::new(
                    "AUTHENTICATION_ERROR",
                    format!(
                        "Too many failed authentication attempts; try again in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
                return None;
            }
            Err(None) => {
                self.auth_failures += 1;
                self.sh.stats.send_modify(|s| s.auth_failures += 1);
                // Never log the key a client sent: it may be some other secret.
                tracing::warn!(peer = %self.peer, "proxy: authentication failed");
                self.error(ProtoError::new("AUTHENTICATION_ERROR", "Invalid API key"));
                if self.auth_failures >= self.sh.cfg.auth_failures_per_connection {
                    return Some(End::Closed(
                        1008,
                        "too many failed authentication attempts".into(),
                    ));
                }
                return None;
            }
        }
        if self.consumer.is_none() {
            match self
                .sh
                .engine
                .stream_with_capacity(self.sh.cfg.client_queue)
                .await
            {
                Ok(c) => self.consumer = Some(c),
                Err(e) => {
                    self.error(ProtoError::new("BROKER_ERROR", e.to_string()));
                    return None;
                }
            }
            self.sh.engine.note(
                "client_connected",
                format!("proxy client {} authenticated", self.peer),
            );
        }
        let h = self.sh.engine.health().borrow().clone();
        self.text(protocol::auth_reply(&self.sh.broker, &h.account));
        self.last_state = Some(h.state);
        self.text(status::connection_status(&h, now_ms()));
        self.publish_counts();
        None
    }

    async fn subscribe(&mut self, items: Vec<protocol::Item>) -> Vec<ItemResult> {
        let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
        // (result index, instrument, new top mode) of the items that need an engine call.
        let mut calls: Vec<(usize, Arc<Instrument>, Mode)> = Vec::new();
        for it in items {
            let idx = results.len();
            let mode = it.mode.as_ref().ok().copied();
            let resolved = it
                .mode
                .clone()
                .and_then(|m| symbols::resolve(&self.sh.master, &it.sym).map(|i| (m, i)));
            results.push(ItemResult {
                sym: it.sym.clone(),
                mode,
                result: resolved.as_ref().map(|_| ()).map_err(Clone::clone),
            });
            if let Ok((m, inst)) = resolved {
                let top = self.held.get(&inst.key).and_then(Held::top);
                let new_top = top.map_or(m, |t| t.max(m));
                if top != Some(new_top) {
                    calls.push((idx, inst.clone(), new_top));
                }
                let entry = self.held.entry(inst.key).or_insert_with(|| Held {
                    instrument: inst,
                    sym: it.sym.clone(),
                    modes: BTreeSet::new(),
                });
                entry.modes.insert(m);
            }
        }
        // One engine call per mode; a refusal (the broker's limit) fails that group's items
        // and leaves what they held before.
        let mut by_mode: HashMap<Mode, Vec<(usize, Arc<Instrument>)>> = HashMap::new();
        for (idx, inst, m) in calls {
            by_mode.entry(m).or_default().push((idx, inst));
        }
        let Some(consumer) = self.consumer.as_ref() else {
            return results;
        };
        for (m, group) in by_mode {
            let list: Vec<Arc<Instrument>> = group.iter().map(|(_, i)| i.clone()).collect();
            if let Err(e) = consumer.subscribe(list, m).await {
                let text = e.to_string();
                for (idx, inst) in &group {
                    results[*idx].result = Err(text.clone());
                    if let Some(h) = self.held.get_mut(&inst.key)
                        && let Some(mode) = results[*idx].mode
                    {
                        h.modes.remove(&mode);
                    }
                }
            }
        }
        self.held.retain(|_, h| !h.modes.is_empty());
        results
    }

    async fn unsubscribe(&mut self, items: Vec<protocol::Item>) -> Vec<ItemResult> {
        let mut results = Vec::with_capacity(items.len());
        let mut gone: Vec<FeedKey> = Vec::new();
        let mut lower: Vec<(Arc<Instrument>, Mode)> = Vec::new();
        for it in items {
            let mode = it.mode.as_ref().ok().copied();
            let res = it
                .mode
                .clone()
                .and_then(|m| symbols::resolve(&self.sh.master, &it.sym).map(|i| (m, i)));
            if let Ok((m, inst)) = &res
                && let Some(h) = self.held.get_mut(&inst.key)
            {
                let before = h.top();
                h.modes.remove(m);
                match h.top() {
                    None => gone.push(inst.key),
                    Some(t) if Some(t) != before => lower.push((h.instrument.clone(), t)),
                    Some(_) => {}
                }
            }
            // Unsubscribing what was never held is a success, as in OpenAlgo.
            results.push(ItemResult {
                sym: it.sym,
                mode,
                result: res.map(|_| ()),
            });
        }
        self.held.retain(|_, h| !h.modes.is_empty());
        if let Some(c) = self.consumer.as_ref() {
            if !gone.is_empty() {
                let _ = c.unsubscribe(gone).await;
            }
            // Downgrades: the instrument stays, at the highest mode still held.
            let mut by_mode: HashMap<Mode, Vec<Arc<Instrument>>> = HashMap::new();
            for (i, m) in lower {
                by_mode.entry(m).or_default().push(i);
            }
            for (m, list) in by_mode {
                let _ = c.subscribe(list, m).await;
            }
        }
        results
    }

    async fn unsubscribe_all(&mut self) -> Vec<ItemResult> {
        let mut results: Vec<ItemResult> = Vec::new();
        for h in self.held.values() {
            for m in &h.modes {
                results.push(ItemResult {
                    sym: h.sym.clone(),
                    mode: Some(*m),
                    result: Ok(()),
                });
            }
        }
        self.held.clear();
        if let Some(c) = self.consumer.as_ref() {
            let _ = c.unsubscribe_all().await;
        }
        results
    }

    /// The latest value of what was just subscribed, so a client need not wait for the next
    /// tick (OpenAlgo sends nothing until then). Its `timestamp` is when it arrived.
    fn snapshots(&mut self, results: &[ItemResult]) {
        let book = self.sh.engine.book().clone();
        let now = Instant::now();
        let mut msgs = Vec::new();
        for r in results.iter().filter(|r| r.result.is_ok()) {
            let (Some(mode), Ok(inst)) = (r.mode, symbols::resolve(&self.sh.master, &r.sym)) else {
                continue;
            };
            if let Some(e) = book.get(&inst.key) {
                let at = now_ms() - now.saturating_duration_since(e.updated).as_millis() as i64;
                if let Some(m) =
                    market_data::market_data(&r.sym, mode, &e.tick, &self.sh.broker, at)
                {
                    msgs.push(m);
                }
            }
        }
        for m in msgs {
            self.text(m);
        }
    }
}

/// One message per tick per mode the client holds on that instrument (never the duplicates
/// OpenAlgo's mode hierarchy produces), shared with every client asking the same. Its
/// `timestamp` is when the engine read the tick.
fn messages<'a>(
    held: &'a HashMap<FeedKey, Held>,
    sh: &'a Shared,
    it: &'a StreamItem,
) -> impl Iterator<Item = Utf8Bytes> + 'a {
    let h = held.get(&it.tick.key);
    h.into_iter().flat_map(move |h| {
        h.modes.iter().filter_map(move |m| {
            sh.cache.get_or_make(&it.tick, *m, &h.sym, || {
                let read_ms = now_ms() - it.read_at.elapsed().as_millis() as i64;
                market_data::market_data(&h.sym, *m, &it.tick, &sh.broker, read_ms)
            })
        })
    })
}

/// Next batch from the client's engine queue; pending forever before authentication.
async fn recv(consumer: &Option<Consumer>, items: &mut Vec<StreamItem>) -> usize {
    match consumer {
        Some(c) => c.recv_many(items, BATCH).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
