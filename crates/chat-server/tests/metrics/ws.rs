//! WebSocket series: open connections, live deliveries, messages sent
//! over the socket, the per-connection send limiter, and slow readers
//! closed with 1013.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::exclusive;
use crate::exposition::{scrape, scrape_until, Scrape};
use crate::support::ws::QUIET;
use crate::support::{Backend, TestApp};

backend_tests!(connections_deliveries_and_socket_sends_are_counted);
per_backend!(
    refused_socket_sends_are_counted,
    a_slow_reader_closed_with_1013_is_counted
);

const OPEN: &str = "chat_ws_connections";
const DELIVERED: &str = "chat_ws_deliveries_total";
const STORED: &str = "chat_messages_stored_total";
const SLOW: &str = "chat_ws_slow_reader_disconnects_total";
/// How long a counter may lag the frame or close that it counts.
const LAG: Duration = Duration::from_secs(5);

async fn connections_deliveries_and_socket_sends_are_counted(app: TestApp) {
    let _one = exclusive().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let before = scrape(&app.client, &app.base_url).await;
    let open_before = before.value(OPEN, &[]);
    let delivered_before = before.value(DELIVERED, &[]);

    // Bob follows alice: the answer comes through his presence, as a
    // delivery (1).
    let mut bob_ws = app.ws(&bob).await;
    bob_ws
        .send_json(json!({"type": "presence_subscribe", "usernames": ["alice"]}))
        .await;
    assert_eq!(bob_ws.recv_json().await["type"], "presence");
    // Deliveries: a message over HTTP, to bob (1).
    app.send_ok(&alice, json!({"content": "over http"})).await;
    assert_eq!(bob_ws.recv_json().await["type"], "message");
    // Alice's `online`, to bob who follows her (1).
    let mut alice_ws = app.ws(&alice).await;
    assert_eq!(bob_ws.recv_json().await["type"], "presence");
    // A message over the socket, to both (2); the ack is a reply, not a
    // delivery.
    alice_ws
        .send_json(json!({"type": "message", "content": "over ws", "client_id": "w1"}))
        .await;
    let mut alice_got = vec![
        alice_ws.recv_json().await["type"].clone(),
        alice_ws.recv_json().await["type"].clone(),
    ];
    alice_got.sort_by_key(Value::to_string);
    assert_eq!(alice_got, [json!("ack"), json!("message")]);
    assert_eq!(bob_ws.recv_json().await["type"], "message");

    let during = scrape_until(&app.client, &app.base_url, LAG, |s| {
        s.value(DELIVERED, &[]) - delivered_before >= 5.0
    })
    .await;
    assert_eq!(during.value(DELIVERED, &[]) - delivered_before, 5.0);
    assert_eq!(during.value(OPEN, &[]) - open_before, 2.0);
    assert_eq!(during.types.get(OPEN).map(String::as_str), Some("gauge"));
    let moved =
        |labels: &[(&str, &str)]| during.value(STORED, labels) - before.value(STORED, labels);
    assert_eq!(moved(&[("kind", "global"), ("transport", "ws")]), 1.0);
    assert_eq!(moved(&[("kind", "global"), ("transport", "http")]), 1.0);

    alice_ws.close().await;
    bob_ws.close().await;
    let after = scrape_until(&app.client, &app.base_url, LAG, |s| {
        s.value(OPEN, &[]) <= open_before
    })
    .await;
    assert_eq!(
        after.value(OPEN, &[]),
        open_before,
        "closed sockets are not counted"
    );
}

async fn refused_socket_sends_are_counted(backend: Backend) {
    // 1 frame a second, bursts of 2.
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "1")]).await;
    let _one = exclusive().await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let mut ws = app.ws(&alice).await;
    let before = scrape(&app.client, &app.base_url).await;

    for _ in 0..5 {
        ws.send_json(json!({"type": "typing", "recipient": "bob"}))
            .await;
    }
    let mut refused = 0;
    while let Some(frame) = ws.recv_within(QUIET).await {
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "rate_limited", "{frame}");
            refused += 1;
        }
    }
    assert!(refused >= 1, "5 frames at once are over a burst of 2");

    let after = scrape(&app.client, &app.base_url).await;
    let moved = |labels: &[(&str, &str)]| {
        after.value("chat_rate_limited_total", labels)
            - before.value("chat_rate_limited_total", labels)
    };
    assert_eq!(moved(&[("limiter", "ws_send")]), f64::from(refused));
    assert_eq!(moved(&[("limiter", "auth")]), 0.0);

    // Leave no socket open for the next test sharing this process.
    ws.close().await;
    let open_before = before.value(OPEN, &[]) - 1.0;
    scrape_until(&app.client, &app.base_url, LAG, |s| {
        s.value(OPEN, &[]) <= open_before
    })
    .await;
}

fn slow_closed(scrape: &Scrape) -> f64 {
    scrape.sum(SLOW, &[])
}

async fn a_slow_reader_closed_with_1013_is_counted(backend: Backend) {
    // A short write wait, so that the stalled client is cut off after a
    // few dozen messages fill the buffers on the way to it (or, if those
    // take more, after its queue of 256 fills: either reason counts).
    let app = TestApp::spawn_with(
        backend,
        &[
            ("WEBSOCKET_RATE_LIMIT", "0"),
            ("WEBSOCKET_WRITE_WAIT", "300ms"),
        ],
    )
    .await;
    let _one = exclusive().await;
    let alice = app.user("alice").await;
    let slowpoke = app.user("slowpoke").await;
    let before = scrape(&app.client, &app.base_url).await;
    let mut stalled = app.stalled_ws(&slowpoke).await;

    let padding = "x".repeat(3_900);
    let mut sent = 0;
    let mut now = before.clone();
    while slow_closed(&now) == slow_closed(&before) {
        // Loopback buffers take megabytes before writes to the stalled
        // client block: batches of sends, a few at a time, checked between.
        assert!(
            sent < 3_000,
            "{sent} messages and the stalled client is still open"
        );
        futures_util::stream::iter(sent..sent + 100)
            .for_each_concurrent(8, |n| {
                let (app, alice, padding) = (&app, &alice, &padding);
                async move {
                    app.send_ok(alice, json!({"content": format!("{n} {padding}")}))
                        .await;
                }
            })
            .await;
        sent += 100;
        now = scrape(&app.client, &app.base_url).await;
    }
    // Nothing else is closed meanwhile (the write wait is long past).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = scrape(&app.client, &app.base_url).await;
    assert_eq!(
        slow_closed(&now) - slow_closed(&before),
        1.0,
        "after {sent} messages"
    );
    for labels in now.label_sets(SLOW) {
        let reason = labels.get("reason").map(String::as_str);
        assert!(
            matches!(reason, Some("write_timeout" | "queue_full")),
            "{labels:?}"
        );
    }

    // The client, reading at last, finds the close frame (1013) after
    // part of the backlog, or the connection gone.
    let code = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(frame) = stalled.next().await {
            match frame {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled socket ends");
    assert!(matches!(code, Some(1013) | None), "close code {code:?}");
    let open_before = before.value(OPEN, &[]);
    let after = scrape_until(&app.client, &app.base_url, LAG, |s| {
        s.value(OPEN, &[]) <= open_before
    })
    .await;
    assert_eq!(after.value(OPEN, &[]), open_before);
}
