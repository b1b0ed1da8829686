//! Users and their rooms.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{expect_error, link, TestApp};

backend_tests!(
    users_are_listed_in_pages,
    a_user_is_found_by_id,
    unknown_or_malformed_user_ids,
    a_users_rooms_are_filtered_by_what_the_caller_shares,
);

async fn users_are_listed_in_pages(app: TestApp) {
    let alice = app.user("alice").await;
    for name in ["bob", "carol", "dave"] {
        app.register(name).await;
    }
    let res = app
        .get("/api/users", &alice.token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), StatusCode::OK);
    let all: Vec<Value> = res.json().await.expect("json");
    let names: Vec<&str> = all.iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave"]);
    assert!(all.iter().all(|u| u.get("password_hash").is_none()));
    // Only the caller's own entry carries an email; the field is there,
    // null, for everyone else.
    for user in &all {
        let expected = match user["username"].as_str() {
            Some("alice") => serde_json::json!("alice@example.com"),
            _ => Value::Null,
        };
        assert_eq!(user.get("email"), Some(&expected), "{user}");
    }

    let res = app
        .get("/api/users?limit=2", &alice.token)
        .send()
        .await
        .expect("list");
    let prev = link(&res, "prev").expect("older users");
    let page: Vec<Value> = res.json().await.expect("json");
    assert_eq!(page, all[2..4].to_vec());
    let res = app.get(&prev, &alice.token).send().await.expect("list");
    assert!(link(&res, "next").is_some());
    let page: Vec<Value> = res.json().await.expect("json");
    assert_eq!(page, all[0..2].to_vec());
}

async fn a_user_is_found_by_id(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.register("bob").await;
    let path = format!("/api/users/{}", bob["id"].as_str().expect("id"));
    let res = app.get(&path, &alice.token).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen_by_others = bob.clone();
    seen_by_others["email"] = Value::Null;
    assert_eq!(res.json::<Value>().await.expect("json"), seen_by_others);
    let bob_token = app.login("bob").await;
    let res = app.get(&path, &bob_token).send().await.expect("get");
    assert_eq!(res.json::<Value>().await.expect("json"), bob, "own email");
}

async fn unknown_or_malformed_user_ids(app: TestApp) {
    let alice = app.user("alice").await;
    let unknown = format!("/api/users/{}", uuid::Uuid::now_v7());
    let res = app.get(&unknown, &alice.token).send().await.expect("get");
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
    let res = app
        .get(&format!("{unknown}/rooms"), &alice.token)
        .send()
        .await
        .expect("get");
    expect_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
    let res = app
        .get("/api/users/42", &alice.token)
        .send()
        .await
        .expect("get");
    expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
}

async fn a_users_rooms_are_filtered_by_what_the_caller_shares(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let shared = app.room(&alice, "shared", &[&bob]).await;
    let private = app.room(&alice, "private", &[]).await;

    let path = format!("/api/users/{}/rooms", alice.id);
    let own: Vec<Value> = app
        .get(&path, &alice.token)
        .send()
        .await
        .expect("rooms")
        .json()
        .await
        .expect("json");
    assert_eq!(own, vec![shared.clone(), private]);
    let seen_by_bob: Vec<Value> = app
        .get(&path, &bob.token)
        .send()
        .await
        .expect("rooms")
        .json()
        .await
        .expect("json");
    assert_eq!(seen_by_bob, vec![shared]);
    let seen_by_carol: Vec<Value> = app
        .get(&path, &carol.token)
        .send()
        .await
        .expect("rooms")
        .json()
        .await
        .expect("json");
    assert!(seen_by_carol.is_empty());
}
