//! The writer task: the one place this instance writes to Redis. It owns
//! the command connection and, in one FIFO, publishes envelopes (batched
//! into pipelines), applies the hub's presence changes, beats, and
//! reconnects with backoff. One task keeps this instance's writes in the
//! order they were made: frames from one publisher reach other instances in
//! publish order, and a user's online/offline changes reach Redis in the
//! order they happened.

use std::collections::HashMap;
use std::sync::Arc;

use chat_domain::{PresenceStatus, UserId, Username};
use chat_realtime::PresenceChange;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::envelope;
use crate::options::Backoff;
use crate::presence::ChangeOutcome;
use crate::shared::Shared;

/// Envelopes per pipeline, at most.
const BATCH: usize = 256;

/// What the notifier handle asks of the writer.
pub(crate) enum Command {
    /// Publish this envelope.
    Publish(String),
    /// Answer once every presence change reported so far is applied (so a
    /// connection is registered in Redis when `connect` returns).
    Barrier(oneshot::Sender<()>),
    /// Leave the cluster, answer, and stop.
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    changes: mpsc::UnboundedReceiver<PresenceChange>,
    /// Up and registered; `None` while Redis is lost.
    conn: Option<MultiplexedConnection>,
    /// Users with a connection to this instance, as the hub reported them:
    /// what a (re)registration writes.
    local: HashMap<UserId, Username>,
    backoff: Backoff,
    retry_at: Instant,
    /// Redis was lost (or never reached) and not yet back.
    failing: bool,
    /// When the first message frame was dropped since Redis was last
    /// reached: reported to the cluster once it is back, so that every
    /// instance fills the stretch from the store.
    dropped_since: Option<Instant>,
    connecting: Option<JoinHandle<RedisResult<MultiplexedConnection>>>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        changes: mpsc::UnboundedReceiver<PresenceChange>,
    ) -> Self {
        let backoff = Backoff::new(shared.options.max_backoff);
        Self {
            shared,
            changes,
            conn: None,
            local: HashMap::new(),
            backoff,
            retry_at: Instant::now(),
            failing: false,
            dropped_since: None,
            connecting: None,
        }
    }

    /// Runs until shut down or every notifier handle is gone. `started` is
    /// answered after the first connection attempt.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        started: oneshot::Sender<()>,
    ) {
        let first = Shared::open_link(self.shared.client.clone(), self.shared.options.io_timeout);
        self.connected(first.await).await;
        let _ = started.send(());
        let period = self.shared.options.heartbeat;
        let mut beat = tokio::time::interval_at(Instant::now() + period, period);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                Some(change) = self.changes.recv() => self.apply(change).await,
                received = commands.recv_many(&mut batch, BATCH) => {
                    if received == 0 || !self.run_batch(&mut batch).await {
                        return;
                    }
                }
                _ = beat.tick() => self.beat().await,
                () = self.shared.check_link.notified() => self.check_link().await,
                attempt = finished(&mut self.connecting) => {
                    self.connecting = None;
                    self.connected(attempt).await;
                }
                () = tokio::time::sleep_until(self.retry_at),
                    if self.conn.is_none() && self.connecting.is_none() =>
                {
                    let open = Shared::open_link(
                        self.shared.client.clone(),
                        self.shared.options.io_timeout,
                    );
                    self.connecting = Some(tokio::spawn(open));
                }
            }
        }
    }

    /// Runs a batch of commands in order; `false` once shut down.
    async fn run_batch(&mut self, batch: &mut Vec<Command>) -> bool {
        let mut envelopes = Vec::new();
        for command in batch.drain(..) {
            match command {
                Command::Publish(envelope) => envelopes.push(envelope),
                Command::Barrier(done) => {
                    self.publish(&mut envelopes).await;
                    while let Ok(change) = self.changes.try_recv() {
                        self.apply(change).await;
                    }
                    let _ = done.send(());
                }
                Command::Shutdown(done) => {
                    self.publish(&mut envelopes).await;
                    self.leave().await;
                    let _ = done.send(());
                    return false;
                }
            }
        }
        self.publish(&mut envelopes).await;
        true
    }

    /// Publishes envelopes in one pipeline. While Redis is lost they are
    /// dropped: other instances' clients recover with `?since=`.
    async fn publish(&mut self, envelopes: &mut Vec<String>) {
        if envelopes.is_empty() {
            return;
        }
        let count = u64::try_from(envelopes.len()).unwrap_or(u64::MAX);
        let Some(mut conn) = self.conn.clone() else {
            tracing::debug!(
                count = envelopes.len(),
                "Redis lost: events delivered to this instance only"
            );
            metrics::counter!("chat_redis_dropped_total").increment(count);
            self.dropping(envelopes);
            envelopes.clear();
            return;
        };
        let mut pipe = redis::pipe();
        let batch: Vec<String> = std::mem::take(envelopes);
        for envelope in &batch {
            pipe.cmd("PUBLISH")
                .arg(&self.shared.channel)
                .arg(envelope)
                .ignore();
        }
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => metrics::counter!("chat_redis_published_total").increment(count),
            Err(error) => {
                // Some may have gone out before the failure: counted as
                // dropped, the side to err on for an alert (and for the
                // loss report: a fill skips what was delivered).
                metrics::counter!("chat_redis_dropped_total").increment(count);
                self.dropping(&batch);
                self.lost(&error);
            }
        }
    }

    /// These envelopes do not reach the cluster: if one carries a stored
    /// message, its loss is reported once Redis is back.
    fn dropping(&mut self, envelopes: &[String]) {
        if self.dropped_since.is_none() && envelopes.iter().any(|e| envelope::carries_message(e)) {
            self.dropped_since = Some(Instant::now());
        }
    }

    /// Tells the cluster that message frames were dropped since
    /// `dropped_since`: every instance (this one's subscriber skips its
    /// own) fills that stretch for its connections from the store.
    async fn report_loss(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let Some(since) = self.dropped_since else {
            return Ok(());
        };
        let report = envelope::encode_lost(&self.shared.instance, since.elapsed());
        redis::cmd("PUBLISH")
            .arg(&self.shared.channel)
            .arg(report)
            .query_async::<()>(conn)
            .await?;
        tracing::info!(
            dropped_for_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
            "told the cluster which stretch of messages did not reach it"
        );
        self.dropped_since = None;
        Ok(())
    }

    /// Applies one of the hub's presence changes: in Redis, which decides
    /// whether the cluster hears of it; or, while Redis is lost, to this
    /// instance's connections only.
    async fn apply(&mut self, change: PresenceChange) {
        match change.status {
            PresenceStatus::Online => self.local.insert(change.user, change.username.clone()),
            // A hub reports only a user's first connection and last.
            PresenceStatus::Offline | PresenceStatus::Unknown => self.local.remove(&change.user),
        };
        let Some(mut conn) = self.conn.clone() else {
            self.shared
                .announce_locally(&change.username, change.status);
            return;
        };
        match self.shared.presence.change(&mut conn, &change).await {
            Ok(ChangeOutcome::Announced | ChangeOutcome::Quiet) => {}
            Ok(ChangeOutcome::Lost) => {
                tracing::warn!(
                    "this instance's presence registration had lapsed: registering again"
                );
                // The registration covers this change.
                if let Err(error) = self.shared.presence.register(&mut conn, &self.local).await {
                    self.lost(&error);
                }
            }
            Err(error) => {
                self.lost(&error);
                self.shared
                    .announce_locally(&change.username, change.status);
            }
        }
    }

    /// The subscriber lost Redis: is the command connection alive?
    async fn check_link(&mut self) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        if let Err(error) = redis::cmd("PING").query_async::<()>(&mut conn).await {
            self.lost(&error);
        }
    }

    async fn beat(&mut self) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let presence = &self.shared.presence;
        let result = match presence.beat(&mut conn).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(
                    "this instance's presence registration had lapsed: registering again"
                );
                presence.register(&mut conn, &self.local).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            self.lost(&error);
        }
    }

    /// A connection attempt finished: on success, registers this
    /// instance's users (announcing what changed while Redis was lost).
    async fn connected(&mut self, attempt: RedisResult<MultiplexedConnection>) {
        let registered = match attempt {
            Ok(mut conn) => match self.shared.presence.register(&mut conn, &self.local).await {
                Ok(()) => self.report_loss(&mut conn).await.map(|()| conn),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match registered {
            Ok(conn) => {
                if self.failing {
                    tracing::info!("Redis is back: cross-instance delivery and presence resumed");
                }
                self.failing = false;
                self.backoff.reset();
                self.conn = Some(conn.clone());
                self.shared.set_link(Some(conn));
            }
            Err(error) => self.lost(&error),
        }
    }

    /// Redis failed: carry on locally and retry after a backoff.
    fn lost(&mut self, error: &RedisError) {
        if self.conn.take().is_some() || !self.failing {
            tracing::warn!(
                %error,
                "Redis unreachable: delivering to this instance's connections only, reconnecting"
            );
        } else {
            tracing::debug!(%error, "Redis still unreachable");
        }
        self.failing = true;
        self.shared.set_link(None);
        self.shared.resubscribe.notify_waiters();
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }

    /// Leaves the cluster (shutdown): this instance's users not connected
    /// elsewhere go offline at once, rather than when the registration
    /// lapses.
    async fn leave(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if let Err(error) = self.shared.presence.deregister(&mut conn).await {
                tracing::warn!(%error, "could not leave the cluster cleanly; the registration will lapse");
            }
        }
        self.shared.set_link(None);
    }
}

/// The result of a pending connection attempt; never ready without one.
async fn finished(
    connecting: &mut Option<JoinHandle<RedisResult<MultiplexedConnection>>>,
) -> RedisResult<MultiplexedConnection> {
    match connecting {
        Some(attempt) => attempt
            .await
            .unwrap_or_else(|join| Err(RedisError::from(std::io::Error::other(join.to_string())))),
        None => std::future::pending().await,
    }
}
