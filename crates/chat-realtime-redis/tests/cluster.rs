//! Cross-instance behaviour beyond the contract: cluster-wide
//! `connected_users`, a killed instance's users going offline within the
//! expiry, a clean shutdown leaving at once, a lapsed registration coming
//! back, and malformed envelopes ignored. Each test has its own prefix.

mod support;

use std::time::{Duration, Instant};

use chat_domain::{Audience, CloseReason, Delivery, Event, Notifier, PresenceStatus, TokenId};
use chat_protocol::ServerFrame;
use chat_realtime_redis::RedisOptions;
use support::{
    cluster_of_two, eventually, fast_options, global_message, names, redis_url, unique_prefix,
    Probe,
};

#[tokio::test]
async fn connected_users_are_the_same_from_either_instance() {
    let (a, b) = cluster_of_two(RedisOptions::with_prefix(unique_prefix())).await;
    let alice = Probe::connect(&a, "alice").await;
    let _alice_on_b = Probe::attach(&b, alice.id, "alice").await;
    let bob = Probe::connect(&b, "bob").await;
    let _carol = Probe::connect(&a, "carol").await;
    let expected = ["alice", "bob", "carol"];
    assert_eq!(names(&a).await, expected);
    assert_eq!(names(&b).await, expected);
    let online = b
        .online_among(&[alice.id, bob.id])
        .await
        .expect("online_among");
    assert_eq!(online.len(), 2);
    assert_eq!(a.local_connection_count(), 2);
    assert_eq!(b.local_connection_count(), 2);
}

/// Instance `a` dies (its tasks stop, no cleanup): its users who are not
/// connected through `b` are announced offline on `b`, and leave
/// `connected_users`, within the expiry bound.
#[tokio::test]
async fn a_killed_instances_users_go_offline_on_the_other_within_the_expiry() {
    let options = fast_options(&unique_prefix());
    let bound = options.offline_bound();
    let (a, b) = cluster_of_two(options).await;
    let mut watcher = Probe::connect(&b, "watcher").await;
    watcher.follow(&["alice", "bob"]);
    let alice = Probe::connect(&a, "alice").await;
    watcher
        .expect_presence(&alice.name, PresenceStatus::Online)
        .await;
    let bob = Probe::connect(&a, "bob").await;
    watcher
        .expect_presence(&bob.name, PresenceStatus::Online)
        .await;
    let _bob_on_b = Probe::attach(&b, bob.id, "bob").await;
    assert_eq!(names(&b).await, ["alice", "bob", "watcher"]);

    let killed = Instant::now();
    drop(a); // no shutdown: as a crash, its registration just stops being refreshed
    watcher
        .expect_presence(&alice.name, PresenceStatus::Offline)
        .await;
    let took = killed.elapsed();
    // The bound, plus scheduling slack for a loaded machine.
    assert!(
        took <= bound + Duration::from_millis(500),
        "offline after {took:?}, bound {bound:?}"
    );
    assert_eq!(names(&b).await, ["bob", "watcher"], "bob is still on b");
    let online = b
        .online_among(&[alice.id, bob.id])
        .await
        .expect("online_among");
    assert!(online.contains(&bob.id) && !online.contains(&alice.id));
    // Bob kept a connection: no offline for him.
    watcher.assert_silent(Duration::from_millis(300)).await;
}

/// `shutdown` closes local sockets with 1001 and leaves the cluster at
/// once, not when the registration lapses (here 30 s).
#[tokio::test]
async fn shutdown_closes_sockets_and_leaves_the_cluster_at_once() {
    let prefix = unique_prefix();
    let options = RedisOptions {
        heartbeat: Duration::from_secs(10),
        presence_ttl: Duration::from_secs(30),
        ..RedisOptions::with_prefix(&prefix)
    };
    let (a, b) = cluster_of_two(options).await;
    let mut watcher = Probe::connect(&b, "watcher").await;
    watcher.follow(&["alice"]);
    let mut alice = Probe::connect(&a, "alice").await;
    watcher
        .expect_presence(&alice.name, PresenceStatus::Online)
        .await;

    a.shutdown().await;
    assert_eq!(
        alice.delivery().await,
        Some(Delivery::Close(CloseReason::ShuttingDown))
    );
    let started = Instant::now();
    watcher
        .expect_presence(&alice.name, PresenceStatus::Offline)
        .await;
    assert!(started.elapsed() < Duration::from_secs(5), "not by expiry");
    assert_eq!(names(&b).await, ["watcher"]);
    assert!(
        a.connect(alice.id, alice.name.clone(), TokenId::generate())
            .await
            .is_err(),
        "no connect after shutdown"
    );
    a.shutdown().await; // idempotent

    // Nothing of `a` is left in Redis.
    let client = redis::Client::open(redis_url()).expect("valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let hash: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}:presence:{}", a.instance_id()))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{prefix}:instances"))
        .arg(a.instance_id())
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    assert!(!hash && score.is_none(), "a's keys removed");
}

/// An instance whose registration vanished (reaped after a stall, or
/// Redis flushed) registers again at its next heartbeat.
#[tokio::test]
async fn a_lapsed_registration_is_restored_by_the_next_heartbeat() {
    let prefix = unique_prefix();
    let (a, b) = cluster_of_two(fast_options(&prefix)).await;
    let _alice = Probe::connect(&a, "alice").await;
    let client = redis::Client::open(redis_url()).expect("valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    redis::cmd("DEL")
        .arg(format!("{prefix}:instances"))
        .arg(format!("{prefix}:presence:{}", a.instance_id()))
        .query_async::<()>(&mut conn)
        .await
        .expect("DEL");
    assert!(names(&b).await.is_empty(), "gone from Redis");
    eventually("alice registered again", Duration::from_secs(3), || async {
        names(&b).await == ["alice"]
    })
    .await;
}

#[tokio::test]
async fn malformed_envelopes_are_ignored() {
    let prefix = unique_prefix();
    let (a, b) = cluster_of_two(RedisOptions::with_prefix(&prefix)).await;
    let mut bob = Probe::connect(&b, "bob").await;
    let client = redis::Client::open(redis_url()).expect("valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    for junk in ["", "no header", "x not-a-uuid\n{}", "x ~\nNaN"] {
        redis::cmd("PUBLISH")
            .arg(format!("{prefix}:events"))
            .arg(junk)
            .query_async::<()>(&mut conn)
            .await
            .expect("PUBLISH");
    }
    let message = global_message(&bob.name, "still here");
    a.publish(Event::message(message.clone()), Audience::Everyone)
        .await;
    bob.expect(&ServerFrame::Message {
        message,
        cursor: None,
    })
    .await;
}
