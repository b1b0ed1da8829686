//! The [`Notifier`] contract: cases any notifier must pass, so the
//! in-process [`Hub`](crate::Hub) and a cross-instance (Redis) notifier are
//! held to one behaviour. Enabled by the `contract` feature.
//!
//! Every case takes two handles, `a` and `b`: two instances sharing a
//! backend (a multi-instance notifier), or the same notifier twice. Events
//! are published on `a`; connections are spread over both. Each case uses
//! fresh users whose names carry a random tag and ignores every frame
//! without that tag, so cases may run in parallel against one shared
//! backend. A case panics (with a message) when the notifier breaks the
//! contract.
//!
//! What the cases require of a notifier, beyond the trait's docs:
//! - once `connect` returns, the subscription receives every event
//!   published afterwards, on any instance, for its user;
//! - frames from one publisher reach one connection in publish order;
//! - presence goes only to the connections that follow the user, as
//!   `Delivery::Presence` batches (at most one per `PRESENCE_BATCH`, each
//!   user's latest status), never through the frame queue;
//! - one fan-out shares one text: receivers on one instance get the same
//!   `Arc<str>`;
//! - a connection whose queue overflows gets `Close(TooSlow)` on its next
//!   `next()` (not after its backlog), then `None`, and is unregistered;
//! - `revoke` closes the connections opened with that token, on every
//!   instance, with `Close(TokenRevoked)`, and no other;
//! - `connected_users` is sorted by byte order of the usernames.
//!
//! ```no_run
//! # async fn demo() {
//! let hub = chat_realtime::Hub::default();
//! chat_realtime::contract::run_all(&hub, &hub, 256).await;
//! # }
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Audience, CloseReason, Delivery, Event, Message, MessageContent, MessageId, MessageTarget,
    Notifier, PresenceStatus, RoomId, Subscription, TokenId, TypingTarget, UserId, UserPresence,
    Username,
};
use chat_protocol::ServerFrame;
use time::OffsetDateTime;

/// How long an expected frame may take to arrive.
const PATIENCE: Duration = Duration::from_secs(5);
/// Time given to an asynchronous implementation to act on a drop before
/// checking that it did not announce anything.
const SETTLE: Duration = Duration::from_millis(50);

/// Runs every case, one after the other. `queue_capacity` is the notifier's
/// per-connection queue size in frames (at least 128 for the ordering case).
pub async fn run_all<A, B>(a: &A, b: &B, queue_capacity: usize)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    global_message_reaches_every_connection(a, b).await;
    users_audience_reaches_only_those_users(a, b).await;
    every_connection_of_a_user_gets_the_event(a, b).await;
    typing_frames_have_the_spec_shape(a, b).await;
    presence_online_on_first_connection_only(a, b).await;
    presence_offline_on_last_close_only(a, b).await;
    presence_changes_are_batched_and_merged(a, b).await;
    presence_waits_beside_a_full_queue(a, b, queue_capacity).await;
    following_is_bounded_and_can_stop(a, b).await;
    connected_users_and_online_among(a, b).await;
    frames_from_one_publisher_arrive_in_order(a, b).await;
    message_frames_name_their_message(a, b).await;
    one_fan_out_shares_one_text(a).await;
    slow_reader_is_closed_without_slowing_others(a, b, queue_capacity).await;
    a_revoked_token_closes_its_connections_everywhere(a, b).await;
}

/// A global message (`Audience::Everyone`) reaches every connection as a
/// `message` frame.
pub async fn global_message_reaches_every_connection<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut alice = s.connect(a, "alice").await;
    let mut bob = s.connect(b, "bob").await;
    let message = s.message(&alice.name, MessageTarget::Global, "hello all");
    a.publish(Event::message(message.clone()), Audience::Everyone)
        .await;
    let expected = ServerFrame::Message {
        message,
        cursor: None,
    };
    alice.expect(&expected).await;
    bob.expect(&expected).await;
}

/// `Audience::Users` reaches those users' connections and nobody else; a
/// direct message goes out as `direct_message`.
pub async fn users_audience_reaches_only_those_users<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut alice = s.connect(a, "alice").await;
    let mut bob = s.connect(b, "bob").await;
    let mut carol = s.connect(b, "carol").await;
    let dm = s.message(
        &alice.name,
        MessageTarget::Direct(bob.name.clone()),
        "just us",
    );
    let audience = Audience::Users(vec![alice.id, bob.id]);
    a.publish(Event::message(dm.clone()), audience).await;
    let expected = ServerFrame::DirectMessage {
        message: dm,
        cursor: None,
    };
    alice.expect(&expected).await;
    bob.expect(&expected).await;
    s.expect_nothing_before_marker(a, &mut carol).await;
}

/// A user with several connections (tabs, devices, instances) gets the
/// event on each.
pub async fn every_connection_of_a_user_gets_the_event<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut tab1 = s.connect(a, "bob").await;
    let mut tab2 = s.reconnect(b, &tab1).await;
    let mut tab3 = s.reconnect(a, &tab1).await;
    let room = RoomId::generate();
    let message = s.message(&tab1.name, MessageTarget::Room(room), "in the room");
    a.publish(
        Event::message(message.clone()),
        Audience::Users(vec![tab1.id]),
    )
    .await;
    let expected = ServerFrame::Message {
        message,
        cursor: None,
    };
    tab1.expect(&expected).await;
    tab2.expect(&expected).await;
    tab3.expect(&expected).await;
}

/// `Event::Typing` goes out as `{type:"typing", username, recipient}` or
/// `{type:"typing", username, room_id}`.
pub async fn typing_frames_have_the_spec_shape<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let alice = s.connect(a, "alice").await;
    let mut bob = s.connect(b, "bob").await;
    let to_bob = Event::Typing {
        from: alice.name.clone(),
        target: TypingTarget::Direct(bob.name.clone()),
    };
    a.publish(to_bob, Audience::Users(vec![bob.id])).await;
    let json = bob.json().await;
    let want = serde_json::json!({
        "type": "typing", "username": alice.name.as_str(), "recipient": bob.name.as_str(),
    });
    assert_eq!(json, want, "direct typing frame");

    let room = RoomId::generate();
    let in_room = Event::Typing {
        from: alice.name.clone(),
        target: TypingTarget::Room(room),
    };
    a.publish(in_room, Audience::Users(vec![bob.id])).await;
    let json = bob.json().await;
    let want = serde_json::json!({
        "type": "typing", "username": alice.name.as_str(), "room_id": room.to_string(),
    });
    assert_eq!(json, want, "room typing frame");
}

/// A user's first connection makes them `online` to the connections that
/// follow them, on every instance; a second connection changes nothing,
/// and a connection that does not follow them hears nothing.
pub async fn presence_online_on_first_connection_only<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let alice = s.user("alice");
    let mut watcher = s.connect(a, "watcher").await;
    watcher.follow(&[&alice.1]);
    let mut bystander = s.connect(a, "bystander").await;
    let first = s.attach(b, alice.0, alice.1.clone()).await;
    watcher
        .expect_presence(&[(&alice.1, PresenceStatus::Online)])
        .await;
    let _second = s.reconnect(a, &first).await;
    tokio::time::sleep(SETTLE).await;
    s.expect_nothing_before_marker(a, &mut watcher).await;
    s.expect_nothing_before_marker(a, &mut bystander).await;
}

/// Closing one of several connections changes nothing; closing the last
/// makes the user `offline` to their followers.
pub async fn presence_offline_on_last_close_only<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let alice = s.user("alice");
    let mut watcher = s.connect(a, "watcher").await;
    watcher.follow(&[&alice.1]);
    let first = s.attach(b, alice.0, alice.1.clone()).await;
    let second = s.reconnect(a, &first).await;
    watcher
        .expect_presence(&[(&alice.1, PresenceStatus::Online)])
        .await;
    drop(first);
    tokio::time::sleep(SETTLE).await;
    s.expect_nothing_before_marker(a, &mut watcher).await;
    drop(second);
    watcher
        .expect_presence(&[(&alice.1, PresenceStatus::Offline)])
        .await;
}

/// Changes that come within one batch interval reach a follower as one
/// delivery, each user once, with their latest status, no sooner than
/// `PRESENCE_BATCH` after the previous one.
pub async fn presence_changes_are_batched_and_merged<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let (alice, bob, carol) = (s.user("alice"), s.user("bob"), s.user("carol"));
    let mut watcher = s.connect(a, "watcher").await;
    watcher.follow(&[&alice.1, &bob.1, &carol.1]);
    let first = s.attach(b, alice.0, alice.1.clone()).await;
    watcher
        .expect_presence(&[(&alice.1, PresenceStatus::Online)])
        .await;
    let delivered = tokio::time::Instant::now();
    let _bob = s.attach(b, bob.0, bob.1.clone()).await;
    let _carol = s.attach(a, carol.0, carol.1.clone()).await;
    drop(first);
    let mut expected = vec![
        (&alice.1, PresenceStatus::Offline),
        (&bob.1, PresenceStatus::Online),
        (&carol.1, PresenceStatus::Online),
    ];
    expected.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    watcher.expect_presence(&expected).await;
    let waited = delivered.elapsed();
    assert!(
        waited >= chat_domain::PRESENCE_BATCH,
        "a second presence delivery {waited:?} after the first"
    );
}

/// A connection whose queue is nearly full still gets presence, merged and
/// ahead of its frames, and is not closed for it however often the users
/// it follows come and go.
pub async fn presence_waits_beside_a_full_queue<A, B>(a: &A, b: &B, queue_capacity: usize)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let alice = s.user("alice");
    let mut watcher = s.connect(a, "watcher").await;
    watcher.follow(&[&alice.1]);
    let audience = Audience::Users(vec![watcher.id]);
    let sent = s
        .publish_numbered(a, &watcher.name, &audience, 0..queue_capacity - 1)
        .await;
    // More changes than the one free slot could hold as frames.
    for _ in 0..8 {
        drop(s.attach(b, alice.0, alice.1.clone()).await);
    }
    let last = s.attach(b, alice.0, alice.1.clone()).await;
    tokio::time::sleep(SETTLE).await;
    // The frames queued first are all there, in order, and the connection
    // is open.
    let mut presence = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < sent.len() {
        match tokio::time::timeout(PATIENCE, watcher.sub.next()).await {
            Ok(Some(Delivery::Presence(users))) => presence.push(users),
            Ok(Some(Delivery::Frame { text, .. })) if text.contains(s.tag.as_str()) => {
                frames.push(serde_json::from_str::<ServerFrame>(&text).expect("a frame"))
            }
            Ok(Some(Delivery::Frame { .. })) => {}
            other => panic!("the watcher must stay open: {other:?}"),
        }
    }
    assert_eq!(frames, sent, "every frame, in order");
    assert!(!presence.is_empty(), "presence came beside the frames");
    drop(last);
    let offline = presence_of(&alice.1, PresenceStatus::Offline);
    while !watcher.next_presence().await.contains(&offline) {}
}

/// A connection follows at most the limit it is given, users already
/// followed counting once; one it stops following is no longer told.
pub async fn following_is_bounded_and_can_stop<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let (alice, bob, carol) = (s.user("alice"), s.user("bob"), s.user("carol"));
    let mut watcher = s.connect(a, "watcher").await;
    let follows = watcher.sub.presence();
    follows
        .follow(&[alice.1.clone(), bob.1.clone()], 2)
        .expect("two users within a limit of two");
    follows
        .follow(std::slice::from_ref(&alice.1), 2)
        .expect("a user already followed counts once");
    assert_eq!(
        follows.follow(std::slice::from_ref(&carol.1), 2),
        Err(chat_domain::DomainError::TooManySubscriptions { limit: 2 })
    );
    follows.unfollow(std::slice::from_ref(&alice.1));
    follows
        .follow(std::slice::from_ref(&carol.1), 2)
        .expect("room again after unfollowing");
    let _alice = s.attach(b, alice.0, alice.1.clone()).await;
    let _bob = s.attach(b, bob.0, bob.1.clone()).await;
    watcher
        .expect_presence(&[(&bob.1, PresenceStatus::Online)])
        .await;
}

/// `connected_users` and `online_among` see connections on every instance,
/// and forget a user once their last connection is dropped.
pub async fn connected_users_and_online_among<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let alice1 = s.connect(a, "alice").await;
    let alice2 = s.reconnect(b, &alice1).await;
    let bob = s.connect(b, "bob").await;
    let carol = s.user("carol");
    let everyone_sees = [&alice1.name, &bob.name];
    check_names(a.connected_users().await, &everyone_sees, &carol.1);
    check_names(b.connected_users().await, &everyone_sees, &carol.1);
    let ids = [alice1.id, bob.id, carol.0];
    let online = a.online_among(&ids).await.expect("online_among");
    assert_eq!(online, HashSet::from([alice1.id, bob.id]));

    let alice = (alice1.id, alice1.name.clone());
    drop(alice1);
    tokio::time::sleep(SETTLE).await;
    let online = b.online_among(&[alice.0]).await.expect("online_among");
    assert!(online.contains(&alice.0), "alice still has a connection");
    drop(alice2);
    eventually("alice goes offline", || async {
        let online = a.online_among(&[alice.0]).await.expect("online_among");
        let names = b.connected_users().await.expect("connected_users");
        online.is_empty() && !names.contains(&alice.1)
    })
    .await;
}

/// Frames one publisher sends reach each connection in publish order.
pub async fn frames_from_one_publisher_arrive_in_order<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    const COUNT: usize = 100;
    let s = Scope::new();
    let mut near = s.connect(a, "near").await;
    let mut far = s.connect(b, "far").await;
    let audience = Audience::Users(vec![near.id, far.id]);
    let sent = s.publish_numbered(a, &near.name, &audience, 0..COUNT).await;
    for probe in [&mut near, &mut far] {
        for expected in &sent {
            probe.expect(expected).await;
        }
    }
}

/// A delivered `message` or `direct_message` frame names the id of its
/// message (`Delivery::Frame`'s `message`) and the message's position when
/// the event had one (`position`), on the publishing instance and on the
/// others alike; a `typing` or `presence` frame names neither.
pub async fn message_frames_name_their_message<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut near = s.connect(a, "near").await;
    let mut far = s.connect(b, "far").await;
    let audience = Audience::Users(vec![near.id, far.id]);
    let global = s.message(&near.name, MessageTarget::Global, "global");
    let direct = s.message(&near.name, MessageTarget::Direct(far.name.clone()), "dm");
    // A position is carried as given; an event without one still goes out.
    for (message, position) in [(global, Some(42)), (direct, None)] {
        let id = message.id;
        let event = Event::Message { message, position };
        a.publish(event, audience.clone()).await;
        for probe in [&mut near, &mut far] {
            let (text, named, at) = probe.delivered().await;
            assert_eq!(named, Some(id), "{}: message id of {text}", probe.name);
            assert_eq!(at, position, "{}: position of {text}", probe.name);
        }
    }
    let typing = Event::Typing {
        from: near.name.clone(),
        target: TypingTarget::Direct(far.name.clone()),
    };
    a.publish(typing, Audience::Users(vec![far.id])).await;
    let (text, named, at) = far.delivered().await;
    assert_eq!(named, None, "a typing frame names no message: {text}");
    assert_eq!(at, None, "a typing frame has no position: {text}");
}

/// One fan-out serializes once: two receivers get the very same `Arc<str>`.
pub async fn one_fan_out_shares_one_text<A>(a: &A)
where
    A: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut alice = s.connect(a, "alice").await;
    let mut bob = s.connect(a, "bob").await;
    let message = s.message(&alice.name, MessageTarget::Global, "shared");
    let audience = Audience::Users(vec![alice.id, bob.id]);
    a.publish(Event::message(message), audience).await;
    let (one, two) = (alice.text().await, bob.text().await);
    assert!(
        Arc::ptr_eq(&one, &two),
        "receivers of one fan-out must share one serialized text"
    );
}

/// A connection that never reads is closed with `TooSlow` as soon as its
/// queue (`queue_capacity` frames) overflows, and unregistered, while the
/// others receive every frame, in order, unslowed.
pub async fn slow_reader_is_closed_without_slowing_others<A, B>(a: &A, b: &B, queue_capacity: usize)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let total = (queue_capacity * 4).max(2000);
    // Half a queue per round, read before the next: the fast readers never
    // come near their limit, whatever the scheduling.
    let batch = (queue_capacity / 2).max(1);
    let s = Scope::new();
    let mut fast1 = s.connect(a, "fast1").await;
    let mut fast2 = s.connect(b, "fast2").await;
    let mut slow = s.connect(a, "slow").await;
    let audience = Audience::Users(vec![fast1.id, fast2.id, slow.id]);
    let mut start = 0;
    while start < total {
        let end = (start + batch).min(total);
        let sent = s
            .publish_numbered(a, &fast1.name, &audience, start..end)
            .await;
        for probe in [&mut fast1, &mut fast2] {
            for expected in &sent {
                probe.expect(expected).await;
            }
        }
        start = end;
    }
    let first = tokio::time::timeout(PATIENCE, slow.sub.next())
        .await
        .expect("the slow reader is told promptly");
    assert_eq!(
        first,
        Some(Delivery::Close(CloseReason::TooSlow)),
        "the slow reader's first delivery is the close, not its backlog"
    );
    let after = tokio::time::timeout(PATIENCE, slow.sub.next())
        .await
        .expect("the subscription ends");
    assert_eq!(after, None, "nothing after the close");
    let (slow_id, fast_ids) = (slow.id, [fast1.id, fast2.id]);
    eventually("the slow reader is unregistered", || async {
        let online = a.online_among(&[slow_id]).await.expect("online_among");
        online.is_empty()
    })
    .await;
    let online = b.online_among(&fast_ids).await.expect("online_among");
    assert_eq!(online, HashSet::from(fast_ids), "fast readers stay");
}

/// Revoking a token closes, on every instance, the connections opened
/// with it (`Close(TokenRevoked)`, then `None`), and only those: the same
/// user's connection with another token stays.
pub async fn a_revoked_token_closes_its_connections_everywhere<A, B>(a: &A, b: &B)
where
    A: Notifier + ?Sized,
    B: Notifier + ?Sized,
{
    let s = Scope::new();
    let mut near = s.connect(a, "revoked").await;
    let mut far = s
        .attach_with_token(b, near.id, near.name.clone(), near.token)
        .await;
    let mut other_token = s.reconnect(b, &near).await;
    a.revoke(near.id, near.token).await;
    for (probe, place) in [(&mut near, "here"), (&mut far, "on the other instance")] {
        let close = tokio::time::timeout(PATIENCE, probe.sub.next())
            .await
            .unwrap_or_else(|_| panic!("the connection {place} is closed promptly"));
        assert_eq!(
            close,
            Some(Delivery::Close(CloseReason::TokenRevoked)),
            "the connection {place} is closed as revoked"
        );
        let after = tokio::time::timeout(PATIENCE, probe.sub.next())
            .await
            .expect("the subscription ends");
        assert_eq!(after, None, "nothing after the close {place}");
    }
    s.expect_nothing_before_marker(a, &mut other_token).await;
    let user = near.id;
    let online = b.online_among(&[user]).await.expect("online_among");
    assert_eq!(
        online,
        HashSet::from([user]),
        "the other token keeps the user online"
    );
}

/// One case's users, all named with the same random tag.
struct Scope {
    tag: String,
}

/// A test user's live connection.
struct Probe {
    id: UserId,
    name: Username,
    /// The token the connection was opened with.
    token: TokenId,
    tag: String,
    sub: Box<dyn Subscription>,
}

impl Scope {
    fn new() -> Self {
        // The tail of a UUIDv7 is random (its head is the clock).
        let uuid = UserId::generate().as_uuid().simple().to_string();
        let tag = uuid.get(uuid.len() - 10..).unwrap_or("0000000000");
        Self {
            tag: tag.to_owned(),
        }
    }

    fn user(&self, role: &str) -> (UserId, Username) {
        let name = Username::parse(format!("{role}_{}", self.tag)).expect("valid test username");
        (UserId::generate(), name)
    }

    /// Connects a new user.
    async fn connect<N: Notifier + ?Sized>(&self, notifier: &N, role: &str) -> Probe {
        let (id, name) = self.user(role);
        self.attach(notifier, id, name).await
    }

    /// Another connection of the same user, with a token of its own (no
    /// presence expected).
    /// Not `async fn`: holding `&Probe` across an await would make the
    /// cases' futures `!Send` (a subscription is not `Sync`).
    fn reconnect<'a, N: Notifier + ?Sized>(
        &'a self,
        notifier: &'a N,
        of: &Probe,
    ) -> impl std::future::Future<Output = Probe> + Send + 'a {
        self.attach(notifier, of.id, of.name.clone())
    }

    /// A connection of this user, with a token of its own.
    async fn attach<N: Notifier + ?Sized>(
        &self,
        notifier: &N,
        id: UserId,
        name: Username,
    ) -> Probe {
        self.attach_with_token(notifier, id, name, TokenId::generate())
            .await
    }

    async fn attach_with_token<N: Notifier + ?Sized>(
        &self,
        notifier: &N,
        id: UserId,
        name: Username,
        token: TokenId,
    ) -> Probe {
        let sub = notifier
            .connect(id, name.clone(), token)
            .await
            .expect("connect succeeds");
        Probe {
            id,
            name,
            token,
            tag: self.tag.clone(),
            sub,
        }
    }

    fn message(&self, sender: &Username, target: MessageTarget, text: &str) -> Message {
        // Whole seconds, so the timestamp survives a JSON round trip as is.
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Message::new(
            MessageId::generate(),
            sender.clone(),
            target,
            MessageContent::parse(format!("{text} [{}]", self.tag)).expect("valid content"),
            OffsetDateTime::from_unix_timestamp(now).expect("valid time"),
        )
    }

    /// Publishes numbered messages; returns the frames each receiver expects.
    async fn publish_numbered<N: Notifier + ?Sized>(
        &self,
        notifier: &N,
        sender: &Username,
        audience: &Audience,
        numbers: std::ops::Range<usize>,
    ) -> Vec<ServerFrame> {
        let mut sent = Vec::with_capacity(numbers.len());
        for n in numbers {
            let message = self.message(sender, MessageTarget::Global, &format!("#{n}"));
            notifier
                .publish(Event::message(message.clone()), audience.clone())
                .await;
            sent.push(ServerFrame::Message {
                message,
                cursor: None,
            });
        }
        sent
    }

    /// Proves `probe` received nothing so far: a marker sent to it now
    /// must be the next frame (frames from one publisher keep their order).
    async fn expect_nothing_before_marker<N: Notifier + ?Sized>(
        &self,
        notifier: &N,
        probe: &mut Probe,
    ) {
        let marker = self.message(&probe.name, MessageTarget::Global, "marker");
        notifier
            .publish(
                Event::message(marker.clone()),
                Audience::Users(vec![probe.id]),
            )
            .await;
        probe
            .expect(&ServerFrame::Message {
                message: marker,
                cursor: None,
            })
            .await;
    }
}

/// Makes `subscription` follow these users' presence, with a limit no test
/// reaches.
pub fn follow(subscription: &dyn Subscription, users: &[&Username]) {
    let users: Vec<Username> = users.iter().map(|u| (*u).clone()).collect();
    subscription
        .presence()
        .follow(&users, 1000)
        .expect("following is allowed");
}

impl Probe {
    /// Follows these users' presence.
    fn follow(&self, users: &[&Username]) {
        follow(&*self.sub, users);
    }

    /// The next presence delivery (frames of other cases are skipped).
    async fn next_presence(&mut self) -> Vec<UserPresence> {
        loop {
            let delivery = tokio::time::timeout(PATIENCE, self.sub.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no presence within {PATIENCE:?}", self.name));
            match delivery {
                Some(Delivery::Presence(users)) => return users,
                Some(Delivery::Frame { text, .. }) if !text.contains(self.tag.as_str()) => {}
                other => panic!("{}: expected presence, got {other:?}", self.name),
            }
        }
    }

    /// The next presence delivery must be exactly this, in name order.
    async fn expect_presence(&mut self, expected: &[(&Username, PresenceStatus)]) {
        let expected: Vec<UserPresence> = expected
            .iter()
            .map(|(name, status)| presence_of(name, *status))
            .collect();
        let got = self.next_presence().await;
        assert_eq!(got, expected, "{}: unexpected presence", self.name);
    }

    /// The next frame of this case (frames of other cases are skipped).
    async fn text(&mut self) -> Arc<str> {
        self.delivered().await.0
    }

    /// The next frame of this case (as [`Probe::text`]) with the message
    /// id and position it was delivered with.
    async fn delivered(&mut self) -> (Arc<str>, Option<MessageId>, Option<u64>) {
        self.tagged_frame().await
    }

    /// The next frame of this case, with the message id and position it was
    /// delivered with.
    async fn tagged_frame(&mut self) -> (Arc<str>, Option<MessageId>, Option<u64>) {
        loop {
            let delivery = tokio::time::timeout(PATIENCE, self.sub.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no frame within {PATIENCE:?}", self.name));
            match delivery {
                Some(Delivery::Frame {
                    text,
                    message,
                    position,
                }) if text.contains(self.tag.as_str()) => return (text, message, position),
                Some(Delivery::Frame { .. }) => continue,
                other => panic!("{}: expected a frame, got {other:?}", self.name),
            }
        }
    }

    async fn json(&mut self) -> serde_json::Value {
        let text = self.text().await;
        serde_json::from_str(&text).expect("every frame is one JSON object")
    }

    async fn frame(&mut self) -> ServerFrame {
        let text = self.text().await;
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a server frame ({e}): {text}", self.name))
    }

    async fn expect(&mut self, expected: &ServerFrame) {
        let got = self.frame().await;
        assert_eq!(&got, expected, "{}: unexpected frame", self.name);
    }
}

fn presence_of(username: &Username, status: PresenceStatus) -> UserPresence {
    UserPresence {
        username: username.as_str().to_owned(),
        status,
    }
}

/// Polls `check` until it holds, for asynchronous implementations.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks a `connected_users` answer: sorted, with `present`, without
/// `absent`.
fn check_names(
    names: chat_domain::DomainResult<Vec<Username>>,
    present: &[&Username],
    absent: &Username,
) {
    let names = names.expect("connected_users");
    assert!(
        names.windows(2).all(|w| w[0].as_str() <= w[1].as_str()),
        "connected_users must be sorted: {names:?}"
    );
    for who in present {
        assert!(names.contains(who), "{who} missing from {names:?}");
    }
    assert!(!names.contains(absent), "never connected: {names:?}");
}
