//! The notifier handle.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_domain::{
    Audience, DomainError, DomainResult, Event, Notifier, RealtimeHealth, Subscription, TokenId,
    UserId, Username,
};
use chat_realtime::{event_frame, Hub};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::envelope;
use crate::options::RedisOptions;
use crate::presence::Presence;
use crate::shared::{RedisHealth, Shared};
use crate::subscriber;
use crate::writer::{Command, Writer};

/// The cross-instance [`Notifier`]: a local hub holding this instance's
/// connections, plus fan-out and presence through Redis (see the crate
/// docs). Clone it freely: every clone is the same instance. Dropping the
/// last clone without [`RedisNotifier::shutdown`] stops its background
/// tasks as a crash would: its users go offline everywhere once its
/// registration lapses.
#[derive(Clone)]
pub struct RedisNotifier {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    writer: JoinHandle<()>,
    subscriber: JoinHandle<()>,
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.abort();
        self.subscriber.abort();
    }
}

impl RedisNotifier {
    /// Starts this instance's notifier on the Redis at `redis_url`
    /// (`redis://[user:password@]host:port[/db]`).
    ///
    /// Waits for one attempt to reach Redis (at most
    /// `options.io_timeout`), then returns: connected, or degraded
    /// ([`RedisNotifier::is_degraded`]) and reconnecting in the
    /// background, so that an instance started before Redis serves its
    /// own connections meanwhile. Fails only on invalid settings: a
    /// malformed URL, or options that [`RedisOptions`] documents as
    /// invalid (`DomainError::Validation`). Must be called within a Tokio
    /// runtime.
    pub async fn connect(redis_url: &str, options: RedisOptions) -> DomainResult<Self> {
        options.validate()?;
        // The driver's message may quote the URL, password included.
        let client = redis::Client::open(redis_url)
            .map_err(|_| DomainError::invalid("REDIS_URL", "must be a redis:// URL"))?;
        let (hub, changes) = Hub::reporting_presence(options.hub);
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            hub,
            channel: format!("{}:events", options.prefix),
            presence: Presence::new(&options.prefix, &instance, options.ttl_ms()),
            instance,
            health: RedisHealth::default(),
            client,
            link: Mutex::new(None),
            syncs: Mutex::new(HashMap::new()),
            next_sync: AtomicU64::new(0),
            check_link: Notify::new(),
            resubscribe: Notify::new(),
            options,
        });
        let (commands, queue) = mpsc::channel(shared.options.publish_queue);
        let (writer_started, writer_ready) = oneshot::channel();
        let (subscriber_started, subscriber_ready) = oneshot::channel();
        let writer = Writer::new(Arc::clone(&shared), changes);
        let writer = tokio::spawn(writer.run(queue, writer_started));
        let subscriber = tokio::spawn(subscriber::run(Arc::clone(&shared), subscriber_started));
        let _ = writer_ready.await;
        let _ = subscriber_ready.await;
        tracing::info!(
            instance = %shared.instance,
            prefix = %shared.options.prefix,
            degraded = shared.health.is_degraded(),
            "notifier: Redis (fan-out and presence across instances)"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                commands,
                writer,
                subscriber,
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// Whether Redis is out of reach right now: events then reach this
    /// instance's connections only, and presence and `connected_users`
    /// cover this instance only, until the background tasks reconnect.
    pub fn is_degraded(&self) -> bool {
        self.inner.shared.health.is_degraded()
    }

    /// A cheap handle on this notifier's health, for a `/health` route.
    pub fn health(&self) -> RedisHealth {
        self.inner.shared.health.clone()
    }

    /// This instance's id in the cluster (32 hex digits, new at each
    /// start).
    pub fn instance_id(&self) -> &str {
        &self.inner.shared.instance
    }

    /// Live connections to this instance.
    pub fn local_connection_count(&self) -> usize {
        self.inner.shared.hub.connection_count()
    }

    /// Closes this instance's connections (`CloseReason::ShuttingDown`,
    /// 1001), leaves the cluster (its users not connected elsewhere are
    /// announced offline at once and its keys removed), and stops the
    /// background tasks. `connect` fails afterwards; `publish` delivers
    /// nothing. Idempotent. Waits at most twice `io_timeout` for Redis.
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = &self.inner.shared;
        shared.hub.shutdown();
        let (done, left) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown(done))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(shared.options.io_timeout * 2, left).await;
        }
        self.inner.subscriber.abort();
        shared.health.set_subscribed(false);
    }

    /// Returns once the subscriber has handed the hub everything Redis
    /// ordered before this call (a marker published now came back), so a
    /// connection registered next gets no event older than itself. Skipped
    /// while degraded; waits at most `io_timeout`.
    async fn catch_up(&self) {
        let shared = &self.inner.shared;
        if shared.health.is_degraded() {
            return;
        }
        let (token, seen) = shared.expect_sync();
        let marker = envelope::encode_sync(&shared.instance, token);
        if self
            .inner
            .commands
            .send(Command::Publish(marker))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(shared.options.io_timeout, seen).await;
        }
        shared.forget_sync(token);
    }

    /// Returns once every presence change reported so far is in Redis (or
    /// Redis is found lost).
    async fn settle_presence(&self) {
        let (done, settled) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Barrier(done))
            .await
            .is_ok()
        {
            let _ = settled.await;
        }
    }
}

impl fmt::Debug for RedisNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.inner.shared;
        f.debug_struct("RedisNotifier")
            .field("instance", &shared.instance)
            .field("prefix", &shared.options.prefix)
            .field("degraded", &shared.health.is_degraded())
            .field("hub", &shared.hub)
            .finish()
    }
}

#[async_trait]
impl Notifier for RedisNotifier {
    /// Delivers to this instance's connections at once, then queues one
    /// envelope for Redis (skipped while Redis is lost).
    async fn publish(&self, event: Event, audience: Audience) {
        let shared = &self.inner.shared;
        let (message, position) = (event.message_id(), event.position());
        let frame: Arc<str> = Arc::from(event_frame(event).to_json());
        let envelope = shared
            .health
            .is_linked()
            .then(|| envelope::encode(&shared.instance, &audience, message, position, &frame));
        shared.hub.deliver(frame, message, position, audience);
        match envelope {
            // Fails only after shutdown, when there is nobody to tell.
            Some(envelope) => drop(self.inner.commands.send(Command::Publish(envelope)).await),
            None => metrics::counter!("chat_redis_dropped_total").increment(1),
        }
    }

    /// Registers the connection locally; returns once Redis knows of it
    /// (so `connected_users` on any instance includes the user). The
    /// connection gets the events Redis orders after `connect` began, not
    /// older ones still in flight to this instance.
    async fn connect(
        &self,
        user: UserId,
        username: Username,
        token: TokenId,
    ) -> DomainResult<Box<dyn Subscription>> {
        self.catch_up().await;
        let subscription = self.inner.shared.hub.connect(user, username, token).await?;
        self.settle_presence().await;
        Ok(subscription)
    }

    async fn shutdown(&self) {
        RedisNotifier::shutdown(self).await;
    }

    /// Closes this instance's connections at once, then tells the others
    /// through Redis (not while Redis is lost: the token is refused by
    /// every request and upgrade all the same, being revoked in the store).
    async fn revoke(&self, user: UserId, token: TokenId) {
        let shared = &self.inner.shared;
        shared.hub.revoke(user, token);
        if shared.health.is_linked() {
            let envelope = envelope::encode_revoked(&shared.instance, user, token);
            // Fails only after shutdown, when there is nobody to tell.
            let _ = self.inner.commands.send(Command::Publish(envelope)).await;
        }
    }

    /// Across the cluster; this instance's users only while degraded.
    async fn connected_users(&self) -> DomainResult<Vec<Username>> {
        let shared = &self.inner.shared;
        if let Some(mut conn) = shared.current_link() {
            match shared.presence.usernames(&mut conn).await {
                Ok(names) => return Ok(sorted_usernames(names)),
                Err(error) => {
                    tracing::warn!(%error, "connected_users: Redis failed, answering for this instance")
                }
            }
        }
        shared.hub.connected_users().await
    }

    /// Across the cluster; this instance's users only while degraded.
    async fn online_among(&self, users: &[UserId]) -> DomainResult<HashSet<UserId>> {
        let shared = &self.inner.shared;
        if let Some(mut conn) = shared.current_link() {
            match shared.presence.online_among(&mut conn, users).await {
                Ok(ids) => {
                    return Ok(ids
                        .iter()
                        .filter_map(|id| UserId::from_str(id).ok())
                        .collect())
                }
                Err(error) => {
                    tracing::warn!(%error, "online_among: Redis failed, answering for this instance")
                }
            }
        }
        shared.hub.online_among(users).await
    }

    /// `Connected`, or `Degraded` while Redis is out of reach.
    fn health(&self) -> RealtimeHealth {
        if self.is_degraded() {
            RealtimeHealth::Degraded
        } else {
            RealtimeHealth::Connected
        }
    }

    /// A hole in the Redis stream before this instance has handed out any
    /// change is filled from after `position`.
    fn resume_from(&self, position: u64) {
        self.inner.shared.hub.resume_from(position);
    }
}

/// Valid usernames from Redis, sorted by bytes, each once.
fn sorted_usernames(names: Vec<String>) -> Vec<Username> {
    let mut names: Vec<Username> = names
        .into_iter()
        .filter_map(|name| Username::parse(name).ok())
        .collect();
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}
