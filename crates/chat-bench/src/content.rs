//! What a benchmark message carries: `bench:<run>:<seq>:<unix_nanos>`.
//!
//! The receiver needs no side channel to measure latency or count losses:
//! the run id filters out other traffic, the sequence number identifies the
//! message, and the send time is in the text itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

const PREFIX: &str = "bench:";

/// The content of benchmark message `seq` of `run`, sent at `unix_nanos`.
pub fn encode(run: &str, seq: u64, unix_nanos: u64) -> String {
    format!("{PREFIX}{run}:{seq}:{unix_nanos}")
}

/// The `(seq, unix_nanos)` of a message of `run`, or `None` for any other
/// content (another run's, a human's, a malformed one).
pub fn decode(content: &str, run: &str) -> Option<(u64, u64)> {
    let rest = content.strip_prefix(PREFIX)?.strip_prefix(run)?;
    let mut fields = rest.strip_prefix(':')?.split(':');
    let seq = fields.next()?.parse().ok()?;
    let nanos = fields.next()?.parse().ok()?;
    fields.next().is_none().then_some((seq, nanos))
}

/// Wall-clock nanoseconds that never go backwards within a run: one reading
/// of the system clock at start plus a monotonic elapsed time, so senders
/// and receivers in this process agree and an NTP step cannot make a
/// latency negative.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix_nanos: u64,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self {
            start: Instant::now(),
            start_unix_nanos: nanos(since_epoch),
        }
    }

    /// Unix nanoseconds now.
    pub fn now_nanos(&self) -> u64 {
        self.at(Instant::now())
    }

    /// Unix nanoseconds at `instant`.
    pub fn at(&self, instant: Instant) -> u64 {
        self.start_unix_nanos
            .saturating_add(nanos(instant.saturating_duration_since(self.start)))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips() {
        let text = encode("k3x9a", 42, 1_764_000_000_123_456_789);
        assert_eq!(text, "bench:k3x9a:42:1764000000123456789");
        assert_eq!(
            decode(&text, "k3x9a"),
            Some((42, 1_764_000_000_123_456_789))
        );
    }

    #[test]
    fn other_content_is_ignored() {
        for text in [
            "hello",
            "bench:other:1:2",
            "bench:k3x9a",
            "bench:k3x9a:",
            "bench:k3x9a:x:2",
            "bench:k3x9a:1:y",
            "bench:k3x9a:1:2:3",
            "bench:k3x9ab:1:2",
        ] {
            assert_eq!(decode(text, "k3x9a"), None, "{text}");
        }
    }

    #[test]
    fn the_clock_moves_forward_and_measures_elapsed_time() {
        let clock = Clock::new();
        let before = clock.now_nanos();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now_nanos() - before >= 2_000_000);
        let later = Instant::now() + Duration::from_secs(1);
        assert!(clock.at(later) - clock.now_nanos() > 900_000_000);
    }
}
