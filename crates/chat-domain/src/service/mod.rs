//! The use cases. [`ChatService`] holds the ports and implements every rule
//! of SPEC: who may read, post, join and leave; token lifetimes and
//! revocation; idempotent sends. Adapters (HTTP, WebSocket) only translate.

mod accounts;
mod changes;
mod messages;
mod presence;
mod publish_order;
mod reads;
mod rooms;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use time::Duration;

use crate::ids::UserId;
use crate::rate_limit::RateLimit;

use crate::ports::{
    Clock, MessageStore, Notifier, PasswordHasher, ReadStore, RevocationStore, RoomStore,
    StoreHealth, SystemClock, TokenCodec, UserStore,
};

pub use changes::{Replay, Since};
pub use messages::{SendInFlight, SendMessage, Sent};

/// The stores the service reads and writes. One adapter usually implements
/// all of them: see [`Stores::single`].
#[derive(Clone)]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Rooms and members.
    pub rooms: Arc<dyn RoomStore>,
    /// Messages.
    pub messages: Arc<dyn MessageStore>,
    /// Revoked tokens.
    pub revocations: Arc<dyn RevocationStore>,
    /// Read markers and the conversation list.
    pub reads: Arc<dyn ReadStore>,
    /// Health probe.
    pub health: Arc<dyn StoreHealth>,
}

impl Stores {
    /// Uses one adapter for every store port.
    pub fn single<S>(store: Arc<S>) -> Self
    where
        S: UserStore
            + RoomStore
            + MessageStore
            + RevocationStore
            + ReadStore
            + StoreHealth
            + 'static,
    {
        Self {
            users: store.clone(),
            rooms: store.clone(),
            messages: store.clone(),
            revocations: store.clone(),
            reads: store.clone(),
            health: store,
        }
    }
}

/// Token lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    /// How long an issued token is valid (JWT_EXPIRY_HOURS).
    pub token_lifetime: Duration,
    /// How close to expiry a token must be to be refreshed (15 minutes).
    pub refresh_window: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::hours(24),
            refresh_window: Duration::minutes(15),
        }
    }
}

/// Everything the use cases need, wired once by the application.
pub struct ChatService {
    stores: Stores,
    notifier: Arc<dyn Notifier>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenCodec>,
    clock: Arc<dyn Clock>,
    policy: AuthPolicy,
    /// New messages are published in the order the store placed them.
    publish_order: Arc<publish_order::PublishOrder>,
    /// Messages each user may send per second, over every connection and
    /// HTTP of this instance.
    message_rate: RateLimit<UserId>,
}

impl ChatService {
    /// A service over these ports, on the system clock.
    pub fn new(
        stores: Stores,
        notifier: Arc<dyn Notifier>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenCodec>,
        policy: AuthPolicy,
    ) -> Self {
        Self {
            stores,
            notifier,
            hasher,
            tokens,
            clock: Arc::new(SystemClock),
            policy,
            publish_order: Arc::default(),
            message_rate: RateLimit::per_second_bursting_twice(0),
        }
    }

    /// Lets each user send at most `per_second` messages a second, in
    /// bursts of up to twice that, however many connections they send
    /// them over (SPEC's MESSAGE_RATE_LIMIT); over it a send is
    /// `RateLimited` and nothing is stored. 0 (the default) is no limit.
    pub fn with_message_rate_limit(mut self, per_second: u32) -> Self {
        self.message_rate = RateLimit::per_second_bursting_twice(per_second);
        self
    }

    /// Replaces the clock (tests of expiry rules).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The notifier, for adapters that register connections with it.
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.notifier
    }

    /// The token policy in force.
    pub fn policy(&self) -> AuthPolicy {
        self.policy
    }

    /// Whether the store answers.
    pub async fn store_health(&self) -> crate::DomainResult<()> {
        self.stores.health.check().await
    }

    /// How far live delivery reaches right now (the notifier's view).
    pub fn realtime_health(&self) -> crate::RealtimeHealth {
        self.notifier.health()
    }

    /// Tells the notifier where the store stands as this instance starts
    /// serving ([`Notifier::resume_from`]), so that a hole in its live
    /// stream before it has delivered any change can still be filled.
    /// Call once, before serving connections.
    pub async fn start_realtime(&self) -> crate::DomainResult<()> {
        let position = self.stores.messages.latest_position().await?;
        self.notifier.resume_from(position);
        Ok(())
    }
}
