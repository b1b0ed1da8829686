//! Ports: what the use cases need from the outside world. Adapters implement
//! these traits (memory or PostgreSQL stores, an in-process or Redis
//! notifier, bcrypt, JWT). Every method reports failure as a
//! [`DomainError`](crate::DomainError): adapters translate driver errors at
//! their seam, typically into `StoreUnavailable` or `Internal`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::auth::Claims;
use crate::entities::{Message, NewMessage, Room, Stored, UserAccount};
use crate::error::DomainResult;
use crate::ids::{MessageId, RoomId, TokenId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::read_state::{Activity, Conversation, ConversationPage, ConversationRef, ReadMarker};
use crate::values::{Emoji, MessageContent, Password, PasswordHash, Username};

/// Registered users.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new account. Fails with `UsernameTaken` or `EmailTaken` when
    /// either is already used, compared case-insensitively; atomically, so
    /// of two concurrent registrations of one name exactly one succeeds.
    async fn create_user(&self, account: &UserAccount) -> DomainResult<()>;

    /// The account with this id.
    async fn user_by_id(&self, id: UserId) -> DomainResult<Option<UserAccount>>;

    /// The account with this username, compared case-insensitively.
    async fn user_by_username(&self, username: &Username) -> DomainResult<Option<UserAccount>>;

    /// Accounts ordered by id (registration order).
    async fn list_users(&self, page: PageRequest<UserId>) -> DomainResult<Page<UserAccount>>;
}

/// Rooms and their members.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Stores a new room with its initial members (all existing users).
    async fn create_room(&self, room: &Room) -> DomainResult<()>;

    /// The room with this id, with its current members.
    async fn room_by_id(&self, id: RoomId) -> DomainResult<Option<Room>>;

    /// Adds a member; `Ok(false)` if already one. Fails with `RoomNotFound`
    /// or `UserNotFound`.
    async fn add_member(&self, room: RoomId, user: UserId) -> DomainResult<bool>;

    /// Removes a member; `Ok(false)` if not one.
    async fn remove_member(&self, room: RoomId, user: UserId) -> DomainResult<bool>;

    /// Rooms `member` belongs to that `viewer` also belongs to (every room
    /// of `member` when they are the same user), ordered by room id.
    async fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>>;
}

/// What [`MessageStore::queue_message`] hands back: the answer of a queued
/// message's insert (the stored message, and for a new one its position),
/// once it is stored.
pub type InsertInFlight = Pin<Box<dyn Future<Output = DomainResult<(Stored, Option<u64>)>> + Send>>;

/// Messages.
///
/// Lists are in the store's order: the order in which messages became
/// readable (commit order), oldest first in a page. It is one order shared
/// by every list, so a page of one list can be continued in another. It is
/// not id order: ids are made before the insert, and two writers can store
/// them out of order. A store must guarantee that a reader who has read a
/// message will never later find a new message placed before it, so that
/// paging forward with [`Cursor::After`](crate::Cursor::After) while others
/// write never skips or repeats a message.
///
/// Cursors are message ids. Any stored message is a valid cursor in any
/// list (it names a position); an id that names no stored message is
/// [`DomainError::MessageNotFound`](crate::DomainError::MessageNotFound).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message, unless its sender already stored one with the same
    /// client id: then nothing is stored and the original comes back as
    /// [`Stored::Duplicate`]. Atomic under concurrent resends.
    async fn insert_message(&self, new: &NewMessage) -> DomainResult<Stored>;

    /// [`insert_message`](Self::insert_message), also answering, for a new
    /// message, its position in the store's order: a number that grows
    /// with that order (gaps allowed). The service publishes new messages
    /// in this order while their inserts run concurrently. Stores that say
    /// [`reports_positions`](Self::reports_positions) must implement it;
    /// the default answers no position.
    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        self.insert_message(new).await.map(|stored| (stored, None))
    }

    /// Takes the message's place in the store's order and returns without
    /// waiting for it to be stored: the returned future answers what
    /// [`insert_message_positioned`](Self::insert_message_positioned)
    /// would, once the message is stored (committed). Messages queued one
    /// after the other (each call awaited before the next starts) are
    /// placed in that order, whatever happens to the others: one that
    /// fails fails alone, and neither moves nor loses the rest. A
    /// connection's sends are pipelined through this (the service's
    /// [`ChatService::start_send`](crate::ChatService::start_send)).
    ///
    /// An error here means the message was not queued (nothing will be
    /// stored); an error of the future, that it was not stored. Dropping
    /// the future does not take the message out of the queue.
    ///
    /// The default stores the message at once
    /// ([`insert_message_positioned`](Self::insert_message_positioned))
    /// and hands back its answer, ready: right for a store whose inserts
    /// are immediate (the memory store); a store whose commits take a
    /// round trip queues instead, so that a caller's next message does not
    /// wait for this one's commit.
    async fn queue_message(&self, new: &NewMessage) -> DomainResult<InsertInFlight> {
        let answer = self.insert_message_positioned(new).await;
        Ok(Box::pin(std::future::ready(answer)))
    }

    /// Whether [`insert_message_positioned`](Self::insert_message_positioned)
    /// answers the position of every new message. When it does not, the
    /// service stores messages one at a time (insert, then publish) so that
    /// they are still published in the store's order.
    fn reports_positions(&self) -> bool {
        false
    }

    /// One message by id.
    async fn message_by_id(&self, id: MessageId) -> DomainResult<Option<Message>>;

    /// [`message_by_id`](Self::message_by_id), with the message's position
    /// in the store's order when the store knows it: the same number
    /// [`insert_message_positioned`](Self::insert_message_positioned)
    /// answered for it. A connection resuming after a message (`?since=`)
    /// drops live frames at or below that position, which are not "after"
    /// it. The default answers no position.
    async fn message_by_id_positioned(
        &self,
        id: MessageId,
    ) -> DomainResult<Option<(Message, Option<u64>)>> {
        Ok(self.message_by_id(id).await?.map(|message| (message, None)))
    }

    /// What `viewer` may read: global messages, direct messages to or from
    /// them, and messages of rooms they currently belong to.
    async fn visible_messages(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>>;

    /// Direct messages between two users (either direction).
    async fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>>;

    /// Messages of one room.
    async fn room_messages(
        &self,
        room: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>>;

    /// Replaces the content of a message that is not deleted and sets its
    /// `edited_at`: `MessageNotFound`, or `MessageDeleted` (checked
    /// atomically with the change). Answers the message as it now is and
    /// the change's position.
    async fn edit_message(
        &self,
        id: MessageId,
        content: &MessageContent,
        at: OffsetDateTime,
    ) -> DomainResult<Changed>;

    /// Deletes a message: it keeps its place, sender and times, loses its
    /// content and reactions, and gets `deleted_at`. Deleting it again
    /// changes nothing (no position). `MessageNotFound` when unknown.
    async fn delete_message(&self, id: MessageId, at: OffsetDateTime) -> DomainResult<Changed>;

    /// Adds `user`'s reaction with `emoji`, unless it is there already
    /// (then nothing changes: no position). `MessageDeleted` when the
    /// message is deleted (atomically with the change), `MessageNotFound`
    /// when unknown.
    async fn add_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed>;

    /// Removes `user`'s reaction with `emoji`, if there (else nothing
    /// changes: no position). `MessageDeleted`, `MessageNotFound` as for
    /// [`add_reaction`](Self::add_reaction).
    async fn remove_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed>;

    /// The replies to `parent` (deleted ones as tombstones), in the
    /// store's order, paged like every list.
    async fn replies(
        &self,
        parent: MessageId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>>;

    /// The stream of changes `viewer` may see (the same messages as
    /// [`visible_messages`](Self::visible_messages)) after position
    /// `after`, in position order, at most `limit` items: each message
    /// stored after it ([`StreamItem::New`], at its position), and each
    /// message changed after it ([`StreamItem::Updated`], at the position
    /// of its latest change). Both carry the message's current state, so
    /// a message changed twice comes once, at its latest change.
    async fn changes_after(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        after: u64,
        limit: usize,
    ) -> DomainResult<StreamPage>;

    /// The position of the latest change the store holds (0 when empty):
    /// where a stream that starts now begins.
    async fn latest_position(&self) -> DomainResult<u64>;
}

/// What a change to a stored message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The message as it now is.
    pub message: Message,
    /// The change's position in the store's order (the same order as new
    /// messages'), or `None` when nothing changed (a repeated deletion or
    /// reaction).
    pub position: Option<u64>,
}

/// One entry of a user's stream of changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// A message stored at `position`, in its current state.
    New {
        /// The message.
        message: Message,
        /// Its position (where it was stored).
        position: u64,
    },
    /// A message whose latest change is at `position`, in its current
    /// state.
    Updated {
        /// The message.
        message: Message,
        /// The position of its latest change.
        position: u64,
    },
    /// A read marker the viewer may see (their own, or the other party's
    /// in a direct conversation) whose latest move is at `position`, in
    /// its current state, named as the viewer names the conversation.
    Read {
        /// The marker.
        read: ReadMarker,
        /// The position of its latest move.
        position: u64,
    },
}

impl StreamItem {
    /// The item's position in the store's order.
    pub fn position(&self) -> u64 {
        match self {
            Self::New { position, .. }
            | Self::Updated { position, .. }
            | Self::Read { position, .. } => *position,
        }
    }

    /// The message it carries, if it carries one (not a read marker).
    pub fn message(&self) -> Option<&Message> {
        match self {
            Self::New { message, .. } | Self::Updated { message, .. } => Some(message),
            Self::Read { .. } => None,
        }
    }

    /// The message it is about: the one it carries, or the one a read
    /// marker names.
    pub fn message_id(&self) -> MessageId {
        match self {
            Self::New { message, .. } | Self::Updated { message, .. } => message.id,
            Self::Read { read, .. } => read.message_id,
        }
    }
}

/// A page of a stream of changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamPage {
    /// The items, in position order.
    pub items: Vec<StreamItem>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// Read markers and the conversation list (see
/// [`read_state`](crate::read_state)). A store that implements it also
/// keeps the markers in step with its other ports: registering a user
/// ([`UserStore::create_user`]) starts their global marker at the latest
/// global message; joining a room ([`RoomStore::create_room`],
/// [`RoomStore::add_member`]) starts the member's marker at the room's
/// latest message (again after leaving and re-joining); storing a message
/// moves its sender's marker to it. Markers only move forward. A move by
/// [`mark_read`](Self::mark_read) takes a position in the store's order
/// (the one of new messages and changes), and is in the stream of changes
/// ([`MessageStore::changes_after`], as [`StreamItem::Read`]) of the
/// reader and, in a direct conversation, of the other party.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// Moves `reader`'s marker in `conversation` (as the reader names it)
    /// to `message`, unless it is there or further already (then nothing
    /// changes: no position). `MessageNotFound` when the message is not in
    /// that conversation; `UserNotFound` when the other party of a direct
    /// conversation does not exist.
    async fn mark_read(
        &self,
        reader: UserId,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Option<u64>>;

    /// One conversation of `viewer` as they see it (`None` when the other
    /// party of a direct conversation, or the room, does not exist).
    /// Whether the viewer may see it is the caller's business.
    async fn conversation(
        &self,
        viewer: UserId,
        conversation: &ConversationRef,
    ) -> DomainResult<Option<Conversation>>;

    /// `viewer`'s conversations (the global one, the rooms they belong to,
    /// their direct conversations with at least one message), most recent
    /// activity first, at most `limit`, starting after `before` (older
    /// than it) when given.
    async fn conversations(
        &self,
        viewer: UserId,
        limit: usize,
        before: Option<Activity>,
    ) -> DomainResult<ConversationPage>;
}

/// Revoked tokens (logout). Kept until the token would have expired anyway.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revokes a token until `expires_at`.
    async fn revoke(&self, token: TokenId, expires_at: OffsetDateTime) -> DomainResult<()>;

    /// Whether a token was revoked.
    async fn is_revoked(&self, token: TokenId) -> DomainResult<bool>;

    /// Forgets revocations of tokens that expired before `now`; returns how
    /// many.
    async fn purge_expired(&self, now: OffsetDateTime) -> DomainResult<u64>;
}

/// Whether the store answers, for `/health`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// `Ok` when the store can serve requests.
    async fn check(&self) -> DomainResult<()>;
}

/// Something to tell connected clients about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message was stored. Direct messages go out as `direct_message`
    /// frames, the others as `message` frames.
    Message {
        /// The stored message.
        message: Message,
        /// Its position in the store's order, when the store reported one
        /// ([`MessageStore::insert_message_positioned`]): handed to each
        /// connection with the frame (`Delivery::Frame`'s `position`), so
        /// that a connection resuming after a message drops live frames at
        /// or below it.
        position: Option<u64>,
    },
    /// A stored message was edited, deleted, or its reactions changed:
    /// sent as `message_updated` with the message's current state.
    MessageUpdated {
        /// The message as it now is.
        message: Message,
        /// The change's position in the store's order.
        position: Option<u64>,
    },
    /// A read marker moved: sent as `read`. The reader's own connections
    /// get the event with `receipt: false`; the other party of a direct
    /// conversation gets its own (`receipt: true`), naming the
    /// conversation as they do, at the same position.
    Read {
        /// The marker as it now is.
        read: ReadMarker,
        /// The move's position in the store's order.
        position: Option<u64>,
        /// Whether this is the other party's copy (a read receipt).
        receipt: bool,
    },
    /// Someone is typing to a user or in a room.
    Typing {
        /// Who is typing.
        from: Username,
        /// Where.
        target: TypingTarget,
    },
}

impl Event {
    /// A stored message whose position is not known.
    pub fn message(message: Message) -> Self {
        Self::Message {
            message,
            position: None,
        }
    }

    /// The id of the stored message this event reports, if it reports
    /// one: a read marker's own copy names the message read; a read
    /// receipt names none, so that it is not taken for a repeat of the
    /// reader's copy (the two share a position).
    pub fn message_id(&self) -> Option<MessageId> {
        match self {
            Self::Message { message, .. } | Self::MessageUpdated { message, .. } => {
                Some(message.id)
            }
            Self::Read {
                read,
                receipt: false,
                ..
            } => Some(read.message_id),
            Self::Read { receipt: true, .. } | Self::Typing { .. } => None,
        }
    }

    /// The position in the store's order of the message this event
    /// reports, if it reports one whose position is known.
    pub fn position(&self) -> Option<u64> {
        match self {
            Self::Message { position, .. }
            | Self::MessageUpdated { position, .. }
            | Self::Read { position, .. } => *position,
            Self::Typing { .. } => None,
        }
    }
}

/// Whether a user is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// At least one of the user's connections is open, on any instance.
    Online,
    /// None of the user's connections is open.
    Offline,
    /// No user has that name.
    Unknown,
}

/// One user's presence, as a connection that follows them is told it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserPresence {
    /// The user's name as registered (as asked, for an unknown name).
    pub username: String,
    /// Their status.
    pub status: PresenceStatus,
}

/// Where someone is typing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypingTarget {
    /// To this user.
    Direct(Username),
    /// In this room.
    Room(RoomId),
}

/// Who an event is for. Computed by the use case from the store at the time
/// of the event, so membership changes apply at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every connected user.
    Everyone,
    /// Every connection of these users.
    Users(Vec<UserId>),
}

/// The realtime side: delivers events to live connections (in this process
/// or across instances) and knows who is connected.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers an event to every live connection of its audience. Called
    /// only after what the event reports is stored. Delivery is best effort
    /// per connection (a client that missed something recovers from the
    /// store), so this reports nothing back.
    async fn publish(&self, event: Event, audience: Audience);

    /// Registers a live connection of a user, opened with `token`, and
    /// returns what it must send. The user's first connection makes them online (told to the
    /// connections that follow them); dropping the subscription
    /// unregisters it, and the last one going makes them offline.
    async fn connect(
        &self,
        user: UserId,
        username: Username,
        token: TokenId,
    ) -> DomainResult<Box<dyn Subscription>>;

    /// Closes every connection of `user` opened with `token`
    /// ([`CloseReason::TokenRevoked`]), on every instance the notifier
    /// reaches, without delivering what is still queued for them.
    async fn revoke(&self, user: UserId, token: TokenId);

    /// Usernames with at least one live connection, sorted.
    async fn connected_users(&self) -> DomainResult<Vec<Username>>;

    /// Which of these users have at least one live connection.
    async fn online_among(&self, users: &[UserId]) -> DomainResult<HashSet<UserId>>;

    /// Closes every live connection ([`CloseReason::ShuttingDown`], after
    /// what is queued for it) and refuses new ones (`ShuttingDown`); a
    /// notifier that spans instances also leaves the cluster. Idempotent.
    async fn shutdown(&self);

    /// Whether delivery reaches every instance right now (for `/health`).
    /// A notifier that spans one process only is always
    /// [`RealtimeHealth::Local`].
    fn health(&self) -> RealtimeHealth {
        RealtimeHealth::Local
    }

    /// Where the store stood as this instance starts serving (its
    /// [`latest_position`](MessageStore::latest_position)): a notifier
    /// whose live stream can break (across instances) fills the hole from
    /// the last change it delivered before the break ([`Delivery::Gap`]),
    /// and from this position while it has delivered none. The default
    /// ignores it: a notifier within one process has no hole.
    fn resume_from(&self, _position: u64) {}
}

/// How far live delivery reaches right now, as `/health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RealtimeHealth {
    /// One instance by design (no cross-instance notifier configured).
    Local,
    /// Across instances: the shared broker is reachable.
    Connected,
    /// Across instances by configuration, but the broker is out of reach:
    /// delivery and presence cover this instance only until it is back.
    Degraded,
}

impl RealtimeHealth {
    /// `local`, `connected` or `degraded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Connected => "connected",
            Self::Degraded => "degraded",
        }
    }
}

/// What a live connection is handed by the notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A serialized server frame (JSON text). One fan-out serializes once
    /// and every receiver shares the same text.
    Frame {
        /// The frame's JSON text, written to the socket as is.
        text: Arc<str>,
        /// The id of the stored message the frame carries (`message` and
        /// `direct_message` frames), so that a connection replaying
        /// history (`?since=`) can drop a live copy of a message it
        /// already replayed without parsing the JSON; `None` for other
        /// frames (typing).
        message: Option<MessageId>,
        /// The position in the store's order of the change the frame
        /// reports, when the publisher knew it (the event's `position`): a
        /// connection resuming after a message (`?since=`) drops live
        /// frames at or below the position of its `since`. A read
        /// receipt has one without a `message`. `None` for frames not
        /// from the store (typing), for stores that report no positions,
        /// and for frames from instances of a version that did not carry
        /// positions.
        position: Option<u64>,
    },
    /// The latest status of users this connection follows whose presence
    /// changed since the last such delivery, each once. Batched by the
    /// notifier (at most one every [`PRESENCE_BATCH`]), and never queued
    /// behind frames: a connection that is behind gets its pending changes
    /// merged.
    Presence(Vec<UserPresence>),
    /// The connection must close, for this reason.
    Close(CloseReason),
    /// The notifier's live stream had a hole (across instances: its
    /// subscription to the broker broke): stored changes may have been
    /// committed that this connection was not handed. Comes in the
    /// connection's order: frames before it were handed before the hole
    /// was closed, frames after it are live again. The connection fills
    /// the hole from the store (the same way as `?since=`) before going
    /// on, or is told to resync.
    Gap(Arc<Hole>),
}

/// A stretch of a notifier's live stream that may be missing, as handed
/// to every connection it then held ([`Delivery::Gap`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hole {
    /// Stored changes after this position in the store's order (new
    /// messages and changes of messages alike) may be missing; `None`
    /// when the notifier cannot tell from where.
    pub after: Option<u64>,
    /// The positions of the changes after `after` that the notifier did
    /// hand to the connections it held when it did: not to be sent
    /// again. A connection that opened later never needed the ones before
    /// it opened (they were in the store when it did).
    pub delivered: HashSet<u64>,
    /// Whether `after` and `delivered` are known exactly. When they are
    /// not (the notifier could not keep track for that long), the hole
    /// cannot be filled: the connection is told to resync from `after`
    /// (or, without it, to reload).
    pub complete: bool,
}

impl Hole {
    /// Whether the hole can be filled exactly.
    pub fn fillable(&self) -> bool {
        self.complete && self.after.is_some()
    }
}

/// The shortest time between two presence deliveries to one connection.
pub const PRESENCE_BATCH: std::time::Duration = std::time::Duration::from_millis(250);

impl Delivery {
    /// A frame that carries no stored message (typing).
    pub fn frame(text: Arc<str>) -> Self {
        Self::Frame {
            text,
            message: None,
            position: None,
        }
    }
}

/// Why the notifier closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outgoing queue filled up: the client reads too slowly.
    TooSlow,
    /// The server is shutting down.
    ShuttingDown,
    /// The token the connection was opened with was revoked (logout).
    TokenRevoked,
}

/// One live connection's feed of deliveries. Dropping it unregisters the
/// connection.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` once the notifier has let go of this
    /// connection.
    ///
    /// Must be cancel safe: a WebSocket session awaits it in a
    /// `tokio::select!` with the client's frames and timers, so a call
    /// dropped before it completes must not lose a delivery.
    async fn next(&mut self) -> Option<Delivery>;

    /// Whose presence this connection follows: a handle that may outlive
    /// a borrow of the subscription (a use case holds it while it reads
    /// the store), and stops mattering once the subscription is dropped.
    fn presence(&self) -> Arc<dyn PresenceFollows>;
}

/// The users one connection follows the presence of. A user is followed
/// by name, compared case-insensitively; changes of followed users arrive
/// on the connection's subscription as [`Delivery::Presence`].
pub trait PresenceFollows: Send + Sync {
    /// Follows these users, unless the connection would then follow more
    /// than `limit` (`TooManySubscriptions`, and nothing changes). Users
    /// already followed are not counted twice.
    fn follow(&self, users: &[Username], limit: usize) -> DomainResult<()>;

    /// Stops following these users; names not followed are ignored.
    fn unfollow(&self, users: &[Username]);

    /// Hands the connection these statuses, read after [`follow`], at
    /// once (not held back by the batch interval), except for a user
    /// whose presence changed since it was followed: that change is newer
    /// than what was read, and is what the connection gets.
    ///
    /// [`follow`]: PresenceFollows::follow
    fn seed(&self, statuses: Vec<UserPresence>);
}

/// Password hashing. Slow by design: implementations must not block the
/// async executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password.
    async fn hash(&self, password: &Password) -> DomainResult<PasswordHash>;

    /// Whether `password` matches `hash`.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> DomainResult<bool>;

    /// A hash of the same cost that matches no password, verified against
    /// when a login names an unknown user so both failures take as long.
    fn decoy_hash(&self) -> PasswordHash;
}

/// Signs and checks access tokens.
#[cfg_attr(test, mockall::automock)]
pub trait TokenCodec: Send + Sync {
    /// Signs claims into a token.
    fn encode(&self, claims: &Claims) -> DomainResult<String>;

    /// Checks a token's signature and algorithm and returns its claims.
    /// Expiry, `iat` and `nbf` are checked by the caller against its clock.
    /// Any failure is
    /// `Unauthenticated`.
    fn decode(&self, token: &str) -> DomainResult<Claims>;
}

/// The time, injectable so that expiry rules can be tested.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // Microseconds, the precision PostgreSQL keeps: a message delivered
        // live must equal the same message read back from any store.
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}
