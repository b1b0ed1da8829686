//! Messages that change after they are stored: the rules of edits,
//! deletions, reactions and threads over HTTP, their live
//! `message_updated` frames to exactly who may read them, and recovery of
//! all of it with `?since=<cursor>`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::ws::WsClient;
use crate::support::{expect_error, Backend, TestApp, TestUser};

per_backend!(
    edits_deletions_reactions_and_replies_follow_the_rules,
    changes_are_delivered_live_to_exactly_who_may_read_them,
    a_reconnecting_client_catches_up_on_changes_exactly_once_in_order,
);

async fn call(app: &TestApp, method: Method, path: &str, user: &TestUser) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request")
}

async fn edit(app: &TestApp, user: &TestUser, id: &str, content: &str) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/messages/{id}")))
        .bearer_auth(&user.token)
        .json(&json!({ "content": content }))
        .send()
        .await
        .expect("edit request")
}

async fn react(
    app: &TestApp,
    method: Method,
    user: &TestUser,
    id: &str,
    emoji: &str,
) -> reqwest::Response {
    let emoji = urlencoding(emoji);
    call(
        app,
        method,
        &format!("/api/messages/{id}/reactions/{emoji}"),
        user,
    )
    .await
}

/// Percent-encodes every byte: emojis in a path segment.
fn urlencoding(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn ok_json(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("JSON body")
}

fn id_of(message: &Value) -> String {
    message["id"].as_str().expect("id").to_owned()
}

/// The next frame that comes from the store (skips presence and typing).
async fn next_stored(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.recv_event().await;
        if frame["type"] != "typing" {
            return frame;
        }
    }
}

async fn edits_deletions_reactions_and_replies_follow_the_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );

    // Only the sender edits; the edit shows everywhere.
    let m = app.send_ok(&alice, json!({"content": "helo"})).await;
    let id = id_of(&m);
    expect_error(
        edit(&app, &bob, &id, "hacked").await,
        StatusCode::FORBIDDEN,
        "not_sender",
    )
    .await;
    expect_error(
        edit(&app, &alice, &id, "   ").await,
        StatusCode::BAD_REQUEST,
        "empty_content",
    )
    .await;
    let edited = ok_json(edit(&app, &alice, &id, "hello").await).await;
    assert_eq!(edited["content"], "hello");
    assert!(edited["edited_at"].is_string(), "{edited}");
    let feed: Value = ok_json(call(&app, Method::GET, "/api/messages", &bob).await).await;
    assert_eq!(feed[0]["content"], "hello");

    // A direct message is invisible to a third user: 404 for every change.
    let dm = app
        .send_ok(&alice, json!({"content": "psst", "recipient": "bob"}))
        .await;
    let dm_id = id_of(&dm);
    expect_error(
        edit(&app, &carol, &dm_id, "x").await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("/api/messages/{dm_id}"),
            &carol,
        )
        .await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
    expect_error(
        react(&app, Method::PUT, &carol, &dm_id, "👍").await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
    expect_error(
        edit(&app, &alice, "not-a-uuid", "x").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;

    // Reactions: one per user per emoji, counted, taken back; one emoji only.
    expect_error(
        react(&app, Method::PUT, &bob, &dm_id, "ok").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    ok_json(react(&app, Method::PUT, &bob, &dm_id, "👍").await).await;
    let twice = ok_json(react(&app, Method::PUT, &bob, &dm_id, "👍").await).await;
    assert_eq!(
        twice["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": ["bob"]}])
    );
    let both = ok_json(react(&app, Method::PUT, &alice, &dm_id, "👍").await).await;
    assert_eq!(both["reactions"][0]["count"], 2);
    let back = ok_json(react(&app, Method::DELETE, &bob, &dm_id, "👍").await).await;
    assert_eq!(
        back["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": ["alice"]}])
    );

    // Deleting: the sender, or the room's creator; not another member.
    let room = app.room(&alice, "r", &[&bob, &carol]).await;
    let room_id = room["id"].as_str().expect("room id");
    let by_bob = app
        .send_ok(&bob, json!({"content": "mine", "room_id": room_id}))
        .await;
    let by_bob_id = id_of(&by_bob);
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("/api/messages/{by_bob_id}"),
            &carol,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let deleted = ok_json(
        call(
            &app,
            Method::DELETE,
            &format!("/api/messages/{by_bob_id}"),
            &alice,
        )
        .await,
    )
    .await;
    assert_eq!(deleted, json!({"status": "success"}));
    let again = ok_json(
        call(
            &app,
            Method::DELETE,
            &format!("/api/messages/{by_bob_id}"),
            &bob,
        )
        .await,
    )
    .await;
    assert_eq!(again, json!({"status": "success"}), "idempotent");
    expect_error(
        edit(&app, &bob, &by_bob_id, "undo").await,
        StatusCode::CONFLICT,
        "message_deleted",
    )
    .await;
    expect_error(
        react(&app, Method::PUT, &carol, &by_bob_id, "👍").await,
        StatusCode::CONFLICT,
        "message_deleted",
    )
    .await;
    let history: Value = ok_json(
        call(
            &app,
            Method::GET,
            &format!("/api/rooms/{room_id}/messages"),
            &carol,
        )
        .await,
    )
    .await;
    assert_eq!(history[0]["id"], by_bob["id"]);
    assert_eq!(history[0]["content"], "", "a tombstone");
    assert!(history[0]["deleted_at"].is_string());

    // Threads: a reply stays in its parent's conversation, never under a
    // deleted parent; the parent counts its replies.
    let parent = app
        .send_ok(&carol, json!({"content": "question", "room_id": room_id}))
        .await;
    let parent_id = id_of(&parent);
    let elsewhere = app
        .send(&carol, json!({"content": "a", "reply_to": parent_id}))
        .await;
    expect_error(elsewhere, StatusCode::BAD_REQUEST, "bad_reply_to").await;
    let under_deleted = app
        .send(
            &alice,
            json!({"content": "a", "room_id": room_id, "reply_to": by_bob_id}),
        )
        .await;
    expect_error(under_deleted, StatusCode::BAD_REQUEST, "bad_reply_to").await;
    let unreadable = app
        .send(
            &carol,
            json!({"content": "a", "recipient": "alice", "reply_to": dm_id}),
        )
        .await;
    expect_error(unreadable, StatusCode::BAD_REQUEST, "bad_reply_to").await;
    let reply = app
        .send_ok(
            &bob,
            json!({"content": "answer", "room_id": room_id, "reply_to": parent_id}),
        )
        .await;
    assert_eq!(reply["reply_to"], parent["id"]);
    let thread: Value = ok_json(
        call(
            &app,
            Method::GET,
            &format!("/api/messages/{parent_id}/replies"),
            &alice,
        )
        .await,
    )
    .await;
    assert_eq!(thread.as_array().map(Vec::len), Some(1));
    assert_eq!(thread[0]["id"], reply["id"]);
    let history: Value = ok_json(
        call(
            &app,
            Method::GET,
            &format!("/api/rooms/{room_id}/messages"),
            &alice,
        )
        .await,
    )
    .await;
    let shown = history
        .as_array()
        .and_then(|h| h.iter().find(|m| m["id"] == parent["id"]))
        .cloned();
    assert_eq!(shown.map(|m| m["reply_count"].clone()), Some(json!(1)));
    let outsider = app.user("dave").await;
    expect_error(
        call(
            &app,
            Method::GET,
            &format!("/api/messages/{parent_id}/replies"),
            &outsider,
        )
        .await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
}

async fn changes_are_delivered_live_to_exactly_who_may_read_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let room = app.room(&alice, "r", &[&bob]).await;
    let room_id = room["id"].as_str().expect("room id");
    let (mut a, mut b, mut c) = (
        app.ws(&alice).await,
        app.ws(&bob).await,
        app.ws(&carol).await,
    );
    let m = app
        .send_ok(
            &alice,
            json!({"content": "in the room", "room_id": room_id}),
        )
        .await;
    for ws in [&mut a, &mut b] {
        let frame = next_stored(ws).await;
        assert_eq!(frame["message"]["id"], m["id"]);
        assert!(frame["cursor"].is_string(), "{frame}");
    }
    ok_json(edit(&app, &alice, &id_of(&m), "edited").await).await;
    ok_json(react(&app, Method::PUT, &bob, &id_of(&m), "🎉").await).await;
    for ws in [&mut a, &mut b] {
        let edited = next_stored(ws).await;
        assert_eq!(edited["type"], "message_updated");
        assert_eq!(edited["message"]["content"], "edited");
        let reacted = next_stored(ws).await;
        assert_eq!(reacted["type"], "message_updated");
        assert_eq!(reacted["message"]["reactions"][0]["users"], json!(["bob"]));
        let (first, second) = (edited["cursor"].as_str(), reacted["cursor"].as_str());
        let parse = |c: Option<&str>| c.and_then(|c| c.parse::<u64>().ok()).expect("a cursor");
        assert!(parse(first) < parse(second), "cursors follow the order");
    }
    // Carol is not in the room: the next thing she gets is the global
    // marker, not the room's changes.
    let marker = app.send_ok(&bob, json!({"content": "marker"})).await;
    let next = next_stored(&mut c).await;
    assert_eq!(next["message"]["id"], marker["id"], "carol got {next}");
}

async fn a_reconnecting_client_catches_up_on_changes_exactly_once_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut ws = app.ws(&bob).await;
    let mut old = Vec::new();
    for text in ["one", "two", "three"] {
        old.push(app.send_ok(&alice, json!({"content": text})).await);
    }
    let dm = app
        .send_ok(&alice, json!({"content": "dm", "recipient": "bob"}))
        .await;
    let mut cursor = String::new();
    for _ in 0..4 {
        let frame = next_stored(&mut ws).await;
        cursor = frame["cursor"].as_str().expect("cursor").to_owned();
    }
    ws.close().await;

    // While bob is away.
    ok_json(edit(&app, &alice, &id_of(&old[0]), "one, edited").await).await;
    ok_json(
        call(
            &app,
            Method::DELETE,
            &format!("/api/messages/{}", id_of(&old[1])),
            &alice,
        )
        .await,
    )
    .await;
    ok_json(react(&app, Method::PUT, &alice, &id_of(&old[2]), "👍").await).await;
    let fresh = app.send_ok(&alice, json!({"content": "four"})).await;
    ok_json(react(&app, Method::PUT, &alice, &id_of(&dm), "❤️").await).await;

    let mut ws = app.ws_since(&bob, &cursor).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_stored(&mut ws).await);
    }
    let summary: Vec<(String, Value)> = got
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap_or_default().to_owned(),
                f["message"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("message_updated".to_owned(), old[0]["id"].clone()),
            ("message_updated".to_owned(), old[1]["id"].clone()),
            ("message_updated".to_owned(), old[2]["id"].clone()),
            ("message".to_owned(), fresh["id"].clone()),
            ("message_updated".to_owned(), dm["id"].clone()),
        ]
    );
    assert_eq!(got[0]["message"]["content"], "one, edited");
    assert_eq!(got[1]["message"]["content"], "");
    assert_eq!(got[2]["message"]["reactions"][0]["count"], 1);
    let cursors: Vec<u64> = got
        .iter()
        .map(|f| {
            f["cursor"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .expect("cursor")
        })
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    // Then live, and nothing of the replay twice.
    let live = app.send_ok(&alice, json!({"content": "five"})).await;
    let next = next_stored(&mut ws).await;
    assert_eq!(next["message"]["id"], live["id"], "got {next}");

    // An old client's message id still works, and replays the changes too.
    let mut old_client = app.ws_since(&bob, &id_of(&dm)).await;
    let first = next_stored(&mut old_client).await;
    assert_eq!(first["message"]["id"], old[0]["id"]);
    assert_eq!(first["type"], "message_updated");
}
