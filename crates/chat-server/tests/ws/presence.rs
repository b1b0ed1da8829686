//! Presence: announced when a user's first connection opens and their last
//! one closes, never for the tabs in between; reflected by
//! `/api/ws/users` and `is_online`.

use serde_json::{json, Value};

use crate::support::ws::QUIET;
use crate::support::{TestApp, TestUser};

backend_tests!(presence_is_announced_on_the_first_and_last_connection_only);

fn presence(user: &str, status: &str) -> Value {
    json!({"type": "presence", "username": user, "status": status})
}

async fn connected_users(app: &TestApp, viewer: &TestUser) -> Value {
    let body: Value = app
        .get("/api/ws/users", &viewer.token)
        .send()
        .await
        .expect("ws users")
        .json()
        .await
        .expect("json");
    assert_eq!(
        body["count"],
        body["connected_users"].as_array().map_or(0, Vec::len)
    );
    body["connected_users"].clone()
}

async fn is_online(app: &TestApp, viewer: &TestUser, user: &TestUser) -> Value {
    let body: Value = app
        .get(&format!("/api/users/{}", user.id), &viewer.token)
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    body["is_online"].clone()
}

async fn presence_is_announced_on_the_first_and_last_connection_only(app: TestApp) {
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut a = app.ws(&alice).await;
    // Every connected user is told, the newcomer included.
    assert_eq!(a.recv_json().await, presence("alice", "online"));
    assert_eq!(connected_users(&app, &alice).await, json!(["alice"]));
    assert_eq!(is_online(&app, &alice, &bob).await, false);

    let mut b1 = app.ws(&bob).await;
    assert_eq!(a.recv_json().await, presence("bob", "online"));
    assert_eq!(b1.recv_json().await, presence("bob", "online"));
    assert_eq!(is_online(&app, &alice, &bob).await, true);

    // A second tab is not news.
    let mut b2 = app.ws(&bob).await;
    a.expect_silence(QUIET).await;
    assert_eq!(b2.recv_within(QUIET).await, None);
    assert_eq!(connected_users(&app, &alice).await, json!(["alice", "bob"]));

    // Nor is closing one of two.
    b1.close().await;
    assert_eq!(a.recv_within(QUIET).await, None);
    assert_eq!(is_online(&app, &alice, &bob).await, true);

    // The last one going is.
    b2.close().await;
    assert_eq!(a.recv_json().await, presence("bob", "offline"));
    assert_eq!(connected_users(&app, &alice).await, json!(["alice"]));
    assert_eq!(is_online(&app, &alice, &bob).await, false);
}
