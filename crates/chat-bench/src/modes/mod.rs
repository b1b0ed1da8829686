//! The modes and what they share: the run context, signing users in,
//! opening sockets, reading frames, pacing senders, waiting for stragglers.

mod changes;
pub mod dm;
pub mod fanout;
pub mod history;
pub mod http;
pub mod idle;
mod reader;
mod sender;
pub mod storm;
mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{stream, StreamExt};
use indicatif::ProgressBar;
use tokio::time::Instant;

use crate::api::{self, Api, Session};
use crate::content::Clock;
use crate::error::{BenchError, BenchResult};
use crate::latency::{Latency, SharedLatency};
use crate::net::{Dialer, Ws};
use crate::progress::Progress;
use crate::target::Target;

pub use changes::{changes_among, Changes, Registry};
pub use reader::{read_frames, Expect, ReadSpec};
pub use sender::{http_sender, ws_sender, Schedule, SendPlan};
pub use traffic::{Outcome, Traffic};

/// Open files kept free for the HTTP pool, stdio, /proc reads.
const SPARE_FILES: u64 = 256;

/// Everything a mode needs about the run.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The run id, in usernames and contents.
    pub run: String,
    /// The server.
    pub target: Target,
    /// HTTP client.
    pub api: Api,
    /// WebSocket opener.
    pub dialer: Dialer,
    /// Progress bars.
    pub progress: Progress,
    /// Registrations in flight.
    pub register_concurrency: usize,
    /// Handshakes in flight.
    pub connect_concurrency: usize,
    /// Bound on sign-ins plus socket opening.
    pub setup_timeout: Duration,
    /// This process's open-file limit.
    pub nofile: u64,
    /// The run's clock.
    pub clock: Clock,
}

impl Ctx {
    /// Refuses a run needing more sockets than this process may open.
    pub fn ensure_files(&self, sockets: u64) -> BenchResult<()> {
        if sockets + SPARE_FILES > self.nofile {
            return Err(BenchError::new(format!(
                "{sockets} sockets need about {} open files but this process may hold {}: \
                 split the run over several chat-bench processes",
                sockets + SPARE_FILES,
                self.nofile
            )));
        }
        Ok(())
    }

    /// Fails early, with a clear sentence, when the server has no WebSocket
    /// endpoint (an unauthenticated GET answers 401 when it has one).
    pub async fn require_websocket(&self) -> BenchResult<()> {
        if self.api.is_missing("/api/ws/connect").await? {
            return Err(BenchError::new(
                "GET /api/ws/connect answers 404: this server has no WebSocket endpoint",
            ));
        }
        Ok(())
    }

    /// Registers and logs in `count` users named `b<run>_<role><n>`.
    pub async fn sign_in(&self, role: &str, count: usize) -> BenchResult<Vec<Session>> {
        let names = api::usernames(&self.run, role, count);
        let work = api::sign_in_all(&self.api, names, self.register_concurrency, &self.progress);
        within(self.setup_timeout, "signing users in", work).await
    }

    /// Opens one socket per entry of `owners` (indexes into `sessions`), in
    /// order; the first failure aborts.
    pub async fn open_all(
        &self,
        label: &str,
        sessions: &[Session],
        owners: &[usize],
    ) -> BenchResult<Vec<Ws>> {
        let opened = self.open_counted(label, sessions, owners).await?;
        if let Some(first) = opened.errors.keys().next() {
            return Err(BenchError::new(format!(
                "{} of {} sockets failed to open; first: {first}",
                opened.failed,
                owners.len()
            )));
        }
        Ok(opened.sockets)
    }

    /// Opens one socket per entry of `owners`, counting failures instead of
    /// stopping at them.
    pub async fn open_counted(
        &self,
        label: &str,
        sessions: &[Session],
        owners: &[usize],
    ) -> BenchResult<Opened> {
        let bar = self.progress.bar(label, owners.len() as u64);
        let started = Instant::now();
        let attempts = stream::iter(owners.iter().map(|owner| sessions.get(*owner)))
            .map(|session| {
                let bar = bar.clone();
                async move {
                    let began = Instant::now();
                    let result = match session {
                        Some(s) => self.dialer.open(&s.token).await,
                        None => Err(BenchError::new("socket owner out of range")),
                    };
                    bar.inc(1);
                    (result, began.elapsed())
                }
            })
            .buffered(self.connect_concurrency)
            .collect::<Vec<_>>();
        let results = within(self.setup_timeout, "opening sockets", async {
            Ok(attempts.await)
        })
        .await?;
        bar.finish_and_clear();
        Ok(Opened::from_results(results, started.elapsed()))
    }
}

/// Sockets opened and what it took.
#[derive(Debug, Default)]
pub struct Opened {
    /// The open sockets, in request order (failed ones left out).
    pub sockets: Vec<Ws>,
    /// Sockets that failed to open.
    pub failed: u64,
    /// Failure messages and how often each happened.
    pub errors: BTreeMap<String, u64>,
    /// Time per successful open (TCP + upgrade + first frame).
    pub latency: Latency,
    /// Wall time of the whole phase.
    pub elapsed: Duration,
}

impl Opened {
    fn from_results(results: Vec<(BenchResult<Ws>, Duration)>, elapsed: Duration) -> Self {
        let mut opened = Opened {
            elapsed,
            ..Opened::default()
        };
        for (result, took) in results {
            match result {
                Ok(ws) => {
                    opened.latency.record_nanos(nanos(took));
                    opened.sockets.push(ws);
                }
                Err(e) => {
                    opened.failed += 1;
                    *opened.errors.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        opened
    }
}

/// Runs `work` within `limit`, failing with what was being done.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl std::future::Future<Output = BenchResult<T>>,
) -> BenchResult<T> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(BenchError::new(format!(
            "{what} took over {limit:?} (--setup-timeout)"
        )))
    })
}

/// Counters all tasks bump as things happen, for progress bars and for
/// knowing when the stragglers are in.
#[derive(Debug, Default)]
pub struct Live {
    /// Messages handed to the socket or HTTP client.
    pub sent: AtomicU64,
    /// Messages the server confirmed stored (ack, 201 or 200).
    pub persisted: AtomicU64,
    /// Messages the server refused (error frame, non-2xx, transport error).
    pub refused: AtomicU64,
    /// Benchmark messages received by the sockets meant to get them.
    pub delivered: AtomicU64,
    /// Send (scheduled time) to stored confirmation.
    pub persist_latency: SharedLatency,
    /// Send (scheduled time) to receipt.
    pub delivery_latency: SharedLatency,
    /// Changes to messages sent.
    pub changes_sent: AtomicU64,
    /// Changes the server applied (2xx).
    pub changes_stored: AtomicU64,
    /// Changes the server refused or never answered.
    pub changes_refused: AtomicU64,
    /// `message_updated` frames received for those changes where expected.
    pub updates: AtomicU64,
    /// A change's due time to its 2xx.
    pub change_latency: SharedLatency,
    /// A change's due time to its `message_updated` at the receiver.
    pub update_latency: SharedLatency,
}

impl Live {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every sent message and change answered, and each stored one
    /// delivered to `per_message` sockets.
    fn settled(&self, per_message: u64) -> bool {
        let sent = Self::get(&self.sent);
        let persisted = Self::get(&self.persisted);
        let changed = Self::get(&self.changes_stored);
        persisted + Self::get(&self.refused) >= sent
            && Self::get(&self.delivered) >= persisted.saturating_mul(per_message)
            && changed + Self::get(&self.changes_refused) >= Self::get(&self.changes_sent)
            && Self::get(&self.updates) >= changed.saturating_mul(per_message)
    }
}

/// Waits, at most `limit`, until `live` has settled. Returns the time waited
/// and whether it settled.
pub async fn drain(live: &Live, per_message: u64, limit: Duration) -> (Duration, bool) {
    let started = Instant::now();
    loop {
        if live.settled(per_message) {
            return (started.elapsed(), true);
        }
        if started.elapsed() >= limit {
            return (started.elapsed(), false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Shows `live` on `bar` (position = sent) until the returned handle is
/// aborted.
pub fn show_live(bar: ProgressBar, live: std::sync::Arc<Live>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(Live::get(&live.sent));
            bar.set_message(format!(
                "stored {} delivered {}",
                Live::get(&live.persisted),
                Live::get(&live.delivered)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Everything counted by the tasks of a run, merged at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages sent.
    pub sent: u64,
    /// Messages planned but not sent (sender too far behind, or its socket
    /// failed).
    pub unsent: u64,
    /// Messages confirmed stored.
    pub persisted: u64,
    /// Distinct benchmark messages received where expected.
    pub delivered: u64,
    /// Receipts of a message already received by the same socket.
    pub duplicates: u64,
    /// Benchmark messages a socket should not have received (DM to the
    /// wrong user, or a sequence number never sent).
    pub unexpected: u64,
    /// Deliveries that came after a later message of the same sender.
    pub out_of_order: u64,
    /// Acks that came after the ack of a later message.
    pub acks_out_of_order: u64,
    /// Sockets that closed or failed before the end.
    pub closed: u64,
    /// Why sockets closed, by reason.
    pub close_reasons: BTreeMap<String, u64>,
    /// Refusals and failures by kind (`http_429`, `ws_rate_limited`,
    /// `transport`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Unix nanos of the last stored confirmation.
    pub last_persist_nanos: u64,
    /// Unix nanos of the last delivery.
    pub last_delivery_nanos: u64,
    /// Frames read, of any kind.
    pub frames: u64,
    /// Changes to messages sent.
    pub changes_sent: u64,
    /// Changes planned but not sent (sender behind, or no message of its
    /// own to change yet).
    pub changes_unsent: u64,
    /// Changes the server applied.
    pub changes_stored: u64,
    /// `message_updated` frames matched with a change.
    pub updates: u64,
    /// `message_updated` frames for a message with no change pending.
    pub updates_unexpected: u64,
    /// `message_updated` frames that did not show the change they were
    /// matched with.
    pub updates_mismatched: u64,
    /// Unix nanos of the last change applied.
    pub last_change_nanos: u64,
    /// Unix nanos of the last update received.
    pub last_update_nanos: u64,
}

impl Tally {
    /// Adds another task's counts.
    pub fn absorb(&mut self, other: Tally) {
        self.sent += other.sent;
        self.unsent += other.unsent;
        self.persisted += other.persisted;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
        self.out_of_order += other.out_of_order;
        self.acks_out_of_order += other.acks_out_of_order;
        self.closed += other.closed;
        self.frames += other.frames;
        merge_counts(&mut self.close_reasons, other.close_reasons);
        merge_counts(&mut self.errors, other.errors);
        self.last_persist_nanos = self.last_persist_nanos.max(other.last_persist_nanos);
        self.last_delivery_nanos = self.last_delivery_nanos.max(other.last_delivery_nanos);
        self.changes_sent += other.changes_sent;
        self.changes_unsent += other.changes_unsent;
        self.changes_stored += other.changes_stored;
        self.updates += other.updates;
        self.updates_unexpected += other.updates_unexpected;
        self.updates_mismatched += other.updates_mismatched;
        self.last_change_nanos = self.last_change_nanos.max(other.last_change_nanos);
        self.last_update_nanos = self.last_update_nanos.max(other.last_update_nanos);
    }

    /// Counts the operations `seqs` as not sent, each a change when
    /// `is_change` says so and a message otherwise.
    pub fn count_unsent(
        &mut self,
        seqs: impl Iterator<Item = u64>,
        is_change: impl Fn(u64) -> bool,
    ) {
        for seq in seqs {
            if is_change(seq) {
                self.changes_unsent += 1;
            } else {
                self.unsent += 1;
            }
        }
    }

    /// Counts one error of `kind`.
    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, n) in from {
        *into.entry(key).or_default() += n;
    }
}

/// Waits for spawned tasks and merges their tallies; a task that panicked
/// is counted as an error rather than hidden.
pub async fn gather(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::default();
    for handle in handles {
        match handle.await {
            Ok(tally) => total.absorb(tally),
            Err(e) => total.error(format!("task_failed: {e}")),
        }
    }
    total
}

/// `count / seconds`, 0 for an empty window.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        round1(count as f64 / seconds)
    } else {
        0.0
    }
}

/// Seconds from `start_nanos` to `end_nanos` (unix), 0 when reversed.
pub fn window_s(start_nanos: u64, end_nanos: u64) -> f64 {
    end_nanos.saturating_sub(start_nanos) as f64 / 1e9
}

/// Rounds to one decimal (rates).
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Rounds to three decimals (seconds, ratios).
pub fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

/// Saturating nanoseconds of a duration.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Socket owners for `count` sockets shared round-robin among `users`.
pub fn round_robin(count: usize, users: usize) -> Vec<usize> {
    (0..count).map(|i| i % users.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counters_settle_when_everything_is_answered_and_delivered() {
        let live = Live::default();
        assert!(live.settled(3));
        live.sent.store(2, Ordering::Relaxed);
        assert!(!live.settled(3), "nothing answered yet");
        live.persisted.store(1, Ordering::Relaxed);
        live.refused.store(1, Ordering::Relaxed);
        assert!(!live.settled(3), "one stored message, not delivered");
        live.delivered.store(3, Ordering::Relaxed);
        assert!(live.settled(3));
        live.changes_sent.store(2, Ordering::Relaxed);
        live.changes_stored.store(1, Ordering::Relaxed);
        assert!(!live.settled(3), "a change unanswered");
        live.changes_refused.store(1, Ordering::Relaxed);
        assert!(
            !live.settled(3),
            "a change applied, its update not received"
        );
        live.updates.store(3, Ordering::Relaxed);
        assert!(live.settled(3));
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally {
            sent: 2,
            last_delivery_nanos: 5,
            ..Tally::default()
        };
        a.error("http_500".into());
        let mut b = Tally {
            sent: 3,
            delivered: 4,
            last_delivery_nanos: 9,
            ..Tally::default()
        };
        b.error("http_500".into());
        b.error("transport".into());
        a.absorb(b);
        assert_eq!((a.sent, a.delivered, a.last_delivery_nanos), (5, 4, 9));
        assert_eq!(a.errors.get("http_500"), Some(&2));
        assert_eq!(a.errors.values().sum::<u64>(), 3);
    }

    #[test]
    fn rates_and_owners() {
        assert_eq!(per_second(10, 4.0), 2.5);
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(window_s(3_000_000_000, 1), 0.0);
        assert_eq!(round_robin(5, 2), vec![0, 1, 0, 1, 0]);
    }
}
