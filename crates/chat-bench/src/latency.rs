//! Latency recording (HDR histogram, microsecond resolution) and the
//! percentile summary every mode reports.

use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// One hour in microseconds: anything slower is recorded as one hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Samples a task keeps before taking the shared recorder's lock.
const BUFFERED_SAMPLES: usize = 512;

/// Latencies of one kind of event. One histogram at this precision is a few
/// hundred KB, so a run keeps one per kind ([`SharedLatency`]), not one per
/// socket.
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty recorder: 1 µs to 1 h at 3 significant digits.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
            .expect("constant bounds: 1 <= low, high >= 2 * low, 3 significant digits");
        Self { histogram }
    }

    /// Records one latency given in nanoseconds (below 1 µs counts as 1 µs).
    pub fn record_nanos(&mut self, nanos: u64) {
        self.histogram.saturating_record((nanos / 1_000).max(1));
    }

    /// Adds another recorder's samples.
    #[cfg(test)]
    pub fn merge(&mut self, other: &Latency) {
        self.histogram
            .add(&other.histogram)
            .expect("same bounds on both sides");
    }

    /// Percentiles in milliseconds (all `None` without samples).
    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        let ms = |micros: u64| (!h.is_empty()).then(|| round3(micros as f64 / 1_000.0));
        LatencySummary {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: (!h.is_empty()).then(|| round3(h.mean() / 1_000.0)),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// A run-wide [`Latency`] that many tasks feed, each through its own
/// [`LatencyBuffer`] so that the lock is taken once per few hundred samples.
#[derive(Clone, Debug, Default)]
pub struct SharedLatency(Arc<Mutex<Latency>>);

impl SharedLatency {
    /// A buffer feeding this recorder; it flushes when full and on drop.
    pub fn buffer(&self) -> LatencyBuffer {
        LatencyBuffer {
            shared: self.clone(),
            pending: Vec::with_capacity(BUFFERED_SAMPLES),
        }
    }

    /// The percentiles of everything flushed so far.
    pub fn summary(&self) -> LatencySummary {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .summary()
    }
}

/// One task's samples on their way to a [`SharedLatency`].
#[derive(Debug)]
pub struct LatencyBuffer {
    shared: SharedLatency,
    pending: Vec<u64>,
}

impl LatencyBuffer {
    /// Records one latency in nanoseconds.
    pub fn record_nanos(&mut self, nanos: u64) {
        self.pending.push(nanos);
        if self.pending.len() >= BUFFERED_SAMPLES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // A panic elsewhere while holding the lock leaves a histogram that
        // is still valid: keep recording into it.
        let mut latency = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        for nanos in self.pending.drain(..) {
            latency.record_nanos(nanos);
        }
    }
}

impl Drop for LatencyBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The figures of one latency distribution, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Fastest.
    pub min_ms: Option<f64>,
    /// Arithmetic mean.
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

impl LatencySummary {
    /// "p50 1.234 ms, p90 …" for the human summary.
    pub fn human(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        format!(
            "p50 {} / p90 {} / p99 {} / p99.9 {} / max {} ms ({} samples)",
            f(self.p50_ms),
            f(self.p90_ms),
            f(self.p99_ms),
            f(self.p999_ms),
            f(self.max_ms),
            self.count
        )
    }
}

fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() <= expected * 0.002)
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut latency = Latency::new();
        for ms in 1..=1_000u64 {
            latency.record_nanos(ms * 1_000_000);
        }
        let s = latency.summary();
        assert_eq!(s.count, 1_000);
        assert!(close(s.min_ms, 1.0), "{s:?}");
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.p999_ms, 999.0), "{s:?}");
        assert!(close(s.max_ms, 1_000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
    }

    #[test]
    fn an_empty_recorder_reports_no_figures() {
        let s = Latency::new().summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_ms, None);
        assert_eq!(s.max_ms, None);
        assert!(s.human().contains("p99 -"));
    }

    #[test]
    fn buffered_samples_reach_the_shared_recorder() {
        let shared = SharedLatency::default();
        let mut a = shared.buffer();
        let mut b = shared.buffer();
        for _ in 0..BUFFERED_SAMPLES {
            a.record_nanos(1_000_000);
        }
        assert_eq!(
            shared.summary().count,
            BUFFERED_SAMPLES as u64,
            "a full buffer flushes"
        );
        b.record_nanos(2_000_000);
        assert_eq!(
            shared.summary().count,
            BUFFERED_SAMPLES as u64,
            "b still holds its sample"
        );
        drop(b);
        drop(a);
        let s = shared.summary();
        assert_eq!(s.count, BUFFERED_SAMPLES as u64 + 1);
        assert!(close(s.max_ms, 2.0), "{s:?}");
    }

    #[test]
    fn merging_adds_samples_and_extremes_survive() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_nanos(500); // below 1 µs: counted as 1 µs
        b.record_nanos(7_200_000_000_000); // two hours: saturates at one
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 2);
        assert!(close(s.min_ms, 0.001), "{s:?}");
        assert!(close(s.max_ms, 3_600_000.0), "{s:?}");
    }
}
