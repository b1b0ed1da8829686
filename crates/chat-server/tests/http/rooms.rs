//! Rooms: creation, privacy, membership rules and history.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, link, TestApp};

backend_tests!(
    a_created_room_has_the_spec_shape,
    only_members_see_a_room,
    only_members_read_and_post_room_messages,
    adding_a_member_is_idempotent,
    adding_is_for_members_and_known_users,
    members_leave_or_are_removed_by_the_creator,
    a_creator_who_left_cannot_remove_members,
    room_history_is_paginated,
    malformed_room_ids_are_400,
);

async fn a_created_room_has_the_spec_shape(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&alice, "general", &[&bob]).await;
    assert_eq!(room["name"], "general");
    assert_eq!(room["description"], "");
    assert_eq!(room["created_by"], alice.id);
    assert_eq!(room["members"], json!([alice.id, bob.id]));
    assert!(room["id"].is_string());
    assert!(room["created_at"].as_str().expect("time").ends_with('Z'));

    let res = app
        .post("/api/rooms", &alice.token)
        .json(&json!({"name": "described", "description": "about things"}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), StatusCode::CREATED);
    let room: Value = res.json().await.expect("json");
    assert_eq!(room["description"], "about things");
    assert_eq!(room["members"], json!([alice.id]));

    let res = app
        .post("/api/rooms", &alice.token)
        .json(&json!({"name": "ghosts", "members": [uuid::Uuid::now_v7().to_string()]}))
        .send()
        .await
        .expect("create");
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
    let res = app
        .post("/api/rooms", &alice.token)
        .json(&json!({"name": " "}))
        .send()
        .await
        .expect("create");
    expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
}

async fn only_members_see_a_room(app: TestApp) {
    let alice = app.user("alice").await;
    let carol = app.user("carol").await;
    let room = app.room(&alice, "private", &[]).await;
    let path = format!("/api/rooms/{}", room["id"].as_str().expect("id"));

    let res = app.get(&path, &alice.token).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.expect("json"), room);

    let res = app.get(&path, &carol.token).send().await.expect("get");
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let unknown = format!("/api/rooms/{}", uuid::Uuid::now_v7());
    let res = app.get(&unknown, &alice.token).send().await.expect("get");
    expect_error(res, StatusCode::NOT_FOUND, "room_not_found").await;
}

async fn only_members_read_and_post_room_messages(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("id");
    let message = app
        .send_ok(&bob, json!({"content": "team only", "room_id": room_id}))
        .await;
    assert_eq!(message["room_id"], room_id);
    assert_eq!(message["recipient"], Value::Null);

    let path = format!("/api/rooms/{room_id}/messages");
    let res = app.get(&path, &alice.token).send().await.expect("history");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.expect("json"), json!([message]));

    let res = app.get(&path, &carol.token).send().await.expect("history");
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let res = app
        .send(&carol, json!({"content": "let me in", "room_id": room_id}))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;

    // Nor does the room message leak into a non-member's feed.
    let feed: Vec<Value> = app
        .get("/api/messages", &carol.token)
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("json");
    assert!(feed.is_empty(), "{feed:?}");
    let feed: Vec<Value> = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("json");
    assert_eq!(feed, vec![message]);
}

async fn adding_a_member_is_idempotent(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&alice, "team", &[]).await;
    let room_id = room["id"].as_str().expect("id");
    let path = format!("/api/rooms/{room_id}/members/{}", bob.id);
    for _ in 0..2 {
        let res = app.post(&path, &alice.token).send().await.expect("add");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.json::<Value>().await.expect("json"),
            json!({"status": "success"})
        );
    }
    let room: Value = app
        .get(&format!("/api/rooms/{room_id}"), &bob.token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(room["members"], json!([alice.id, bob.id]));
}

async fn adding_is_for_members_and_known_users(app: TestApp) {
    let alice = app.user("alice").await;
    let carol = app.user("carol").await;
    let room = app.room(&alice, "team", &[]).await;
    let room_id = room["id"].as_str().expect("id");

    let res = app
        .post(
            &format!("/api/rooms/{room_id}/members/{}", carol.id),
            &carol.token,
        )
        .send()
        .await
        .expect("add");
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let res = app
        .post(
            &format!("/api/rooms/{room_id}/members/{}", uuid::Uuid::now_v7()),
            &alice.token,
        )
        .send()
        .await
        .expect("add");
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
    let res = app
        .post(
            &format!("/api/rooms/{}/members/{}", uuid::Uuid::now_v7(), carol.id),
            &alice.token,
        )
        .send()
        .await
        .expect("add");
    expect_error(res, StatusCode::NOT_FOUND, "room_not_found").await;
}

async fn members_leave_or_are_removed_by_the_creator(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = app.room(&alice, "team", &[&bob, &carol]).await;
    let room_id = room["id"].as_str().expect("id");
    let member = |user_id: &str| format!("/api/rooms/{room_id}/members/{user_id}");

    // A member cannot remove another member.
    let res = app
        .delete(&member(&carol.id), &bob.token)
        .send()
        .await
        .expect("remove");
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    // A member can leave.
    let res = app
        .delete(&member(&bob.id), &bob.token)
        .send()
        .await
        .expect("leave");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.expect("json"),
        json!({"status": "success"})
    );
    // The creator can remove anyone.
    let res = app
        .delete(&member(&carol.id), &alice.token)
        .send()
        .await
        .expect("remove");
    assert_eq!(res.status(), StatusCode::OK);

    let room: Value = app
        .get(&format!("/api/rooms/{room_id}"), &alice.token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(room["members"], json!([alice.id]));
    let res = app
        .get(&format!("/api/rooms/{room_id}"), &bob.token)
        .send()
        .await
        .expect("get");
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;

    let unknown = format!("/api/rooms/{}/members/{}", uuid::Uuid::now_v7(), bob.id);
    let res = app
        .delete(&unknown, &bob.token)
        .send()
        .await
        .expect("remove");
    expect_error(res, StatusCode::NOT_FOUND, "room_not_found").await;
}

async fn a_creator_who_left_cannot_remove_members(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("id");
    let member = |user_id: &str| format!("/api/rooms/{room_id}/members/{user_id}");
    let res = app
        .delete(&member(&alice.id), &alice.token)
        .send()
        .await
        .expect("leave");
    assert_eq!(res.status(), StatusCode::OK);

    let res = app
        .delete(&member(&bob.id), &alice.token)
        .send()
        .await
        .expect("remove");
    expect_error(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let room: Value = app
        .get(&format!("/api/rooms/{room_id}"), &bob.token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(room["members"], json!([bob.id]), "bob is still a member");
    // Leaving again changes nothing and is not an error.
    let res = app
        .delete(&member(&alice.id), &alice.token)
        .send()
        .await
        .expect("leave again");
    assert_eq!(res.status(), StatusCode::OK);
}

async fn room_history_is_paginated(app: TestApp) {
    let alice = app.user("alice").await;
    let room = app.room(&alice, "team", &[]).await;
    let room_id = room["id"].as_str().expect("id");
    for i in 0..3 {
        app.send_ok(
            &alice,
            json!({"content": format!("r{i}"), "room_id": room_id}),
        )
        .await;
    }
    let path = format!("/api/rooms/{room_id}/messages?limit=2");
    let res = app.get(&path, &alice.token).send().await.expect("history");
    let prev = link(&res, "prev").expect("older page");
    assert!(
        prev.starts_with(&format!("/api/rooms/{room_id}/messages?before=")),
        "{prev}"
    );
    let page: Vec<Value> = res.json().await.expect("json");
    assert_eq!(page.len(), 2);
    assert_eq!(page[1]["content"], "r2");
    let page: Vec<Value> = app
        .get(&prev, &alice.token)
        .send()
        .await
        .expect("older")
        .json()
        .await
        .expect("json");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["content"], "r0");
}

async fn malformed_room_ids_are_400(app: TestApp) {
    let alice = app.user("alice").await;
    for path in [
        "/api/rooms/not-a-uuid".to_owned(),
        "/api/rooms/not-a-uuid/messages".to_owned(),
        format!("/api/rooms/not-a-uuid/members/{}", alice.id),
    ] {
        let res = app.get(&path, &alice.token).send().await.expect("get");
        if path.contains("/members/") {
            expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
            let res = app.post(&path, &alice.token).send().await.expect("post");
            expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
        } else {
            expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
        }
    }
}
