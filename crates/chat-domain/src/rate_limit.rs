//! Rate limits by key (a client address, a user): GCRA, through
//! `governor`, with the keys whose quota has fully refilled forgotten now
//! and then, so memory does not grow with the number of keys ever seen.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::{DomainError, DomainResult};

/// How often keys whose quota has fully refilled are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A quota per key; a quota of 0 turns the limit off.
pub struct RateLimit<K: Hash + Eq + Clone> {
    limiter: Option<Keyed<K>>,
    last_sweep: Mutex<Instant>,
}

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// At most `n` per minute per key: bursts of up to `n`, then one every
    /// `60 / n` seconds.
    pub fn per_minute(n: u32) -> Self {
        Self::with_quota(NonZeroU32::new(n).map(Quota::per_minute))
    }

    /// `n` per second per key, in bursts of up to twice that.
    pub fn per_second_bursting_twice(n: u32) -> Self {
        Self::with_quota(NonZeroU32::new(n).map(|rate| {
            let burst = NonZeroU32::new(n.saturating_mul(2)).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        }))
    }

    fn with_quota(quota: Option<Quota>) -> Self {
        Self {
            limiter: quota.map(RateLimiter::keyed),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Counts one event of `key`; `RateLimited` (with how long to wait)
    /// when over the quota.
    pub fn check(&self, key: &K) -> DomainResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.sweep_if_due(limiter);
        limiter
            .check_key(key)
            .map_err(|not_until| rate_limited(not_until.wait_time_from(limiter.clock().now())))
    }

    fn sweep_if_due(&self, limiter: &Keyed<K>) {
        // Whoever holds the lock sweeps; the others need not wait for it.
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() >= SWEEP_EVERY {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            *last = Instant::now();
        }
    }

    /// Keys remembered now.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// The `RateLimited` error for a limiter's refusal that says to wait
/// `wait`: in whole seconds, rounded up, at least 1 (a `Retry-After: 0`
/// invites an immediate retry that would fail again).
pub fn rate_limited(wait: Duration) -> DomainError {
    DomainError::RateLimited {
        retry_after_secs: whole_seconds_up(wait),
    }
}

fn whole_seconds_up(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for RateLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("on", &self.limiter.is_some())
            .field("tracked", &self.tracked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_per_key() {
        let limit = RateLimit::per_minute(2);
        assert!(limit.check(&1).is_ok());
        assert!(limit.check(&1).is_ok());
        match limit.check(&1) {
            Err(DomainError::RateLimited { retry_after_secs }) => {
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(limit.check(&2).is_ok());
        assert_eq!(limit.tracked(), 2);
    }

    #[test]
    fn a_per_second_quota_allows_a_burst_of_twice_the_rate() {
        let limit = RateLimit::per_second_bursting_twice(5);
        let allowed = (0..30).filter(|_| limit.check(&"alice").is_ok()).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn zero_turns_it_off() {
        for limit in [
            RateLimit::per_minute(0),
            RateLimit::per_second_bursting_twice(0),
        ] {
            assert!((0..100).all(|_| limit.check(&1).is_ok()));
            assert_eq!(limit.tracked(), 0);
        }
    }

    #[test]
    fn waits_round_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(20_001)), 21);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    }
}
