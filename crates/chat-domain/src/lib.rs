//! # chat-domain
//!
//! The core of the chat service, free of any framework or driver: the
//! entities ([`User`], [`Room`], [`Message`]), validated values that cannot
//! hold an invalid username, email, password, content or room name, the one
//! error type [`DomainError`], the ports (traits) that adapters implement,
//! and the use cases on [`ChatService`].
//!
//! A service is assembled from adapters: stores (memory or PostgreSQL), a
//! [`Notifier`] (in-process or Redis), a [`PasswordHasher`] and a
//! [`TokenCodec`]. Every rule of the contract lives here, so any front end
//! (HTTP, WebSocket, a CLI) gets the same behaviour:
//!
//! ```
//! use chat_domain::{DomainError, MessageContent, Username};
//!
//! assert!(Username::parse("alice").is_ok());
//! assert_eq!(
//!     Username::parse("a").unwrap_err().code(),
//!     "validation_error",
//! );
//! // Content is trimmed, then must be 1-4000 characters with a visible one.
//! assert_eq!(MessageContent::parse("  hi ").map(|c| c.into_inner()), Ok("hi".to_string()));
//! assert_eq!(MessageContent::parse(" \u{200b} "), Err(DomainError::EmptyContent));
//! ```
//!
//! Wiring a service (adapters come from other crates, such as
//! `chat-store-memory` and `chat-auth`):
//!
//! ```ignore
//! let store = std::sync::Arc::new(MemoryStore::default());
//! let service = ChatService::new(
//!     Stores::single(store),
//!     notifier,
//!     hasher,
//!     tokens,
//!     AuthPolicy::default(),
//! );
//! let user = service.register("alice", "alice@example.com", "correct horse").await?;
//! ```

pub mod auth;
pub mod entities;
pub mod error;
pub mod ids;
pub mod pagination;
pub mod ports;
pub mod rate_limit;
pub mod read_state;
pub mod service;
pub mod values;

pub use auth::{Caller, Claims, Session};
pub use entities::{
    Message, MessageTarget, MessageWire, NewMessage, Reaction, Room, Stored, User, UserAccount,
    DELETED_PLACEHOLDER,
};
pub use error::{DomainError, DomainResult};
pub use ids::{MessageId, RoomId, TokenId, UserId};
pub use pagination::{Cursor, Page, PageRequest};
pub use ports::{
    Audience, Changed, Clock, CloseReason, Delivery, Event, Hole, InsertInFlight, MessageStore,
    Notifier, PasswordHasher, PresenceFollows, PresenceStatus, ReadStore, RealtimeHealth,
    RevocationStore, RoomStore, StoreHealth, StreamItem, StreamPage, Subscription, SystemClock,
    TokenCodec, TypingTarget, UserPresence, UserStore, PRESENCE_BATCH,
};
pub use read_state::{Activity, Conversation, ConversationPage, ConversationRef, ReadMarker};
pub use service::{
    AuthPolicy, ChatService, Replay, SendInFlight, SendMessage, Sent, Since, Stores,
};
pub use values::{
    ClientId, Email, Emoji, MessageContent, Password, PasswordHash, RoomDescription, RoomName,
    Username,
};
