//! One simulator connection, written once for every protocol: the select loop over shutdown,
//! one-shot faults (close, reset), fault-flag changes, client messages, the 10 ms tick batch
//! and the idle heartbeat; the tick budget and the round-robin over subscriptions; writes that
//! honour SlowWrites and give up when a one-shot arrives; the stats registry. What is
//! protocol-specific (requests, replies, encodings, malformed shapes) lives in `proto/`.

use super::faults::{Flags, OneShot};
use super::proto::{self, Cx, Effect, Protocol, Report, Subs, Ticked};
use super::server::{Ws, close, reset};
use super::{Shared, SimBroker, lock, now_secs, stopped};
use crate::model::Mode;
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::Message;

/// Tick batch period.
const BATCH: Duration = Duration::from_millis(10);
/// Lateness beyond this is not caught up (bounded bursts after a stall).
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// Why a write did not complete normally.
enum Stop {
    /// A one-shot fault arrived while writing.
    OneShot(OneShot),
    /// Close with this code and reason (a protocol asked, or a quirk fault).
    Close(u16, &'static str),
    /// The socket failed or the simulator is stopping.
    Done,
}

pub(crate) struct Conn {
    shared: Arc<Shared>,
    id: u64,
    stop: watch::Receiver<bool>,
    flags_rx: watch::Receiver<Arc<Flags>>,
    flags: Arc<Flags>,
    oneshots: broadcast::Receiver<OneShot>,
    proto: Box<dyn Protocol>,
    subs: Subs,
    /// Fractional tick budget in millionths of a tick.
    budget: u64,
    last_batch: Instant,
    last_frame: Instant,
    ticks: Vec<Ticked>,
    /// Messages waiting to be written (reused).
    out: Vec<Message>,
    malformed_kind: u32,
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u64,
        broker: SimBroker,
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
            proto: proto::new(broker),
            subs: Subs::default(),
            budget: 0,
            last_batch: now,
            last_frame: now,
            ticks: Vec::new(),
            out: Vec::new(),
            malformed_kind: 0,
        }
    }

    pub(crate) async fn run(mut self, mut ws: Ws) {
        let mut batch = tokio::time::interval(BATCH);
        batch.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let hb_every = self.shared.heartbeat;
        let hb_msg = self.proto.heartbeat();
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
                () = &mut heartbeat, if !blackhole && hb_msg.is_some() => {
                    let r = match &hb_msg {
                        Some(m) if self.last_frame.elapsed() >= hb_every => {
                            self.heartbeat(&mut ws, m.clone()).await
                        }
                        _ => Ok(()),
                    };
                    heartbeat.as_mut().reset(self.last_frame + hb_every);
                    r
                }
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Done) => return,
                Err(Stop::Close(code, reason)) => {
                    tracing::debug!(conn = self.id, code, reason, "simulator: closing");
                    return close(&mut ws, code, reason).await;
                }
                Err(Stop::OneShot(OneShot::Close(code))) => {
                    tracing::debug!(conn = self.id, code, "simulator: closing");
                    return close(&mut ws, code, "").await;
                }
                Err(Stop::OneShot(OneShot::Reset)) => {
                    tracing::debug!(conn = self.id, "simulator: resetting");
                    return reset(ws);
                }
            }
        }
    }

    /// Write the outbox, honouring SlowWrites (the delay before each message, each flushed
    /// on its own), and give up early if a one-shot fault or shutdown arrives meanwhile (so
    /// Close/Reset work on a connection whose peer stopped reading).
    async fn send_out(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let delay = self.flags.slow_writes;
        let id = self.id;
        let mut out = std::mem::take(&mut self.out);
        let r = {
            let send = async {
                for m in out.drain(..) {
                    match delay {
                        Some(d) => {
                            tokio::time::sleep(d).await;
                            ws.send(m).await?;
                        }
                        None => ws.feed(m).await?,
                    }
                }
                ws.flush().await
            };
            tokio::pin!(send);
            loop {
                tokio::select! {
                    biased;
                    _ = stopped(&mut self.stop) => break Err(Stop::Done),
                    shot = self.oneshots.recv() => match shot {
                        // The write is abandoned; tungstenite keeps whatever it already buffered,
                        // so a close frame sent next still follows whole frames.
                        Ok(s) => break Err(Stop::OneShot(s)),
                        // Only stale one-shots were missed: keep writing.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break Err(Stop::Done),
                    },
                    r = &mut send => break r.map_err(|e| {
                        tracing::debug!(conn = id, error = %e, "simulator: write failed");
                        Stop::Done
                    }),
                }
            }
        };
        out.clear();
        self.out = out;
        r
    }

    async fn heartbeat(&mut self, ws: &mut Ws, m: Message) -> Result<(), Stop> {
        self.out.push(m);
        self.send_out(ws).await?;
        let c = &self.shared.counters;
        c.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
        self.last_frame = Instant::now();
        Ok(())
    }

    async fn on_text(&mut self, ws: &mut Ws, text: &str) -> Result<(), Stop> {
        let mut report = Report::default();
        let flags = self.flags.clone();
        let effect = {
            let mut cx = Cx {
                shared: &self.shared,
                flags: &flags,
                subs: &mut self.subs,
                out: &mut self.out,
                report: &mut report,
                conn: self.id,
            };
            self.proto.on_text(&mut cx, text)
        };
        let close_now = effect == Effect::Subscribed && flags.close_after_subscribe;
        if close_now {
            // Closed before anything about the subscribe is acknowledged.
            self.out.clear();
        }
        self.publish(&report, effect == Effect::LoggedIn);
        if !close_now {
            self.send_out(ws).await?;
        }
        match effect {
            _ if close_now => Err(Stop::Close(1000, "")),
            Effect::Close(code, reason) => Err(Stop::Close(code, reason)),
            _ => Ok(()),
        }
    }

    /// Fold a request's counters and any subscription change into the stats registry.
    fn publish(&mut self, report: &Report, logged_in: bool) {
        let dirty = std::mem::take(&mut self.subs.dirty);
        let mut reg = lock(&self.shared.conns);
        let Some(cs) = reg.get_mut(&self.id) else {
            return;
        };
        cs.subscribe_messages += report.subscribe_messages;
        cs.tokens_subscribed_total += report.tokens;
        cs.duplicate_subscribes += report.duplicates;
        cs.authenticated |= logged_in;
        if !dirty {
            return;
        }
        let mut keys: BTreeMap<_, Mode> = BTreeMap::new();
        for (sk, mode) in self.subs.iter() {
            let m = keys.entry(sk.key).or_insert(mode);
            *m = (*m).max(mode);
        }
        cs.subscriptions = if cs.broker == SimBroker::Kite {
            keys.iter().map(|(k, m)| (k.token, *m)).collect()
        } else {
            BTreeMap::new()
        };
        cs.keys = keys;
    }

    /// Every 10 ms: spend the accumulated tick budget on the next subscriptions in the cycle,
    /// at most one tick per subscription per batch.
    async fn on_batch(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_batch).min(MAX_CATCH_UP);
        self.last_batch = now;
        let f = self.flags.clone();
        if f.blackhole || f.heartbeats_only || self.subs.active.is_empty() {
            self.budget = 0;
            return Ok(());
        }
        let rate = self.shared.tick_rate.load(Ordering::Relaxed) as u64;
        self.budget += rate * elapsed.as_micros() as u64;
        let len = self.subs.active.len();
        let mut n = (self.budget / 1_000_000) as usize;
        if n >= len {
            n = len;
            self.budget = 0; // more budget than subscriptions: drop the excess, no bursts later
        } else {
            self.budget %= 1_000_000;
        }
        if n == 0 {
            return Ok(());
        }
        self.collect(n, &f);
        if self.ticks.is_empty() {
            return Ok(());
        }
        let mut report = Report::default();
        let before = self.out.len();
        let (sent, first) = {
            let mut cx = Cx {
                shared: &self.shared,
                flags: &f,
                subs: &mut self.subs,
                out: &mut self.out,
                report: &mut report,
                conn: self.id,
            };
            let sent = self.proto.encode(&mut cx, &self.ticks);
            (sent, self.ticks[0].tick.key)
        };
        let mut frames = self.out.len() - before;
        if f.malformed && sent > 0 {
            let kinds = self.proto.malformed_kinds().max(1);
            self.out
                .push(self.proto.malformed(self.malformed_kind, first));
            self.malformed_kind = (self.malformed_kind + 1) % kinds;
            frames += 1;
        }
        self.send_out(ws).await?;
        let c = &self.shared.counters;
        c.frames_sent.fetch_add(frames as u64, Ordering::Relaxed);
        c.ticks_sent.fetch_add(sent, Ordering::Relaxed);
        if frames > 0 {
            self.last_frame = Instant::now();
        }
        Ok(())
    }

    /// Step the walks of the next `n` ticking subscriptions (skipping silenced ones) into
    /// `self.ticks`, keys rewritten to the broker's.
    fn collect(&mut self, n: usize, f: &Flags) {
        self.ticks.clear();
        let secs = now_secs();
        let mut market = lock(&self.shared.market);
        let subs = &mut self.subs;
        let len = subs.active.len();
        let mut examined = 0;
        while self.ticks.len() < n && examined < len {
            let a = subs.active[subs.cursor % len];
            subs.cursor = (subs.cursor + 1) % len;
            examined += 1;
            if f.silenced(a.market) || (a.sk.key.token != a.market && f.silenced(a.sk.key.token)) {
                continue;
            }
            if let Some(st) = market.state(&self.shared.instruments, a.market) {
                st.step();
                let mut tick = st.tick(a.mode, secs);
                tick.key = a.sk.key;
                self.ticks.push(Ticked {
                    sk: a.sk,
                    market: a.market,
                    tick,
                });
            }
        }
    }
}
