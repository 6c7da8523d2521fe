//! What the simulator reports about itself: global counters and one view per open
//! connection ([`SimStats`], as returned by `SimControl::stats` and `GET /sim/state`).

use super::SimBroker;
use crate::model::{FeedKey, Mode};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// Counters and per-connection views, as returned by [`super::SimControl::stats`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimStats {
    /// TCP connections accepted on the WebSocket port.
    pub accepted_tcp: u64,
    /// Successful WebSocket upgrades (every protocol).
    pub upgrades: u64,
    /// Credentials refused: upgrades answered 403 (Kite) or 401 (Angel), Noren logins
    /// answered `Not_Ok`, and REST calls refused for their token.
    pub rejected_auth: u64,
    /// Upgrades (and REST calls) answered 429: the reject429 fault and connection limits.
    pub rejected_limit: u64,
    /// Connections upgraded and at once closed by the cooldown fault.
    pub rejected_cooldown: u64,
    /// Currently open WebSocket connections.
    pub open_connections: usize,
    /// Ticks sent (Kite packets, Angel packets, Noren tk/tf/dk/df messages; all connections).
    pub ticks_sent: u64,
    /// 1-byte Kite heartbeats sent.
    pub heartbeats_sent: u64,
    /// Data messages sent: Kite tick frames, Angel packets, Noren feed messages and the
    /// malformed ones (heartbeats and control replies not included).
    pub frames_sent: u64,
    /// REST requests to broker endpoints (not `/sim`), rejected ones included.
    pub rest_requests: u64,
    /// REST quote requests (Kite `/quote*`, Angel `market/v1/quote` and `getLtpData`, Noren
    /// `GetQuotes`), rejected ones included.
    pub quote_requests: u64,
    /// Currently open connections, oldest first.
    pub connections: Vec<ConnStats>,
}

/// One open WebSocket connection as the simulator sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnStats {
    /// Connection id (increasing).
    pub id: u64,
    /// The broker whose path the connection came in on (its protocol).
    pub broker: SimBroker,
    /// Logged in: at the upgrade for Kite and Angel, after an accepted login for Noren.
    pub authenticated: bool,
    /// Kite only: subscribed tokens and their modes (empty on other protocols, whose tokens
    /// collide across exchanges: see `keys`).
    pub subscriptions: BTreeMap<u32, Mode>,
    /// Every protocol: subscribed keys and their modes. Kite `FeedKey::kite(token)`; Angel
    /// seg = exchangeType, modes 1/2/3/4 → ltp/quote/depth/depth; Noren seg =
    /// `noren::codec::seg_of(exchange)`, touchline → quote, depth → depth. A key held in
    /// several modes shows the highest. In JSON the keys are `"seg|token"`.
    #[serde(serialize_with = "keys_as_strings")]
    pub keys: BTreeMap<FeedKey, Mode>,
    /// Subscribe messages received.
    pub subscribe_messages: u64,
    /// Tokens over all subscribe messages (duplicates included).
    pub tokens_subscribed_total: u64,
    /// Tokens subscribed while already subscribed on this connection (or twice in one
    /// message).
    pub duplicate_subscribes: u64,
}

fn keys_as_strings<S: Serializer>(m: &BTreeMap<FeedKey, Mode>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
}

/// Global counters; atomics so hot paths never take a lock for them.
#[derive(Default)]
pub(crate) struct Counters {
    pub accepted_tcp: AtomicU64,
    pub upgrades: AtomicU64,
    pub rejected_auth: AtomicU64,
    pub rejected_limit: AtomicU64,
    pub rejected_cooldown: AtomicU64,
    pub ticks_sent: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub rest_requests: AtomicU64,
    pub quote_requests: AtomicU64,
}
