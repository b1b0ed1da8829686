//! Read markers across instances: a read made through instance A reaches
//! the reader's connections and the other party's on both instances (over
//! Redis), and a client reconnecting to B is replayed what it missed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::support::ws::WsClient;
use crate::support::TestUser;

/// The next frame of type `kind` (skipping the messages the test sent).
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    loop {
        let frame = ws.recv_event().await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

async fn read(instance: &crate::harness::Instance, user: &TestUser, peer: &str, message: &Value) {
    let res = instance
        .put(
            &format!("/api/conversations/direct/{peer}/read"),
            &user.token,
        )
        .json(&json!({ "message_id": message["id"] }))
        .send()
        .await
        .expect("read request");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_read_through_one_instance_reaches_both_and_is_replayed_on_the_other() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = b.user("carol").await;
    let (mut bob_on_a, mut bob_on_b) = (a.ws(&bob).await, b.ws(&bob).await);
    let mut alice_on_b = b.ws(&alice).await;
    let mut carol_on_b = b.ws(&carol).await;

    let dm = a
        .send_ok(&alice, json!({"content": "hi bob", "recipient": "bob"}))
        .await;
    let mut cursor = String::new();
    for ws in [&mut bob_on_a, &mut bob_on_b, &mut alice_on_b] {
        let frame = next_of(ws, "direct_message").await;
        assert_eq!(frame["message"]["id"], dm["id"]);
        cursor = frame["cursor"].as_str().expect("cursor").to_owned();
    }

    read(a, &bob, "alice", &dm).await;
    for ws in [&mut bob_on_a, &mut bob_on_b] {
        let frame = next_of(ws, "read").await;
        assert_eq!(
            (&frame["id"], &frame["message_id"]),
            (&json!("alice"), &dm["id"])
        );
    }
    let receipt = next_of(&mut alice_on_b, "read").await;
    assert_eq!(
        (&receipt["id"], &receipt["username"], &receipt["message_id"]),
        (&json!("bob"), &json!("bob"), &dm["id"]),
        "the receipt, over Redis: {receipt}"
    );
    assert!(receipt["cursor"].is_string(), "{receipt}");
    carol_on_b.expect_silence(Duration::from_millis(300)).await;

    // Bob's laptop on B is away while his phone on A reads the next one.
    bob_on_b.close().await;
    let dm2 = a
        .send_ok(&alice, json!({"content": "again", "recipient": "bob"}))
        .await;
    read(a, &bob, "alice", &dm2).await;
    let mut back = b.ws_since(&bob, &cursor).await;
    let (first, second) = (back.recv_event().await, back.recv_event().await);
    assert_eq!(first["message"]["id"], dm2["id"], "{first}");
    // A marker is replayed once, at its latest move, as it is now.
    assert_eq!(
        (&second["type"], &second["id"], &second["message_id"]),
        (&json!("read"), &json!("alice"), &dm2["id"]),
        "{second}"
    );
    let position = |f: &Value| f["cursor"].as_str().and_then(|c| c.parse::<u64>().ok());
    assert!(position(&first) < position(&second));
}
