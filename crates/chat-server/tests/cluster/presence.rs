//! Presence across instances: announced once per user for the whole
//! cluster, `/api/ws/users` and `is_online` the same from either instance,
//! and a killed instance's users gone within the expiry bound.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{await_presence, follow, Cluster, HEARTBEAT, PRESENCE_TTL};
use crate::support::ws::QUIET;

#[tokio::test]
async fn presence_and_connected_users_are_the_same_from_either_instance() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;

    let mut bob_ws = b.ws(&bob).await;
    let now = follow(&mut bob_ws, &["alice"]).await;
    assert_eq!(
        now["users"],
        json!([{"username": "alice", "status": "offline"}])
    );
    let mut alice_on_a = a.ws(&alice).await;
    await_presence(&mut bob_ws, "alice", "online").await;
    // Alice follows nobody: she hears of nobody, herself included.
    assert_eq!(alice_on_a.recv_within(QUIET).await, None);
    for instance in [a, b] {
        assert_eq!(
            instance.connected_users(&alice).await,
            json!(["alice", "bob"]),
            "/api/ws/users on {}",
            instance.name
        );
        assert_eq!(instance.is_online(&bob, &alice).await, true);
        assert_eq!(instance.is_online(&alice, &bob).await, true);
    }

    // A second tab, on the other instance: not news to anyone.
    let alice_on_b = b.ws(&alice).await;
    assert_eq!(bob_ws.recv_within(QUIET).await, None);
    // Closing the first tab is not news either: she is still on B.
    alice_on_a.close().await;
    assert_eq!(bob_ws.recv_within(QUIET).await, None);
    assert_eq!(a.is_online(&bob, &alice).await, true);

    // Her last connection closing is, everywhere.
    alice_on_b.close().await;
    await_presence(&mut bob_ws, "alice", "offline").await;
    for instance in [a, b] {
        assert_eq!(instance.connected_users(&bob).await, json!(["bob"]));
        assert_eq!(instance.is_online(&bob, &alice).await, false);
    }
}

#[tokio::test]
async fn a_killed_instance_users_go_offline_on_the_other_within_the_bound() {
    let mut cluster = Cluster::start().await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    follow(&mut bob_ws, &["alice"]).await;
    let alice_ws = cluster.a.ws(&alice).await;
    await_presence(&mut bob_ws, "alice", "online").await;

    // SIGKILL: no close frame, no goodbye to Redis.
    let killed_at = Instant::now();
    cluster.a.kill();
    let offline_after = {
        await_presence(&mut bob_ws, "alice", "offline").await;
        killed_at.elapsed()
    };
    drop(alice_ws);
    // Registration lapses at most TTL after the last refresh; the survivor
    // notices at its next heartbeat. A little slack for delivery.
    let bound = PRESENCE_TTL + HEARTBEAT;
    assert!(
        offline_after <= bound + Duration::from_secs(1),
        "alice went offline {offline_after:?} after the kill; the bound is {bound:?}"
    );
    let b = &cluster.b;
    assert_eq!(b.connected_users(&bob).await, json!(["bob"]));
    assert_eq!(b.is_online(&bob, &alice).await, false);

    // The survivor carries on: its own clients still get everything.
    let sent = b.send_ok(&bob, json!({"content": "still here"})).await;
    assert_eq!(
        bob_ws.recv_stored().await,
        json!({"type": "message", "message": sent})
    );
    let (status, health) = b.health().await;
    assert_eq!(status, 200);
    assert_eq!(health["realtime"], "connected");
}

#[tokio::test]
async fn a_stopped_instance_says_goodbye_without_waiting_for_the_expiry() {
    // Presence that would take a minute to expire: only a graceful leave
    // can announce Alice offline within seconds.
    let mut cluster = Cluster::start_with(&[
        ("REDIS_PRESENCE_HEARTBEAT", "20s"),
        ("REDIS_PRESENCE_TTL", "60s"),
    ])
    .await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    follow(&mut bob_ws, &["alice"]).await;
    let mut alice_ws = cluster.a.ws(&alice).await;
    await_presence(&mut bob_ws, "alice", "online").await;

    let status = cluster.a.terminate().await;
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
    assert_eq!(alice_ws.expect_close().await, 1001, "going away");
    let took = await_presence(&mut bob_ws, "alice", "offline").await;
    assert!(took < Duration::from_secs(5), "offline after {took:?}");
    assert_eq!(cluster.b.connected_users(&bob).await, json!(["bob"]));
}
