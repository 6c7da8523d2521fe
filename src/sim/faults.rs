//! Fault injection: the fault vocabulary, the board of active faults (published to every
//! connection through a watch channel), one-shot broadcasts and malformed frame builders.

use super::{Shared, lock, stopped};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// A fault the simulator can inject. JSON: `{"fault":"blackhole"}`, `{"fault":"close","code":1001}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// One-shot: send a close frame with this code on every open connection.
    Close {
        /// WebSocket close code (sendable ones: 1000-1003, 1007-1014, 3000-4999).
        code: u16,
    },
    /// One-shot: abrupt TCP reset (zero linger, then drop) on every open connection.
    Reset,
    /// Persistent: open connections go silent and stop reading; new ones never get an answer.
    Blackhole,
    /// Persistent: heartbeats continue, ticks stop.
    HeartbeatsOnly,
    /// Persistent: every credential is refused the way the broker refuses a bad token: Kite
    /// upgrade and REST 403 TokenException; Angel upgrade 401 with `x-error-message: Invalid
    /// Auth token`, REST 401 AG8001; Noren login answered `Not_Ok` (then closed), REST
    /// `Not_Ok` "Session Expired :  Invalid Session Key".
    Reject403,
    /// Persistent: upgrades and REST calls answered HTTP 429 (every protocol).
    Reject429,
    /// Persistent: complete the upgrade, then close at once (1000).
    AcceptThenClose,
    /// Persistent: interleave malformed binary frames with the normal ones.
    Malformed,
    /// Persistent: sleep this long before each write.
    SlowWrites {
        /// Delay before each write, milliseconds.
        delay_ms: u64,
    },
    /// Persistent: subscribe/mode messages are accepted (and recorded) but the tokens they name
    /// never tick on that connection, even after the fault ends, until subscribed again;
    /// earlier subscriptions keep ticking and heartbeats continue ("acked but silent"; Noren
    /// sends no snapshot for them, Angel has no ack at all).
    IgnoreSubscriptions,
    /// Persistent: accept TCP, never answer the HTTP upgrade.
    HangHandshake,
    /// Persistent: never send ticks for these tokens (Noren: not even the snapshot, which is
    /// sent first once the fault ends). A token matches a Kite instrument token on every
    /// protocol (408065 silences INFY everywhere) or an Angel / Noren token (1594 silences
    /// NSE INFY there, whatever the exchange).
    Quiet {
        /// Silent tokens.
        tokens: Vec<u32>,
    },
    /// Persistent: subscribing these tokens is refused and they never tick: Kite answers an
    /// error text, Angel an E1001 naming them, Noren sends no snapshot. Tokens match as for
    /// `Quiet`.
    RejectTokens {
        /// Rejected tokens.
        tokens: Vec<u32>,
    },
    /// Persistent: Flattrade's reconnect cooldown. A connection opened within
    /// `window_seconds` after a session of the same broker closed is upgraded and then closed
    /// at once (1000, "session cooldown"), without a login ack: a transient failure, not an
    /// auth one. Connections refused this way do not restart the window.
    Cooldown {
        /// The cooldown window, seconds (default 5).
        #[serde(default = "default_window")]
        window_seconds: f64,
    },
    /// Persistent: at most `max` concurrent connections per broker; an upgrade beyond it is
    /// answered HTTP 429 with `x-error-message: Connection limit exceeded` (the Angel path
    /// enforces 3 even without this fault, as the real server).
    ConnectionLimit {
        /// Concurrent connections allowed per broker (default 3).
        #[serde(default = "default_max")]
        max: usize,
    },
    /// Persistent: the server closes the connection (1000) right after a subscribe request,
    /// before acknowledging it (Noren's behaviour in OpenAlgo issue 1965; any protocol).
    CloseAfterSubscribe,
}

fn default_window() -> f64 {
    5.0
}

fn default_max() -> usize {
    3
}

impl Fault {
    /// Close and Reset act once on the connections open now; the rest persist until cleared.
    pub fn is_one_shot(&self) -> bool {
        matches!(self, Fault::Close { .. } | Fault::Reset)
    }
}

/// A one-shot action for every open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OneShot {
    Close(u16),
    Reset,
}

/// The persistent faults folded into what a connection checks on its hot path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flags {
    pub blackhole: bool,
    pub heartbeats_only: bool,
    pub reject403: bool,
    pub reject429: bool,
    pub accept_then_close: bool,
    pub malformed: bool,
    pub slow_writes: Option<Duration>,
    pub ignore_subscriptions: bool,
    pub hang_handshake: bool,
    pub quiet: HashSet<u32>,
    pub rejected: HashSet<u32>,
    pub cooldown: Option<Duration>,
    pub connection_limit: Option<usize>,
    pub close_after_subscribe: bool,
}

impl Flags {
    fn from_active(list: &[ActiveFault]) -> Flags {
        let mut f = Flags::default();
        for a in list {
            match &a.fault {
                Fault::Close { .. } | Fault::Reset => {}
                Fault::Blackhole => f.blackhole = true,
                Fault::HeartbeatsOnly => f.heartbeats_only = true,
                Fault::Reject403 => f.reject403 = true,
                Fault::Reject429 => f.reject429 = true,
                Fault::AcceptThenClose => f.accept_then_close = true,
                Fault::Malformed => f.malformed = true,
                Fault::SlowWrites { delay_ms } => {
                    let d = Duration::from_millis(*delay_ms);
                    f.slow_writes = Some(f.slow_writes.map_or(d, |o| o.max(d)));
                }
                Fault::IgnoreSubscriptions => f.ignore_subscriptions = true,
                Fault::HangHandshake => f.hang_handshake = true,
                Fault::Quiet { tokens } => f.quiet.extend(tokens),
                Fault::RejectTokens { tokens } => f.rejected.extend(tokens),
                Fault::Cooldown { window_seconds } => {
                    let d = Duration::try_from_secs_f64(*window_seconds).unwrap_or_default();
                    f.cooldown = Some(f.cooldown.map_or(d, |o| o.max(d)));
                }
                Fault::ConnectionLimit { max } => {
                    f.connection_limit = Some(f.connection_limit.map_or(*max, |o| o.min(*max)));
                }
                Fault::CloseAfterSubscribe => f.close_after_subscribe = true,
            }
        }
        f
    }

    /// True when `token` must not tick (quiet or rejected).
    #[inline]
    pub fn silenced(&self, token: u32) -> bool {
        (!self.quiet.is_empty() && self.quiet.contains(&token))
            || (!self.rejected.is_empty() && self.rejected.contains(&token))
    }

    /// True when a subscription to a broker token (or the Kite token of its instrument) must
    /// be refused.
    #[inline]
    pub fn rejects(&self, broker_token: u32, market: Option<u32>) -> bool {
        !self.rejected.is_empty()
            && (self.rejected.contains(&broker_token)
                || market.is_some_and(|m| self.rejected.contains(&m)))
    }
}

struct ActiveFault {
    id: u64,
    fault: Fault,
    until: Option<Instant>,
}

/// Active persistent faults plus the channels that announce changes.
pub(crate) struct FaultBoard {
    active: Mutex<Vec<ActiveFault>>,
    flags: watch::Sender<Arc<Flags>>,
    oneshot: broadcast::Sender<OneShot>,
    next_id: AtomicU64,
}

impl FaultBoard {
    pub fn new() -> FaultBoard {
        FaultBoard {
            active: Mutex::new(Vec::new()),
            flags: watch::Sender::new(Arc::new(Flags::default())),
            // Bounded: a connection that lags only misses stale one-shots.
            oneshot: broadcast::Sender::new(16),
            next_id: AtomicU64::new(1),
        }
    }

    /// Current flags.
    pub fn flags(&self) -> Arc<Flags> {
        self.flags.borrow().clone()
    }

    /// A receiver for flag changes (per connection).
    pub fn watch(&self) -> watch::Receiver<Arc<Flags>> {
        self.flags.subscribe()
    }

    /// A receiver for one-shot actions (per connection).
    pub fn oneshots(&self) -> broadcast::Receiver<OneShot> {
        self.oneshot.subscribe()
    }

    fn publish(&self, list: &[ActiveFault]) {
        // Called with the list locked, so publications are ordered like the changes.
        self.flags.send_replace(Arc::new(Flags::from_active(list)));
    }

    fn add(&self, fault: Fault, until: Option<Instant>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut list = lock(&self.active);
        // Re-injecting the same fault replaces it (and its expiry) instead of stacking.
        list.retain(|a| a.fault != fault);
        list.push(ActiveFault { id, fault, until });
        self.publish(&list);
        id
    }

    fn remove(&self, id: u64) {
        let mut list = lock(&self.active);
        let before = list.len();
        list.retain(|a| a.id != id);
        if list.len() != before {
            self.publish(&list);
        }
    }

    /// Clear every persistent fault.
    pub fn clear(&self) {
        let mut list = lock(&self.active);
        list.clear();
        self.publish(&list);
    }

    /// Active faults with the time left (None = until cleared).
    pub fn active(&self) -> Vec<(Fault, Option<Duration>)> {
        let now = Instant::now();
        lock(&self.active)
            .iter()
            .map(|a| {
                (
                    a.fault.clone(),
                    a.until.map(|u| u.saturating_duration_since(now)),
                )
            })
            .collect()
    }
}

/// Inject a fault: one-shots are broadcast now; persistent faults are recorded and, with a
/// duration, removed by a timer task (tokio time, so paused-clock tests can advance it).
pub(crate) fn inject(shared: &Shared, fault: Fault, duration: Option<Duration>) {
    tracing::info!(?fault, ?duration, "simulator fault injected");
    let board = &shared.faults;
    match fault {
        Fault::Close { code } => {
            let _ = board.oneshot.send(OneShot::Close(code));
        }
        Fault::Reset => {
            let _ = board.oneshot.send(OneShot::Reset);
        }
        fault => {
            let until = duration.map(|d| Instant::now() + d);
            let id = board.add(fault, until);
            if let Some(until) = until {
                let board = board.clone();
                let mut stop = shared.shutdown.clone();
                shared.rt.spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => board.remove(id),
                        _ = stopped(&mut stop) => {}
                    }
                });
            }
        }
    }
}

pub use super::proto::kite::{MALFORMED_KINDS, malformed_frame};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_json_shape() {
        let f: Fault = serde_json::from_str(r#"{"fault":"slow_writes","delay_ms":50}"#).unwrap();
        assert_eq!(f, Fault::SlowWrites { delay_ms: 50 });
        assert_eq!(
            serde_json::to_string(&Fault::Close { code: 1001 }).unwrap(),
            r#"{"fault":"close","code":1001}"#
        );
        assert_eq!(
            serde_json::to_value(Fault::HangHandshake).unwrap(),
            serde_json::json!({"fault":"hang_handshake"})
        );
        assert!(Fault::Reset.is_one_shot() && !Fault::Blackhole.is_one_shot());
    }

    #[test]
    fn flags_fold_and_replace() {
        let board = FaultBoard::new();
        let id = board.add(Fault::Quiet { tokens: vec![1, 2] }, None);
        board.add(Fault::SlowWrites { delay_ms: 5 }, None);
        board.add(Fault::SlowWrites { delay_ms: 9 }, None);
        board.add(Fault::SlowWrites { delay_ms: 9 }, None);
        let f = board.flags();
        assert!(f.silenced(2) && !f.silenced(3));
        assert_eq!(f.slow_writes, Some(Duration::from_millis(9)));
        assert_eq!(board.active().len(), 3);
        board.remove(id);
        assert!(!board.flags().silenced(2));
        board.clear();
        assert!(board.active().is_empty());
    }

    #[test]
    fn quirk_faults_parse_with_defaults() {
        let f: Fault = serde_json::from_str(r#"{"fault":"cooldown"}"#).unwrap();
        assert_eq!(
            f,
            Fault::Cooldown {
                window_seconds: 5.0
            }
        );
        let f: Fault = serde_json::from_str(r#"{"fault":"connection_limit","max":1}"#).unwrap();
        assert_eq!(f, Fault::ConnectionLimit { max: 1 });
        let f: Fault = serde_json::from_str(r#"{"fault":"close_after_subscribe"}"#).unwrap();
        assert_eq!(f, Fault::CloseAfterSubscribe);
        let fl = Flags::from_active(&[ActiveFault {
            id: 1,
            fault: Fault::Cooldown {
                window_seconds: -1.0,
            },
            until: None,
        }]);
        assert_eq!(fl.cooldown, Some(Duration::ZERO));
    }
}
