//! The one health snapshot every surface renders (TUI pane, stream health lines, proxy
//! heartbeats), and the trailing-window quality measure behind it.

use crate::adapters::ErrorKind;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Engine state (design.md "Engine states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    /// Market closed and no connection wanted.
    Closed,
    /// Checking the access token over REST.
    ValidatingToken,
    /// Opening the WebSocket.
    #[default]
    Connecting,
    /// Connected, subscriptions sent, waiting for the first tick of this connection.
    Subscribing,
    /// Ticks flowing.
    Live,
    /// Connected but no tick for any subscribed instrument within `stale_after`.
    Stale,
    /// Waiting before the next reconnect attempt.
    Backoff,
    /// The broker rejected the token: no retries until a new token arrives.
    TokenInvalid,
    /// Polling REST instead of the WebSocket (escalation; later issue).
    FallbackRest,
    /// No consumers want anything; connected or not per the broker's idle policy.
    Idle,
    /// Reconnect attempts ran out; waits for a forced reconnect (or REST fallback).
    Exhausted,
    /// Shut down.
    Stopped,
}

impl EngineState {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Closed => "closed",
            EngineState::ValidatingToken => "validating_token",
            EngineState::Connecting => "connecting",
            EngineState::Subscribing => "subscribing",
            EngineState::Live => "live",
            EngineState::Stale => "stale",
            EngineState::Backoff => "backoff",
            EngineState::TokenInvalid => "token_invalid",
            EngineState::FallbackRest => "fallback_rest",
            EngineState::Idle => "idle",
            EngineState::Exhausted => "exhausted",
            EngineState::Stopped => "stopped",
        }
    }
}

/// Where ticks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransportMode {
    /// The broker's WebSocket.
    #[default]
    Websocket,
    /// REST polling (fallback).
    RestPolling,
}

/// Quality label over the trailing window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QualityLabel {
    /// >= 95 % of the window live and fresh.
    #[default]
    Excellent,
    /// >= 70 %.
    Degraded,
    /// Below 70 %.
    Poor,
}

impl QualityLabel {
    /// Label for a percentage.
    pub fn from_pct(p: f64) -> QualityLabel {
        if p >= 95.0 {
            QualityLabel::Excellent
        } else if p >= 70.0 {
            QualityLabel::Degraded
        } else {
            QualityLabel::Poor
        }
    }
}

/// Backoff as shown: "attempt 3/10, next in 4.2 s".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BackoffInfo {
    /// Failed attempts since the last recovery.
    pub attempt: u32,
    /// Attempt limit.
    pub max: u32,
    /// Delay chosen for this wait, ms.
    pub delay_ms: u64,
    /// Time left until the retry when the snapshot was taken, ms.
    pub next_in_ms: u64,
    /// Wall-clock time of the next retry, Unix ms.
    pub next_at_unix_ms: i64,
}

/// The last error, kind and text (secrets redacted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    /// Kind.
    pub kind: ErrorKind,
    /// Human text.
    pub text: String,
    /// When, Unix ms.
    pub at_unix_ms: i64,
}

/// Health snapshot published on a watch channel.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Health {
    /// Broker adapter name.
    pub broker: String,
    /// Account (user id from the token check, or the configured name).
    pub account: String,
    /// Engine state.
    pub state: EngineState,
    /// Transport mode.
    pub transport: TransportMode,
    /// Percent of the trailing window spent live and fresh.
    pub quality_pct: f64,
    /// Label for `quality_pct`.
    pub quality: QualityLabel,
    /// Age of the last tick, ms (None before the first tick).
    pub last_tick_age_ms: Option<u64>,
    /// Ticks per second over the last few seconds.
    pub ticks_per_sec: f64,
    /// Backoff, when waiting to reconnect.
    pub backoff: Option<BackoffInfo>,
    /// Reconnects since start (connections lost or replaced).
    pub reconnects: u64,
    /// Last error.
    pub last_error: Option<LastError>,
    /// Desired subscriptions.
    pub desired: usize,
    /// Subscriptions applied on the current connection.
    pub applied: usize,
    /// Registered consumers.
    pub consumers: usize,
    /// Open upstream connections (never above 1 per account).
    pub upstream_connections: usize,
    /// Whether the market is open (input to the data watchdog).
    pub market_open: bool,
    /// Ticks received in total.
    pub ticks_total: u64,
    /// Malformed frames received (counted, skipped).
    pub malformed_frames: u64,
    /// Packets of unknown kind skipped.
    pub skipped_packets: u64,
    /// Data-watchdog trips (stale detected).
    pub stale_events: u64,
    /// Ticks conflated away for slow stream consumers.
    pub stream_drops: u64,
    /// Connection epoch (increments with each new connection).
    pub epoch: u64,
}

/// Trailing-window quality: the share of time spent live with fresh data.
#[derive(Debug)]
pub struct Quality {
    window: Duration,
    /// (start, good) segments, oldest first; the last one is open.
    segs: VecDeque<(Instant, bool)>,
}

impl Quality {
    /// A tracker over `window`, starting now in state `good`.
    pub fn new(window: Duration, now: Instant, good: bool) -> Quality {
        let mut segs = VecDeque::new();
        segs.push_back((now, good));
        Quality { window, segs }
    }

    /// Record the current goodness (cheap when unchanged).
    pub fn set(&mut self, now: Instant, good: bool) {
        if self.segs.back().map(|s| s.1) != Some(good) {
            self.segs.push_back((now, good));
        }
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        let start = now.checked_sub(self.window).unwrap_or(now);
        while self.segs.len() > 1 && self.segs[1].0 <= start {
            self.segs.pop_front();
        }
    }

    /// Percent of the window (or of the time since start, if shorter) that was good.
    pub fn pct(&mut self, now: Instant) -> f64 {
        self.trim(now);
        let start = now.checked_sub(self.window).unwrap_or(now);
        let mut good = Duration::ZERO;
        let mut total = Duration::ZERO;
        for (i, (t, g)) in self.segs.iter().enumerate() {
            let from = (*t).max(start);
            let to = self.segs.get(i + 1).map(|s| s.0).unwrap_or(now);
            if to > from {
                total += to - from;
                if *g {
                    good += to - from;
                }
            }
        }
        if total.is_zero() {
            return if self.segs.back().map(|s| s.1).unwrap_or(false) {
                100.0
            } else {
                0.0
            };
        }
        100.0 * good.as_secs_f64() / total.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quality_over_trailing_window() {
        let t0 = Instant::now();
        let mut q = Quality::new(Duration::from_secs(60), t0, true);
        tokio::time::advance(Duration::from_secs(30)).await;
        q.set(Instant::now(), false);
        tokio::time::advance(Duration::from_secs(10)).await;
        let p = q.pct(Instant::now());
        assert!((p - 75.0).abs() < 0.01, "{p}");
        q.set(Instant::now(), true);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!((q.pct(Instant::now()) - 100.0).abs() < 0.01);
        assert_eq!(QualityLabel::from_pct(75.0), QualityLabel::Degraded);
        assert_eq!(QualityLabel::from_pct(50.0), QualityLabel::Poor);
    }
}
