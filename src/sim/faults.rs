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
    /// Persistent: upgrades and REST calls answered HTTP 403 (TokenException).
    Reject403,
    /// Persistent: upgrades and REST calls answered HTTP 429.
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
    /// earlier subscriptions keep ticking and heartbeats continue ("acked but silent").
    IgnoreSubscriptions,
    /// Persistent: accept TCP, never answer the HTTP upgrade.
    HangHandshake,
    /// Persistent: never send ticks for these tokens.
    Quiet {
        /// Silent tokens.
        tokens: Vec<u32>,
    },
    /// Persistent: subscribing these tokens gets an error text; they never tick.
    RejectTokens {
        /// Rejected tokens.
        tokens: Vec<u32>,
    },
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

/// Number of distinct malformed frame shapes [`malformed_frame`] produces.
pub const MALFORMED_KINDS: u32 = 5;

/// Build malformed frame number `kind % MALFORMED_KINDS` for `token` into `out` (cleared
/// first). Shapes: truncated packet, packet count larger than the packets present, trailing
/// bytes after the packets, an unknown packet length (8/28/32/44/184 are the only valid ones),
/// and a packet length pointing past the end of the frame.
pub fn malformed_frame(kind: u32, token: u32, out: &mut Vec<u8>) {
    out.clear();
    let ltp_packet = |out: &mut Vec<u8>| {
        out.extend_from_slice(&token.to_be_bytes());
        out.extend_from_slice(&100_000u32.to_be_bytes());
    };
    match kind % MALFORMED_KINDS {
        0 => {
            // Says one 44-byte quote packet, carries 20 bytes of it.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&44u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0u8; 12]);
        }
        1 => {
            // Says three packets, carries one.
            out.extend_from_slice(&3u16.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            ltp_packet(out);
        }
        2 => {
            // One valid LTP packet followed by garbage.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0xde, 0xad, 0xbe]);
        }
        3 => {
            // A 10-byte packet: no such packet kind.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&10u16.to_be_bytes());
            ltp_packet(out);
            out.extend_from_slice(&[0, 0]);
        }
        _ => {
            // Packet length far beyond the frame.
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&0xffffu16.to_be_bytes());
            ltp_packet(out);
        }
    }
}

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
    fn malformed_frames_differ_from_valid_lengths() {
        let mut b = Vec::new();
        for k in 0..MALFORMED_KINDS {
            malformed_frame(k, 408065, &mut b);
            assert!(b.len() > 4, "kind {k} must not look like a heartbeat");
        }
    }
}
