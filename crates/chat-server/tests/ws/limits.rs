//! Limits: frame size (1009), the frame rate limit, the heartbeat and token
//! expiry.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Backend, TestApp, TestUser};

backend_tests!(
    a_frame_over_the_size_limit_closes_with_1009,
    continuations_over_the_size_limit_close_with_1009,
);

per_backend!(
    sending_faster_than_the_rate_limit_is_refused_and_stores_nothing,
    every_client_frame_counts_against_the_rate_limit,
    the_server_pings_and_closes_a_silent_client,
    a_socket_closes_when_its_token_expires,
);

async fn a_frame_over_the_size_limit_closes_with_1009(app: TestApp) {
    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    // At the limit is fine (it is then refused for its content, not size).
    let at_limit = json!({"type": "message", "content": "x".repeat(4096 - 31)}).to_string();
    assert_eq!(at_limit.len(), 4096);
    socket.send_text(&at_limit).await;
    assert_eq!(socket.recv_event().await["code"], "validation_error");
    let over = json!({"type": "message", "content": "x".repeat(4096 - 30)}).to_string();
    socket.send_text(&over).await;
    assert_eq!(socket.expect_close().await, 1009);
}

async fn continuations_over_the_size_limit_close_with_1009(app: TestApp) {
    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    // Each fragment is small; together they are over the limit.
    let parts = [
        Frame::message(vec![b' '; 3000], OpCode::Data(Data::Text), false),
        Frame::message(vec![b' '; 3000], OpCode::Data(Data::Continue), true),
    ];
    for part in parts {
        socket
            .stream
            .send(Message::Frame(part))
            .await
            .expect("sent");
    }
    assert_eq!(socket.expect_close().await, 1009);
}

/// `n` message frames with client ids, sent without waiting; then the
/// answers (`ack` or `error`), in order.
async fn burst(app: &TestApp, user: &TestUser, n: usize) -> Vec<Value> {
    let mut socket = app.ws(user).await;
    for i in 0..n {
        socket
            .send_json(json!({"type": "message", "content": format!("m{i}"), "client_id": format!("c{i}")}))
            .await;
    }
    let mut answers = Vec::new();
    while answers.len() < n {
        let frame = socket.recv_event().await;
        if frame["type"] != "message" {
            answers.push(frame);
        }
    }
    answers
}

async fn sending_faster_than_the_rate_limit_is_refused_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "2")]).await;
    let alice = app.user("alice").await;
    let answers = burst(&app, &alice, 12).await;
    let acked: Vec<&Value> = answers.iter().filter(|a| a["type"] == "ack").collect();
    let refused: Vec<&Value> = answers.iter().filter(|a| a["type"] == "error").collect();
    assert_eq!(acked.len() + refused.len(), 12, "{answers:?}");
    // A burst of twice the rate (4), maybe one more as time passes.
    assert!((4..=6).contains(&acked.len()), "{answers:?}");
    for error in &refused {
        assert_eq!(error["code"], "rate_limited", "{error}");
        assert!(error["client_id"].is_string(), "{error}");
    }
    let history: Vec<Value> = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history.len(), acked.len());

    // 0 turns the limit off.
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "0")]).await;
    let bob = app.user("bob").await;
    let answers = burst(&app, &bob, 30).await;
    assert!(answers.iter().all(|a| a["type"] == "ack"), "{answers:?}");
}

/// Pings (JSON and WebSocket), malformed frames and binary frames count
/// like messages: past the burst, each is answered `rate_limited` and
/// nothing else happens.
async fn every_client_frame_counts_against_the_rate_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "2")]).await;
    let alice = app.user("alice").await;
    let mut socket = app.ws(&alice).await;
    let frames = [
        Message::text(json!({"type": "ping"}).to_string()),
        Message::text("not json"),
        Message::binary(vec![1, 2, 3]),
        Message::Ping(vec![7]),
    ];
    for frame in frames.iter().cycle().take(12) {
        socket.stream.send(frame.clone()).await.expect("sent");
    }
    let mut limited = 0;
    let mut answered = 0;
    // Eleven text answers: every frame but the WebSocket ping within the
    // burst (answered with a pong, which the reader skips).
    while limited + answered < 11 {
        let Some(frame) = socket.recv_within(Duration::from_secs(2)).await else {
            break;
        };
        match frame["code"].as_str() {
            Some("rate_limited") => limited += 1,
            _ => answered += 1,
        }
    }
    // A burst of twice the rate (4), maybe one more as time passes; the
    // other eight are refused.
    assert!(
        (7..=8).contains(&limited),
        "{limited} limited, {answered} answered"
    );
    assert_eq!(limited + answered, 11);
}

async fn the_server_pings_and_closes_a_silent_client(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("WEBSOCKET_PING_PERIOD", "100ms"),
            ("WEBSOCKET_PONG_WAIT", "400ms"),
        ],
    )
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut lively = app.ws(&alice).await;
    let mut silent = app.ws(&bob).await;

    // A client that reads answers pings (tungstenite does it while
    // reading) and stays connected well past the pong wait.
    let reading = tokio::spawn(async move {
        let mut pings = 0;
        let until = tokio::time::Instant::now() + Duration::from_millis(1200);
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, lively.stream.next()).await {
            if let Ok(Message::Ping(_)) = frame {
                pings += 1;
            }
        }
        (pings, lively)
    });

    // The one that does not read (so never answers) is closed once the
    // pong wait is over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(silent.expect_close().await, 1001);

    let (pings, mut lively) = reading.await.expect("reader");
    assert!(pings >= 5, "{pings} pings in 1.2 s");
    lively.assert_usable().await;
}

async fn a_socket_closes_when_its_token_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.user("alice").await;
    let claims = app.claims(&alice, 2);
    let short = TestUser {
        token: app.sign(&claims, jsonwebtoken::Algorithm::HS256, &app.jwt_secret),
        ..alice.clone()
    };
    let started = tokio::time::Instant::now();
    let mut socket = app.ws(&short).await;
    assert_eq!(socket.expect_close().await, 1008);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // A fresh token opens a new one.
    app.ws(&alice).await.assert_usable().await;
}
