//! The in-process hub's own behaviour, beyond the shared contract: exact
//! presence and counts on a private hub, back-pressure under concurrent
//! readers, concurrent publishers, shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Audience, CloseReason, Delivery, DomainError, Event, Message, MessageContent, MessageId,
    MessageTarget, Notifier, PresenceStatus, RoomId, Subscription, TokenId, TypingTarget, UserId,
    UserPresence, Username,
};
use chat_protocol::ServerFrame;
use chat_realtime::{Hub, HubConfig, PresenceChange};
use time::OffsetDateTime;

const PATIENCE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(100);

struct Conn {
    id: UserId,
    name: Username,
    sub: Box<dyn Subscription>,
}

fn user(name: &str) -> (UserId, Username) {
    (
        UserId::generate(),
        Username::parse(name).expect("valid username"),
    )
}

async fn connect(hub: &Hub, (id, name): &(UserId, Username)) -> Conn {
    let sub = hub
        .connect(*id, name.clone(), TokenId::generate())
        .await
        .expect("connects");
    Conn {
        id: *id,
        name: name.clone(),
        sub,
    }
}

/// Connects a new user.
async fn connect_new(hub: &Hub, name: &str) -> Conn {
    connect(hub, &user(name)).await
}

fn presence(name: &Username, status: PresenceStatus) -> Vec<UserPresence> {
    vec![UserPresence {
        username: name.as_str().to_owned(),
        status,
    }]
}

fn message(sender: &Username, target: MessageTarget, text: &str) -> Message {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Message::new(
        MessageId::generate(),
        sender.clone(),
        target,
        MessageContent::parse(text).expect("valid content"),
        OffsetDateTime::from_unix_timestamp(now).expect("valid time"),
    )
}

impl Conn {
    async fn delivery(&mut self) -> Option<Delivery> {
        tokio::time::timeout(PATIENCE, self.sub.next())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing within {PATIENCE:?}", self.name))
    }

    async fn text(&mut self) -> Arc<str> {
        match self.delivery().await {
            Some(Delivery::Frame { text, .. }) => text,
            other => panic!("{}: expected a frame, got {other:?}", self.name),
        }
    }

    async fn frame(&mut self) -> ServerFrame {
        let text = self.text().await;
        serde_json::from_str(&text).expect("a server frame")
    }

    /// Follows these users' presence.
    fn follow(&self, users: &[&Username]) {
        chat_realtime::contract::follow(&*self.sub, users);
    }

    async fn presence(&mut self) -> Vec<UserPresence> {
        match self.delivery().await {
            Some(Delivery::Presence(users)) => users,
            other => panic!("{}: expected presence, got {other:?}", self.name),
        }
    }

    async fn assert_silent(&mut self) {
        let next = tokio::time::timeout(QUIET, self.sub.next()).await;
        assert!(next.is_err(), "{}: unexpected {next:?}", self.name);
    }
}

#[tokio::test]
async fn a_global_message_reaches_every_connection_once() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let m = message(&alice.name, MessageTarget::Global, "hi all");
    hub.publish(Event::message(m.clone()), Audience::Everyone)
        .await;
    let expected = ServerFrame::Message {
        message: m,
        cursor: None,
    };
    assert_eq!(alice.frame().await, expected);
    assert_eq!(bob.frame().await, expected);
    alice.assert_silent().await;
    bob.assert_silent().await;
}

#[tokio::test]
async fn a_users_audience_reaches_only_those_users() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let mut carol = connect_new(&hub, "carol").await;
    let dm = message(&alice.name, MessageTarget::Direct(bob.name.clone()), "psst");
    // Bob named twice still gets it once.
    let audience = Audience::Users(vec![bob.id, alice.id, bob.id]);
    hub.publish(Event::message(dm.clone()), audience).await;
    let expected = ServerFrame::DirectMessage {
        message: dm,
        cursor: None,
    };
    assert_eq!(alice.frame().await, expected);
    assert_eq!(bob.frame().await, expected);
    carol.assert_silent().await;
    bob.assert_silent().await;
}

#[tokio::test]
async fn every_connection_of_a_user_gets_the_event() {
    let hub = Hub::default();
    let bob = user("bob");
    let mut tab1 = connect(&hub, &bob).await;
    let mut tab2 = connect(&hub, &bob).await;
    let room = RoomId::generate();
    let m = message(&bob.1, MessageTarget::Room(room), "room talk");
    hub.publish(Event::message(m.clone()), Audience::Users(vec![bob.0]))
        .await;
    let expected = ServerFrame::Message {
        message: m,
        cursor: None,
    };
    assert_eq!(tab1.frame().await, expected);
    assert_eq!(tab2.frame().await, expected);
    assert_eq!(hub.connection_count(), 2);
}

#[tokio::test]
async fn typing_goes_out_with_the_spec_shape() {
    let hub = Hub::default();
    let alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let room = RoomId::generate();
    let typing = Event::Typing {
        from: alice.name.clone(),
        target: TypingTarget::Room(room),
    };
    hub.publish(typing, Audience::Users(vec![bob.id])).await;
    let json: serde_json::Value = serde_json::from_str(&bob.text().await).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"type": "typing", "username": "alice", "room_id": room.to_string()})
    );
}

#[tokio::test]
async fn presence_online_on_first_connection_and_offline_on_last_close_only() {
    let hub = Hub::default();
    let mut watcher = connect_new(&hub, "watcher").await;
    let mut bystander = connect_new(&hub, "bystander").await;
    let alice = user("alice");
    watcher.follow(&[&alice.1]);
    let mut first = connect(&hub, &alice).await;
    let online = presence(&alice.1, PresenceStatus::Online);
    assert_eq!(watcher.presence().await, online);
    let second = connect(&hub, &alice).await;
    watcher.assert_silent().await;
    first.assert_silent().await;
    bystander.assert_silent().await;
    assert_eq!(hub.connection_count(), 4);

    drop(first);
    watcher.assert_silent().await;
    drop(second);
    assert_eq!(
        watcher.presence().await,
        presence(&alice.1, PresenceStatus::Offline)
    );
    bystander.assert_silent().await;
    assert_eq!(hub.connection_count(), 2);
}

#[tokio::test]
async fn connected_users_are_sorted_and_online_among_filters() {
    let hub = Hub::default();
    let carol = connect_new(&hub, "carol").await;
    let alice = connect_new(&hub, "alice").await;
    let alice_again = connect(&hub, &(alice.id, alice.name.clone())).await;
    let bob = connect_new(&hub, "Bob").await;
    let names = hub.connected_users().await.expect("connected users");
    let names: Vec<&str> = names.iter().map(Username::as_str).collect();
    assert_eq!(names, ["Bob", "alice", "carol"], "byte order, each once");

    let stranger = UserId::generate();
    let online = hub
        .online_among(&[alice.id, stranger, bob.id])
        .await
        .expect("online among");
    assert_eq!(online, HashSet::from([alice.id, bob.id]));

    let (alice_id, carol_id) = (alice.id, carol.id);
    drop(alice);
    drop(alice_again);
    drop(carol);
    let names = hub.connected_users().await.expect("connected users");
    assert_eq!(names, vec![bob.name.clone()]);
    let online = hub
        .online_among(&[alice_id, carol_id, bob.id])
        .await
        .expect("online among");
    assert_eq!(online, HashSet::from([bob.id]));
}

/// 2,000 messages to three connections, one never read: the two readers
/// (on their own tasks) get all of them in order, the publisher never
/// waits, and the stalled one is closed as too slow and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_closed_without_slowing_anyone() {
    const TOTAL: usize = 2_000;
    let capacity = HubConfig::DEFAULT_QUEUE_CAPACITY;
    let hub = Hub::new(HubConfig {
        queue_capacity: capacity,
    });
    let slow = connect_new(&hub, "slow").await;
    let mut readers = Vec::new();
    let mut ids = vec![slow.id];
    for name in ["fast1", "fast2"] {
        let mut conn = connect_new(&hub, name).await;
        conn.follow(&[&slow.name]);
        ids.push(conn.id);
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let (mut got, mut presences) = (Vec::with_capacity(TOTAL), Vec::new());
            while got.len() < TOTAL {
                match conn.delivery().await {
                    Some(Delivery::Frame { text, .. }) => {
                        match serde_json::from_str(&text).expect("a server frame") {
                            ServerFrame::Message { message, .. } => {
                                got.push(message.content.into_inner())
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    Some(Delivery::Presence(users)) => presences.extend(users),
                    other => panic!("unexpected {other:?}"),
                }
                seen.store(got.len(), Ordering::Release);
            }
            (conn, got, presences)
        });
        readers.push((progress, task));
    }
    let sender = Username::parse("sender").expect("valid");
    for n in 0..TOTAL {
        // Keep the readers within half a queue, however they are scheduled:
        // this test is about the one that never reads.
        while readers
            .iter()
            .any(|(p, _)| n - p.load(Ordering::Acquire) >= capacity / 2)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let m = message(&sender, MessageTarget::Global, &format!("#{n}"));
        hub.publish(Event::message(m), Audience::Users(ids.clone()))
            .await;
    }
    let expected: Vec<String> = (0..TOTAL).map(|n| format!("#{n}")).collect();
    let mut fast = Vec::new();
    for (_, task) in readers {
        let (conn, got, presences) = task.await.expect("reader finishes");
        assert_eq!(got, expected, "{}: complete and in order", conn.name);
        fast.push((conn, presences));
    }

    let mut slow = slow;
    assert_eq!(
        slow.delivery().await,
        Some(Delivery::Close(CloseReason::TooSlow)),
        "closed at once, not after the backlog"
    );
    assert_eq!(slow.delivery().await, None);
    assert_eq!(hub.connection_count(), 2, "the slow one is unregistered");
    let names = hub.connected_users().await.expect("connected users");
    assert!(!names.contains(&slow.name));
    // Its followers were told the slow user went offline.
    let offline = presence(&slow.name, PresenceStatus::Offline);
    for (conn, presences) in &mut fast {
        if presences.is_empty() {
            *presences = conn.presence().await;
        }
        assert_eq!(*presences, offline, "{}", conn.name);
        conn.assert_silent().await;
    }
    // Dropping the already-evicted subscription changes nothing.
    drop(slow);
    assert_eq!(hub.connection_count(), 2);
}

/// `publish` from many tasks at once: nothing lost, and each publisher's
/// frames keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_lose_nothing_and_keep_their_own_order() {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 100;
    let hub = Hub::new(HubConfig {
        queue_capacity: PUBLISHERS * EACH,
    });
    let mut reader = connect_new(&hub, "reader").await;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let sender = Username::parse(format!("pub{p}")).expect("valid");
                for n in 0..EACH {
                    let m = message(&sender, MessageTarget::Global, &format!("{p}:{n}"));
                    hub.publish(Event::message(m), Audience::Everyone).await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in publishers {
        task.await.expect("publisher finishes");
    }
    let mut next_of = [0usize; PUBLISHERS];
    for _ in 0..PUBLISHERS * EACH {
        let ServerFrame::Message { message, .. } = reader.frame().await else {
            panic!("expected a message");
        };
        let content = message.content.into_inner();
        let (p, n) = content.split_once(':').expect("p:n");
        let (p, n): (usize, usize) = (p.parse().expect("p"), n.parse().expect("n"));
        let expected = next_of.get_mut(p).expect("known publisher");
        assert_eq!(n, *expected, "publisher {p} out of order");
        *expected += 1;
    }
    assert_eq!(next_of, [EACH; PUBLISHERS]);
}

#[tokio::test]
async fn one_fan_out_hands_every_receiver_the_same_text() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let m = message(&alice.name, MessageTarget::Global, "once");
    hub.publish(Event::message(m), Audience::Everyone).await;
    let (one, two) = (alice.text().await, bob.text().await);
    assert!(Arc::ptr_eq(&one, &two), "serialized once, shared");
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_refuses_new_ones() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let mut bob2 = connect(&hub, &(bob.id, bob.name.clone())).await;
    let m = message(&alice.name, MessageTarget::Global, "last words");
    hub.publish(Event::message(m.clone()), Audience::Users(vec![bob.id]))
        .await;
    hub.shutdown();
    assert!(hub.is_shut_down());
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.connected_users().await, Ok(vec![]));

    // What was queued is still handed over, then the close.
    let closed = Some(Delivery::Close(CloseReason::ShuttingDown));
    assert_eq!(
        bob.frame().await,
        ServerFrame::Message {
            message: m.clone(),
            cursor: None
        }
    );
    assert_eq!(
        bob2.frame().await,
        ServerFrame::Message {
            message: m,
            cursor: None
        }
    );
    for conn in [&mut alice, &mut bob, &mut bob2] {
        assert_eq!(conn.delivery().await, closed, "{}", conn.name);
        assert_eq!(conn.delivery().await, None);
    }

    let refused = hub
        .connect(UserId::generate(), user("late").1, TokenId::generate())
        .await;
    assert_eq!(refused.err(), Some(DomainError::ShuttingDown));
    hub.shutdown(); // idempotent
}

#[tokio::test]
async fn dropping_a_subscription_unregisters_it_at_once() {
    let hub = Hub::default();
    let alice = connect_new(&hub, "alice").await;
    assert_eq!(hub.connection_count(), 1);
    let id = alice.id;
    drop(alice);
    assert_eq!(hub.connection_count(), 0);
    assert!(hub.online_among(&[id]).await.expect("online").is_empty());
}

#[tokio::test]
async fn a_dropped_hub_ends_its_subscriptions() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    drop(hub);
    assert_eq!(alice.delivery().await, None);
}

#[tokio::test]
async fn a_zero_capacity_is_taken_as_one() {
    let hub = Hub::new(HubConfig { queue_capacity: 0 });
    let mut alice = connect(&hub, &user("alice")).await;
    let bob = connect(&hub, &user("bob")).await;
    let m = message(&bob.name, MessageTarget::Global, "one fits");
    hub.publish(Event::message(m.clone()), Audience::Everyone)
        .await;
    assert_eq!(
        alice.frame().await,
        ServerFrame::Message {
            message: m,
            cursor: None
        }
    );
}

#[tokio::test]
async fn a_reporting_hub_reports_presence_changes_instead_of_announcing_them() {
    let (hub, mut changes) = Hub::reporting_presence(HubConfig::default());
    let alice = user("alice");
    let mut tab1 = connect(&hub, &alice).await;
    let tab2 = connect(&hub, &alice).await;
    let change = |status| PresenceChange {
        user: alice.0,
        username: alice.1.clone(),
        status,
    };
    assert_eq!(
        changes.try_recv().ok(),
        Some(change(PresenceStatus::Online))
    );
    drop(tab2);
    assert!(changes.try_recv().is_err(), "alice still has a connection");
    let m = message(&alice.1, MessageTarget::Global, "no presence before me");
    hub.publish(Event::message(m.clone()), Audience::Everyone)
        .await;
    assert_eq!(
        tab1.frame().await,
        ServerFrame::Message {
            message: m,
            cursor: None
        }
    );
    drop(tab1);
    assert_eq!(
        changes.try_recv().ok(),
        Some(change(PresenceStatus::Offline))
    );
}

#[tokio::test]
async fn deliver_frame_hands_the_given_text_to_the_audience() {
    let hub = Hub::default();
    let mut alice = connect_new(&hub, "alice").await;
    let mut bob = connect_new(&hub, "bob").await;
    let text: Arc<str> = Arc::from(r#"{"type":"pong","status":"ok"}"#);
    hub.deliver_frame(Arc::clone(&text), Audience::Users(vec![bob.id]));
    assert!(Arc::ptr_eq(&bob.text().await, &text), "the very same text");
    alice.assert_silent().await;
}

/// A cluster's hub (one that reports presence) hands each connection the
/// hole of its stream in order: behind what it handed out before, ahead
/// of what it hands out after, and never makes it a slow reader.
#[tokio::test]
async fn a_hole_is_handed_to_every_connection_in_order() {
    let (hub, _changes) = Hub::reporting_presence(HubConfig { queue_capacity: 2 });
    hub.resume_from(0);
    let mut alice = connect_new(&hub, "alice").await;
    let before = message(&alice.name, MessageTarget::Global, "before");
    let during = message(&alice.name, MessageTarget::Global, "during");
    let after = message(&alice.name, MessageTarget::Global, "after");
    let frame = |m: &Message| Arc::<str>::from(ServerFrame::for_message(m.clone()).to_json());
    hub.deliver(frame(&before), Some(before.id), Some(1), Audience::Everyone);
    hub.open_hole(tokio::time::Instant::now());
    hub.deliver(frame(&during), Some(during.id), Some(2), Audience::Everyone);
    // The queue is full: the hole's mark goes in anyway.
    let hole = hub.close_hole().expect("a hole was open");
    assert!(hub.close_hole().is_none(), "closed once");
    assert_eq!(hole.after, Some(0), "nothing was delivered long before");
    assert_eq!(hole.delivered, HashSet::from([1, 2]));
    assert!(hole.fillable());

    for expected in [&before, &during] {
        match alice.delivery().await {
            Some(Delivery::Frame { message, .. }) => assert_eq!(message, Some(expected.id)),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    assert_eq!(alice.delivery().await, Some(Delivery::Gap(hole)));
    hub.deliver(frame(&after), Some(after.id), Some(3), Audience::Everyone);
    // A late copy of a message handed out already is not handed again.
    hub.deliver(frame(&during), Some(during.id), Some(2), Audience::Everyone);
    match alice.delivery().await {
        Some(Delivery::Frame { message, .. }) => assert_eq!(message, Some(after.id)),
        other => panic!("expected a frame, got {other:?}"),
    }
    alice.assert_silent().await;
}

/// A connection closed as too slow while its hole waited behind its
/// backlog is told the hole cannot be filled (its client's last message
/// may lie past the hole's), not just to reconnect.
#[tokio::test]
async fn a_slow_reader_with_a_hole_pending_is_told_to_resync() {
    let (hub, _changes) = Hub::reporting_presence(HubConfig { queue_capacity: 1 });
    hub.resume_from(0);
    let mut alice = connect_new(&hub, "alice").await;
    hub.open_hole(tokio::time::Instant::now());
    let hole = hub.close_hole().expect("open");
    assert!(hole.fillable(), "from the first change");
    for text in ["one", "two"] {
        hub.deliver_frame(Arc::from(text), Audience::Everyone);
    }
    match alice.delivery().await {
        Some(Delivery::Gap(told)) => {
            assert!(!told.fillable());
            assert_eq!(told.after, hole.after);
        }
        other => panic!("expected an unfillable hole, got {other:?}"),
    }
    assert_eq!(alice.delivery().await, None);
}
