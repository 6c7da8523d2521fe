//! The Kite WebSocket side of the simulator: a raw TCP listener (so resets, blackholes and
//! hung handshakes are possible), the upgrade with query-string auth, and one task per
//! connection that batches ticks every 10 ms and answers client requests.

use super::faults::{Flags, MALFORMED_KINDS, OneShot, malformed_frame};
use super::{ConnStats, Shared, lock, stopped};
use crate::adapters::kite::codec::{self, Request, TextMessage};
use crate::model::{Mode, Tick};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request as HttpReq, Response,
};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};

/// Kite's 403 body for bad credentials (WebSocket upgrade and REST alike).
pub(crate) const TOKEN_EXCEPTION: &str = r#"{"status":"error","message":"Incorrect `api_key` or `access_token`.","data":null,"error_type":"TokenException"}"#;
/// Body of a 429 (connection / rate limit).
pub(crate) const TOO_MANY: &str =
    r#"{"status":"error","message":"Too many requests","error_type":"NetworkException"}"#;

/// Tick batch period: one frame (or a few, see [`MAX_PACKETS`]) per period.
const BATCH: Duration = Duration::from_millis(10);
/// Largest number of packets in one frame.
const MAX_PACKETS: usize = 500;
/// Lateness beyond this is not caught up (bounded bursts after a stall).
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// A client that does not finish the upgrade within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Safety bound on subscriptions per connection (Kite documents 3000; this only protects the
/// simulator from a hostile client, it is not Kite's limit).
const MAX_SUBSCRIPTIONS: usize = 10_000;
/// Time allowed for the client's close reply after we close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<TcpStream>;

/// Accept loop. Connection tasks live in a JoinSet so shutdown aborts them all.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.counters.accepted_tcp.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(%peer, "simulator: TCP accepted");
                    tasks.spawn(handle(stream, shared.clone(), stop.clone()));
                }
                Err(e) => {
                    // E.g. EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tasks.shutdown().await;
}

fn rejection(status: StatusCode, body: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// What the gate decided for an accepted upgrade. Taken before the 101 is written, so a
/// client that sees the upgrade complete and at once injects a fault or reads the stats
/// finds this connection already registered and listening for one-shots.
struct Admitted {
    oneshots: broadcast::Receiver<OneShot>,
    accept_then_close: bool,
}

/// Upgrade gate: faults first, then the `api_key` / `access_token` query parameters.
struct Gate {
    shared: Arc<Shared>,
    id: u64,
    admitted: tokio::sync::oneshot::Sender<Admitted>,
}

impl Callback for Gate {
    fn on_request(self, req: &HttpReq, resp: Response) -> Result<Response, ErrorResponse> {
        let shared = &self.shared;
        let flags = shared.faults.flags();
        let c = &shared.counters;
        if flags.reject429 {
            c.rejected_limit.fetch_add(1, Ordering::Relaxed);
            return Err(rejection(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
        }
        let (mut key, mut token) = (None, None);
        for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match &*k {
                "api_key" => key = Some(v.into_owned()),
                "access_token" => token = Some(v.into_owned()),
                _ => {}
            }
        }
        let ok = key.as_deref() == Some(&shared.api_key)
            && token.as_deref() == Some(&shared.access_token);
        if flags.reject403 || !ok {
            c.rejected_auth.fetch_add(1, Ordering::Relaxed);
            return Err(rejection(StatusCode::FORBIDDEN, TOKEN_EXCEPTION));
        }
        c.upgrades.fetch_add(1, Ordering::Relaxed);
        if !flags.accept_then_close {
            let id = self.id;
            let stats = ConnStats {
                id,
                ..ConnStats::default()
            };
            lock(&shared.conns).insert(id, stats);
        }
        let _ = self.admitted.send(Admitted {
            oneshots: shared.faults.oneshots(),
            accept_then_close: flags.accept_then_close,
        });
        Ok(resp)
    }
}

/// Keep a socket open without ever answering: read and discard until the peer goes away.
async fn hold(mut stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let mut sink = [0u8; 1024];
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            r = stream.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
        }
    }
}

async fn handle(stream: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let flags = shared.faults.flags();
    if flags.blackhole || flags.hang_handshake {
        return hold(stream, stop).await;
    }
    // Client messages are small JSON; bound them so a hostile client cannot balloon memory.
    let config = WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    // Armed before the handshake: removes the registry entry the gate may add, however the
    // task ends (failed handshake, close, reset, abort).
    let _guard = Registered(shared.clone(), id);
    let (tx, mut admitted) = tokio::sync::oneshot::channel();
    let gate = Gate {
        shared: shared.clone(),
        id,
        admitted: tx,
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, gate, Some(config));
    let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "simulator: upgrade failed");
            return;
        }
        Err(_) => {
            tracing::debug!("simulator: upgrade timed out");
            return;
        }
    };
    let Ok(adm) = admitted.try_recv() else {
        return; // cannot happen: a completed upgrade passed the gate
    };
    if adm.accept_then_close {
        return close(&mut ws, 1000).await;
    }
    Conn::new(shared, id, stop, adm.oneshots).run(ws).await;
}

/// Removes the connection from the stats registry however its task ends (incl. abort).
struct Registered(Arc<Shared>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.0.conns).remove(&self.1);
    }
}

/// Send a close frame and give the client a moment to answer it.
async fn close(ws: &mut Ws, code: u16) {
    let frame = CloseFrame {
        code: code.into(),
        reason: "".into(),
    };
    if ws.close(Some(frame)).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

/// Abrupt reset: zero linger makes the kernel send RST instead of FIN on drop.
fn reset(ws: Ws) {
    if let Err(e) = ws.get_ref().set_zero_linger() {
        tracing::debug!(error = %e, "simulator: set_zero_linger failed");
    }
    drop(ws);
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One subscription. `slot` is its index in the ticking list, `None` when silent (unknown
/// token, or subscribed while IgnoreSubscriptions was active).
struct Sub {
    mode: Mode,
    slot: Option<usize>,
}

/// Why a write did not complete normally.
enum Stop {
    /// A one-shot fault arrived while writing.
    OneShot(OneShot),
    /// The socket failed or the simulator is stopping.
    Done,
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    stop: watch::Receiver<bool>,
    flags_rx: watch::Receiver<Arc<Flags>>,
    flags: Arc<Flags>,
    oneshots: broadcast::Receiver<OneShot>,
    subs: HashMap<u32, Sub>,
    /// Tokens that tick, with their modes; cycled by `cursor`.
    active: Vec<(u32, Mode)>,
    cursor: usize,
    /// Fractional tick budget in millionths of a tick.
    budget: u64,
    last_batch: Instant,
    last_frame: Instant,
    ticks: Vec<Tick>,
    buf: Vec<u8>,
    malformed_kind: u32,
}

impl Conn {
    fn new(
        shared: Arc<Shared>,
        id: u64,
        stop: watch::Receiver<bool>,
        oneshots: broadcast::Receiver<OneShot>,
    ) -> Conn {
        let mut flags_rx = shared.faults.watch();
        let flags = flags_rx.borrow_and_update().clone();
        let now = Instant::now();
        Conn {
            shared,
            id,
            stop,
            flags_rx,
            flags,
            oneshots,
            subs: HashMap::new(),
            active: Vec::new(),
            cursor: 0,
            budget: 0,
            last_batch: now,
            last_frame: now,
            ticks: Vec::with_capacity(MAX_PACKETS),
            buf: Vec::with_capacity(MAX_PACKETS * 184 + 64),
            malformed_kind: 0,
        }
    }

    async fn run(mut self, mut ws: Ws) {
        let mut batch = tokio::time::interval(BATCH);
        batch.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let hb_every = self.shared.heartbeat;
        let heartbeat = tokio::time::sleep(hb_every);
        tokio::pin!(heartbeat);
        loop {
            let blackhole = self.flags.blackhole;
            let outcome: Result<(), Stop> = tokio::select! {
                biased;
                _ = stopped(&mut self.stop) => Err(Stop::Done),
                shot = self.oneshots.recv() => match shot {
                    Ok(s) => Err(Stop::OneShot(s)),
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(()),
                    Err(broadcast::error::RecvError::Closed) => Err(Stop::Done),
                },
                changed = self.flags_rx.changed() => match changed {
                    Ok(()) => {
                        self.flags = self.flags_rx.borrow_and_update().clone();
                        Ok(())
                    }
                    Err(_) => Err(Stop::Done),
                },
                msg = ws.next(), if !blackhole => match msg {
                    Some(Ok(Message::Text(t))) => self.on_text(&mut ws, t.as_str()).await,
                    Some(Ok(Message::Binary(b))) => {
                        tracing::debug!(conn = self.id, len = b.len(), "simulator: ignoring client binary");
                        Ok(())
                    }
                    // Pings are answered by tungstenite on the next read/write; pongs ignored.
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => {
                        tracing::debug!(conn = self.id, error = %e, "simulator: read failed");
                        Err(Stop::Done)
                    }
                    None => Err(Stop::Done),
                },
                _ = batch.tick() => self.on_batch(&mut ws).await,
                () = &mut heartbeat, if !blackhole => {
                    let r = if self.last_frame.elapsed() >= hb_every {
                        self.heartbeat(&mut ws).await
                    } else {
                        Ok(())
                    };
                    heartbeat.as_mut().reset(self.last_frame + hb_every);
                    r
                }
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Done) => return,
                Err(Stop::OneShot(OneShot::Close(code))) => {
                    tracing::debug!(conn = self.id, code, "simulator: closing");
                    return close(&mut ws, code).await;
                }
                Err(Stop::OneShot(OneShot::Reset)) => {
                    tracing::debug!(conn = self.id, "simulator: resetting");
                    return reset(ws);
                }
            }
        }
    }

    /// Write one message, honouring SlowWrites, and give up early if a one-shot fault or
    /// shutdown arrives meanwhile (so Close/Reset work on a connection whose peer stopped
    /// reading).
    async fn write(&mut self, ws: &mut Ws, msg: Message) -> Result<(), Stop> {
        let delay = self.flags.slow_writes;
        let id = self.id;
        let send = async {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            ws.send(msg).await
        };
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut self.stop) => return Err(Stop::Done),
                shot = self.oneshots.recv() => match shot {
                    // The write is abandoned; tungstenite keeps whatever it already buffered,
                    // so a close frame sent next still follows whole frames.
                    Ok(s) => return Err(Stop::OneShot(s)),
                    // Only stale one-shots were missed: keep writing.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Err(Stop::Done),
                },
                r = &mut send => return r.map_err(|e| {
                    tracing::debug!(conn = id, error = %e, "simulator: write failed");
                    Stop::Done
                }),
            }
        }
    }

    async fn heartbeat(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        self.write(ws, Message::Binary(Bytes::from_static(&[0])))
            .await?;
        self.shared
            .counters
            .heartbeats_sent
            .fetch_add(1, Ordering::Relaxed);
        self.last_frame = Instant::now();
        Ok(())
    }

    async fn send_text(&mut self, ws: &mut Ws, m: TextMessage) -> Result<(), Stop> {
        self.write(ws, Message::text(codec::encode_text(&m))).await
    }

    async fn on_text(&mut self, ws: &mut Ws, text: &str) -> Result<(), Stop> {
        let req = match codec::decode_request(text) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(conn = self.id, error = %e, "simulator: bad client message");
                let msg = format!("Invalid message: {e}");
                return self.send_text(ws, TextMessage::Error(msg)).await;
            }
        };
        let flags = self.flags.clone();
        let (tokens, mode, subscribe) = match req {
            Request::Unsubscribe(tokens) => {
                for t in &tokens {
                    self.remove(*t);
                }
                let mut reg = lock(&self.shared.conns);
                if let Some(cs) = reg.get_mut(&self.id) {
                    for t in &tokens {
                        cs.subscriptions.remove(t);
                    }
                }
                return Ok(());
            }
            Request::Subscribe(tokens) => (tokens, None, true),
            Request::Mode(mode, tokens) => (tokens, Some(mode), false),
        };
        let mut rejected = Vec::new();
        let (mut dups, mut over_limit) = (0u64, 0usize);
        for &t in &tokens {
            if flags.rejected.contains(&t) {
                rejected.push(t);
                continue;
            }
            if self.subs.len() >= MAX_SUBSCRIPTIONS && !self.subs.contains_key(&t) {
                over_limit += 1;
                continue;
            }
            let tickable =
                !flags.ignore_subscriptions && self.shared.instruments.params(t).is_some();
            if self.upsert(t, mode, tickable) && subscribe {
                dups += 1;
            }
        }
        {
            let mut reg = lock(&self.shared.conns);
            if let Some(cs) = reg.get_mut(&self.id) {
                if subscribe {
                    cs.subscribe_messages += 1;
                    cs.tokens_subscribed_total += tokens.len() as u64;
                    cs.duplicate_subscribes += dups;
                }
                for t in tokens.iter().filter(|t| !flags.rejected.contains(t)) {
                    if let Some(s) = self.subs.get(t) {
                        cs.subscriptions.insert(*t, s.mode);
                    }
                }
            }
        }
        if over_limit > 0 {
            let msg = format!(
                "{over_limit} tokens not subscribed: at most {MAX_SUBSCRIPTIONS} per connection"
            );
            self.send_text(ws, TextMessage::Error(msg)).await?;
        }
        if rejected.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = rejected.iter().map(u32::to_string).collect();
        let msg = format!(
            "Subscription rejected for instrument tokens: {}",
            list.join(", ")
        );
        self.send_text(ws, TextMessage::Error(msg)).await
    }

    /// Add or update a subscription; returns whether it already existed. A subscribe keeps an
    /// existing mode (new ones default to quote, like Kite); a mode message sets it.
    fn upsert(&mut self, token: u32, mode: Option<Mode>, tickable: bool) -> bool {
        let existed = self.subs.contains_key(&token);
        let sub = self.subs.entry(token).or_insert(Sub {
            mode: Mode::Quote,
            slot: None,
        });
        if let Some(m) = mode {
            sub.mode = m;
        }
        let mode = sub.mode;
        match (sub.slot, tickable) {
            (Some(i), true) => self.active[i].1 = mode,
            (None, true) => {
                sub.slot = Some(self.active.len());
                self.active.push((token, mode));
            }
            (Some(_), false) => self.unslot(token),
            (None, false) => {}
        }
        existed
    }

    fn remove(&mut self, token: u32) {
        self.unslot(token);
        self.subs.remove(&token);
    }

    /// Take `token` out of the ticking list (swap-remove, fixing the moved entry's slot).
    fn unslot(&mut self, token: u32) {
        let Some(i) = self.subs.get_mut(&token).and_then(|s| s.slot.take()) else {
            return;
        };
        self.active.swap_remove(i);
        if let Some(&(moved, _)) = self.active.get(i) {
            if let Some(s) = self.subs.get_mut(&moved) {
                s.slot = Some(i);
            }
        }
    }

    /// Every 10 ms: spend the accumulated tick budget on the next tokens in the cycle, at most
    /// one packet per token per batch, frames of at most [`MAX_PACKETS`] packets.
    async fn on_batch(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_batch).min(MAX_CATCH_UP);
        self.last_batch = now;
        let f = self.flags.clone();
        if f.blackhole || f.heartbeats_only || self.active.is_empty() {
            self.budget = 0;
            return Ok(());
        }
        let rate = self.shared.tick_rate.load(Ordering::Relaxed) as u64;
        self.budget += rate * elapsed.as_micros() as u64;
        let mut n = (self.budget / 1_000_000) as usize;
        if n >= self.active.len() {
            n = self.active.len();
            self.budget = 0; // more budget than tokens: drop the excess, no bursts later
        } else {
            self.budget %= 1_000_000;
        }
        if n == 0 {
            return Ok(());
        }
        self.ticks.clear();
        {
            let secs = now_secs();
            let mut market = lock(&self.shared.market);
            let len = self.active.len();
            let mut examined = 0;
            while self.ticks.len() < n && examined < len {
                let (token, mode) = self.active[self.cursor % len];
                self.cursor = (self.cursor + 1) % len;
                examined += 1;
                if f.silenced(token) {
                    continue;
                }
                if let Some(st) = market.state(&self.shared.instruments, token) {
                    st.step();
                    self.ticks.push(st.tick(mode, secs));
                }
            }
        }
        let mut start = 0;
        while start < self.ticks.len() {
            let end = (start + MAX_PACKETS).min(self.ticks.len());
            self.buf.clear();
            codec::encode_frame(&self.ticks[start..end], &mut self.buf);
            let frame = Bytes::copy_from_slice(&self.buf);
            self.write(ws, Message::Binary(frame)).await?;
            let c = &self.shared.counters;
            c.frames_sent.fetch_add(1, Ordering::Relaxed);
            c.ticks_sent
                .fetch_add((end - start) as u64, Ordering::Relaxed);
            if f.malformed {
                let token = self.ticks[start].key.token;
                malformed_frame(self.malformed_kind, token, &mut self.buf);
                self.malformed_kind = (self.malformed_kind + 1) % MALFORMED_KINDS;
                let frame = Bytes::copy_from_slice(&self.buf);
                self.write(ws, Message::Binary(frame)).await?;
                let c = &self.shared.counters;
                c.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            start = end;
        }
        if !self.ticks.is_empty() {
            self.last_frame = Instant::now();
        }
        Ok(())
    }
}
