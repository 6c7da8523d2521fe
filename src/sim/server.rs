//! The WebSocket side of the simulator: a raw TCP listener (so resets, blackholes and hung
//! handshakes are possible), routing by path to a broker's protocol, the upgrade gate (faults,
//! connection limits, the broker's HTTP-level auth), and one connection task each (`conn`).

use super::conn::Conn;
use super::faults::OneShot;
use super::{ConnStats, Shared, SimBroker, lock, stopped};
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request as HttpReq, Response,
};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

/// Kite's 403 body for bad credentials (WebSocket upgrade and REST alike).
pub(crate) const TOKEN_EXCEPTION: &str = r#"{"status":"error","message":"Incorrect `api_key` or `access_token`.","data":null,"error_type":"TokenException"}"#;
/// Body of a 429 (connection / rate limit).
pub(crate) const TOO_MANY: &str =
    r#"{"status":"error","message":"Too many requests","error_type":"NetworkException"}"#;

/// Angel's `x-error-message` for an upgrade beyond the connection limit.
pub(crate) const CONNECTION_LIMIT: &str = "Connection limit exceeded";
/// A client that does not finish the upgrade within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the client's close reply after we close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) type Ws = WebSocketStream<TcpStream>;

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

fn rejection(status: StatusCode, body: &str, error_message: Option<&'static str>) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let ctype = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Some(m) = error_message {
        h.insert("x-error-message", HeaderValue::from_static(m));
    }
    r
}

/// What to do with an upgrade the gate let through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admit {
    Serve,
    AcceptThenClose,
    Cooldown,
}

/// What the gate decided for an accepted upgrade. Taken before the 101 is written, so a
/// client that sees the upgrade complete and at once injects a fault or reads the stats
/// finds this connection already registered and listening for one-shots.
struct Admitted {
    oneshots: broadcast::Receiver<OneShot>,
    broker: SimBroker,
    admit: Admit,
}

/// Upgrade gate: route by path, then faults, the broker's HTTP-level auth, connection limits.
struct Gate {
    shared: Arc<Shared>,
    id: u64,
    admitted: tokio::sync::oneshot::Sender<Admitted>,
}

/// Kite: the `api_key` / `access_token` query parameters.
fn kite_auth(s: &Shared, req: &HttpReq) -> bool {
    let (mut key, mut token) = (None, None);
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "api_key" => key = Some(v.into_owned()),
            "access_token" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    key.as_deref() == Some(&s.api_key) && token.as_deref() == Some(&s.access_token)
}

/// `Bearer <jwt>` or `<jwt>` (any case of "Bearer").
pub(crate) fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => v,
    }
}

/// Angel: `Authorization` (JWT, with or without `Bearer `), `x-client-code`, `x-api-key`,
/// `x-feed-token`, checked in that order; the browser variant (no Authorization header,
/// `?clientCode=&feedToken=&apiKey=`) checks those three. `Err` = the `x-error-message`.
fn angel_auth(s: &Shared, req: &HttpReq) -> Result<(), &'static str> {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (mut cc, mut ft, mut ak) = (h("x-client-code"), h("x-feed-token"), h("x-api-key"));
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let q = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    match h("authorization") {
        Some(jwt) if strip_bearer(jwt) != s.access_token => return Err("Invalid Auth token"),
        Some(_) => {}
        None if q("clientCode").is_some() => {
            (cc, ft, ak) = (q("clientCode"), q("feedToken"), q("apiKey"));
        }
        None => return Err("Invalid Auth token"),
    }
    if cc != Some(s.client_code.as_str()) {
        return Err("Invalid Client Code");
    }
    if ak != Some(s.api_key.as_str()) {
        return Err("Invalid API Key");
    }
    if ft != Some(s.feed_token.as_str()) {
        return Err("Invalid Feed Token");
    }
    Ok(())
}

impl Callback for Gate {
    fn on_request(self, req: &HttpReq, resp: Response) -> Result<Response, ErrorResponse> {
        let shared = &self.shared;
        let flags = shared.faults.flags();
        let c = &shared.counters;
        let broker = SimBroker::for_ws_path(req.uri().path());
        let angel_msg = (broker == SimBroker::Angel).then_some(CONNECTION_LIMIT);
        if flags.reject429 {
            c.rejected_limit.fetch_add(1, Ordering::Relaxed);
            let msg = angel_msg.map(|_| "Too many requests");
            return Err(rejection(StatusCode::TOO_MANY_REQUESTS, TOO_MANY, msg));
        }
        match broker {
            SimBroker::Kite if flags.reject403 || !kite_auth(shared, req) => {
                c.rejected_auth.fetch_add(1, Ordering::Relaxed);
                return Err(rejection(StatusCode::FORBIDDEN, TOKEN_EXCEPTION, None));
            }
            SimBroker::Angel => {
                let check = if flags.reject403 {
                    Err("Invalid Auth token")
                } else {
                    angel_auth(shared, req)
                };
                if let Err(m) = check {
                    c.rejected_auth.fetch_add(1, Ordering::Relaxed);
                    return Err(rejection(StatusCode::UNAUTHORIZED, m, Some(m)));
                }
            }
            // Noren authenticates with its first message; Kite passed.
            _ => {}
        }
        let limit = flags
            .connection_limit
            .or((broker == SimBroker::Angel).then_some(shared.angel_connection_limit));
        let cooling = flags
            .cooldown
            .is_some_and(|w| shared.in_cooldown(broker, w));
        let admit = {
            let mut conns = lock(&shared.conns);
            let open = conns.values().filter(|c| c.broker == broker).count();
            if limit.is_some_and(|max| open >= max) {
                c.rejected_limit.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    r#"{{"status":"error","message":"{CONNECTION_LIMIT}","error_type":"NetworkException"}}"#
                );
                let m = Some(CONNECTION_LIMIT);
                return Err(rejection(StatusCode::TOO_MANY_REQUESTS, &body, m));
            }
            c.upgrades.fetch_add(1, Ordering::Relaxed);
            if flags.accept_then_close {
                Admit::AcceptThenClose
            } else if cooling {
                c.rejected_cooldown.fetch_add(1, Ordering::Relaxed);
                Admit::Cooldown
            } else {
                let stats = ConnStats {
                    id: self.id,
                    broker,
                    authenticated: broker.family() != super::instruments::Family::Noren,
                    ..ConnStats::default()
                };
                conns.insert(self.id, stats);
                Admit::Serve
            }
        };
        let _ = self.admitted.send(Admitted {
            oneshots: shared.faults.oneshots(),
            broker,
            admit,
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
    let guard = Registered(shared.clone(), id);
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
    match adm.admit {
        Admit::AcceptThenClose => close(&mut ws, 1000, "").await,
        Admit::Cooldown => close(&mut ws, 1000, "session cooldown").await,
        Admit::Serve => {
            Conn::new(shared, id, adm.broker, stop, adm.oneshots)
                .run(ws)
                .await
        }
    }
    drop(guard);
}

/// Removes the connection from the stats registry however its task ends (incl. abort).
struct Registered(Arc<Shared>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        let gone = lock(&self.0.conns).remove(&self.1);
        if let Some(c) = gone {
            self.0.session_closed(c.broker);
        }
    }
}

/// Send a close frame and give the client a moment to answer it.
pub(crate) async fn close(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    };
    if ws.close(Some(frame)).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

/// Abrupt reset: zero linger makes the kernel send RST instead of FIN on drop.
pub(crate) fn reset(ws: Ws) {
    if let Err(e) = ws.get_ref().set_zero_linger() {
        tracing::debug!(error = %e, "simulator: set_zero_linger failed");
    }
    drop(ws);
}
