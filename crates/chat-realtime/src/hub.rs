//! The hub: a cheap, cloneable handle on the registry of live connections.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chat_domain::{
    Audience, DomainError, DomainResult, Event, Hole, MessageId, Notifier, PresenceStatus,
    Subscription, TokenId, TypingTarget, UserId, Username,
};
use chat_protocol::ServerFrame;
use tokio::sync::mpsc;

use crate::presence::PresenceBox;
use crate::registry::{ConnKey, ConnState, Outgoing, Registry};
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

/// A user's first connection to a hub opened, or their last one closed,
/// as a hub made with [`Hub::reporting_presence`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceChange {
    /// Who.
    pub user: UserId,
    /// Their name.
    pub username: Username,
    /// `Online`: their first connection to this hub opened; `Offline`:
    /// their last one closed (or was evicted as too slow).
    pub status: PresenceStatus,
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

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Unregisters connections (a dropped subscription, or queues found
    /// full); users who went offline are told to their followers.
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
        Self::with_registry(config, Registry::default())
    }

    /// A hub that reports presence changes instead of routing them, for a
    /// notifier that decides presence itself (across instances): a user's
    /// first connection opening and last closing are told to nobody here
    /// but sent as a [`PresenceChange`] on the returned channel, in the
    /// order they happened; the notifier tells the hub what the cluster
    /// decided with [`Hub::presence_changed`]. The channel is unbounded; it holds one entry per change
    /// not yet read, and sends are dropped once the receiver is.
    pub fn reporting_presence(
        config: HubConfig,
    ) -> (Self, mpsc::UnboundedReceiver<PresenceChange>) {
        let (reporter, changes) = mpsc::unbounded_channel();
        let hub = Self::with_registry(config, Registry::reporting_to(reporter));
        (hub, changes)
    }

    fn with_registry(config: HubConfig, registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                queue_capacity: config.queue_capacity.max(1),
            }),
        }
    }

    /// Queues an already serialized frame that carries no stored message
    /// (typing, or a frame of an embedding app's own) for every connection
    /// of `audience` in this process: [`Hub::deliver`] without a message
    /// id.
    pub fn deliver_frame(&self, frame: Arc<str>, audience: Audience) {
        self.deliver(frame, None, None, audience);
    }

    /// Queues an already serialized frame for every connection of
    /// `audience` in this process, without waiting on any of them;
    /// connections whose queue is full are closed as too slow. Every
    /// receiver gets a clone of `frame`, as `Delivery::Frame` with
    /// `message` (the id of the stored message a `message` or
    /// `direct_message` frame carries, else `None`) and `position` (that
    /// message's position in the store's order, when known).
    /// [`Notifier::publish`] is this after serializing the event; a
    /// cross-instance notifier calls it with frames received from other
    /// instances.
    pub fn deliver(
        &self,
        frame: Arc<str>,
        message: Option<MessageId>,
        position: Option<u64>,
        audience: Audience,
    ) {
        let outgoing = Arc::new(Outgoing::Frame {
            text: frame,
            message,
            position,
        });
        let registry = self.inner.read();
        // A cluster's hub remembers what it hands out, under the same lock
        // as the hand-out, so that a hole's mark is queued either behind
        // a frame it counts as delivered or ahead of one it does not.
        if !registry.record(position, message) {
            return;
        }
        let slow = registry.deliver(audience, &outgoing);
        drop(registry);
        self.inner.evict_slow(slow);
    }

    /// Where the store stood when this instance started serving (its
    /// latest position): a hole before the hub has handed out any change
    /// is filled from there. Without it, such a hole cannot be filled.
    /// Only a hub made with [`Hub::reporting_presence`] keeps track; once
    /// set, later calls are ignored.
    pub fn resume_from(&self, position: u64) {
        if let Some(mut delivered) = self.inner.read().delivered() {
            delivered.resume_from(position);
        }
    }

    /// The cluster's stream broke (for a hub made with
    /// [`Hub::reporting_presence`]): its last sign of life was at
    /// `alive`. What this hub hands out from then on is remembered until
    /// [`Hub::close_hole`], so that filling the hole does not repeat it.
    /// A hole already open keeps its start.
    pub fn open_hole(&self, alive: tokio::time::Instant) {
        if let Some(mut delivered) = self.inner.read().delivered() {
            delivered.open(alive);
        }
    }

    /// The cluster's stream is whole again: hands every connection
    /// `Delivery::Gap` with the hole (where it may start, what was handed
    /// out since), in its order: behind the frames handed out before,
    /// ahead of those handed out after. The hole, if one was open.
    ///
    /// The stream may have missed changes committed up to
    /// [`IN_FLIGHT`](crate::IN_FLIGHT) before its last sign of life (a
    /// frame trails its commit), so the hole starts at the highest
    /// position handed out before then.
    pub fn close_hole(&self) -> Option<Arc<Hole>> {
        self.inner.write().close_hole()
    }

    /// Tells every followed user's status again to the connections that
    /// follow them, as a change: `online` when their [`Username`]'s
    /// lowercase form is in `online`, else `offline`. What a cluster's
    /// notifier calls after a hole, with what the cluster holds now.
    pub fn restate_presence(&self, online: &HashSet<String>) {
        self.inner.read().restate_presence(online);
    }

    /// Tells a user's presence to the connections of this process that
    /// follow them: in each connection's presence, batched, never queued
    /// behind its frames. What a cross-instance notifier calls with the
    /// changes the cluster decided.
    pub fn presence_changed(&self, username: &Username, status: PresenceStatus) {
        self.inner.read().route_presence(username, status);
    }

    /// Closes the connections of this process that `user` opened with
    /// `token` (`CloseReason::TokenRevoked`, at once: what is queued for
    /// them is dropped). What a cross-instance notifier calls with the
    /// revocations of other instances.
    pub fn revoke(&self, user: UserId, token: TokenId) {
        self.inner.write().revoke(user, token);
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

    fn register(
        &self,
        user: UserId,
        username: Username,
        token: TokenId,
    ) -> DomainResult<HubSubscription> {
        let (sender, queue) = crate::queue::bounded(self.inner.queue_capacity);
        let state = Arc::new(ConnState::default());
        let presence = Arc::new(PresenceBox::default());
        let mut registry = self.inner.write();
        if registry.is_shut_down() {
            return Err(shut_down_error());
        }
        let (key, first) = registry.add(
            user,
            username.clone(),
            token,
            sender,
            Arc::clone(&state),
            Arc::clone(&presence),
        );
        if first {
            // Under the write lock, so presence changes (or reports) keep
            // the order of the connects and disconnects they tell of.
            registry.presence_changed(user, &username, PresenceStatus::Online);
        }
        drop(registry);
        Ok(HubSubscription::new(
            queue,
            state,
            presence,
            key,
            Arc::downgrade(&self.inner),
        ))
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
        let (message, position) = (event.message_id(), event.position());
        let frame = Arc::from(event_frame(event).to_json());
        self.deliver(frame, message, position, audience);
    }

    async fn connect(
        &self,
        user: UserId,
        username: Username,
        token: TokenId,
    ) -> DomainResult<Box<dyn Subscription>> {
        Ok(Box::new(self.register(user, username, token)?))
    }

    async fn revoke(&self, user: UserId, token: TokenId) {
        Hub::revoke(self, user, token);
    }

    async fn shutdown(&self) {
        Hub::shutdown(self);
    }

    async fn connected_users(&self) -> DomainResult<Vec<Username>> {
        Ok(self.inner.read().usernames())
    }

    async fn online_among(&self, users: &[UserId]) -> DomainResult<HashSet<UserId>> {
        Ok(self.inner.read().online_among(users))
    }
}

/// The frame an event goes out as: `message` or `direct_message` for a
/// message, `typing` for typing. What [`Notifier::publish`] serializes;
/// public so that a cross-instance notifier serializes events the same way.
pub fn event_frame(event: Event) -> ServerFrame {
    match event {
        Event::Message { message, position } => ServerFrame::for_message_at(message, position),
        Event::MessageUpdated { message, position } => ServerFrame::updated_at(message, position),
        Event::Read { read, position, .. } => ServerFrame::read_at(read, position),
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

/// `connect` after `shutdown`: the client should reconnect, to another
/// instance or after the restart.
fn shut_down_error() -> DomainError {
    DomainError::ShuttingDown
}
