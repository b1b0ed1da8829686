//! Room membership changed over HTTP on one instance routes the next
//! message sent on the other.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::Cluster;
use crate::support::ws::QUIET;

#[tokio::test]
async fn a_membership_change_on_a_applies_to_messages_sent_on_b() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let carol = b.user("carol").await;
    let room = a.room(&alice, "moving", &[&carol]).await;
    let mut alice_ws = a.ws(&alice).await;
    let mut bob_ws = a.ws(&bob).await;
    let mut carol_ws = b.ws(&carol).await;

    // Not a member yet: Carol's message on B does not reach Bob on A.
    b.send_ok(&carol, json!({"content": "before", "room_id": room}))
        .await;
    assert_eq!(alice_ws.recv_event().await["message"]["content"], "before");
    assert_eq!(carol_ws.recv_event().await["message"]["content"], "before");
    bob_ws.expect_silence(QUIET).await;

    // Alice adds Bob on A; Carol's next message on B reaches him.
    let res = a
        .post(
            &format!("/api/rooms/{room}/members/{}", bob.id),
            &alice.token,
        )
        .send()
        .await
        .expect("add member");
    assert_eq!(res.status(), StatusCode::OK);
    carol_ws
        .send_json(json!({"type": "message", "content": "welcome", "room_id": room}))
        .await;
    let to_bob = bob_ws.recv_event().await;
    assert_eq!(to_bob["message"]["content"], "welcome");
    assert_eq!(alice_ws.recv_event().await, to_bob);
    assert_eq!(carol_ws.recv_event().await, to_bob);

    // Alice (the creator) removes him on A: the next message on B skips
    // him, and B refuses his own post to the room.
    let res = a
        .delete(
            &format!("/api/rooms/{room}/members/{}", bob.id),
            &alice.token,
        )
        .send()
        .await
        .expect("remove member");
    assert_eq!(res.status(), StatusCode::OK);
    carol_ws
        .send_json(json!({"type": "message", "content": "after", "room_id": room}))
        .await;
    assert_eq!(carol_ws.recv_event().await["message"]["content"], "after");
    assert_eq!(alice_ws.recv_event().await["message"]["content"], "after");
    bob_ws.expect_silence(QUIET).await;
    let res = b
        .post("/api/messages", &bob.token)
        .json(&json!({"content": "let me back", "room_id": room}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
