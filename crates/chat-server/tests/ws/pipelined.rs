//! One connection's messages are pipelined into the store: sent back to
//! back, they are stored, acknowledged and delivered in the order sent,
//! without one commit's wait each; one that fails is answered for itself
//! and leaves the others as they were.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{link, Backend, TestApp, TestUser};

per_backend!(a_connections_burst_is_stored_and_acked_in_order_around_a_refused_message);

/// Messages in the burst.
const BURST: usize = 2_000;
/// The one sent to a room its sender was just removed from.
const REFUSED: usize = 1_000;

type Stream = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// What the sender's socket brought, in order.
#[derive(Debug, Default)]
struct Received {
    /// `ack` and `error` frames: (client id, the acked message's id or
    /// the error's code).
    replies: Vec<(String, Result<String, String>)>,
    /// Contents of the `message` frames (the sender's own global messages).
    delivered: Vec<String>,
}

/// Reads the sender's socket promptly until every reply and delivery has
/// come (or nothing came for a long while: the test then fails on what is
/// missing).
async fn read_all(mut stream: Stream) -> Received {
    let mut got = Received::default();
    while got.replies.len() < BURST || got.delivered.len() < BURST - 1 {
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(30), stream.next()).await
        else {
            return got;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).expect("one JSON object per frame");
        let client_id = || frame["client_id"].as_str().expect("a client_id").to_owned();
        match frame["type"].as_str() {
            Some("ack") => {
                let id = frame["message"]["id"].as_str().expect("the message's id");
                got.replies.push((client_id(), Ok(id.to_owned())));
            }
            Some("error") => {
                let code = frame["code"].as_str().expect("a code").to_owned();
                got.replies.push((client_id(), Err(code)));
            }
            Some("message") => got.delivered.push(
                frame["message"]["content"]
                    .as_str()
                    .expect("content")
                    .to_owned(),
            ),
            _ => {}
        }
    }
    got
}

/// The ids of `user`'s visible feed after message `after`, every page, in
/// the store's order.
async fn stored_after(app: &TestApp, user: &TestUser, after: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = format!("/api/messages?after={after}&limit=200");
    loop {
        let res = app.get(&path, &user.token).send().await.expect("history");
        assert_eq!(res.status(), StatusCode::OK);
        let next = link(&res, "next");
        let page: Vec<Value> = res.json().await.expect("a page");
        ids.extend(
            page.iter()
                .map(|m| m["id"].as_str().expect("an id").to_owned()),
        );
        match next {
            Some(next) if !page.is_empty() => path = next,
            _ => return ids,
        }
    }
}

/// 2,000 messages sent back to back on one connection, the 1,000th to a
/// room its sender was removed from just before: that one is refused
/// (`not_a_member`, with its `client_id`) in its place, the 1,999 others
/// are acknowledged, delivered and stored in the order sent.
async fn a_connections_burst_is_stored_and_acked_in_order_around_a_refused_message(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[("WEBSOCKET_RATE_LIMIT", "0"), ("MESSAGE_RATE_LIMIT", "0")],
    )
    .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&bob, "team", &[&alice]).await;
    let room_id = room["id"].as_str().expect("a room id").to_owned();
    let start = app.send_ok(&alice, json!({"content": "start"})).await;
    let start = start["id"].as_str().expect("an id").to_owned();

    let (mut to_server, from_server) = app.ws(&alice).await.stream.split();
    let reader = tokio::spawn(read_all(from_server));
    let removed = app
        .delete(
            &format!("/api/rooms/{room_id}/members/{}", alice.id),
            &bob.token,
        )
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), StatusCode::OK);

    for i in 0..BURST {
        let mut frame =
            json!({"type": "message", "content": format!("m{i}"), "client_id": format!("c{i}")});
        if i == REFUSED {
            frame["room_id"] = json!(room_id);
        }
        to_server
            .feed(Message::text(frame.to_string()))
            .await
            .expect("sent");
    }
    to_server.flush().await.expect("sent");
    let got = reader.await.expect("the reader ran");

    let client_ids: Vec<&str> = got.replies.iter().map(|(id, _)| id.as_str()).collect();
    let sent: Vec<String> = (0..BURST).map(|i| format!("c{i}")).collect();
    assert_eq!(client_ids, sent, "one reply per message, in the order sent");
    for (i, (client_id, reply)) in got.replies.iter().enumerate() {
        match reply {
            Err(code) if i == REFUSED => assert_eq!(code, "not_a_member"),
            Ok(_) if i != REFUSED => {}
            other => panic!("{client_id}: {other:?}"),
        }
    }
    let acked: Vec<String> = got
        .replies
        .iter()
        .filter_map(|(_, reply)| reply.clone().ok())
        .collect();
    let expected: Vec<String> = (0..BURST)
        .filter(|&i| i != REFUSED)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(got.delivered, expected, "delivered in the order sent");
    assert_eq!(
        stored_after(&app, &alice, &start).await,
        acked,
        "stored in the order sent (and acked), the refused one not at all"
    );
    if let Some(url) = app.database_url() {
        // Sent one after the other, they shared commits: one commit each
        // (the connection waiting for every commit before reading its next
        // frame) would be 2,000 transactions.
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .expect("a connection of the test's own");
        let shared = conn.batch_execute(FEWER_COMMITS_THAN_HALF_THE_BURST).await;
        assert!(shared.is_ok(), "not pipelined: {shared:?}");
    }
}

/// Fails unless the messages were written in fewer transactions (rows of
/// one transaction share its `xmin`) than half the burst.
const FEWER_COMMITS_THAN_HALF_THE_BURST: &str = "
DO $$
DECLARE transactions bigint;
BEGIN
    SELECT count(DISTINCT xmin::text) INTO transactions FROM messages;
    IF transactions >= 1000 THEN
        RAISE EXCEPTION 'the burst took % commits', transactions;
    END IF;
END $$";
