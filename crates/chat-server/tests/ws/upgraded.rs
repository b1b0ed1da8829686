//! What the server's own upgrade path does that a client can see: it
//! takes an accepted WebSocket off the HTTP dispatcher (`chat_http::server`)
//! and serves it on the bare socket, so bytes the client sent right behind
//! its upgrade request must still reach the session, and an upgrade
//! request answered with anything but 101 ends its connection.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::support::raw::{client_text_frame, read_head};
use crate::support::ws::{CONNECT_PATH, PATIENCE};
use crate::support::{Backend, TestApp};

/// Everything until the server closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("reads");
    String::from_utf8(all).expect("a text response")
}

#[tokio::test]
async fn a_frame_sent_right_behind_the_upgrade_request_is_answered() {
    let app = TestApp::spawn(Backend::Memory).await;
    let alice = app.user("alice").await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connects");
    // The request and the first frame in one write, as a client that does
    // not wait for the 101 sends them.
    let auth = format!("Authorization: Bearer {}\r\n", alice.token);
    let mut bytes = app.raw_upgrade_request(CONNECT_PATH, &auth).into_bytes();
    bytes.extend(client_text_frame(r#"{"type":"ping"}"#));
    stream.write_all(&bytes).await.expect("writes");

    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut ws = WebSocketStream::from_partially_read(stream, rest, Role::Client, None).await;
    let mut types = Vec::new();
    while types.last().map(String::as_str) != Some("pong") {
        use futures_util::StreamExt;
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        let frame: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
        types.push(frame["type"].as_str().unwrap_or_default().to_owned());
        assert!(types.len() <= 3, "no pong: {types:?}");
    }
    assert_eq!(types.first().map(String::as_str), Some("connection"));
}

#[tokio::test]
async fn a_refused_upgrade_gets_its_json_error_and_the_connection_closes() {
    let app = TestApp::spawn(Backend::Memory).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connects");
    let request = app.raw_upgrade_request(CONNECT_PATH, "");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let response = read_to_close(&mut stream).await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test]
async fn an_upgrade_request_to_another_route_is_served_then_closed() {
    let app = TestApp::spawn(Backend::Memory).await;
    for (path, status) in [("/health", "200"), ("/nowhere", "404")] {
        let mut stream = TcpStream::connect(app.addr).await.expect("connects");
        let request = app.raw_upgrade_request(path, "");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let response = read_to_close(&mut stream).await;
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {head}"
        );
        let body: Value = serde_json::from_str(body).expect("a JSON body");
        assert!(body.is_object(), "{path}: {body}");
    }
    // Plain requests on a kept-alive connection are not affected.
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let res = client
            .get(format!("{}/health", app.base_url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("health");
        assert_eq!(res.status().as_u16(), 200);
    }
}
