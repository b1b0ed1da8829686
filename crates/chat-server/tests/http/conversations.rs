//! Read state over HTTP: `GET /api/conversations` (unread counts, markers,
//! order, pages) and `PUT /api/conversations/{kind}/{id}/read` with its
//! refusals.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, link, Backend, TestApp, TestUser};

per_backend!(
    the_conversation_list_counts_what_each_user_has_not_read,
    reading_moves_the_marker_forward_only_and_refuses_other_messages,
);

async fn list(app: &TestApp, user: &TestUser, query: &str) -> reqwest::Response {
    app.get(&format!("/api/conversations{query}"), &user.token)
        .send()
        .await
        .expect("list request")
}

async fn conversations(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let res = list(app, user, "").await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("a JSON array")
}

/// The entry of `kind`/`id` in `user`'s list.
async fn entry(app: &TestApp, user: &TestUser, kind: &str, id: &str) -> Value {
    conversations(app, user)
        .await
        .into_iter()
        .find(|c| c["kind"] == kind && c["id"] == id)
        .unwrap_or_else(|| panic!("{} has no {kind}/{id}", user.username))
}

async fn read(
    app: &TestApp,
    user: &TestUser,
    kind: &str,
    id: &str,
    message_id: &Value,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/conversations/{kind}/{id}/read")))
        .bearer_auth(&user.token)
        .json(&json!({ "message_id": message_id }))
        .send()
        .await
        .expect("read request")
}

async fn the_conversation_list_counts_what_each_user_has_not_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.user("alice").await;
    let early = app.send_ok(&alice, json!({"content": "before bob"})).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("room id");

    // Bob came after the first global message: nothing unread yet.
    let global = entry(&app, &bob, "global", "global").await;
    assert_eq!(global["unread_count"], 0);
    assert_eq!(global["last_read_id"], early["id"]);
    assert_eq!(global["name"], "Global");
    assert!(global["cursor"].is_string(), "{global}");

    app.send_ok(&alice, json!({"content": "g1"})).await;
    let dm1 = app
        .send_ok(&alice, json!({"content": "d1", "recipient": "bob"}))
        .await;
    let dm2 = app
        .send_ok(&alice, json!({"content": "d2", "recipient": "bob"}))
        .await;
    let in_room = app
        .send_ok(&alice, json!({"content": "r1", "room_id": room_id}))
        .await;

    // Most recent activity first; the exact shape of an entry.
    let listed = conversations(&app, &bob).await;
    let order: Vec<(Value, Value)> = listed
        .iter()
        .map(|c| (c["kind"].clone(), c["id"].clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            (json!("room"), json!(room_id)),
            (json!("direct"), json!("alice")),
            (json!("global"), json!("global")),
        ]
    );
    let dm = &listed[1];
    assert_eq!(dm["name"], "alice");
    assert_eq!(dm["unread_count"], 2);
    assert_eq!(
        dm["last_read_id"],
        Value::Null,
        "a new conversation: nothing read"
    );
    assert_eq!(dm["last_message"]["id"], dm2["id"]);
    assert_eq!(dm["peer_last_read_id"], dm2["id"], "alice has read her own");
    assert_eq!(listed[0]["unread_count"], 1);
    assert_eq!(listed[0]["last_message"]["id"], in_room["id"]);
    assert_eq!(listed[2]["unread_count"], 1);

    // The sender has read all of it; carol sees only global.
    let alices = conversations(&app, &alice).await;
    assert!(alices.iter().all(|c| c["unread_count"] == 0), "{alices:?}");
    let carols = conversations(&app, &carol).await;
    assert_eq!(carols.len(), 1, "{carols:?}");

    // A deleted message is no longer unread.
    let deleted = app
        .delete(
            &format!("/api/messages/{}", dm1["id"].as_str().expect("id")),
            &alice.token,
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        entry(&app, &bob, "direct", "alice").await["unread_count"],
        1
    );

    // Pages: one at a time, by the cursor in the Link header.
    let first = list(&app, &bob, "?limit=1").await;
    let next = link(&first, "next").expect("a next page");
    let first: Vec<Value> = first.json().await.expect("page");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["kind"], "room");
    let next = next
        .split_once("/api/conversations")
        .map(|(_, q)| q.to_owned());
    let second = list(&app, &bob, &next.expect("a query")).await;
    let second: Vec<Value> = second.json().await.expect("page");
    assert_eq!(second[0]["kind"], "direct", "{second:?}");
    let last = list(&app, &bob, "?limit=200").await;
    assert_eq!(link(&last, "next"), None);

    expect_error(
        list(&app, &bob, "?before=nonsense").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    expect_error(
        list(&app, &bob, "?limit=0").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    let anonymous = app
        .client
        .get(app.url("/api/conversations"))
        .send()
        .await
        .expect("request");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn reading_moves_the_marker_forward_only_and_refuses_other_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let d1 = app
        .send_ok(&alice, json!({"content": "d1", "recipient": "bob"}))
        .await;
    let d2 = app
        .send_ok(&alice, json!({"content": "d2", "recipient": "bob"}))
        .await;
    let res = read(&app, &bob, "direct", "alice", &d2["id"]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let now: Value = res.json().await.expect("the conversation");
    assert_eq!(
        (
            &now["kind"],
            &now["id"],
            &now["unread_count"],
            &now["last_read_id"]
        ),
        (&json!("direct"), &json!("alice"), &json!(0), &d2["id"])
    );
    // Never back: an older message is a no-op answering the same state.
    let back = read(&app, &bob, "direct", "alice", &d1["id"]).await;
    assert_eq!(back.status(), StatusCode::OK);
    let back: Value = back.json().await.expect("the conversation");
    assert_eq!(back["last_read_id"], d2["id"]);
    // The other party sees it as the peer's marker.
    assert_eq!(
        entry(&app, &alice, "direct", "bob").await["peer_last_read_id"],
        d2["id"]
    );
    // Usernames are matched as everywhere, ignoring case.
    let upper = read(&app, &bob, "direct", "ALICE", &d2["id"]).await;
    assert_eq!(upper.status(), StatusCode::OK);

    // Refusals.
    let global = app.send_ok(&alice, json!({"content": "g"})).await;
    for (user, kind, id, message, status, code) in [
        (
            &bob,
            "direct",
            "alice",
            &global["id"],
            StatusCode::NOT_FOUND,
            "message_not_found",
        ),
        (
            &carol,
            "direct",
            "alice",
            &d1["id"],
            StatusCode::NOT_FOUND,
            "message_not_found",
        ),
        (
            &bob,
            "global",
            "global",
            &d1["id"],
            StatusCode::NOT_FOUND,
            "message_not_found",
        ),
        (
            &bob,
            "direct",
            "nobody",
            &d1["id"],
            StatusCode::NOT_FOUND,
            "user_not_found",
        ),
        (
            &bob,
            "channel",
            "x",
            &d1["id"],
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            &bob,
            "global",
            "other",
            &global["id"],
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            &bob,
            "room",
            "not-a-uuid",
            &d1["id"],
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            &bob,
            "global",
            "global",
            &json!("nope"),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
    ] {
        expect_error(read(&app, user, kind, id, message).await, status, code).await;
    }
    let unknown = json!("0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a");
    expect_error(
        read(&app, &bob, "global", "global", &unknown).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
    let room = app.room(&alice, "private", &[]).await;
    let room_id = room["id"].as_str().expect("room id");
    let secret = app
        .send_ok(&alice, json!({"content": "s", "room_id": room_id}))
        .await;
    expect_error(
        read(&app, &bob, "room", room_id, &secret["id"]).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    )
    .await;
    expect_error(
        read(
            &app,
            &bob,
            "room",
            "0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a",
            &secret["id"],
        )
        .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
    // Joining with history: nothing unread; reading the room works.
    let joined = app
        .post(
            &format!("/api/rooms/{room_id}/members/{}", bob.id),
            &alice.token,
        )
        .send()
        .await
        .expect("join");
    assert_eq!(joined.status(), StatusCode::OK);
    assert_eq!(entry(&app, &bob, "room", room_id).await["unread_count"], 0);
    let later = app
        .send_ok(&alice, json!({"content": "later", "room_id": room_id}))
        .await;
    assert_eq!(entry(&app, &bob, "room", room_id).await["unread_count"], 1);
    let res = read(&app, &bob, "room", room_id, &later["id"]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(entry(&app, &bob, "room", room_id).await["unread_count"], 0);
}
