//! Broker adapters: a pure codec plus a description of the broker (URLs, auth, limits,
//! keepalive rules, REST endpoints). The engine does all I/O, reconnection, resubscription,
//! backoff and watchdogs for every adapter; an adapter never owns a socket.

pub mod angel;
pub mod kite;
pub mod noren;
pub mod openalgo;

use crate::model::{FeedKey, Instrument, Mode, Tick};
use crate::secret::Secret;
use std::time::Duration;

/// One outbound WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A WebSocket ping frame (Noren's keepalive; the pong proves the transport).
    Ping(Vec<u8>),
}

/// What one inbound message meant, after the codec appended any ticks to the output vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Market data: ticks were appended; `skipped` packets of unknown kind were dropped.
    Ticks {
        /// Packets skipped because their kind/length is unknown.
        skipped: usize,
    },
    /// A keepalive from the server; proves the transport, never the data.
    Heartbeat,
    /// The broker accepted the login message (adapters with [`Adapter::login_ack`]).
    LoginOk,
    /// The broker refused the credentials on an open connection (Noren `Not_Ok`, an
    /// OpenAlgo `AUTHENTICATION_ERROR`): the engine stops retrying with this token.
    AuthRejected(String),
    /// An informational broker message (shown in the event log).
    Notice(String),
    /// A broker error message on an open connection (connection kept).
    ServerError(String),
    /// An order postback or other message the feed does not use.
    Ignored,
}

/// Why an upstream attempt or session failed, for health and for the engine's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Credentials rejected (HTTP 401/403 on upgrade, TokenException on REST): never retried
    /// with the same token.
    Auth,
    /// Connection limit / rate limit (HTTP 429): retried with backoff.
    RateLimited,
    /// TCP connect failed (refused, unreachable, DNS).
    Connect,
    /// Handshake did not finish within the connect timeout.
    Timeout,
    /// Server closed the connection (close frame or EOF).
    Closed,
    /// Transport watchdog: no frame at all within the transport timeout.
    TransportStall,
    /// Data watchdog: no tick for any subscribed instrument within `stale_after`.
    DataStale,
    /// Malformed frame from the server (counted; connection kept).
    Protocol,
    /// The server reported an error on an open connection.
    Server,
    /// A subscription request we refused (limit, unknown instrument).
    Subscription,
    /// Anything else (I/O error, unexpected HTTP status).
    Other,
}

impl ErrorKind {
    /// Snake-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::TransportStall => "transport_stall",
            ErrorKind::DataStale => "data_stale",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Server => "server",
            ErrorKind::Subscription => "subscription",
            ErrorKind::Other => "other",
        }
    }
}

/// A codec error: malformed input from the network. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame is empty.
    #[error("empty frame")]
    Empty,
    /// The frame ended before the declared data.
    #[error("truncated frame: needed {needed} bytes at offset {offset}, have {have}")]
    Truncated {
        /// Offset where the read started.
        offset: usize,
        /// Bytes needed from there.
        needed: usize,
        /// Bytes available from there.
        have: usize,
    },
    /// Bytes left over after the declared packets.
    #[error("{extra} trailing bytes after {packets} packets")]
    Trailing {
        /// Packets decoded.
        packets: usize,
        /// Bytes left over.
        extra: usize,
    },
    /// A text message that is not valid for the protocol.
    #[error("bad text message: {0}")]
    BadText(String),
}

/// Broker limits the engine enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum instruments on one connection (Kite 3000).
    pub max_instruments: usize,
    /// Maximum tokens in one subscribe/unsubscribe/mode message.
    pub batch: usize,
}

/// Credentials for one broker account. Secrets are redacted in Debug and Display.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// API key (Kite `api_key`, Angel `x-api-key`, an OpenAlgo proxy's key).
    pub api_key: Secret,
    /// The daily token (Kite `access_token`, Angel JWT, Noren `susertoken` / `accesstoken`).
    pub access_token: Secret,
    /// The account / user id (Angel client code, Noren `uid`); empty where unused.
    pub client_code: String,
    /// Angel's feed token; empty elsewhere.
    pub feed_token: Secret,
}

/// Endpoints of one broker, configurable so the engine can talk to any server speaking the
/// protocol (the simulator, a staging host).
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// WebSocket URL, e.g. `wss://ws.kite.trade`.
    pub ws_url: String,
    /// REST root, e.g. `https://api.kite.trade`.
    pub rest_url: String,
    /// Where the instrument master lives when not under `rest_url` (Angel's is on another
    /// host, Noren's at the host root); `None` = the adapter's default.
    pub instruments_url: Option<String>,
}

impl Endpoints {
    /// WebSocket and REST URLs, the master at the adapter's default place.
    pub fn new(ws_url: impl Into<String>, rest_url: impl Into<String>) -> Endpoints {
        Endpoints {
            ws_url: ws_url.into(),
            rest_url: rest_url.into(),
            instruments_url: None,
        }
    }
}

/// HTTP method of a [`RestRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST with a body.
    Post,
}

/// One REST call an adapter wants made (the engine owns the HTTP client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// Method.
    pub method: HttpMethod,
    /// Absolute URL.
    pub url: String,
    /// Headers (may carry secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// Raw body for POST (Noren's `jData=...&jKey=...` is not form-encoded).
    pub body: Option<String>,
}

impl RestRequest {
    /// A GET.
    pub fn get(url: String, headers: Vec<(String, String)>) -> RestRequest {
        RestRequest {
            method: HttpMethod::Get,
            url,
            headers,
            body: None,
        }
    }

    /// Send it with `client`: (status, body text; a zip is returned as its first file).
    pub async fn send(&self, client: &reqwest::Client) -> Result<(u16, String), String> {
        let mut req = match self.method {
            HttpMethod::Get => client.get(&self.url),
            HttpMethod::Post => client.post(&self.url),
        };
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &self.body {
            req = req.body(b.clone());
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok((status, body_text(&bytes)?))
    }
}

/// A response body as text; zip archives (Noren's masters) are unpacked to their first file.
pub fn body_text(bytes: &[u8]) -> Result<String, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        use std::io::Read as _;
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("bad zip archive: {e}"))?;
        let mut f = z.by_index(0).map_err(|e| format!("bad zip archive: {e}"))?;
        let mut s = String::new();
        f.read_to_string(&mut s)
            .map_err(|e| format!("bad zip member: {e}"))?;
        return Ok(s);
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Per-connection decoder state (some protocols merge deltas into snapshots).
pub trait Decoder: Send {
    /// Decode one binary message, appending ticks to `out`.
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError>;
    /// Decode one text message, appending ticks to `out`.
    fn text(&mut self, data: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError>;
}

/// Result of a REST token check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// The token is valid; the string names the account (user id).
    Valid(String),
    /// The broker rejected the token (the message is safe to show: no secrets).
    Invalid(String),
    /// The check could not be made (network, 5xx): the engine proceeds to connect.
    Unknown(String),
}

/// A broker: codec plus description. Implementations are pure apart from `check_token` and
/// `fetch_instruments`, which the engine calls with its own HTTP client.
pub trait Adapter: Send + Sync + 'static {
    /// Short broker name (`kite`).
    fn name(&self) -> &'static str;
    /// Broker limits.
    fn limits(&self) -> Limits;
    /// Default transport watchdog (no frame at all).
    fn transport_timeout(&self) -> Duration;
    /// The WebSocket URL for these credentials (auth may live in the query string).
    fn ws_url(&self, endpoints: &Endpoints, creds: &Credentials) -> String;
    /// Extra HTTP headers for the upgrade request (header-auth brokers).
    fn ws_headers(&self, _creds: &Credentials) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Messages to send right after the upgrade (login for Noren); none for Kite.
    fn login(&self, _creds: &Credentials) -> Vec<WsOut> {
        Vec::new()
    }
    /// Whether the broker answers the login with an ack ([`Inbound::LoginOk`]) that must
    /// arrive before anything is subscribed.
    fn login_ack(&self) -> bool {
        false
    }
    /// What the engine does when the last consumer leaves (overridable in config).
    fn idle_policy(&self) -> crate::engine::IdlePolicy {
        crate::engine::IdlePolicy::Disconnect
    }
    /// Map an HTTP status that refused the upgrade to an error kind.
    fn classify_rejection(&self, status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::Auth,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Other,
        }
    }
    /// A new decoder for a new connection.
    fn decoder(&self) -> Box<dyn Decoder>;
    /// Messages that subscribe these keys in these modes, batched within the broker's limits.
    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut>;
    /// Messages that change the mode of already-subscribed keys.
    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut>;
    /// Messages that unsubscribe these keys.
    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut>;
    /// Client keepalive the broker expects (interval and message), if any.
    fn keepalive(&self) -> Option<(Duration, WsOut)> {
        None
    }
    /// The REST calls that fetch the instrument master (one per file; none when the broker
    /// has no master, e.g. an OpenAlgo proxy).
    fn instrument_requests(&self, ep: &Endpoints, creds: &Credentials) -> Vec<RestRequest>;
    /// Parse one file of the instrument master.
    fn parse_instruments(&self, text: &str) -> Result<Vec<Instrument>, String>;
    /// The feed key of a raw token on an exchange (`NSE:408065`), `None` when the broker has
    /// no such exchange.
    fn raw_key(&self, exchange: &str, token: u32) -> Option<FeedKey>;
    /// A key for `EXCHANGE:SYMBOL` not in the master, for brokers that name instruments by
    /// symbol on the wire (OpenAlgo); `None` = unknown instrument.
    fn unlisted(&self, _exchange: &str, _symbol: &str) -> Option<FeedKey> {
        None
    }
    /// REST request that validates a token (`None`: the broker has no such check).
    fn token_check_request(&self, ep: &Endpoints, creds: &Credentials) -> Option<RestRequest>;
    /// Interpret the token-check response.
    fn token_check_response(&self, status: u16, body: &str) -> TokenCheck;
}
