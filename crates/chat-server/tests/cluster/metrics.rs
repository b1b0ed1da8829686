//! `/metrics` of instances sharing Redis: the link's gauge, envelopes
//! published by the sender's instance and received by the other's, and
//! the degraded state (nothing published, counted as dropped). Each
//! instance is a process of its own, so its counters move only with this
//! test's traffic.

use std::time::Duration;

use serde_json::json;

use crate::exposition::{scrape, scrape_until, Scrape};
use crate::harness::{cluster_vars, free_port, Cluster, Instance};
use chat_test_support::pg::TestDatabase;

const CONNECTED: &str = "chat_redis_connected";
const PUBLISHED: &str = "chat_redis_published_total";
const RECEIVED: &str = "chat_redis_received_total";
const DROPPED: &str = "chat_redis_dropped_total";

async fn scrape_instance(instance: &Instance) -> Scrape {
    scrape(&instance.client, &instance.base_url).await
}

#[tokio::test]
async fn the_redis_link_and_its_traffic_are_reported_per_instance() {
    let cluster = Cluster::start().await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    // An answer from the instance: the connection is settled.
    bob_ws.assert_usable().await;

    let a_before = scrape_instance(&cluster.a).await;
    let b_before = scrape_instance(&cluster.b).await;
    for (name, scrape) in [("a", &a_before), ("b", &b_before)] {
        assert_eq!(scrape.get(CONNECTED, &[]), Some(1.0), "on {name}");
        assert_eq!(
            scrape.types.get(CONNECTED).map(String::as_str),
            Some("gauge")
        );
        // The PostgreSQL pool of each instance (DB_POOL_SIZE=4).
        assert_eq!(
            scrape.get("chat_store_pool_max_connections", &[]),
            Some(4.0),
            "on {name}"
        );
    }

    let sent = cluster
        .a
        .send_ok(&alice, json!({"content": "across instances"}))
        .await;
    assert_eq!(
        bob_ws.recv_stored().await,
        json!({"type": "message", "message": sent})
    );

    let b_after = scrape_until(
        &cluster.b.client,
        &cluster.b.base_url,
        Duration::from_secs(5),
        |s| s.value(RECEIVED, &[]) > b_before.value(RECEIVED, &[]),
    )
    .await;
    let a_after = scrape_instance(&cluster.a).await;
    let moved = |before: &Scrape, after: &Scrape, name: &str| {
        after.value(name, &[]) - before.value(name, &[])
    };
    assert_eq!(moved(&a_before, &a_after, PUBLISHED), 1.0, "a published it");
    assert_eq!(moved(&b_before, &b_after, RECEIVED), 1.0, "b received it");
    assert_eq!(
        moved(&a_before, &a_after, RECEIVED),
        0.0,
        "own envelopes are skipped"
    );
    assert_eq!(moved(&a_before, &a_after, DROPPED), 0.0);
    // Delivered to bob's socket on b, stored once, on a.
    assert_eq!(moved(&b_before, &b_after, "chat_ws_deliveries_total"), 1.0);
    let stored = [("kind", "global"), ("transport", "http")];
    assert_eq!(
        a_after.value("chat_messages_stored_total", &stored)
            - a_before.value("chat_messages_stored_total", &stored),
        1.0
    );
    assert_eq!(b_after.value("chat_ws_connections", &[]), 1.0);
    assert_eq!(a_after.value("chat_ws_connections", &[]), 0.0);
}

#[tokio::test]
async fn a_degraded_instance_reports_its_link_down_and_counts_what_it_could_not_publish() {
    let database = TestDatabase::create().await;
    // Nothing listens there: Redis is "down" from the start.
    let dead_redis = format!("redis://127.0.0.1:{}", free_port());
    let vars = cluster_vars(&database.url, &[("REDIS_URL", dead_redis.as_str())]);
    let instance = Instance::spawn("a", &vars).await;
    let alice = instance.user("alice").await;

    let before = scrape_instance(&instance).await;
    assert_eq!(before.get(CONNECTED, &[]), Some(0.0));
    instance
        .send_ok(&alice, json!({"content": "this instance only"}))
        .await;
    let after = scrape_instance(&instance).await;
    assert_eq!(after.get(CONNECTED, &[]), Some(0.0));
    assert_eq!(
        after.value(DROPPED, &[]) - before.value(DROPPED, &[]),
        1.0,
        "the message could not go to other instances"
    );
    assert_eq!(after.value(PUBLISHED, &[]), 0.0);
    drop(instance);
    drop(database);
}
