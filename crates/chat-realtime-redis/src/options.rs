//! How a [`RedisNotifier`](crate::RedisNotifier) is tuned.

use std::time::Duration;

use chat_domain::{DomainError, DomainResult};
use chat_realtime::HubConfig;

/// Settings of a [`RedisNotifier`](crate::RedisNotifier). Every instance of
/// one cluster must use the same `prefix`; the others may differ per
/// instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prefix of every Redis key and of the events channel
    /// (`<prefix>:events`). Default `chat`. Instances with different
    /// prefixes are separate clusters sharing one Redis (tests use this).
    pub prefix: String,
    /// How often an instance refreshes its presence registration (and
    /// reaps lapsed instances). Default 5 s.
    pub heartbeat: Duration,
    /// How long a registration lives without a refresh; must exceed
    /// `heartbeat` (three heartbeats are advised, so one slow beat does not
    /// make an instance's users flicker offline). Default 15 s. The users of
    /// an instance that dies go offline everywhere within
    /// [`RedisOptions::offline_bound`].
    pub presence_ttl: Duration,
    /// Longest wait for a connection to Redis or for one reply, before
    /// Redis is taken as lost (local delivery carries on). Default 2 s.
    pub io_timeout: Duration,
    /// Longest pause between reconnection attempts; they start at 100 ms
    /// and double up to this. Default 5 s.
    pub max_backoff: Duration,
    /// Envelopes waiting to be published to Redis before `publish` waits
    /// for room (bounded memory; the wait is bounded by `io_timeout`, after
    /// which Redis counts as lost and waiting envelopes are dropped).
    /// Default 4096.
    pub publish_queue: usize,
    /// The local hub holding this instance's connections.
    pub hub: HubConfig,
}

impl RedisOptions {
    /// The defaults with another key prefix.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// The longest time after an instance dies before its users (those not
    /// connected through another instance) are announced offline and leave
    /// `connected_users` everywhere: its registration lapses at most
    /// `presence_ttl` after its last refresh, and a survivor notices at its
    /// next heartbeat. 20 s with the defaults.
    pub fn offline_bound(&self) -> Duration {
        self.presence_ttl + self.heartbeat
    }

    pub(crate) fn validate(&self) -> DomainResult<()> {
        if self.prefix.is_empty() || self.prefix.chars().any(char::is_whitespace) {
            return Err(DomainError::invalid(
                "prefix",
                "must be non-empty, without whitespace",
            ));
        }
        if self.heartbeat < Duration::from_millis(10) {
            return Err(DomainError::invalid("heartbeat", "must be at least 10 ms"));
        }
        if self.presence_ttl <= self.heartbeat {
            return Err(DomainError::invalid(
                "presence_ttl",
                "must be longer than the heartbeat (three heartbeats are advised)",
            ));
        }
        if self.io_timeout.is_zero() || self.max_backoff.is_zero() || self.publish_queue == 0 {
            return Err(DomainError::invalid(
                "io_timeout",
                "timeouts, backoff and queue size must be positive",
            ));
        }
        Ok(())
    }

    /// The registration lifetime in whole milliseconds, for the scripts.
    pub(crate) fn ttl_ms(&self) -> u64 {
        u64::try_from(self.presence_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "chat".into(),
            heartbeat: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(15),
            io_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
            publish_queue: 4096,
            hub: HubConfig::default(),
        }
    }
}

/// Exponential backoff between reconnection attempts: 100 ms, doubling,
/// capped.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST.min(max),
            max,
        }
    }

    /// The pause before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: the next failure starts over.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bound_offline_at_20_s() {
        let options = RedisOptions::default();
        assert_eq!(options.validate(), Ok(()));
        assert_eq!(options.offline_bound(), Duration::from_secs(20));
    }

    #[test]
    fn a_ttl_not_above_the_heartbeat_is_refused() {
        let options = RedisOptions {
            presence_ttl: Duration::from_secs(5),
            ..RedisOptions::default()
        };
        assert!(options.validate().is_err());
        assert!(RedisOptions::with_prefix("").validate().is_err());
        assert!(RedisOptions::with_prefix("a b").validate().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500));
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
