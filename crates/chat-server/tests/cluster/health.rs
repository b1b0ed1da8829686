//! `/health` says how far live delivery reaches: `connected` through
//! Redis, `degraded` (still 200) when Redis is configured but out of reach,
//! in which case one instance's own clients still chat.

use serde_json::json;

use crate::harness::{cluster_vars, free_port, Cluster, Instance};
use chat_test_support::pg::TestDatabase;

#[tokio::test]
async fn both_instances_report_realtime_connected() {
    let cluster = Cluster::start().await;
    for instance in [&cluster.a, &cluster.b] {
        let (status, body) = instance.health().await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"status": "healthy", "database": "connected", "websocket": "ready",
                   "realtime": "connected"}),
            "on {}",
            instance.name
        );
    }
}

#[tokio::test]
async fn without_redis_an_instance_is_degraded_but_serves_its_own_clients() {
    let database = TestDatabase::create().await;
    // Nothing listens there: Redis is "down" from the start.
    let dead_redis = format!("redis://127.0.0.1:{}", free_port());
    let vars = cluster_vars(&database.url, &[("REDIS_URL", dead_redis.as_str())]);
    let instance = Instance::spawn("a", &vars).await;

    let (status, body) = instance.health().await;
    assert_eq!(
        status, 200,
        "a Redis outage alone is no reason to leave the pool"
    );
    assert_eq!(body["database"], "connected");
    assert_eq!(body["realtime"], "degraded");

    let alice = instance.user("alice").await;
    let bob = instance.user("bob").await;
    let mut alice_ws = instance.ws(&alice).await;
    let mut bob_ws = instance.ws(&bob).await;
    let sent = instance
        .send_ok(&alice, json!({"content": "local only", "recipient": "bob"}))
        .await;
    let expected = json!({"type": "direct_message", "message": sent});
    assert_eq!(bob_ws.recv_stored().await, expected);
    assert_eq!(alice_ws.recv_stored().await, expected);
    assert_eq!(
        instance.connected_users(&alice).await,
        json!(["alice", "bob"]),
        "this instance's own view while degraded"
    );
    drop(instance);
    drop(database);
}
