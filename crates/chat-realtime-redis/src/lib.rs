//! # chat-realtime-redis
//!
//! The domain's [`Notifier`](chat_domain::Notifier) port across several
//! instances of the service: an event published on one instance reaches
//! the live connections on every instance, and presence (`presence`
//! frames, `/api/ws/users`, `is_online`) is cluster-wide. Built on the
//! in-process hub of `chat-realtime`, which holds each instance's own
//! connections, and on Redis (a standalone server or one primary; not
//! Redis Cluster) through the `redis` crate.
//!
//! ```
//! use chat_domain::{Audience, Delivery, Event, Message, MessageContent, MessageId,
//!     MessageTarget, Notifier, TokenId, UserId, Username};
//! use chat_realtime_redis::{RedisNotifier, RedisOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chat_domain::DomainError> {
//! // Every instance of one deployment: same Redis, same prefix.
//! let notifier = RedisNotifier::connect(
//!     "redis://127.0.0.1:6379",
//!     RedisOptions::with_prefix(format!("doc-{}", std::process::id())),
//! ).await?;
//! // `/health` shows "realtime": notifier.health().status() ("connected" or "degraded").
//!
//! let alice = Username::parse("alice")?;
//! let mut socket = notifier.connect(UserId::generate(), alice.clone(), TokenId::generate()).await?;
//! let message = Message::new(
//!     MessageId::generate(),
//!     alice,
//!     MessageTarget::Global,
//!     MessageContent::parse("hello, cluster")?,
//!     time::OffsetDateTime::now_utc(),
//! );
//! // Delivered here at once, and through Redis on every other instance.
//! notifier.publish(Event::message(message), Audience::Everyone).await;
//! loop {
//!     // Alice's own `presence` frame may come first.
//!     let Some(Delivery::Frame { text, .. }) = socket.next().await else { panic!() };
//!     if text.contains("hello, cluster") { break; }
//! }
//! notifier.shutdown().await; // closes sockets with 1001, leaves the cluster
//! # Ok(())
//! # }
//! ```
//!
//! Selecting it (the server's job): with `REDIS_URL` set,
//! `RedisNotifier::connect(&url, RedisOptions::default())` and hand it to
//! `ChatService::new` as `Arc<dyn Notifier>`; keep a clone to call
//! [`RedisNotifier::shutdown`] on exit and [`RedisNotifier::health`] for
//! `/health`. Without `REDIS_URL`, the in-process `chat_realtime::Hub`.
//!
//! ## Design
//!
//! **Fan-out.** `publish` serializes the event's frame once, delivers it to
//! this instance's connections at once through the local hub (so local
//! delivery never waits on Redis and keeps working without it), and queues
//! one envelope (`origin`, audience, the message id and position of a
//! message frame, frame text) for Redis. One writer task
//! per instance `PUBLISH`es the queue in order, batching what is waiting
//! into one pipeline, on `<prefix>:events`. Every instance's subscriber
//! task hands envelopes from other origins to its own hub, which applies
//! the same routing as in process: `Audience::Everyone` reaches every
//! connection, `Audience::Users` every connection of those users. The
//! audience is computed by the use case from the store when the event
//! happens, so a room membership changed on one instance routes the next
//! message correctly on all. Frames from one publisher reach every
//! connection in publish order; receivers on one instance share one
//! `Arc<str>`. Slow readers are closed (1013) by each instance's hub, as in
//! process.
//!
//! **Connect.** `connect` first publishes a marker to itself and waits for
//! it to come back through the subscription, so a new connection gets no
//! event that Redis ordered before `connect` began but that was still in
//! flight to this instance (such as the `online` of a user who connected
//! just before); then registers the connection with the hub; then waits
//! until Redis has the presence change. Two round trips to Redis per
//! `connect`.
//!
//! **Presence.** Each instance registers in Redis the users connected to
//! it: a hash `<prefix>:presence:<instance>` (user id → username), and its
//! id in the sorted set `<prefix>:instances` scored with the Redis-clock
//! time at which the registration lapses. Every `heartbeat` (default 5 s)
//! it pushes that time to now + `presence_ttl` (default 15 s). The hub
//! reports each user's first connection to this instance and last one
//! closing ([`chat_realtime::Hub::reporting_presence`]); the writer applies
//! each in a Lua script that updates the hash and, atomically, announces
//! the user `online` only if no other live instance has them (first
//! connection in the cluster), `offline` only if none has them any more
//! (last connection in the cluster). The script itself publishes the
//! `presence` frame to every instance, its own included, so every instance
//! sees presence in the one order Redis decided it. `connected_users` and
//! `online_among` are the union over live instances. `connect` returns
//! once Redis has the connection, so `connected_users` answered on any
//! instance afterwards includes the user.
//!
//! **A dead instance.** Every script first reaps instances whose
//! registration lapsed: removes them and their hash, and announces their
//! users `offline` unless a live instance has them. One script removes a
//! given instance, so its users are announced once. So an instance that
//! dies (crash, kill -9, network cut) has its users announced offline and
//! dropped from `connected_users` everywhere within
//! [`RedisOptions::offline_bound`] = `presence_ttl` + `heartbeat` (20 s by
//! default). Times are read from Redis's clock, so the instances' clocks
//! do not matter. [`RedisNotifier::shutdown`] leaves at once instead.
//!
//! **Redis lost.** Local delivery continues; [`RedisNotifier::is_degraded`]
//! turns true (for `/health`: `"realtime":"degraded"`); envelopes are
//! dropped rather than queued; presence falls back to this instance's
//! view (a user's first or last local connection is announced to local
//! connections), and `connected_users`/`online_among` answer for this
//! instance. The writer and the subscriber reconnect independently with
//! exponential backoff (100 ms doubling to `max_backoff`, 5 s); each
//! tells the other when it loses Redis, so a restarted Redis is noticed by
//! both at once rather than at the next heartbeat. A paused Redis (or a
//! partition that drops packets) is noticed too: the subscriber checks
//! its connection every `heartbeat` (a `SUBSCRIBE` to the channel it
//! has, answered on that connection) and takes no answer within
//! `io_timeout` as a break; the writer's heartbeat and publishes time out
//! likewise. On reconnecting, the writer registers this instance's current
//! users again and announces to the cluster who came or went meanwhile.
//!
//! **Holes.** Redis does not replay what was published while a subscriber
//! was away, so a break leaves a hole in what this instance received. The
//! local hub remembers the positions of the stored changes it hands out
//! (and when; the last 65,536), and the break opens a hole from the
//! stream's last sign of life less [`chat_realtime::IN_FLIGHT`] (a live
//! frame trails its commit). The next subscription, before it delivers
//! anything, closes the hole: every local connection is handed
//! `Delivery::Gap` with the highest position handed out before the hole
//! (or, before any, the store's latest at start:
//! [`Notifier::resume_from`](chat_domain::Notifier::resume_from)) and the
//! positions handed out since, and fills it from the store (the WebSocket
//! session does, as for `?since=`). Then every followed user's presence
//! is told again from what Redis holds. An instance whose writer dropped
//! message envelopes while the others kept Redis (a partition of that
//! instance alone) publishes a loss report once it is back (how long ago
//! it started dropping), which every other instance takes as a hole of
//! that length. Typing in a hole is lost.
//!
//! **Races accepted.**
//! - Presence of one user is decided in one order in Redis, but an instance
//!   delivers its local messages at once and remote ones after a round trip,
//!   so a `presence` frame and a message from different instances may
//!   arrive in either order. Frames of different publishers were never
//!   ordered, in process either.
//! - After an outage, a `presence` frame already shown locally may be
//!   repeated by the re-registration: presence frames state a fact, so a
//!   repeat is harmless.
//! - An instance that stalls (not crashed) longer than `presence_ttl` is
//!   reaped: its users flicker `offline`, then `online` when its next
//!   heartbeat registers it again.
//! - Messages published while Redis is lost reach the publishing
//!   instance's connections live, and the others' from the store once
//!   Redis is back (by design: the store is the record).
//! - A connection opened during a hole may be sent again, in the fill,
//!   messages stored during the hole before it opened (it may have read
//!   them over HTTP): clients keep messages by id.

mod envelope;
mod notifier;
mod options;
mod presence;
mod shared;
mod subscriber;
mod writer;

pub use notifier::RedisNotifier;
pub use options::RedisOptions;
pub use shared::RedisHealth;

/// Registers the help text of the series this crate records through the
/// `metrics` facade (it installs no recorder: without one, recording is a
/// no-op). Call once after installing a recorder.
///
/// - `chat_redis_connected` (gauge): 1 while the subscription and the
///   command connection are both up, 0 while degraded; the app sets it
///   from [`Notifier::health`](chat_domain::Notifier::health) when it
///   renders its metrics (the state is read when scraped, not tracked).
/// - `chat_redis_published_total`: envelopes (events, and the sync
///   markers a new connection waits on) published to the events channel.
/// - `chat_redis_received_total`: events from other instances delivered
///   to this instance's connections.
/// - `chat_redis_dropped_total`: envelopes not published because Redis
///   was out of reach (other instances fill them in from the store once
///   told: see `chat_redis_loss_reports_total`).
/// - `chat_redis_subscription_breaks_total`: times the subscription to
///   the events channel broke (ended, stopped answering, or the writer
///   lost Redis); each leaves a hole that local connections fill from the
///   store once it is back.
/// - `chat_redis_loss_reports_total`: loss reports of other instances
///   received (they dropped message envelopes): holes too.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "chat_redis_connected",
        "1 when the Redis fan-out is connected, 0 when degraded (this instance's clients only)"
    );
    metrics::describe_counter!(
        "chat_redis_published_total",
        "Envelopes (events and sync markers) published to the Redis events channel"
    );
    metrics::describe_counter!(
        "chat_redis_received_total",
        "Events from other instances received over Redis and delivered locally"
    );
    metrics::describe_counter!(
        "chat_redis_dropped_total",
        "Envelopes not published because Redis was out of reach"
    );
    metrics::describe_counter!(
        "chat_redis_subscription_breaks_total",
        "Breaks of the Redis subscription (each a hole that connections fill from the store)"
    );
    metrics::describe_counter!(
        "chat_redis_loss_reports_total",
        "Reports of other instances that dropped message envelopes (each a hole filled from the store)"
    );
}
