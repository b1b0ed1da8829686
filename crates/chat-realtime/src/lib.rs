//! # chat-realtime
//!
//! The in-process implementation of the domain's [`Notifier`](chat_domain::Notifier) port: the
//! hub that fans events out to this process's WebSocket connections, tracks
//! who is online, and closes connections that read too slowly.
//!
//! ```
//! use chat_domain::{Audience, Delivery, Event, Message, MessageContent, MessageId,
//!     MessageTarget, Notifier, TokenId, UserId, Username};
//! use chat_realtime::{Hub, HubConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chat_domain::DomainError> {
//! let hub = Hub::new(HubConfig { queue_capacity: 256 });
//! let alice = Username::parse("alice")?;
//!
//! // One subscription per WebSocket; the session loops on `next()`.
//! let mut socket = hub.connect(UserId::generate(), alice.clone(), TokenId::generate()).await?;
//! // It follows bob's presence: bob's first connection is told to it.
//! let bob = Username::parse("bob")?;
//! socket.presence().follow(std::slice::from_ref(&bob), 1000)?;
//! let _bob_socket = hub.connect(UserId::generate(), bob, TokenId::generate()).await?;
//! let Some(Delivery::Presence(users)) = socket.next().await else { panic!() };
//! assert_eq!(users[0].username, "bob");
//! assert_eq!(users[0].status, chat_domain::PresenceStatus::Online);
//!
//! let message = Message::new(
//!     MessageId::generate(),
//!     alice,
//!     MessageTarget::Global,
//!     MessageContent::parse("hello")?,
//!     time::OffsetDateTime::now_utc(),
//! );
//! let id = message.id;
//! // With its position in the store's order, as the store answered it.
//! let event = Event::Message { message, position: Some(7) };
//! hub.publish(event, Audience::Everyone).await;
//! let Some(Delivery::Frame { text, message, position }) = socket.next().await else { panic!() };
//! assert!(text.starts_with(r#"{"type":"message","message":{"#));
//! // A message frame names its message and position, for `?since=` replay
//! // to de-duplicate.
//! assert_eq!((message, position), (Some(id), Some(7)));
//!
//! // On `Delivery::Close(reason)` the session closes with `chat_protocol::Close::notifier(reason)`.
//! hub.shutdown();
//! assert_eq!(
//!     socket.next().await,
//!     Some(Delivery::Close(chat_domain::CloseReason::ShuttingDown)),
//! );
//! # Ok(())
//! # }
//! ```
//!
//! ## Design
//!
//! **A shared registry, not a hub task.** The [`Hub`] is a cheap handle
//! (`Arc`) on a registry of connections indexed by user id (a user may hold
//! many), behind one `std::sync::RwLock`. An actor-style hub task was the
//! alternative; it funnels every publish through one task (one core) and
//! makes `connected_users` and the synchronous unregister-on-drop go
//! through a channel. Here:
//! - `publish` takes the **read** lock, so publishers running on many tasks
//!   fan out in parallel; `connect` and a subscription's drop take the
//!   **write** lock, briefly. Connections themselves never touch the lock:
//!   each reads its own queue.
//! - The lock is never held across an `.await` and nothing done under it
//!   waits: a delivery is a `try_send` of an `Arc<str>` into the
//!   connection's bounded `tokio::sync::mpsc` queue. A hot lock held for a
//!   bounded burst of non-blocking work is cheaper than a task hop per
//!   event; sharding the map would be the next step if fan-out to very
//!   large audiences ever made connects wait.
//!
//! **Serialize once.** An event is turned into its `ServerFrame` JSON once
//! per fan-out, into an `Arc<str>`; each receiver gets a clone of that
//! `Arc` (a reference-count increment, no allocation per delivery), with
//! the id and position of the message when the event is one
//! (`Delivery::Frame`'s `message` and `position`), so that a session
//! replaying history can drop live copies of what it replayed, and of what
//! lies at or below its resume position, without parsing the JSON.
//!
//! **Back-pressure.** Each connection's queue holds
//! [`HubConfig::queue_capacity`] frames (default 256). `publish` never
//! waits for a reader: when a queue is full the connection is marked too
//! slow and removed from the registry, and its subscription's next `next()`
//! returns `Delivery::Close(CloseReason::TooSlow)` (close code 1013) at
//! once, without first handing over the backlog. No publisher or other
//! connection is slowed and no memory grows; the client reconnects with
//! `?since=` and catches up from the store.
//!
//! **Ordering.** Frames from one publisher reach each connection in
//! publish order (one FIFO queue per connection). Two concurrent
//! publishers' frames may interleave differently on different connections.
//!
//! **Presence.** A connection follows the users it names
//! ([`Subscription::presence`](chat_domain::Subscription::presence)). A
//! user's first connection opening and last closing are told to the
//! connections that follow them, and to nobody else: into each follower's
//! presence map (the latest status per user), which its subscription hands
//! over as one `Delivery::Presence` at most every `PRESENCE_BATCH`, ahead of
//! and apart from its frame queue, so presence never makes a connection a
//! slow reader. Changes are routed under the registry's write lock, so
//! they keep the order of the connects and disconnects they report.
//!
//! **Shutdown.** [`Hub::shutdown`] closes every connection with
//! `CloseReason::ShuttingDown` (close code 1001) after the frames already
//! queued for it, and `connect` fails afterwards with
//! `DomainError::ShuttingDown` (503, "reconnect shortly"). Dropping
//! every `Hub` handle without shutting down ends each subscription with
//! `None`.
//!
//! **Building block for a cluster.** A cross-instance notifier (the Redis
//! one) wraps a hub holding its own process's connections: it sends frames
//! received from other instances through [`Hub::deliver`] (the same
//! path `publish` takes after serializing with [`event_frame`]), and makes
//! the hub with [`Hub::reporting_presence`], which reports each user's
//! first connection opening and last closing as a [`PresenceChange`] on a
//! channel instead of announcing it, since only the cluster knows whether
//! the user is connected elsewhere.
//!
//! **Holes, for a cluster.** A hub made with [`Hub::reporting_presence`]
//! also remembers the positions of the stored changes it hands out (the
//! last 65,536, and when), under the registry lock that hands them out.
//! When the cluster's stream breaks, its notifier opens a hole
//! ([`Hub::open_hole`]); when the stream is whole again,
//! [`Hub::close_hole`] queues `Delivery::Gap` for every connection (over
//! the queue's capacity: it never makes a slow reader), naming the highest
//! position handed out [`IN_FLIGHT`] before the stream's last sign of life
//! and the positions handed out since. A delivery is thus wholly before a
//! connection's mark (and counted in it) or wholly after; a late copy of
//! a change already handed out is not handed out again. A connection
//! closed as too slow while its mark waited is handed the hole as not
//! fillable, so that its client resyncs from the hole's start rather than
//! from its last message, which may lie past the hole.
//!
//! **Contract.** With the `contract` feature, the `contract` module holds the
//! test cases every `Notifier` (this hub, the Redis notifier) must pass.

mod delivered;
mod hub;
mod presence;
mod queue;
mod registry;
mod subscription;

#[cfg(feature = "contract")]
pub mod contract;

pub use delivered::IN_FLIGHT;
pub use hub::{event_frame, Hub, HubConfig, PresenceChange};
