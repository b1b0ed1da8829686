//! Sending and reading messages: shapes, authorization, idempotency,
//! privacy and pagination.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, link, links, TestApp};

backend_tests!(
    a_global_message_has_the_spec_shape,
    the_sender_is_the_caller,
    unknown_recipients_and_rooms_are_404,
    invalid_messages_are_400,
    a_client_id_resend_returns_the_original,
    direct_messages_are_private,
    between_lists_a_conversation_for_its_parties,
    pages_walk_back_and_forth_without_gaps,
    the_limit_is_capped_at_200,
    bad_page_parameters_are_400,
    a_cursor_naming_someone_elses_message_is_answered_as_an_unknown_one,
);

async fn a_global_message_has_the_spec_shape(app: TestApp) {
    let alice = app.user("alice").await;
    let message = app.send_ok(&alice, json!({"content": "  hello  "})).await;
    assert_eq!(message["sender"], "alice");
    assert_eq!(message["content"], "hello");
    assert_eq!(message["recipient"], Value::Null);
    assert_eq!(message["room_id"], Value::Null);
    assert!(message["id"].is_string());
    assert!(message["created_at"].as_str().expect("time").ends_with('Z'));
    assert_eq!(message.as_object().expect("object").len(), 11);
    assert_eq!(message["edited_at"], Value::Null);
    assert_eq!(message["deleted_at"], Value::Null);
    assert_eq!(message["reply_to"], Value::Null);
    assert_eq!(message["reply_count"], 0);
    assert_eq!(message["reactions"], serde_json::json!([]));

    // Empty strings, as old clients send them, mean "absent".
    let message = app
        .send_ok(
            &alice,
            json!({"content": "hi", "recipient": "", "room_id": "", "sender": ""}),
        )
        .await;
    assert_eq!(message["recipient"], Value::Null);
}

async fn the_sender_is_the_caller(app: TestApp) {
    let alice = app.user("alice").await;
    app.register("bob").await;
    let res = app
        .send(&alice, json!({"content": "hi", "sender": "bob"}))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "sender_mismatch").await;
    let message = app
        .send_ok(&alice, json!({"content": "hi", "sender": "alice"}))
        .await;
    assert_eq!(message["sender"], "alice");
}

async fn unknown_recipients_and_rooms_are_404(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .send(&alice, json!({"content": "hi", "recipient": "nobody"}))
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
    let room = uuid::Uuid::new_v4().to_string();
    let res = app
        .send(&alice, json!({"content": "hi", "room_id": room}))
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "room_not_found").await;
}

async fn invalid_messages_are_400(app: TestApp) {
    let alice = app.user("alice").await;
    app.register("bob").await;
    for body in [
        json!({"content": "   "}),
        json!({"content": "\u{00a0}\u{200b}\u{3000}"}),
        json!({"content": "\u{200d}\u{2060}"}),
    ] {
        let res = app.send(&alice, body).await;
        expect_error(res, StatusCode::BAD_REQUEST, "empty_content").await;
    }
    for body in [
        json!({"content": "x".repeat(4001)}),
        json!({"content": "hi", "room_id": "not-a-uuid"}),
        json!({"content": "hi", "client_id": "has space"}),
    ] {
        let res = app.send(&alice, body).await;
        expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    // 4000 characters of a multi-byte character fit the body limit.
    app.send_ok(&alice, json!({"content": "é".repeat(4000)}))
        .await;
}

async fn a_client_id_resend_returns_the_original(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app
        .send_ok(&alice, json!({"content": "once", "client_id": "c-1"}))
        .await;
    let res = app
        .send(&alice, json!({"content": "once again", "client_id": "c-1"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again: Value = res.json().await.expect("json");
    assert_eq!(again, first);
    // Another sender may use the same client id.
    app.send_ok(&bob, json!({"content": "mine", "client_id": "c-1"}))
        .await;

    let all: Vec<Value> = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let from_alice: Vec<&Value> = all.iter().filter(|m| m["sender"] == "alice").collect();
    assert_eq!(from_alice.len(), 1, "{all:?}");
}

async fn direct_messages_are_private(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dm = app
        .send_ok(&alice, json!({"content": "psst", "recipient": "bob"}))
        .await;
    assert_eq!(dm["recipient"], "bob");
    let global = app.send_ok(&carol, json!({"content": "hello all"})).await;

    let ids = |list: Vec<Value>| -> Vec<Value> { list.iter().map(|m| m["id"].clone()).collect() };
    for (user, sees_dm) in [(&alice, true), (&bob, true), (&carol, false)] {
        let list: Vec<Value> = app
            .get("/api/messages", &user.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let ids = ids(list);
        assert_eq!(ids.contains(&dm["id"]), sees_dm, "{}", user.username);
        assert!(ids.contains(&global["id"]));
    }
    let res = app
        .get("/api/messages/between/alice/bob", &carol.token)
        .send()
        .await
        .expect("between");
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn between_lists_a_conversation_for_its_parties(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.register("carol").await;
    let one = app
        .send_ok(&alice, json!({"content": "1", "recipient": "bob"}))
        .await;
    let two = app
        .send_ok(&bob, json!({"content": "2", "recipient": "alice"}))
        .await;
    app.send_ok(&alice, json!({"content": "other", "recipient": "carol"}))
        .await;
    app.send_ok(&alice, json!({"content": "global"})).await;

    for (viewer, path) in [
        (&alice, "/api/messages/between/alice/bob"),
        (&bob, "/api/messages/between/BOB/alice"),
    ] {
        let res = app.get(path, &viewer.token).send().await.expect("between");
        assert_eq!(res.status(), StatusCode::OK);
        let list: Vec<Value> = res.json().await.expect("json");
        assert_eq!(list, vec![one.clone(), two.clone()], "{path}");
    }
    let res = app
        .get("/api/messages/between/alice/nobody", &alice.token)
        .send()
        .await
        .expect("between");
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
}

async fn pages_walk_back_and_forth_without_gaps(app: TestApp) {
    let alice = app.user("alice").await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let m = app
            .send_ok(&alice, json!({"content": format!("m{i}")}))
            .await;
        sent.push(m["id"].clone());
    }
    let page = |path: String| {
        let req = app.client.get(app.url(&path)).bearer_auth(&alice.token);
        async move {
            let res = req.send().await.expect("page");
            assert_eq!(res.status(), StatusCode::OK);
            let prev = link(&res, "prev");
            let next = link(&res, "next");
            let items: Vec<Value> = res.json().await.expect("json");
            let ids: Vec<Value> = items.iter().map(|m| m["id"].clone()).collect();
            (ids, prev, next)
        }
    };

    let (newest, prev, next) = page("/api/messages?limit=3".into()).await;
    assert_eq!(newest, sent[4..7].to_vec());
    assert_eq!(next, None);
    let prev = prev.expect("older page");
    assert_eq!(
        prev,
        format!(
            "/api/messages?before={}&limit=3",
            sent[4].as_str().expect("id")
        )
    );

    let (middle, prev, next) = page(prev).await;
    assert_eq!(middle, sent[1..4].to_vec());
    assert!(next.is_some());
    let (oldest, prev, next) = page(prev.expect("older page")).await;
    assert_eq!(oldest, sent[0..1].to_vec());
    assert_eq!(prev, None);

    // And forward again from the oldest.
    let mut forward = oldest.clone();
    let mut cursor = next;
    while let Some(path) = cursor {
        let (ids, _, next) = page(path).await;
        forward.extend(ids);
        cursor = next;
    }
    assert_eq!(forward, sent);
}

async fn the_limit_is_capped_at_200(app: TestApp) {
    let alice = app.user("alice").await;
    for i in 0..205 {
        app.send_ok(&alice, json!({"content": format!("m{i}")}))
            .await;
    }
    let res = app
        .get("/api/messages?limit=1000", &alice.token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), StatusCode::OK);
    let prev = link(&res, "prev").expect("older messages remain");
    assert!(prev.ends_with("&limit=200"), "{prev}");
    let list: Vec<Value> = res.json().await.expect("json");
    assert_eq!(list.len(), 200);
    assert_eq!(list[199]["content"], "m204");

    let res = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("list");
    assert_eq!(links(&res).len(), 1, "only prev on the newest page");
    let list: Vec<Value> = res.json().await.expect("json");
    assert_eq!(list.len(), 50, "default limit");
}

async fn bad_page_parameters_are_400(app: TestApp) {
    let alice = app.user("alice").await;
    let id = uuid::Uuid::now_v7();
    for (path, code) in [
        ("/api/messages?limit=0".to_owned(), "validation_error"),
        ("/api/messages?before=nope".to_owned(), "validation_error"),
        (
            format!("/api/messages?before={id}&after={id}"),
            "validation_error",
        ),
        ("/api/messages?limit=abc".to_owned(), "invalid_query"),
        ("/api/messages?limit=-1".to_owned(), "invalid_query"),
    ] {
        let res = app.get(&path, &alice.token).send().await.expect("list");
        expect_error(res, StatusCode::BAD_REQUEST, code).await;
    }
}

/// Ids are not an oracle: a cursor naming a direct message between two
/// others gets exactly the answer of a cursor naming nothing.
async fn a_cursor_naming_someone_elses_message_is_answered_as_an_unknown_one(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let theirs = app
        .send_ok(&bob, json!({"content": "psst", "recipient": "carol"}))
        .await;
    let theirs = theirs["id"].as_str().expect("id");
    let own = app
        .send_ok(&alice, json!({"content": "hi bob", "recipient": "bob"}))
        .await;
    let own = own["id"].as_str().expect("id");
    let room = app.room(&alice, "team", &[&bob]).await;
    let room_id = room["id"].as_str().expect("id");
    let nowhere = uuid::Uuid::now_v7().to_string();

    let answer = |path: String| {
        let req = app.get(&path, &alice.token);
        async move {
            let res = req.send().await.expect("list");
            expect_error(res, StatusCode::NOT_FOUND, "message_not_found").await
        }
    };
    for cursor in ["before", "after"] {
        for list in [
            "/api/messages".to_owned(),
            "/api/messages/between/alice/bob".to_owned(),
            format!("/api/rooms/{room_id}/messages"),
        ] {
            let unknown = answer(format!("{list}?{cursor}={nowhere}")).await;
            let hidden = answer(format!("{list}?{cursor}={theirs}")).await;
            assert_eq!(hidden, unknown, "{list}?{cursor}=");
        }
    }
    // The caller's own messages stay valid cursors; carol can use hers.
    let res = app
        .get(&format!("/api/messages?before={own}"), &alice.token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .get(&format!("/api/messages?before={theirs}"), &carol.token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), StatusCode::OK);
}
