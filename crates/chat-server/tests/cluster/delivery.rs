//! Messages and typing between a client on instance A and a client on
//! instance B: the same frames, to the same people, as on one instance.

use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::support::ws::QUIET;

/// Asserts the fields of a delivered message frame.
fn assert_message(frame: &Value, kind: &str, sender: &str, content: &str) {
    assert_eq!(frame["type"], kind, "{frame}");
    assert_eq!(frame["message"]["sender"], sender, "{frame}");
    assert_eq!(frame["message"]["content"], content, "{frame}");
}

#[tokio::test]
async fn global_messages_reach_the_other_instance_whichever_way_they_are_sent() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let mut alice_ws = a.ws(&alice).await;
    let mut bob_ws = b.ws(&bob).await;

    // Over the WebSocket on A, with an ack.
    alice_ws
        .send_json(json!({"type": "message", "content": "hello from A", "client_id": "c1"}))
        .await;
    let on_b = bob_ws.recv_event().await;
    assert_message(&on_b, "message", "alice", "hello from A");
    assert_eq!(on_b["message"]["recipient"], Value::Null);
    assert_eq!(on_b["message"]["room_id"], Value::Null);
    let mut mine = vec![alice_ws.recv_event().await, alice_ws.recv_event().await];
    mine.sort_by_key(|frame| frame["type"].as_str().map(str::to_owned));
    assert_eq!(mine[0]["type"], "ack", "{mine:?}");
    assert_eq!(mine[0]["client_id"], "c1");
    assert_eq!(mine[0]["message"], on_b["message"]);
    assert_eq!(mine[1], on_b, "the same frame on both instances");

    // Over HTTP on B.
    let sent = b
        .send_ok(&bob, json!({"content": "hello from B over HTTP"}))
        .await;
    let on_a = alice_ws.recv_stored().await;
    assert_eq!(on_a, json!({"type": "message", "message": sent}));
    assert_eq!(bob_ws.recv_stored().await, on_a);
}

#[tokio::test]
async fn direct_messages_reach_both_parties_on_every_instance_and_nobody_else() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let carol = b.user("carol").await;
    let mut alice_ws = a.ws(&alice).await;
    // Bob has a tab on each instance; each gets every event meant for him.
    let mut bob_on_b = b.ws(&bob).await;
    let mut bob_on_a = a.ws(&bob).await;
    let mut carol_ws = b.ws(&carol).await;

    alice_ws
        .send_json(json!({"type": "message", "content": "psst", "recipient": "bob"}))
        .await;
    let to_bob = bob_on_b.recv_event().await;
    assert_message(&to_bob, "direct_message", "alice", "psst");
    assert_eq!(to_bob["message"]["recipient"], "bob");
    assert_eq!(bob_on_a.recv_event().await, to_bob);
    assert_eq!(alice_ws.recv_event().await, to_bob, "the sender's copy");

    // Bob answers over HTTP on B: Alice on A gets it, Carol nothing.
    let reply = b
        .send_ok(&bob, json!({"content": "yes?", "recipient": "alice"}))
        .await;
    let expected = json!({"type": "direct_message", "message": reply});
    assert_eq!(alice_ws.recv_stored().await, expected);
    assert_eq!(bob_on_b.recv_stored().await, expected);
    assert_eq!(bob_on_a.recv_stored().await, expected);
    carol_ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn room_messages_reach_members_on_either_instance_only() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = b.user("carol").await;
    let room = a.room(&alice, "crossing", &[&bob]).await;
    let mut alice_ws = a.ws(&alice).await;
    let mut bob_ws = b.ws(&bob).await;
    let mut carol_ws = b.ws(&carol).await;

    alice_ws
        .send_json(json!({"type": "message", "content": "room talk", "room_id": room}))
        .await;
    let on_b = bob_ws.recv_event().await;
    assert_message(&on_b, "message", "alice", "room talk");
    assert_eq!(on_b["message"]["room_id"], room.as_str());
    assert_eq!(alice_ws.recv_event().await, on_b);

    let reply = b
        .send_ok(&bob, json!({"content": "heard you", "room_id": room}))
        .await;
    let expected = json!({"type": "message", "message": reply});
    assert_eq!(alice_ws.recv_stored().await, expected);
    assert_eq!(bob_ws.recv_stored().await, expected);
    carol_ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn typing_is_relayed_across_instances_to_its_audience_only() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = b.user("carol").await;
    let room = b.room(&bob, "typing", &[&alice]).await;
    let mut alice_ws = a.ws(&alice).await;
    let mut bob_ws = b.ws(&bob).await;
    let mut carol_ws = b.ws(&carol).await;

    alice_ws
        .send_json(json!({"type": "typing", "recipient": "bob"}))
        .await;
    assert_eq!(
        bob_ws.recv_event().await,
        json!({"type": "typing", "username": "alice", "recipient": "bob"})
    );

    bob_ws
        .send_json(json!({"type": "typing", "room_id": room}))
        .await;
    assert_eq!(
        alice_ws.recv_event().await,
        json!({"type": "typing", "username": "bob", "room_id": room})
    );
    carol_ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_logout_on_one_instance_closes_that_tokens_sockets_on_every_instance() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let mut on_a = a.ws(&alice).await;
    let mut on_b = b.ws(&alice).await;

    let started = std::time::Instant::now();
    let res = a
        .post("/api/auth/logout", &alice.token)
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), reqwest::StatusCode::OK);

    assert_eq!(on_a.expect_close().await, 1008);
    assert_eq!(
        on_b.expect_close().await,
        1008,
        "closed on the other instance"
    );
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}
