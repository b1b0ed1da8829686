//! The hub: a cheap, cloneable handle on the registry of live connections.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chat_domain::{
    Audience, DomainError, DomainResult, Event, Notifier, PresenceStatus, ServerFrame,
    Subscription, TypingTarget, UserId, Username,
};
use tokio::sync::mpsc;

use crate::registry::{presence_text, ConnKey, ConnState, Registry};
use crate::subscription::HubSubscription;

/// How the hub treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Frames a connection may have waiting to be written before it is
    /// closed as too slow (`CloseReason::TooSlow`, close code 1013).
    /// Default 256; a value of 0 is taken as 1.
    pub queue_capacity: usize,
}

impl HubConfig {
    /// The default per-connection queue capacity, in frames.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 256;
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// The in-process [`Notifier`]: delivers events to the live connections of
/// this process. Clone it freely; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    registry: RwLock<Registry>,
    queue_capacity: usize,
}

impl Inner {
    /// Reads the registry. A panic while it was held cannot have left it
    /// half-updated in a way that matters (each update is a few plain
    /// assignments), so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Unregisters connections (a dropped subscription, or queues found
    /// full), announcing users who went offline.
    pub(crate) fn disconnect(&self, keys: Vec<ConnKey>) {
        self.write().remove_all(keys);
    }

    /// Evicts connections whose queue overflowed.
    fn evict_slow(&self, slow: Vec<ConnKey>) {
        if slow.is_empty() {
            return;
        }
        for key in &slow {
            tracing::warn!(
                user_id = %key.user,
                connection = key.id,
                "closing a realtime connection whose outgoing queue is full (slow reader)"
            );
        }
        self.disconnect(slow);
    }
}

impl Hub {
    /// A hub with no connections.
    pub fn new(config: HubConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: RwLock::new(Registry::default()),
                queue_capacity: config.queue_capacity.max(1),
            }),
        }
    }

    /// Closes every connection with `CloseReason::ShuttingDown` (each
    /// subscription first yields the frames already queued for it) and
    /// makes later `connect` calls fail. Idempotent.
    pub fn shutdown(&self) {
        self.inner.write().shut_down();
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.read().is_shut_down()
    }

    /// Live connections in this process (a user may hold several).
    pub fn connection_count(&self) -> usize {
        self.inner.read().connection_count()
    }

    fn register(&self, user: UserId, username: Username) -> DomainResult<HubSubscription> {
        let (sender, queue) = mpsc::channel(self.inner.queue_capacity);
        let state = Arc::new(ConnState::default());
        // Built before taking the lock, to keep the write section short.
        let online = presence_text(&username, PresenceStatus::Online);
        let mut registry = self.inner.write();
        if registry.is_shut_down() {
            return Err(shut_down_error());
        }
        let (key, first) = registry.add(user, username, sender, Arc::clone(&state));
        if first {
            // Under the write lock, so presence frames keep the order of the
            // connects and disconnects they report.
            let slow = registry.deliver_to_all(&online);
            registry.remove_all(slow);
        }
        drop(registry);
        Ok(HubSubscription {
            queue,
            state,
            key,
            hub: Arc::downgrade(&self.inner),
            finished: false,
        })
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(HubConfig::default())
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.inner.read();
        f.debug_struct("Hub")
            .field("connections", &registry.connection_count())
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("shut_down", &registry.is_shut_down())
            .finish()
    }
}

#[async_trait]
impl Notifier for Hub {
    async fn publish(&self, event: Event, audience: Audience) {
        // Serialized once; every receiver gets a clone of the same Arc.
        let text: Arc<str> = Arc::from(event_frame(event).to_json());
        let slow = self.inner.read().deliver(audience, &text);
        self.inner.evict_slow(slow);
    }

    async fn connect(
        &self,
        user: UserId,
        username: Username,
    ) -> DomainResult<Box<dyn Subscription>> {
        Ok(Box::new(self.register(user, username)?))
    }

    async fn connected_users(&self) -> DomainResult<Vec<Username>> {
        Ok(self.inner.read().usernames())
    }

    async fn online_among(&self, users: &[UserId]) -> DomainResult<HashSet<UserId>> {
        Ok(self.inner.read().online_among(users))
    }
}

/// The frame an event goes out as.
fn event_frame(event: Event) -> ServerFrame {
    match event {
        Event::Message(message) => ServerFrame::for_message(message),
        Event::Typing { from, target } => {
            let (recipient, room_id) = match target {
                TypingTarget::Direct(user) => (Some(user), None),
                TypingTarget::Room(room) => (None, Some(room)),
            };
            ServerFrame::Typing {
                username: from,
                recipient,
                room_id,
            }
        }
    }
}

/// `connect` after `shutdown`. The domain has no "shutting down" error; this
/// one maps to 503 "try again shortly", which is what a client should do
/// (reconnect, to another instance or after the restart).
fn shut_down_error() -> DomainError {
    DomainError::StoreUnavailable
}
