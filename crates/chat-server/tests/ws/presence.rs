//! Presence by subscription: a connection names the users it follows
//! (`presence_subscribe`), gets their status at once in one `presence`
//! frame, then only their changes, batched; nobody hears of users they do
//! not follow. Reflected by `/api/ws/users` (paginated) and `is_online`.

use std::time::Instant;

use serde_json::{json, Value};

use crate::support::ws::{WsClient, QUIET};
use crate::support::{link, TestApp, TestUser};

backend_tests!(
    presence_follows_only_the_users_named,
    unsubscribing_stops_the_changes,
    changes_are_batched_per_connection,
);

fn presence(users: &[(&str, &str)]) -> Value {
    let users: Vec<Value> = users
        .iter()
        .map(|(username, status)| json!({"username": username, "status": status}))
        .collect();
    json!({"type": "presence", "users": users})
}

async fn subscribe(ws: &mut WsClient, usernames: &[&str]) -> Value {
    ws.send_json(json!({"type": "presence_subscribe", "usernames": usernames}))
        .await;
    ws.recv_json().await
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

async fn presence_follows_only_the_users_named(app: TestApp) {
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let mut a = app.ws(&alice).await;
    // The current status of each name, once each (names compare without
    // case), in the order named; a name nobody has is unknown.
    let now = subscribe(&mut a, &["bob", "nobody", "BOB"]).await;
    assert_eq!(now, presence(&[("bob", "offline"), ("nobody", "unknown")]));
    assert_eq!(connected_users(&app, &alice).await, json!(["alice"]));
    assert_eq!(is_online(&app, &alice, &bob).await, false);

    let mut c = app.ws(&carol).await;
    let mut b1 = app.ws(&bob).await;
    assert_eq!(a.recv_json().await, presence(&[("bob", "online")]));
    assert_eq!(is_online(&app, &alice, &bob).await, true);
    // Carol follows nobody and hears nothing of anyone; bob neither.
    assert_eq!(c.recv_within(QUIET).await, None);
    assert_eq!(b1.recv_within(QUIET).await, None);

    // A second tab is not news.
    let b2 = app.ws(&bob).await;
    assert_eq!(a.recv_within(QUIET).await, None);
    assert_eq!(
        connected_users(&app, &alice).await,
        json!(["alice", "bob", "carol"])
    );
    // Nor is closing one of two.
    b1.close().await;
    assert_eq!(a.recv_within(QUIET).await, None);
    assert_eq!(is_online(&app, &alice, &bob).await, true);
    // The last one going is.
    b2.close().await;
    assert_eq!(a.recv_json().await, presence(&[("bob", "offline")]));
    assert_eq!(
        connected_users(&app, &alice).await,
        json!(["alice", "carol"])
    );
    assert_eq!(is_online(&app, &alice, &bob).await, false);
    assert_eq!(c.recv_within(QUIET).await, None);
}

async fn unsubscribing_stops_the_changes(app: TestApp) {
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut a = app.ws(&alice).await;
    subscribe(&mut a, &["bob"]).await;
    a.send_json(json!({"type": "presence_unsubscribe", "usernames": ["Bob", "nobody"]}))
        .await;
    a.assert_usable().await;
    let _b = app.ws(&bob).await;
    assert_eq!(a.recv_within(QUIET).await, None);
}

/// Users coming one after the other reach a follower batched: one frame
/// per 250 ms at most, however many changed meanwhile.
async fn changes_are_batched_per_connection(app: TestApp) {
    let alice = app.user("alice").await;
    let mut others = Vec::new();
    for n in 0..6 {
        others.push(app.user(&format!("user{n}")).await);
    }
    let names: Vec<&str> = others.iter().map(|u| u.username.as_str()).collect();
    let mut a = app.ws(&alice).await;
    subscribe(&mut a, &names).await;
    let started = Instant::now();
    let mut sockets = Vec::new();
    for user in &others {
        sockets.push(app.ws(user).await);
    }
    let mut online = std::collections::BTreeSet::new();
    let mut frames = 0;
    while online.len() < others.len() {
        let frame = a.recv_json().await;
        frames += 1;
        for user in frame["users"].as_array().expect("users") {
            assert_eq!(user["status"], "online", "{frame}");
            online.insert(user["username"].as_str().unwrap_or_default().to_owned());
        }
    }
    // However the connects were spread, one frame per 250 ms at most.
    let batches = started.elapsed().as_millis() / 250 + 1;
    assert!(
        frames <= batches,
        "{frames} frames in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn following_more_than_the_limit_is_refused() {
    let app = TestApp::spawn_with(
        crate::support::Backend::Memory,
        &[("PRESENCE_MAX_SUBSCRIPTIONS", "2")],
    )
    .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.user("carol").await;
    app.user("dave").await;
    let mut a = app.ws(&alice).await;
    let refused = subscribe(&mut a, &["bob", "carol", "dave"]).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "too_many_subscriptions");
    // Nothing was followed.
    let _b = app.ws(&bob).await;
    assert_eq!(a.recv_within(QUIET).await, None);
    // Within the limit it works; a name followed twice counts once.
    let now = subscribe(&mut a, &["bob", "bob"]).await;
    assert_eq!(now, presence(&[("bob", "online")]));
}

#[tokio::test]
async fn connected_users_come_in_pages_with_the_exact_count() {
    let app = TestApp::spawn(crate::support::Backend::Memory).await;
    let mut users = Vec::new();
    let mut sockets = Vec::new();
    for n in 0..5 {
        let user = app.user(&format!("user{n}")).await;
        sockets.push(app.ws(&user).await);
        users.push(user);
    }
    let viewer = &users[0];
    let page = |query: &str| {
        app.get(&format!("/api/ws/users{query}"), &viewer.token)
            .send()
    };
    let res = page("?limit=2").await.expect("first page");
    let next = link(&res, "next").expect("a next page");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["connected_users"], json!(["user0", "user1"]));
    assert_eq!(body["count"], 5);
    assert_eq!(next, "/api/ws/users?after=user1&limit=2");
    let res = page("?limit=2&after=user3").await.expect("last page");
    assert_eq!(link(&res, "next"), None);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["connected_users"], json!(["user4"]));
    assert_eq!(body["count"], 5);
    let res = page("?limit=0").await.expect("a bad limit");
    assert_eq!(res.status().as_u16(), 400);
}
