//! Client frames and their answers: `pong`, `ack` (idempotent resends),
//! and `error` frames for everything that cannot be handled, after which
//! the socket stays usable.

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::ws::{WsClient, QUIET};
use crate::support::{Backend, TestApp};

backend_tests!(
    a_ping_frame_is_answered_with_pong,
    a_client_id_is_acked_once_stored_and_a_resend_stores_nothing,
    blank_targets_from_old_clients_mean_absent,
    frames_split_into_continuations_are_joined,
);

per_backend!(bad_frames_get_error_frames_and_the_socket_stays_usable);

async fn a_ping_frame_is_answered_with_pong(app: TestApp) {
    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(
        socket.recv_event().await,
        json!({"type": "pong", "status": "ok"})
    );
}

/// Reads frames until both the `ack` and the delivered `message` came, in
/// whichever order.
async fn ack_and_echo(socket: &mut WsClient) -> (Value, Value) {
    let (mut ack, mut echo) = (None, None);
    while ack.is_none() || echo.is_none() {
        let frame = socket.recv_event().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message") => echo = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    (ack.expect("ack"), echo.expect("echo"))
}

async fn a_client_id_is_acked_once_stored_and_a_resend_stores_nothing(app: TestApp) {
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let (mut a, mut b) = (app.ws(&alice).await, app.ws(&bob).await);
    let frame = json!({"type": "message", "content": "once", "client_id": "c-1"});
    a.send_json(frame.clone()).await;
    let (ack, echo) = ack_and_echo(&mut a).await;
    assert_eq!(ack["client_id"], "c-1");
    assert_eq!(ack["message"], echo["message"]);
    assert_eq!(ack.as_object().map(|o| o.len()), Some(4), "{ack}");
    assert!(ack["cursor"].is_string(), "{ack}");
    assert_eq!(b.recv_event().await, echo);

    // The same client_id again (a retry after a lost ack): acked with the
    // original, delivered to nobody, stored once.
    a.send_json(frame).await;
    let again = a.recv_event().await;
    assert_eq!(again, ack);
    b.expect_silence(QUIET).await;
    a.expect_silence(QUIET).await;
    let history: Value = app
        .get("/api/messages", &bob.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history, json!([ack["message"]]));

    // Without a client_id there is no ack, only the delivery.
    a.send_json(json!({"type": "message", "content": "no ack"}))
        .await;
    assert_eq!(a.recv_event().await["type"], "message");
    a.expect_silence(QUIET).await;
}

// Many frames in a row: the frame rate limit is off, so that each is
// answered for what it holds.
async fn bad_frames_get_error_frames_and_the_socket_stays_usable(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "0")]).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let room = app.room(&bob, "private", &[&carol]).await;
    let unknown_room = uuid::Uuid::new_v4().to_string();
    let mut socket = app.ws(&alice).await;
    let cases: Vec<(String, &str, Option<&str>)> =
        vec![
        ("{not json".into(), "invalid_frame", None),
        ("[1,2]".into(), "invalid_frame", None),
        (r#"{"content":"no type"}"#.into(), "invalid_frame", None),
        (
            json!({"type": "dance", "client_id": "u1"}).to_string(),
            "unknown_type",
            Some("u1"),
        ),
        (
            json!({"type": "message", "content": 42, "client_id": "t1"}).to_string(),
            "invalid_frame",
            Some("t1"),
        ),
        (
            json!({"type": "message", "content": "   ", "client_id": "e1"}).to_string(),
            "empty_content",
            Some("e1"),
        ),
        (
            json!({"type": "message", "content": "x".repeat(4001)}).to_string(),
            "validation_error",
            None,
        ),
        (
            json!({"type": "message", "content": "hi", "recipient": "nobody", "client_id": "r1"})
                .to_string(),
            "user_not_found",
            Some("r1"),
        ),
        (
            json!({"type": "message", "content": "hi", "room_id": unknown_room}).to_string(),
            "room_not_found",
            None,
        ),
        (
            json!({"type": "message", "content": "hi", "room_id": room["id"]}).to_string(),
            "not_a_member",
            None,
        ),
        (
            json!({"type": "message", "content": "hi", "room_id": "not-a-uuid"}).to_string(),
            "invalid_frame",
            None,
        ),
        (
            json!({"type": "message", "content": "hi", "recipient": "bob", "room_id": room["id"]})
                .to_string(),
            "validation_error",
            None,
        ),
        (
            json!({"type": "message", "content": "hi", "client_id": "has space"}).to_string(),
            "validation_error",
            Some("has space"),
        ),
        (json!({"type": "typing"}).to_string(), "validation_error", None),
        (
            json!({"type": "typing", "recipient": "nobody"}).to_string(),
            "user_not_found",
            None,
        ),
    ];
    for (text, code, client_id) in cases {
        assert!(text.len() <= 4096, "under the frame limit: {}", text.len());
        socket.send_text(&text).await;
        let error = socket.recv_event().await;
        assert_eq!(error["type"], "error", "{text} -> {error}");
        assert_eq!(error["code"], code, "{text} -> {error}");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
        match client_id {
            Some(id) => assert_eq!(error["client_id"], id, "{error}"),
            None => assert!(error.get("client_id").is_none(), "{error}"),
        }
        socket.assert_usable().await;
    }
    // A binary frame: the protocol is JSON text.
    socket
        .stream
        .send(Message::Binary(vec![1, 2, 3]))
        .await
        .expect("sent");
    let error = socket.recv_event().await;
    assert_eq!(error["code"], "unsupported_frame", "{error}");
    socket.assert_usable().await;
    // Nothing was stored.
    let history: Value = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history, json!([]));
}

async fn blank_targets_from_old_clients_mean_absent(app: TestApp) {
    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    socket
        .send_json(json!({"type": "message", "content": "hi", "recipient": "", "room_id": null}))
        .await;
    let frame = socket.recv_event().await;
    assert_eq!(frame["type"], "message", "{frame}");
    assert_eq!(frame["message"]["recipient"], Value::Null);
}

async fn frames_split_into_continuations_are_joined(app: TestApp) {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    let text = json!({"type": "message", "content": "in two parts", "client_id": "p1"}).to_string();
    let (first, second) = text.split_at(10);
    let parts = [
        Frame::message(first.as_bytes().to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(
            second.as_bytes().to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ),
    ];
    for part in parts {
        socket
            .stream
            .send(Message::Frame(part))
            .await
            .expect("sent");
    }
    let (ack, _) = ack_and_echo(&mut socket).await;
    assert_eq!(ack["message"]["content"], "in two parts");
}
