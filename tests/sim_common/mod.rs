//! Shared rig for the simulator's Angel and Noren tests: a simulator on 127.0.0.1, clients
//! that speak each broker's handshake, and reads with deadlines (no bare sleeps).
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tickmux::sim::{Sim, SimBroker, SimConfig};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A client socket.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous bound for things that normally take milliseconds.
pub const LONG: Duration = Duration::from_secs(5);

/// Simulator settings for these tests: fast heartbeats, steady ticks.
pub fn cfg() -> SimConfig {
    SimConfig {
        heartbeat_interval: Duration::from_millis(100),
        tick_rate: 400,
        ..SimConfig::default()
    }
}

/// Start a simulator with [`cfg`].
pub async fn start() -> Sim {
    Sim::start(cfg()).await.expect("simulator starts")
}

/// Poll `f` every 10 ms until true; panic with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Next message within `limit` (None = nothing arrived).
pub async fn next(ws: &mut Client, limit: Duration) -> Option<Result<Message, WsError>> {
    timeout(limit, ws.next()).await.ok().flatten()
}

/// Send a text frame.
pub async fn send(ws: &mut Client, text: impl Into<String>) {
    ws.send(Message::text(text.into()))
        .await
        .expect("client send");
}

/// An HTTP rejection of an upgrade: (status, `x-error-message`, body).
pub fn rejected(r: Result<Client, WsError>) -> (u16, Option<String>, String) {
    match r {
        Err(WsError::Http(resp)) => (
            resp.status().as_u16(),
            resp.headers()
                .get("x-error-message")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("expected an HTTP rejection, got {e}"),
        Ok(_) => panic!("expected an HTTP rejection, got an upgrade"),
    }
}

/// The close frame's code and reason, or a panic naming what came instead.
pub fn close_of(m: Option<Result<Message, WsError>>) -> (u16, String) {
    match m {
        Some(Ok(Message::Close(Some(f)))) => (f.code.into(), f.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Angel's four headers, each overridable (`None` = leave the header out).
pub struct AngelAuth<'a> {
    pub jwt: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub client_code: Option<&'a str>,
    pub feed_token: Option<&'a str>,
}

impl Default for AngelAuth<'_> {
    fn default() -> Self {
        AngelAuth {
            jwt: Some("Bearer sim_access_token"),
            api_key: Some("sim_api_key"),
            client_code: Some("SIM001"),
            feed_token: Some("sim_feed_token"),
        }
    }
}

/// Upgrade on Angel's path with these headers.
pub async fn try_angel(sim: &Sim, auth: &AngelAuth<'_>) -> Result<Client, WsError> {
    let mut req = sim
        .ws_url_for(SimBroker::Angel)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    for (name, v) in [
        ("Authorization", auth.jwt),
        ("x-api-key", auth.api_key),
        ("x-client-code", auth.client_code),
        ("x-feed-token", auth.feed_token),
    ] {
        if let Some(v) = v {
            h.insert(name, HeaderValue::from_str(v).unwrap());
        }
    }
    timeout(LONG, connect_async(req))
        .await
        .expect("upgrade answered in time")
        .map(|(ws, _)| ws)
}

/// A connected Angel client with the right headers.
pub async fn angel(sim: &Sim) -> Client {
    try_angel(sim, &AngelAuth::default())
        .await
        .expect("Angel upgrade")
}

/// Upgrade on a broker's path without any credentials (Noren authenticates later).
pub async fn try_plain(sim: &Sim, broker: SimBroker) -> Result<Client, WsError> {
    timeout(LONG, connect_async(sim.ws_url_for(broker)))
        .await
        .expect("upgrade answered in time")
        .map(|(ws, _)| ws)
}

/// Skip binary frames and pongs; the next text within `limit` (None = nothing came).
pub async fn next_text(ws: &mut Client, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Binary(_) | Message::Pong(_) | Message::Ping(_)) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Read until a close frame, an error or the end (skipping data); what ended it.
pub async fn until_end(ws: &mut Client) -> Option<Result<Message, WsError>> {
    let deadline = Instant::now() + LONG;
    loop {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await {
            Some(Ok(Message::Binary(_) | Message::Text(_) | Message::Pong(_))) => {}
            other => return other,
        }
    }
}

/// True when nothing at all arrives for `quiet` (after draining what was in flight, within
/// [`LONG`]).
pub async fn goes_silent(ws: &mut Client, quiet: Duration) -> bool {
    let deadline = Instant::now() + LONG;
    while next(ws, quiet).await.is_some() {
        if Instant::now() >= deadline {
            return false;
        }
    }
    true
}

/// A WebSocket ping with `payload` is answered with a pong carrying it (data skipped).
pub async fn ping_is_answered(ws: &mut Client, payload: &[u8]) -> bool {
    ws.send(Message::Ping(payload.to_vec().into()))
        .await
        .unwrap();
    let deadline = Instant::now() + LONG;
    loop {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await {
            Some(Ok(Message::Pong(p))) => return &p[..] == payload,
            Some(Ok(Message::Binary(_) | Message::Text(_))) => {}
            _ => return false,
        }
    }
}
