//! Reconnect backoff: exponential schedule from `backon`, jittered and bounded, with an attempt
//! limit. Reset only when the engine proves recovery (first tick of a new connection) or on a
//! forced reconnect.

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Backoff parameters (defaults: 1 s, x2, cap 60 s, 10 attempts, 20 % jitter).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay.
    #[serde(with = "crate::config::secs_f64")]
    pub base: Duration,
    /// Growth factor per attempt (>= 1).
    pub factor: f32,
    /// Largest delay.
    #[serde(with = "crate::config::secs_f64")]
    pub cap: Duration,
    /// Attempts before the engine gives up (state `exhausted`).
    pub max_attempts: u32,
    /// Jitter fraction: each delay is drawn from [d * (1 - jitter), d].
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(60),
            max_attempts: 10,
            jitter: 0.2,
        }
    }
}

/// The backoff state of one engine.
#[derive(Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    schedule: backon::ExponentialBackoff,
    rng: SmallRng,
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff; `seed` makes the jitter reproducible.
    pub fn new(cfg: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            schedule: Self::schedule(&cfg),
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            attempt: 0,
        }
    }

    fn schedule(cfg: &BackoffConfig) -> backon::ExponentialBackoff {
        // backon supplies the deterministic exponential series; jitter is applied below so it
        // stays inside [floor, cap] (backon's own jitter may double a capped delay).
        ExponentialBuilder::new()
            .with_min_delay(cfg.base)
            .with_max_delay(cfg.cap.max(cfg.base))
            .with_factor(cfg.factor.max(1.0))
            .without_max_times()
            .build()
    }

    /// Failed attempts since the last recovery.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The configured attempt limit.
    pub fn max_attempts(&self) -> u32 {
        self.cfg.max_attempts
    }

    /// Record a failed attempt and return the delay before the next one, or `None` when the
    /// attempt limit is reached.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.cfg.max_attempts {
            return None;
        }
        self.attempt += 1;
        let d = self.schedule.next().unwrap_or(self.cfg.cap);
        let j = self.cfg.jitter.clamp(0.0, 1.0);
        let scale = if j > 0.0 {
            self.rng.random_range((1.0 - j)..=1.0)
        } else {
            1.0
        };
        Some(d.mul_f64(scale).min(self.cfg.cap))
    }

    /// Back to the initial schedule (first tick after a reconnect, or a forced reconnect).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.schedule = Self::schedule(&self.cfg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(base_ms: u64, factor: f32, cap_ms: u64, max: u32, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(base_ms),
            factor,
            cap: Duration::from_millis(cap_ms),
            max_attempts: max,
            jitter,
        }
    }

    #[test]
    fn default_schedule_without_jitter() {
        let mut b = Backoff::new(cfg(1000, 2.0, 60_000, 10, 0.0), 1);
        let d: Vec<u64> = std::iter::from_fn(|| b.next_delay())
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(
            d,
            vec![
                1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000
            ]
        );
        assert_eq!(b.attempt(), 10);
        assert_eq!(b.next_delay(), None);
    }

    proptest! {
        // F28: backoff properties.
        #[test]
        fn f28_backoff_properties(
            base in 1u64..5_000, factor in 1.0f32..4.0, cap_mul in 1u64..100,
            max in 1u32..40, jitter in 0.0f64..0.9, seed: u64,
        ) {
            let cap = base * cap_mul;
            let c = cfg(base, factor, cap, max, jitter);
            let mut plain = Backoff::new(BackoffConfig { jitter: 0.0, ..c }, seed);
            let mut jit = Backoff::new(c, seed);
            let mut prev = Duration::ZERO;
            let mut reached_cap = false;
            for i in 0..max {
                let p = plain.next_delay().unwrap();
                let j = jit.next_delay().unwrap();
                // without jitter: non-decreasing, within [base, cap]
                prop_assert!(p >= prev, "attempt {i}: {p:?} < {prev:?}");
                prop_assert!(p >= Duration::from_millis(base).min(Duration::from_millis(cap)));
                prop_assert!(p <= Duration::from_millis(cap));
                // with jitter: within [p * (1 - jitter) - 1ns, p]
                prop_assert!(j <= p);
                prop_assert!(j.as_secs_f64() >= p.as_secs_f64() * (1.0 - jitter) - 1e-6);
                reached_cap |= p == Duration::from_millis(cap);
                prev = p;
            }
            // the attempt limit holds, and reset restores the initial schedule
            prop_assert_eq!(plain.next_delay(), None);
            prop_assert_eq!(plain.attempt(), max);
            plain.reset();
            prop_assert_eq!(plain.attempt(), 0);
            prop_assert_eq!(plain.next_delay(), Some(Duration::from_millis(base)));
            // given enough attempts the cap is reached
            if factor >= 1.5 && max >= 12 && cap_mul <= 64 {
                prop_assert!(reached_cap);
            }
        }
    }

    #[test]
    fn same_seed_same_jitter() {
        let c = cfg(1000, 2.0, 60_000, 10, 0.3);
        let a: Vec<_> = {
            let mut b = Backoff::new(c, 7);
            std::iter::from_fn(|| b.next_delay()).collect()
        };
        let b2: Vec<_> = {
            let mut b = Backoff::new(c, 7);
            std::iter::from_fn(|| b.next_delay()).collect()
        };
        assert_eq!(a, b2);
    }
}
