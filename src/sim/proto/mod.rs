//! The per-protocol halves of a simulator connection. The connection loop (`conn.rs`) owns
//! the socket, the faults, the tick budget and the writes, once for every protocol; a
//! [`Protocol`] only turns client text into replies and subscription changes, and ticks into
//! wire messages, all synchronously into an outbox.

pub(crate) mod angel;
pub(crate) mod kite;
pub(crate) mod noren;

use super::faults::Flags;
use super::{Shared, SimBroker};
use crate::model::{FeedKey, Mode, Tick};
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::Message;

/// Safety bound on subscriptions per connection for protocols without a documented limit
/// (Kite documents 3000, Noren none): it only protects the simulator from a hostile client.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 10_000;

/// A subscription's identity on one connection: the broker key and a protocol-defined
/// variant (Kite 0; Angel the mode byte 1-4, since a token can hold several modes; Noren 1
/// touchline, 2 depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SubKey {
    pub key: FeedKey,
    pub variant: u8,
}

/// One subscription. `slot` is its index in the ticking list, `None` when silent (unknown
/// instrument, or subscribed while IgnoreSubscriptions was active).
struct Sub {
    mode: Mode,
    market: Option<u32>,
    slot: Option<usize>,
}

/// One entry of the ticking list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Active {
    pub sk: SubKey,
    /// Kite token of the market walk.
    pub market: u32,
    pub mode: Mode,
}

/// A connection's subscriptions and the list of those that tick (cycled by `cursor`).
#[derive(Default)]
pub(crate) struct Subs {
    map: HashMap<SubKey, Sub>,
    /// Variants held per broker key (for per-key limits and stats).
    per_key: HashMap<FeedKey, u8>,
    pub active: Vec<Active>,
    pub cursor: usize,
    /// Set by every change; the connection refreshes its stats when it sees it.
    pub dirty: bool,
}

impl Subs {
    /// Add or update a subscription; returns whether it already existed. `mode: None` keeps
    /// an existing mode (new ones get `default`). `tickable: false` makes it silent.
    pub fn upsert(
        &mut self,
        sk: SubKey,
        mode: Option<Mode>,
        default: Mode,
        market: Option<u32>,
        tickable: bool,
    ) -> bool {
        self.dirty = true;
        let existed = self.map.contains_key(&sk);
        if !existed {
            *self.per_key.entry(sk.key).or_insert(0) += 1;
        }
        let sub = self.map.entry(sk).or_insert(Sub {
            mode: default,
            market,
            slot: None,
        });
        if let Some(m) = mode {
            sub.mode = m;
        }
        sub.market = market;
        let (mode, tickable) = (sub.mode, tickable && market.is_some());
        match (sub.slot, tickable) {
            (Some(i), true) => {
                self.active[i].mode = mode;
                self.active[i].market = market.unwrap_or_default();
            }
            (None, true) => {
                sub.slot = Some(self.active.len());
                self.active.push(Active {
                    sk,
                    market: market.unwrap_or_default(),
                    mode,
                });
            }
            (Some(_), false) => self.unslot(sk),
            (None, false) => {}
        }
        existed
    }

    /// Drop a subscription; returns whether it existed.
    pub fn remove(&mut self, sk: SubKey) -> bool {
        self.unslot(sk);
        let existed = self.map.remove(&sk).is_some();
        if existed {
            self.dirty = true;
            if let Some(n) = self.per_key.get_mut(&sk.key) {
                *n -= 1;
                if *n == 0 {
                    self.per_key.remove(&sk.key);
                }
            }
        }
        existed
    }

    /// Take `sk` out of the ticking list (swap-remove, fixing the moved entry's slot).
    fn unslot(&mut self, sk: SubKey) {
        let Some(i) = self.map.get_mut(&sk).and_then(|s| s.slot.take()) else {
            return;
        };
        self.active.swap_remove(i);
        if let Some(moved) = self.active.get(i).map(|a| a.sk) {
            if let Some(s) = self.map.get_mut(&moved) {
                s.slot = Some(i);
            }
        }
    }

    /// Whether `sk` is subscribed.
    pub fn contains(&self, sk: SubKey) -> bool {
        self.map.contains_key(&sk)
    }

    /// Whether any variant of `key` is subscribed.
    pub fn has_key(&self, key: FeedKey) -> bool {
        self.per_key.contains_key(&key)
    }

    /// Subscriptions (all variants).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Distinct broker keys subscribed.
    pub fn keys_len(&self) -> usize {
        self.per_key.len()
    }

    /// Subscriptions of one variant.
    pub fn count_variant(&self, variant: u8) -> usize {
        self.map.keys().filter(|k| k.variant == variant).count()
    }

    /// Every subscription with its mode.
    pub fn iter(&self) -> impl Iterator<Item = (SubKey, Mode)> + '_ {
        self.map.iter().map(|(k, s)| (*k, s.mode))
    }
}

/// Counters a request adds to the connection's stats.
#[derive(Default)]
pub(crate) struct Report {
    pub subscribe_messages: u64,
    pub tokens: u64,
    pub duplicates: u64,
}

/// What a client message asks the connection loop to do beyond sending the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing more.
    None,
    /// A subscribe request was handled (CloseAfterSubscribe acts on it).
    Subscribed,
    /// The login was accepted (Noren).
    LoggedIn,
    /// Send the outbox, then close with this code and reason.
    Close(u16, &'static str),
}

/// What a protocol may touch while handling a message.
pub(crate) struct Cx<'a> {
    pub shared: &'a Shared,
    pub flags: &'a Flags,
    pub subs: &'a mut Subs,
    pub out: &'a mut Vec<Message>,
    pub report: &'a mut Report,
    pub conn: u64,
}

/// One tick of a batch, for the subscription that asked for it.
pub(crate) struct Ticked {
    pub sk: SubKey,
    pub market: u32,
    /// The tick, its key already the broker's.
    pub tick: Tick,
}

/// The per-protocol half of a connection.
pub(crate) trait Protocol: Send {
    /// The idle keepalive the server sends (Kite's 1-byte frame); `None` = none.
    fn heartbeat(&self) -> Option<Message> {
        None
    }
    /// Handle one client text message: replies and subscription changes.
    fn on_text(&mut self, cx: &mut Cx<'_>, text: &str) -> Effect;
    /// Encode a batch of ticks into `cx.out`; returns how many ticks were sent.
    fn encode(&mut self, cx: &mut Cx<'_>, ticks: &[Ticked]) -> u64;
    /// Malformed data message number `kind` (cycled) about `key`.
    fn malformed(&mut self, kind: u32, key: FeedKey) -> Message;
    /// Number of distinct malformed shapes.
    fn malformed_kinds(&self) -> u32;
}

/// A fresh protocol half for a connection on `broker`'s path.
pub(crate) fn new(broker: SimBroker) -> Box<dyn Protocol> {
    match broker {
        SimBroker::Kite => Box::new(kite::Kite::default()),
        SimBroker::Angel => Box::new(angel::Angel::default()),
        SimBroker::Shoonya | SimBroker::Flattrade => Box::new(noren::Noren::new(broker)),
    }
}
