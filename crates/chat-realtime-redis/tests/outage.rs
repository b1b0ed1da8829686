//! Redis out of reach: at start (a closed port) and at run time (a private
//! `redis-server` killed and restarted, or paused). Local delivery keeps
//! working, the notifier says it is degraded, and fan-out and presence
//! resume once Redis is back, after every connection was handed the hole
//! to fill from the store (`Delivery::Gap`).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Audience, Delivery, Event, Hole, Notifier, PresenceStatus, RealtimeHealth, UserPresence,
};
use chat_protocol::ServerFrame;
use chat_realtime_redis::RedisNotifier;
use support::{
    eventually, fast_options, free_port, global_message, names, unique_prefix, PrivateRedis, Probe,
};

const RECOVERY: Duration = Duration::from_secs(5);

/// The next frame, skipping presence (re-registration after an outage may
/// announce users again).
async fn next_non_presence(probe: &mut Probe) -> ServerFrame {
    loop {
        match probe.delivery().await {
            Some(Delivery::Presence(_)) => {}
            Some(Delivery::Frame { text, .. }) => {
                return serde_json::from_str(&text).expect("a server frame")
            }
            other => panic!("{}: expected a frame, got {other:?}", probe.name),
        }
    }
}

/// The next delivery that is not presence: a hole's mark.
async fn next_gap(probe: &mut Probe) -> Arc<Hole> {
    loop {
        match probe.delivery().await {
            Some(Delivery::Presence(_)) => {}
            Some(Delivery::Gap(hole)) => return hole,
            other => panic!("{}: expected a hole, got {other:?}", probe.name),
        }
    }
}

/// Publishes a global message at `position` (as the store would number
/// it) from `notifier`.
async fn publish_at(notifier: &RedisNotifier, from: &Probe, text: &str, position: u64) {
    let event = Event::Message {
        message: global_message(&from.name, text),
        position: Some(position),
    };
    notifier.publish(event, Audience::Everyone).await;
}

#[tokio::test]
async fn unreachable_at_start_serves_locally_then_joins_when_redis_appears() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let notifier = RedisNotifier::connect(&url, fast_options(&prefix))
        .await
        .expect("starts degraded rather than failing");
    assert!(notifier.is_degraded());
    assert_eq!(notifier.health().status(), "degraded");
    // What `/health` reads through the port.
    assert_eq!(Notifier::health(&notifier), RealtimeHealth::Degraded);

    // Presence and delivery as a single instance.
    let mut alice = Probe::connect(&notifier, "alice").await;
    alice.follow(&["bob"]);
    let mut bob = Probe::connect(&notifier, "bob").await;
    alice
        .expect_presence(&bob.name, PresenceStatus::Online)
        .await;
    let message = global_message(&alice.name, "local only");
    notifier
        .publish(Event::message(message.clone()), Audience::Everyone)
        .await;
    let expected = ServerFrame::Message {
        message,
        cursor: None,
    };
    alice.expect(&expected).await;
    bob.expect(&expected).await;
    assert_eq!(names(&notifier).await, ["alice", "bob"]);
    let bob_name = bob.name.clone();
    drop(bob);
    alice
        .expect_presence(&bob_name, PresenceStatus::Offline)
        .await;

    // Redis comes up: the notifier connects and registers alice.
    let _server = PrivateRedis::start(port).await;
    eventually("reconnected", RECOVERY, || async {
        !notifier.is_degraded()
    })
    .await;
    assert_eq!(notifier.health().status(), "connected");
    assert_eq!(Notifier::health(&notifier), RealtimeHealth::Connected);
    let other = RedisNotifier::connect(&url, fast_options(&prefix))
        .await
        .expect("second instance");
    assert_eq!(
        names(&other).await,
        ["alice"],
        "registered once Redis is back"
    );
    notifier.shutdown().await;
    other.shutdown().await;
}

/// A private Redis and two instances of one cluster on it.
async fn two_on_a_private_redis() -> (PrivateRedis, RedisNotifier, RedisNotifier) {
    let server = PrivateRedis::start(free_port()).await;
    let url = server.url();
    let options = fast_options(&unique_prefix());
    let a = RedisNotifier::connect(&url, options.clone())
        .await
        .expect("a");
    let b = RedisNotifier::connect(&url, options).await.expect("b");
    (server, a, b)
}

#[tokio::test]
async fn redis_lost_at_run_time_degrades_then_fan_out_resumes() {
    let (server, a, b) = two_on_a_private_redis().await;
    let port = server.port;
    assert!(!a.is_degraded() && !b.is_degraded());
    let mut alice = Probe::connect(&a, "alice").await;
    alice.follow(&["bob"]);
    let mut bob = Probe::connect(&b, "bob").await;
    alice
        .expect_presence(&bob.name, PresenceStatus::Online)
        .await;
    let before = global_message(&alice.name, "before");
    a.publish(Event::message(before.clone()), Audience::Everyone)
        .await;
    let before = ServerFrame::Message {
        message: before,
        cursor: None,
    };
    alice.expect(&before).await;
    bob.expect(&before).await;

    server.kill();
    eventually("both degraded", RECOVERY, || async {
        a.is_degraded() && b.is_degraded()
    })
    .await;
    let during = global_message(&alice.name, "during");
    a.publish(Event::message(during.clone()), Audience::Everyone)
        .await;
    alice
        .expect(&ServerFrame::Message {
            message: during.clone(),
            cursor: None,
        })
        .await;
    assert_eq!(
        names(&a).await,
        ["alice"],
        "this instance's view while degraded"
    );

    let _server = PrivateRedis::start(port).await;
    eventually("both reconnected", RECOVERY, || async {
        !a.is_degraded() && !b.is_degraded()
    })
    .await;
    // Both were handed the hole, ahead of anything live.
    // (Frames without a position are not counted as handed out.)
    for probe in [&mut alice, &mut bob] {
        assert!(next_gap(probe).await.complete);
    }
    let after = global_message(&alice.name, "after");
    a.publish(Event::message(after.clone()), Audience::Everyone)
        .await;
    // What was published during the outage never reaches b (clients catch
    // up from the store); what is published after does.
    let after = ServerFrame::Message {
        message: after,
        cursor: None,
    };
    assert_eq!(next_non_presence(&mut alice).await, after);
    assert_eq!(next_non_presence(&mut bob).await, after);
    let reply = global_message(&bob.name, "reply");
    b.publish(
        Event::message(reply.clone()),
        Audience::Users(vec![alice.id]),
    )
    .await;
    assert_eq!(
        next_non_presence(&mut alice).await,
        ServerFrame::Message {
            message: reply,
            cursor: None
        }
    );
    // Both re-registered their users in the restarted (empty) Redis.
    assert_eq!(names(&a).await, ["alice", "bob"]);
    assert_eq!(names(&b).await, ["alice", "bob"]);
}

/// What a hole says, on the instance that published during it and on the
/// one that missed it: where to fill from, and what was handed out.
async fn outage_leaves_a_hole(pause: bool) {
    let (server, a, b) = two_on_a_private_redis().await;
    let port = server.port;
    // Where the store stood when both started.
    a.resume_from(9);
    b.resume_from(9);
    let mut alice = Probe::connect(&a, "alice").await;
    let mut bob = Probe::connect(&b, "bob").await;
    publish_at(&a, &alice, "before", 10).await;
    for probe in [&mut alice, &mut bob] {
        assert!(matches!(
            next_non_presence(probe).await,
            ServerFrame::Message { .. }
        ));
    }

    let server = if pause {
        server.pause();
        Some(server)
    } else {
        server.kill();
        None
    };
    eventually("both degraded", Duration::from_secs(10), || async {
        a.is_degraded() && b.is_degraded()
    })
    .await;
    assert_eq!(Notifier::health(&b), RealtimeHealth::Degraded);
    for (text, position) in ["one", "two", "three", "four", "five"].iter().zip(11..) {
        publish_at(&a, &alice, text, position).await;
        assert!(matches!(
            next_non_presence(&mut alice).await,
            ServerFrame::Message { .. }
        ));
    }

    let _restarted = match server {
        Some(server) => {
            server.resume();
            server
        }
        None => PrivateRedis::start(port).await,
    };
    eventually("both reconnected", RECOVERY, || async {
        !a.is_degraded() && !b.is_degraded()
    })
    .await;
    // Bob missed the five: his hole starts where the store stood (the
    // message before it was delivered less than the in-flight margin
    // earlier), and counts only that one as handed out.
    let hole = next_gap(&mut bob).await;
    assert!(hole.fillable(), "{hole:?}");
    assert_eq!(hole.after, Some(9));
    assert_eq!(hole.delivered, HashSet::from([10]));
    // Alice's instance handed all six out itself.
    let hole = next_gap(&mut alice).await;
    assert_eq!(hole.delivered, (10..=15).collect());
    // Then live again, behind the hole.
    publish_at(&a, &alice, "after", 20).await;
    for probe in [&mut alice, &mut bob] {
        let ServerFrame::Message { message, .. } = next_non_presence(probe).await else {
            panic!("a message");
        };
        assert_eq!(message.content.as_str(), "after");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_killed_redis_hands_every_connection_the_hole_to_fill() {
    outage_leaves_a_hole(false).await;
}

#[tokio::test]
async fn a_paused_redis_is_noticed_and_hands_every_connection_the_hole_to_fill() {
    outage_leaves_a_hole(true).await;
}

#[tokio::test]
async fn presence_that_changed_during_an_outage_is_told_again() {
    let (server, a, b) = two_on_a_private_redis().await;
    let port = server.port;
    let mut alice = Probe::connect(&a, "alice").await;
    alice.follow(&["bob", "carol"]);
    let bob = Probe::connect(&b, "bob").await;
    alice
        .expect_presence(&bob.name, PresenceStatus::Online)
        .await;

    server.kill();
    eventually("both degraded", RECOVERY, || async {
        a.is_degraded() && b.is_degraded()
    })
    .await;
    // Bob leaves and carol comes, both on b, unseen from a.
    drop(bob);
    let carol = Probe::connect(&b, "carol").await;

    let _server = PrivateRedis::start(port).await;
    eventually("both reconnected", RECOVERY, || async {
        !a.is_degraded() && !b.is_degraded()
    })
    .await;
    // Alice ends up with the truth, whatever repeats came on the way.
    let mut seen = std::collections::HashMap::new();
    let truth = [
        ("bob", PresenceStatus::Offline),
        ("carol", PresenceStatus::Online),
    ];
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while truth
        .iter()
        .any(|(name, status)| seen.get(*name) != Some(status))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice sees {seen:?}"
        );
        match alice.delivery().await {
            Some(Delivery::Presence(users)) => {
                for UserPresence { username, status } in users {
                    seen.insert(username, status);
                }
            }
            Some(Delivery::Gap(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(carol);
    a.shutdown().await;
    b.shutdown().await;
}
