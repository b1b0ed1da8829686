//! A client that sends fast and reads promptly is not a slow reader, even
//! while the store keeps its messages waiting: its connection keeps
//! draining its queue as its frames are being stored.
//!
//! The store is made to stall on purpose (a transaction holding the
//! `messages` table locked, as a long commit queue or a checkpoint would),
//! which is why this runs on PostgreSQL only. Meanwhile its queue gets far
//! more frames than it holds (typing frames: they need no message insert,
//! so they flow while inserts wait).

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Backend, TestApp, WAIT_FOR_A_BLOCKED_INSERT};

/// Messages the sender sends in one burst, all waiting on the store.
const BURST: usize = 20;
/// Frames delivered to the sender while its messages wait: well over the
/// hub's queue of 256, which the old session (not draining while it
/// stored) overflowed and was closed for with 1013.
const DELIVERIES: usize = 1_000;

type Stream = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// What the sender's socket brought, in order.
#[derive(Debug, Default)]
struct Received {
    typing: usize,
    acks: Vec<String>,
    messages: usize,
    close: Option<String>,
}

/// Reads the sender's socket promptly until it has every typing frame,
/// every ack and every message, or the socket ends.
async fn read_promptly(
    mut stream: Stream,
    progress: tokio::sync::watch::Sender<usize>,
) -> Received {
    let mut got = Received::default();
    while got.typing < DELIVERIES || got.acks.len() < BURST || got.messages < BURST {
        let text = match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(frame)))) => {
                got.close = Some(format!("close {frame:?}"));
                return got;
            }
            Ok(Some(Ok(_))) => continue,
            other => {
                got.close = Some(format!("socket ended: {other:?}"));
                return got;
            }
        };
        let frame: Value = serde_json::from_str(&text).expect("one JSON object per frame");
        match frame["type"].as_str() {
            Some("typing") => {
                got.typing += 1;
                progress.send_replace(got.typing);
            }
            Some("ack") => got
                .acks
                .push(frame["client_id"].as_str().expect("client_id").to_owned()),
            Some("message") => got.messages += 1,
            Some("error") => panic!("refused: {frame}"),
            _ => {}
        }
    }
    got
}

#[tokio::test]
async fn a_sender_that_reads_promptly_is_not_closed_while_the_store_holds_its_messages() {
    let app = TestApp::spawn_with(Backend::Postgres, &[("WEBSOCKET_RATE_LIMIT", "0")]).await;
    let sender = app.user("sender").await;
    let typist = app.user("typist").await;
    let (mut to_server, from_server) = app.ws(&sender).await.stream.split();
    let mut typist_ws = app.ws(&typist).await;
    let (progress, mut typed) = tokio::sync::watch::channel(0);
    let reader = tokio::spawn(read_promptly(from_server, progress));

    // Stall every message insert until the end of this transaction.
    let url = app.database_url().expect("a PostgreSQL test app");
    let mut lock = AsyncPgConnection::establish(url)
        .await
        .expect("a connection of the test's own");
    lock.batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
        .await
        .expect("messages locked");

    for i in 0..BURST {
        let frame =
            json!({"type": "message", "content": format!("m{i}"), "client_id": format!("c{i:02}")});
        to_server
            .send(Message::text(frame.to_string()))
            .await
            .expect("sent");
    }
    lock.batch_execute(WAIT_FOR_A_BLOCKED_INSERT)
        .await
        .expect("the first message waits on the lock");

    let typing = json!({"type": "typing", "recipient": sender.username}).to_string();
    for _ in 0..DELIVERIES {
        typist_ws
            .stream
            .send(Message::text(typing.clone()))
            .await
            .expect("typing sent");
    }
    // Every typing frame reaches the sender while its first message is
    // still waiting on the store (the reader ends early if it is closed).
    let typed_in_time = tokio::time::timeout(
        Duration::from_secs(15),
        typed.wait_for(|n| *n >= DELIVERIES),
    )
    .await
    .is_ok_and(|seen| seen.is_ok());
    let typed_while_stalled = *typed.borrow();
    let still_stalled = lock.batch_execute(EXPECT_A_BLOCKED_INSERT).await;
    lock.batch_execute("COMMIT")
        .await
        .expect("messages unlocked");
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reader finishes")
        .expect("reader task");

    assert!(
        typed_in_time,
        "while its messages waited on the store, the sender got {typed_while_stalled} \
         of {DELIVERIES} frames; then {got:?}"
    );
    assert!(
        still_stalled.is_ok(),
        "the store was released before the frames arrived, proving nothing: {still_stalled:?}"
    );
    assert!(got.close.is_none(), "the sender was closed: {got:?}");
    let expected: Vec<String> = (0..BURST).map(|i| format!("c{i:02}")).collect();
    assert_eq!(got.acks, expected, "acks in the order the frames were sent");
    assert_eq!(got.messages, BURST);
}

/// Fails unless an INSERT is still waiting on the `messages` lock.
const EXPECT_A_BLOCKED_INSERT: &str = "
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks
                   WHERE NOT granted AND relation = 'messages'::regclass) THEN
        RAISE EXCEPTION 'no message insert is waiting on the lock';
    END IF;
END $$";
