//! Read markers live: the `read` frame to the reader's other connections
//! and, in a direct conversation, to the other party (a receipt), to
//! nobody else; and its recovery with `?since=<cursor>`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser};

per_backend!(
    a_read_reaches_the_readers_connections_and_the_other_party_only,
    a_reconnecting_client_is_replayed_the_reads_it_missed,
);

async fn read(app: &TestApp, user: &TestUser, kind: &str, id: &str, message: &Value) -> Value {
    let res = app
        .client
        .put(app.url(&format!("/api/conversations/{kind}/{id}/read")))
        .bearer_auth(&user.token)
        .json(&json!({ "message_id": message["id"] }))
        .send()
        .await
        .expect("read request");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("the conversation")
}

/// The next frame of type `kind` (skipping the messages the test sent).
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    loop {
        let frame = ws.recv_event().await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

fn cursor_of(frame: &Value) -> u64 {
    frame["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a cursor in {frame}"))
}

async fn a_read_reaches_the_readers_connections_and_the_other_party_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let (mut phone, mut laptop) = (app.ws(&bob).await, app.ws(&bob).await);
    let mut sender = app.ws(&alice).await;
    let mut other = app.ws(&carol).await;
    let dm = app
        .send_ok(&alice, json!({"content": "hi bob", "recipient": "bob"}))
        .await;
    for ws in [&mut phone, &mut laptop, &mut sender] {
        assert_eq!(
            next_of(ws, "direct_message").await["message"]["id"],
            dm["id"]
        );
    }

    read(&app, &bob, "direct", "alice", &dm).await;
    for ws in [&mut phone, &mut laptop] {
        let frame = next_of(ws, "read").await;
        assert_eq!(frame["kind"], "direct");
        assert_eq!(frame["id"], "alice", "named as bob names it: {frame}");
        assert_eq!(frame["username"], "bob");
        assert_eq!(frame["message_id"], dm["id"]);
        cursor_of(&frame);
    }
    let receipt = next_of(&mut sender, "read").await;
    assert_eq!(
        (&receipt["kind"], &receipt["id"], &receipt["username"]),
        (&json!("direct"), &json!("bob"), &json!("bob")),
        "named as alice names it: {receipt}"
    );
    assert_eq!(receipt["message_id"], dm["id"]);
    other.expect_silence(Duration::from_millis(300)).await;

    // A global read goes to the reader only; reading back moves nothing
    // and sends nothing.
    let global = app.send_ok(&alice, json!({"content": "everyone"})).await;
    for ws in [&mut phone, &mut laptop, &mut sender, &mut other] {
        assert_eq!(next_of(ws, "message").await["message"]["id"], global["id"]);
    }
    read(&app, &bob, "global", "global", &global).await;
    for ws in [&mut phone, &mut laptop] {
        let frame = next_of(ws, "read").await;
        assert_eq!(
            (&frame["kind"], &frame["id"]),
            (&json!("global"), &json!("global"))
        );
    }
    read(&app, &bob, "global", "global", &global).await;
    read(&app, &bob, "direct", "alice", &dm).await;
    for ws in [&mut phone, &mut laptop, &mut sender, &mut other] {
        ws.expect_silence(Duration::from_millis(300)).await;
    }
}

async fn a_reconnecting_client_is_replayed_the_reads_it_missed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut laptop = app.ws(&bob).await;
    let mut alices = app.ws(&alice).await;
    let dm = app
        .send_ok(&alice, json!({"content": "hi", "recipient": "bob"}))
        .await;
    let cursor = next_of(&mut laptop, "direct_message").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let alice_cursor = next_of(&mut alices, "direct_message").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    laptop.close().await;
    alices.close().await;

    // While both are away: bob reads on his phone, a message comes.
    read(&app, &bob, "direct", "alice", &dm).await;
    let later = app.send_ok(&alice, json!({"content": "later"})).await;

    let mut laptop = app.ws_since(&bob, &cursor).await;
    let replayed = laptop.recv_event().await;
    assert_eq!(replayed["type"], "read", "{replayed}");
    assert_eq!(
        (&replayed["kind"], &replayed["id"], &replayed["message_id"]),
        (&json!("direct"), &json!("alice"), &dm["id"])
    );
    let next = laptop.recv_event().await;
    assert_eq!(next["message"]["id"], later["id"]);
    assert!(
        cursor_of(&replayed) < cursor_of(&next),
        "in the store's order"
    );
    // The receipt is replayed to alice too, named by the reader.
    let mut alices = app.ws_since(&alice, &alice_cursor).await;
    let receipt = alices.recv_event().await;
    assert_eq!(
        (&receipt["type"], &receipt["id"], &receipt["username"]),
        (&json!("read"), &json!("bob"), &json!("bob")),
        "{receipt}"
    );
    // Resuming after the read itself replays it no more.
    let mut again = app.ws_since(&bob, &cursor_of(&replayed).to_string()).await;
    assert_eq!(again.recv_event().await["message"]["id"], later["id"]);
    // Then live, and nothing of the replay twice.
    let live = app.send_ok(&alice, json!({"content": "live"})).await;
    assert_eq!(laptop.recv_event().await["message"]["id"], live["id"]);
}
