//! Who receives what: global, direct and room messages, typing, and who
//! must not receive them; HTTP and WebSocket sends alike; many tabs.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ws::QUIET;
use crate::support::TestApp;

backend_tests!(
    a_global_message_reaches_everyone_the_sender_included,
    a_direct_message_reaches_only_its_two_parties,
    a_room_message_reaches_only_members,
    http_messages_arrive_exactly_as_stored,
    every_tab_of_a_user_receives,
    membership_changes_apply_to_live_sockets,
    typing_reaches_the_partner_or_the_other_members_only,
);

async fn a_global_message_reaches_everyone_the_sender_included(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let mut sockets = [
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    ];
    sockets[0]
        .send_json(json!({"type": "message", "content": " hello all "}))
        .await;
    let mut ids = Vec::new();
    for socket in &mut sockets {
        let frame = socket.recv_event().await;
        assert_eq!(frame["type"], "message", "{frame}");
        let message = &frame["message"];
        assert_eq!(message["sender"], "alice");
        assert_eq!(message["content"], "hello all");
        assert_eq!(message["recipient"], Value::Null);
        assert_eq!(message["room_id"], Value::Null);
        assert_eq!(frame.as_object().map(|o| o.len()), Some(3), "{frame}");
        assert!(frame["cursor"].is_string(), "{frame}");
        ids.push(message["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one message: {ids:?}");
    // Stored: the history has it.
    let page: Value = app
        .get("/api/messages", &bob.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(page[0]["id"], ids[0]);
}

async fn a_direct_message_reaches_only_its_two_parties(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let (mut a, mut b, mut c) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    );
    // A sender field naming someone else is not how the sender is chosen.
    a.send_json(
        json!({"type": "message", "content": "psst", "recipient": "bob", "sender": "carol"}),
    )
    .await;
    for socket in [&mut a, &mut b] {
        let frame = socket.recv_event().await;
        assert_eq!(frame["type"], "direct_message", "{frame}");
        assert_eq!(frame["message"]["sender"], "alice");
        assert_eq!(frame["message"]["recipient"], "bob");
        assert_eq!(frame["message"]["content"], "psst");
    }
    c.expect_silence(QUIET).await;
    // The reply goes back the same way.
    b.send_json(json!({"type": "message", "content": "hi", "recipient": "ALICE"}))
        .await;
    for socket in [&mut a, &mut b] {
        let frame = socket.recv_event().await;
        assert_eq!(frame["type"], "direct_message", "{frame}");
        assert_eq!(frame["message"]["recipient"], "alice");
    }
    c.expect_silence(QUIET).await;
}

async fn a_room_message_reaches_only_members(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("id");
    let (mut a, mut b, mut c) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    );
    b.send_json(json!({"type": "message", "content": "standup?", "room_id": room_id}))
        .await;
    for socket in [&mut a, &mut b] {
        let frame = socket.recv_event().await;
        assert_eq!(frame["type"], "message", "{frame}");
        assert_eq!(frame["message"]["room_id"], room_id);
        assert_eq!(frame["message"]["sender"], "bob");
        assert_eq!(frame["message"]["recipient"], Value::Null);
    }
    c.expect_silence(QUIET).await;
    // A non-member cannot post there either.
    c.send_json(json!({"type": "message", "content": "let me in", "room_id": room_id}))
        .await;
    let error = c.recv_event().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "not_a_member");
    a.expect_silence(QUIET).await;
}

async fn http_messages_arrive_exactly_as_stored(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let room = app.room(&alice, "team", &[&bob]).await;
    let (mut a, mut b, mut c) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    );

    let global = app.send_ok(&alice, json!({"content": "over http"})).await;
    for socket in [&mut a, &mut b, &mut c] {
        assert_eq!(
            socket.recv_stored().await,
            json!({"type": "message", "message": global})
        );
    }
    let direct = app
        .send_ok(
            &alice,
            json!({"content": "dm over http", "recipient": "bob"}),
        )
        .await;
    for socket in [&mut a, &mut b] {
        assert_eq!(
            socket.recv_stored().await,
            json!({"type": "direct_message", "message": direct})
        );
    }
    let in_room = app
        .send_ok(
            &bob,
            json!({"content": "room over http", "room_id": room["id"]}),
        )
        .await;
    for socket in [&mut a, &mut b] {
        assert_eq!(
            socket.recv_stored().await,
            json!({"type": "message", "message": in_room})
        );
    }
    c.expect_silence(QUIET).await;
    // What was delivered is what the history says.
    let history: Value = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history, json!([global, direct, in_room]));
}

async fn every_tab_of_a_user_receives(app: TestApp) {
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let (mut a1, mut a2) = (app.ws(&alice).await, app.ws(&alice).await);
    let (mut b1, mut b2) = (app.ws(&bob).await, app.ws_with_cookie(&bob).await);
    a1.send_json(json!({"type": "message", "content": "to both tabs", "recipient": "bob"}))
        .await;
    let mut ids = Vec::new();
    for socket in [&mut a1, &mut a2, &mut b1, &mut b2] {
        let frame = socket.recv_event().await;
        assert_eq!(frame["type"], "direct_message", "{frame}");
        ids.push(frame["message"]["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    // Closing one tab leaves the other receiving.
    b1.close().await;
    app.send_ok(
        &alice,
        json!({"content": "still there?", "recipient": "bob"}),
    )
    .await;
    assert_eq!(b2.recv_event().await["message"]["content"], "still there?");
}

async fn membership_changes_apply_to_live_sockets(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("id").to_owned();
    let (mut a, mut b, mut c) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    );

    let res = app
        .post(
            &format!("/api/rooms/{room_id}/members/{}", carol.id),
            &alice.token,
        )
        .send()
        .await
        .expect("add");
    assert_eq!(res.status(), StatusCode::OK);
    a.send_json(json!({"type": "message", "content": "welcome carol", "room_id": room_id}))
        .await;
    for socket in [&mut a, &mut b, &mut c] {
        assert_eq!(
            socket.recv_event().await["message"]["content"],
            "welcome carol"
        );
    }

    let res = app
        .delete(
            &format!("/api/rooms/{room_id}/members/{}", bob.id),
            &bob.token,
        )
        .send()
        .await
        .expect("leave");
    assert_eq!(res.status(), StatusCode::OK);
    c.send_json(json!({"type": "message", "content": "bye bob", "room_id": room_id}))
        .await;
    for socket in [&mut a, &mut c] {
        assert_eq!(socket.recv_event().await["message"]["content"], "bye bob");
    }
    b.expect_silence(QUIET).await;
    // Nor may bob type there any more.
    b.send_json(json!({"type": "typing", "room_id": room_id}))
        .await;
    assert_eq!(b.recv_event().await["code"], "not_a_member");
}

async fn typing_reaches_the_partner_or_the_other_members_only(app: TestApp) {
    let (alice, bob, carol, dave) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
        app.user("dave").await,
    );
    let room = app.room(&alice, "team", &[&bob, &dave]).await;
    let room_id = room["id"].as_str().expect("id");
    let (mut a, mut b, mut c, mut d) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
        app.ws(&dave).await,
    );
    a.send_json(json!({"type": "typing", "recipient": "bob"}))
        .await;
    assert_eq!(
        b.recv_event().await,
        json!({"type": "typing", "username": "alice", "recipient": "bob"})
    );
    a.send_json(json!({"type": "typing", "room_id": room_id}))
        .await;
    for socket in [&mut b, &mut d] {
        assert_eq!(
            socket.recv_event().await,
            json!({"type": "typing", "username": "alice", "room_id": room_id})
        );
    }
    for socket in [&mut a, &mut c] {
        socket.expect_silence(QUIET).await;
    }
    // Typing is not stored.
    let history: Value = app
        .get("/api/messages", &bob.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history, json!([]));
}
