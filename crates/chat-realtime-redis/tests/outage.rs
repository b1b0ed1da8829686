//! Redis out of reach: at start (a closed port) and at run time (a private
//! `redis-server` killed and restarted). Local delivery keeps working, the
//! notifier says it is degraded, and fan-out and presence resume once
//! Redis is back.

mod support;

use std::time::Duration;

use chat_domain::{Audience, Event, Notifier, PresenceStatus, RealtimeHealth};
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
            Some(chat_domain::Delivery::Presence(_)) => {}
            Some(chat_domain::Delivery::Frame { text, .. }) => {
                return serde_json::from_str(&text).expect("a server frame")
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
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

#[tokio::test]
async fn redis_lost_at_run_time_degrades_then_fan_out_resumes() {
    let server = PrivateRedis::start(free_port()).await;
    let (port, url) = (server.port, server.url());
    let options = fast_options(&unique_prefix());
    let a = RedisNotifier::connect(&url, options.clone())
        .await
        .expect("a");
    let b = RedisNotifier::connect(&url, options).await.expect("b");
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
            message: during,
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
