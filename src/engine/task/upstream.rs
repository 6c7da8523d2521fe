//! Reaching the broker: token check, connect with a bound, and the backoff wait.

use super::{EngineTask, Wake, Ws, now_unix_ms};
use crate::adapters::{ErrorKind, TokenCheck};
use crate::engine::health::{BackoffInfo, EngineState};
use crate::secret::redact;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

impl EngineTask {
    /// Ok(true) = go on to connect; Ok(false) = token invalid; Err = interrupted.
    pub(super) async fn check_token(
        &mut self,
        health_tick: &mut tokio::time::Interval,
    ) -> Result<bool, ()> {
        self.set_state(EngineState::ValidatingToken);
        let Some(req) = self
            .adapter
            .token_check_request(&self.cfg.endpoints, &self.creds)
        else {
            // The broker has no REST token check: the WebSocket login decides.
            self.token_checked = true;
            return Ok(true);
        };
        let http = self.http.clone();
        let fut = async move { req.send(&http).await };
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
    pub(super) async fn interruptible<F: std::future::Future>(
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
    pub(super) async fn connect(
        &mut self,
        health_tick: &mut tokio::time::Interval,
    ) -> Result<Ws, Option<(ErrorKind, String)>> {
        let url = self.adapter.ws_url(&self.cfg.endpoints, &self.creds);
        let mut req = url
            .into_client_request()
            .map_err(|e| Some((ErrorKind::Other, redact(&format!("bad WebSocket URL: {e}")))))?;
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
        let r = self
            .interruptible(fut, health_tick)
            .await
            .map_err(|_| None)?;
        match r {
            Err(_) => Err(Some((
                ErrorKind::Timeout,
                format!("connect + upgrade did not finish within {limit:?}"),
            ))),
            Ok(Ok((ws, _resp))) => Ok(ws),
            Ok(Err(e)) => Err(Some(self.classify(e))),
        }
    }

    pub(super) fn classify(&self, e: tungstenite::Error) -> (ErrorKind, String) {
        match e {
            tungstenite::Error::Http(resp) => {
                let status = resp.status().as_u16();
                let mut body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                    .unwrap_or_default();
                // Angel says why in a header ("Invalid Feed Token", "Connection limit exceeded").
                if let Some(why) = resp
                    .headers()
                    .get("x-error-message")
                    .and_then(|v| v.to_str().ok())
                {
                    body = format!("{why} {body}");
                }
                (
                    self.adapter.classify_rejection(status),
                    redact(format!("upgrade rejected: HTTP {status} {body}").trim()),
                )
            }
            tungstenite::Error::Io(io) => (ErrorKind::Connect, redact(&io.to_string())),
            other => (ErrorKind::Other, redact(&other.to_string())),
        }
    }

    pub(super) async fn wait_backoff(&mut self, health_tick: &mut tokio::time::Interval) {
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
}
