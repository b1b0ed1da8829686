//! Login and register attempts per client address (GCRA via `governor`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_domain::{DomainError, DomainResult};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How often addresses whose quota has fully refilled are forgotten, so
/// memory does not grow with the number of distinct clients.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A per-address limiter; a quota of 0 turns it off.
pub(crate) struct AuthRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    last_sweep: Mutex<Instant>,
}

impl AuthRateLimiter {
    /// At most `per_minute` attempts per minute per address (bursts of up
    /// to `per_minute`, then one every `60 / per_minute` seconds).
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Counts one attempt from `addr`.
    pub(crate) fn check(&self, addr: IpAddr) -> DomainResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.sweep_if_due(limiter);
        limiter.check_key(&addr).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            DomainError::RateLimited {
                retry_after_secs: whole_seconds_up(wait),
            }
        })
    }

    fn sweep_if_due(&self, limiter: &DefaultKeyedRateLimiter<IpAddr>) {
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

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// Seconds to wait, rounded up, at least 1 (a `Retry-After: 0` invites an
/// immediate retry that would fail again).
fn whole_seconds_up(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn the_quota_is_per_address() {
        let limiter = AuthRateLimiter::new(2);
        assert!(limiter.check(addr(1)).is_ok());
        assert!(limiter.check(addr(1)).is_ok());
        let err = limiter.check(addr(1)).expect_err("third attempt");
        match err {
            DomainError::RateLimited { retry_after_secs } => {
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(limiter.check(addr(2)).is_ok());
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = AuthRateLimiter::new(0);
        for _ in 0..100 {
            assert!(limiter.check(addr(1)).is_ok());
        }
    }

    #[test]
    fn waits_round_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(20_001)), 21);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    }
}
