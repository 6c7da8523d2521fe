//! Rate limits, pure (time is passed in): a token bucket per connection against message
//! floods, and one process-wide limiter on failed authentications.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Token bucket: `rate` messages per second, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Take one token; false when the bucket is empty (the message is over the limit).
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Failed authentications across all connections: at most `max` in a sliding `window`;
/// beyond that every attempt is refused until the oldest failure leaves the window.
#[derive(Debug)]
pub struct AuthLimiter {
    max: usize,
    window: Duration,
    failures: VecDeque<Instant>,
}

impl AuthLimiter {
    /// A limiter allowing `max` failures per `window`.
    pub fn new(max: usize, window: Duration) -> AuthLimiter {
        AuthLimiter {
            max: max.max(1),
            window,
            failures: VecDeque::new(),
        }
    }

    fn trim(&mut self, now: Instant) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.failures.pop_front();
        }
    }

    /// `Err(wait)` while locked out: attempts are refused without checking the key.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.trim(now);
        if self.failures.len() >= self.max {
            let oldest = self.failures.front().copied().unwrap_or(now);
            Err(self
                .window
                .saturating_sub(now.saturating_duration_since(oldest)))
        } else {
            Ok(())
        }
    }

    /// Record a failed attempt.
    pub fn fail(&mut self, now: Instant) {
        self.trim(now);
        self.failures.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 5, t0);
        assert_eq!((0..8).filter(|_| b.take(t0)).count(), 5);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!((0..8).filter(|_| b.take(Instant::now())).count(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            (0..8).filter(|_| b.take(Instant::now())).count(),
            5,
            "capped at burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn auth_limiter_locks_out_after_max_failures_in_the_window() {
        let mut l = AuthLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(Instant::now()).is_ok());
            l.fail(Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let wait = l.check(Instant::now()).unwrap_err();
        assert_eq!(wait, Duration::from_secs(57));
        tokio::time::advance(wait).await;
        assert!(
            l.check(Instant::now()).is_ok(),
            "the oldest failure left the window"
        );
    }
}
