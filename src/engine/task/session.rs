//! One live connection: (re)subscribe, read and decode, fan ticks out, run the watchdogs.

use super::{End, EngineTask, Ws};
use crate::adapters::{ErrorKind, Inbound, WsOut};
use crate::engine::IdlePolicy;
use crate::engine::fanout::StreamItem;
use crate::engine::health::EngineState;
use crate::engine::registry::Diff;
use crate::model::{Mode, Tick};
use crate::secret::redact;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};
use tokio_tungstenite::tungstenite::Message;

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
        WsOut::Ping(p) => Message::Ping(p.into()),
    }
}

impl EngineTask {
    pub(super) async fn run_connection(
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
        self.stale_resubscribed = None;
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
        self.login_result = None;
        self.logged_in = !self.adapter.login_ack();
        self.login_deadline = now + self.cfg.connect_timeout;
        if self.logged_in
            && let Err(end) = self.on_logged_in(&mut ws, reconnect).await
        {
            return end;
        }
        let check = (self.transport_timeout.min(self.cfg.stale_after) / 10)
            .clamp(Duration::from_millis(5), Duration::from_millis(250));
        let mut watchdog = interval(check);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let keepalive = self.adapter.keepalive();
        // Often enough that the answers alone keep our own transport watchdog satisfied.
        let mut ka = interval(
            keepalive
                .as_ref()
                .map(|k| k.0.min(self.transport_timeout / 3))
                .unwrap_or(Duration::from_secs(3600))
                .max(Duration::from_millis(10)),
        );
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
                    match self.login_result.take() {
                        Some(Ok(())) if !self.logged_in => {
                            self.logged_in = true;
                            if let Err(end) = self.on_logged_in(&mut ws, reconnect).await {
                                return end;
                            }
                        }
                        Some(Err(text)) => return End::Lost(ErrorKind::Auth, text),
                        _ => {}
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

    /// The session is open (no login ack needed, or it arrived): subscribe everything.
    async fn on_logged_in(&mut self, ws: &mut Ws, reconnect: bool) -> Result<(), End> {
        self.data_ref = Instant::now();
        let n = self.registry.desired_len();
        if let Err(e) = self.sync(ws).await {
            return Err(End::Lost(ErrorKind::Closed, e));
        }
        if n > 0 {
            let verb = if reconnect {
                "re-subscribed"
            } else {
                "subscribed"
            };
            self.event("resubscribed", format!("{verb} {n} instruments"));
            self.set_state(EngineState::Subscribing);
        } else if self.registry.consumer_count() == 0 {
            self.set_state(EngineState::Idle);
        } else {
            self.set_state(EngineState::Live);
        }
        Ok(())
    }

    /// After consumers changed: apply the idle policy when the last one left, and leave the
    /// idle state when one comes back to a kept session.
    pub(super) async fn after_change(&mut self, ws: &mut Ws) -> Option<End> {
        if self.registry.consumer_count() == 0 {
            match self.cfg.idle_policy {
                IdlePolicy::Disconnect => {
                    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                    return Some(End::Idle);
                }
                IdlePolicy::KeepSession if self.h.state != EngineState::Idle => {
                    self.stale_since = None;
                    self.set_state(EngineState::Idle);
                    self.event(
                        "idle",
                        "no consumers left: session kept open, everything unsubscribed (idle policy keep_session)".into(),
                    );
                }
                IdlePolicy::KeepSession => {}
            }
        } else if self.h.state == EngineState::Idle {
            // Back on the kept session: live again once something we want ticks.
            self.data_ref = Instant::now();
            self.set_state(if self.registry.desired_len() > 0 {
                EngineState::Subscribing
            } else {
                EngineState::Live
            });
        }
        None
    }

    /// Send what the registry says is missing upstream.
    pub(super) async fn sync(&mut self, ws: &mut Ws) -> Result<(), String> {
        if !self.logged_in {
            // Subscribing before the broker accepted the login would be lost or refused.
            return Ok(());
        }
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

    pub(super) async fn send(&mut self, ws: &mut Ws, msgs: Vec<WsOut>) -> Result<(), String> {
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

    pub(super) fn inbound(
        &mut self,
        r: Result<Inbound, crate::adapters::CodecError>,
        now: Instant,
    ) {
        match r {
            Ok(Inbound::Ticks { skipped }) => {
                self.h.skipped_packets += skipped as u64;
                if !self.buf.is_empty() {
                    self.on_ticks(now);
                }
            }
            Ok(Inbound::Heartbeat) | Ok(Inbound::Ignored) => {}
            Ok(Inbound::LoginOk) => {
                if !self.logged_in {
                    self.event("logged_in", "session accepted by the broker".into());
                }
                self.login_result = Some(Ok(()));
            }
            Ok(Inbound::AuthRejected(m)) => {
                self.login_result = Some(Err(redact(&format!("login rejected: {m}"))));
            }
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

    pub(super) fn on_ticks(&mut self, now: Instant) {
        if self.h.state == EngineState::Idle {
            // Late ticks on a kept session nobody uses: nothing to deliver, nothing to prove.
            self.buf.clear();
            return;
        }
        // Count first, so the snapshot published on the state change already shows the tick.
        self.last_tick = Some(now);
        self.data_ref = now;
        self.h.ticks_total += self.buf.len() as u64;
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
        // One lock and one wake-up per consumer per frame, not per tick.
        for t in &self.buf {
            if let Some((inst, subs)) = fan.get(&t.key) {
                // At most one shared copy per mode this tick is delivered in.
                let mut shared: [Option<Arc<Tick>>; 3] = [None, None, None];
                for (mode, i) in subs {
                    let tick = shared[*mode as usize]
                        .get_or_insert_with(|| Arc::new(trim(t, *mode)))
                        .clone();
                    self.fan_batches[*i].push(StreamItem {
                        instrument: inst.clone(),
                        tick,
                        read_at: now,
                    });
                }
            }
        }
        for (slot, batch) in self.fan_slots.iter().zip(self.fan_batches.iter_mut()) {
            if !batch.is_empty() {
                slot.push_many(batch);
            }
        }
    }

    pub(super) fn rebuild_fanout(&mut self) {
        self.fanout.clear();
        self.fan_slots.clear();
        for (id, slot) in &self.slots {
            if !slot.is_streaming() || slot.is_closed() {
                continue;
            }
            let i = self.fan_slots.len();
            self.fan_slots.push(slot.clone());
            for (k, m) in self.registry.consumer_keys(*id) {
                let Some(inst) = self.registry.instrument(&k) else {
                    continue;
                };
                self.fanout
                    .entry(k)
                    .or_insert_with(|| (inst.clone(), Vec::new()))
                    .1
                    .push((m, i));
            }
        }
        self.fan_batches.resize_with(self.fan_slots.len(), Vec::new);
        self.fan_batches.truncate(self.fan_slots.len());
        self.fanout_dirty = false;
    }

    pub(super) async fn watchdogs(&mut self, ws: &mut Ws) -> Option<End> {
        let now = Instant::now();
        if !self.logged_in {
            if now >= self.login_deadline {
                return Some(End::Lost(
                    ErrorKind::Timeout,
                    format!(
                        "no answer to the login within {:?}",
                        self.cfg.connect_timeout
                    ),
                ));
            }
            self.data_ref = now;
        }
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
            // Quiet while nothing is wanted (or the market is shut) is not silence: the data
            // watchdog starts counting when there is something to hear.
            self.data_ref = now;
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
            // Stale again soon after a re-subscribe "recovered" it: what came back was only
            // the answer to the re-subscribe (Noren's snapshot acks), not a flowing feed.
            None if quiet >= self.cfg.stale_after
                && self.stale_resubscribed.is_some_and(|t| {
                    now.saturating_duration_since(t) < self.cfg.stale_after * 3
                }) =>
            {
                self.h.stale_events += 1;
                Some(End::Lost(
                    ErrorKind::DataStale,
                    format!(
                        "stale again {:.1} s after a re-subscribe brought only its answers back; reconnecting",
                        quiet.as_secs_f64()
                    ),
                ))
            }
            None if quiet >= self.cfg.stale_after => {
                self.stale_since = Some(now);
                self.h.stale_events += 1;
                self.set_state(EngineState::Stale);
                let n = self.registry.desired_len();
                self.error(
                    ErrorKind::DataStale,
                    &format!(
                        "no tick for any of {n} instruments for {:.1} s",
                        quiet.as_secs_f64()
                    ),
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
                self.stale_resubscribed = Some(now);
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
}
