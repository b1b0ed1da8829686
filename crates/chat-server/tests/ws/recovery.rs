//! Recovery after a disconnect (`/api/ws/connect?since=<message id>`):
//! exactly the visible messages stored after `since`, each once, the
//! replay in the store's order, then live; what an unusable `since` and
//! the replay cap answer; and `client_id` resends across channels and a
//! restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ws::{WsClient, QUIET};
use crate::support::{link, Backend, TestApp, TestUser};

per_backend!(
    live_delivery_follows_the_store_order,
    a_reconnecting_client_gets_exactly_what_it_missed,
    an_unusable_since_is_an_error_frame_then_live,
    the_replay_stops_at_its_limit_and_says_where,
    a_client_id_stores_once_over_both_channels_and_a_restart,
);

/// A live copy of a message at or below the connection's `since` is not
/// sent: the repeat that kept PostgreSQL's positions off. Alice reads `m5`
/// live, drops, and resumes with `since=m5` (nothing to replay); then a
/// copy of `m5`'s live frame arrives, as a publish that trailed its commit
/// would bring it (here from "another instance" over Redis, the one route
/// a test can hold a publish back on without hooks in the server): it
/// carries `m5`'s id and position, and the new connection did not replay
/// `m5`, so only the position rule drops it. A marker published after it
/// on the same channel proves it was handled by then.
#[tokio::test]
async fn a_late_live_copy_at_or_below_since_is_not_sent_again() {
    let redis = redis_url();
    let prefix = format!("recovery-{}", uuid::Uuid::new_v4().simple());
    let vars = [
        ("REDIS_URL", redis.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
    ];
    let app = TestApp::spawn_with(Backend::Postgres, &vars).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut ws = app.ws(&alice).await;
    let m5 = app.send_ok(&bob, json!({"content": "m5"})).await;
    let live = ws.recv_event().await;
    assert_eq!(id_of(&live["message"]), id_of(&m5));
    ws.close().await;

    let mut ws = app.ws_since(&alice, &id_of(&m5)).await;
    let position = position_of(&app, &id_of(&m5)).await;
    let late = format!("elsewhere@{position} {} {}\n{live}", alice.id, id_of(&m5));
    let marker = json!({"type": "typing", "username": "marker", "recipient": alice.username, "room_id": null});
    let marker = format!("elsewhere {}\n{marker}", alice.id);
    publish(&redis, &format!("{prefix}:events"), &[late, marker]).await;
    let next = ws.recv_event().await;
    assert_eq!(next["type"], "typing", "m5 was sent again: {next}");

    // A message after since still goes out.
    let m6 = app.send_ok(&bob, json!({"content": "m6"})).await;
    assert_eq!(id_of(&ws.recv_event().await["message"]), id_of(&m6));
    ws.expect_silence(QUIET).await;
}

/// The test Redis: `TEST_REDIS_URL`, else the local default (what
/// `scripts/test.sh` provides).
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// Publishes `payloads` on `channel`, in order.
async fn publish(redis: &str, channel: &str, payloads: &[String]) {
    let client = redis::Client::open(redis).expect("a valid Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    for payload in payloads {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .expect("published");
        assert_eq!(receivers, 1, "the server subscribes to {channel}");
    }
}

/// The position PostgreSQL gave message `id`, as the store reports it.
async fn position_of(app: &TestApp, id: &str) -> u64 {
    use chat_domain::MessageStore;
    let url = app.database_url().expect("a PostgreSQL app");
    let store = chat_store_postgres::PgStore::connect(url, 1)
        .await
        .expect("the test database answers");
    let id = id.parse().expect("a message id");
    let (_, position) = store
        .message_by_id_positioned(id)
        .await
        .expect("reads")
        .expect("stored");
    position.expect("PostgreSQL reports positions")
}

/// Messages stored while the client is away.
const GAP: usize = 300;
/// Messages each concurrent writer stores while the client reconnects.
const DURING: usize = 60;

/// Who sends what, and whether alice (the reconnecting client) may read it.
struct Cast {
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    /// A room of alice and bob.
    ours: String,
    /// A room of carol and bob, without alice.
    theirs: String,
}

impl Cast {
    async fn new(app: &TestApp) -> Self {
        let (alice, bob, carol) = (
            app.user("alice").await,
            app.user("bob").await,
            app.user("carol").await,
        );
        let ours = app.room(&bob, "ours", &[&alice]).await;
        let theirs = app.room(&carol, "theirs", &[&bob]).await;
        Self {
            ours: ours["id"].as_str().expect("room id").to_owned(),
            theirs: theirs["id"].as_str().expect("room id").to_owned(),
            alice,
            bob,
            carol,
        }
    }

    /// Message `n` of a mix sent over HTTP: its sender, body, and whether
    /// alice may read it. Alice's own messages (another device of hers)
    /// count as missed too.
    fn http_message(&self, n: usize) -> (&TestUser, Value, bool) {
        let content = format!("gap {n}");
        match n % 8 {
            0 => (&self.bob, json!({"content": content}), true),
            1 => (
                &self.bob,
                json!({"content": content, "recipient": "alice"}),
                true,
            ),
            2 => (
                &self.bob,
                json!({"content": content, "room_id": self.ours}),
                true,
            ),
            3 => (
                &self.alice,
                json!({"content": content, "recipient": "bob"}),
                true,
            ),
            4 => (
                &self.carol,
                json!({"content": content, "recipient": "alice"}),
                true,
            ),
            // Someone else's direct message, and a room alice is not in.
            5 => (
                &self.bob,
                json!({"content": content, "recipient": "carol"}),
                false,
            ),
            6 => (
                &self.carol,
                json!({"content": content, "room_id": self.theirs}),
                false,
            ),
            _ => (
                &self.carol,
                json!({"content": content, "recipient": "bob"}),
                false,
            ),
        }
    }

    /// Frame `n` of bob's WebSocket writer, and whether alice may read it.
    fn ws_frame(&self, n: usize) -> (Value, bool) {
        let content = format!("live {n}");
        let client_id = format!("live-{n}");
        let (frame, visible) = match n % 4 {
            0 => (json!({"content": content}), true),
            1 => (json!({"content": content, "room_id": self.ours}), true),
            2 => (json!({"content": content, "room_id": self.theirs}), false),
            _ => (json!({"content": content, "recipient": "carol"}), false),
        };
        let mut frame = frame;
        frame["type"] = json!("message");
        frame["client_id"] = json!(client_id);
        (frame, visible)
    }
}

/// Ids of stored messages, split by whether alice may read them.
#[derive(Default)]
struct Written {
    visible: Vec<String>,
    hidden: Vec<String>,
}

impl Written {
    fn add(&mut self, id: String, visible: bool) {
        if visible {
            self.visible.push(id);
        } else {
            self.hidden.push(id);
        }
    }

    fn absorb(&mut self, other: Written) {
        self.visible.extend(other.visible);
        self.hidden.extend(other.hidden);
    }
}

/// Stores messages `numbers` of the HTTP mix, four at a time; bumps
/// `stored` as each is stored.
async fn write_http(
    app: &TestApp,
    cast: &Cast,
    numbers: std::ops::Range<usize>,
    stored: &AtomicUsize,
) -> Written {
    let results: Vec<(String, bool)> = stream::iter(numbers)
        .map(|n| async move {
            let (sender, body, visible) = cast.http_message(n);
            let message = app.send_ok(sender, body).await;
            stored.fetch_add(1, Ordering::Relaxed);
            (id_of(&message), visible)
        })
        .buffered(4)
        .collect()
        .await;
    let mut written = Written::default();
    for (id, visible) in results {
        written.add(id, visible);
    }
    written
}

/// Bob stores `count` messages over his WebSocket, each acknowledged
/// before the next; bumps `stored` as each is acknowledged.
async fn write_ws(mut bob: WsClient, cast: &Cast, count: usize, stored: &AtomicUsize) -> Written {
    let mut written = Written::default();
    for n in 0..count {
        let (frame, visible) = cast.ws_frame(n);
        let client_id = frame["client_id"].clone();
        bob.send_json(frame).await;
        let ack = loop {
            let frame = bob.recv_json().await;
            if frame["type"] == "ack" {
                break frame;
            }
            assert_ne!(frame["type"], "error", "bob's send refused: {frame}");
        };
        assert_eq!(ack["client_id"], client_id, "{ack}");
        written.add(id_of(&ack["message"]), visible);
        stored.fetch_add(1, Ordering::Relaxed);
    }
    bob.close().await;
    written
}

/// What a socket received: the message ids of `message` and
/// `direct_message` frames in arrival order, and any other frame except
/// presence.
#[derive(Default, Debug)]
struct Received {
    messages: Vec<String>,
    others: Vec<Value>,
}

impl Received {
    fn take(&mut self, frame: Value) {
        match frame["type"].as_str() {
            Some("message" | "direct_message") => self.messages.push(id_of(&frame["message"])),
            Some("presence") => {}
            _ => self.others.push(frame),
        }
    }
}

/// Reads `ws` until `done` is set and then nothing came for a second.
async fn read_until_quiet(ws: &mut WsClient, done: &AtomicBool) -> Received {
    let mut received = Received::default();
    loop {
        let quiet_enough = done.load(Ordering::Relaxed);
        let wait = if quiet_enough {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(50)
        };
        match ws.recv_within(wait).await {
            Some(frame) => received.take(frame),
            None if quiet_enough => return received,
            None => {}
        }
    }
}

/// The visible feed of `user` after message `after`, every page, in the
/// store's order (the forward pager of SPEC).
async fn history_after(app: &TestApp, user: &TestUser, after: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = format!("/api/messages?after={after}&limit=200");
    loop {
        let res = app.get(&path, &user.token).send().await.expect("history");
        assert_eq!(res.status(), StatusCode::OK);
        let next = link(&res, "next");
        let page: Vec<Value> = res.json().await.expect("a page");
        ids.extend(page.iter().map(id_of));
        match next {
            Some(next) if !page.is_empty() => path = next,
            _ => return ids,
        }
    }
}

fn id_of(message: &Value) -> String {
    message["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a message id in {message}"))
        .to_owned()
}

/// Waits until `counter` reaches `at_least`.
async fn until(counter: &AtomicUsize, at_least: usize) {
    while counter.load(Ordering::Relaxed) < at_least {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Messages stored at once by writers whose requests two server threads
/// serve reach a connection in the store's order, so that "the last
/// message received" is a position a reconnect can resume from.
async fn live_delivery_follows_the_store_order(backend: Backend) {
    const WRITERS: usize = 4;
    const EACH: usize = 100;
    let app = TestApp::spawn_with_workers(backend, &[], 2).await;
    let alice = app.user("alice").await;
    let mut writers = Vec::new();
    for n in 0..WRITERS {
        writers.push(app.user(&format!("writer{n}")).await);
    }
    let mut ws = app.ws(&alice).await;
    let start = app.send_ok(&alice, json!({"content": "start"})).await;
    assert_eq!(id_of(&ws.recv_event().await["message"]), id_of(&start));
    let done = AtomicBool::new(false);
    let app = &app;
    let write = async {
        stream::iter(0..WRITERS * EACH)
            .for_each_concurrent(2 * WRITERS, |n| {
                let writer = &writers[n % WRITERS];
                async move {
                    app.send_ok(writer, json!({"content": format!("m{n}")}))
                        .await;
                }
            })
            .await;
        done.store(true, Ordering::Relaxed);
    };
    let ((), received) = tokio::join!(write, read_until_quiet(&mut ws, &done));
    assert!(received.others.is_empty(), "{:?}", received.others);
    let store = history_after(app, &alice, &id_of(&start)).await;
    assert_eq!(store.len(), WRITERS * EACH);
    assert!(
        received.messages == store,
        "live order differs from the store's order: {} of {} positions differ",
        received
            .messages
            .iter()
            .zip(&store)
            .filter(|(a, b)| a != b)
            .count(),
        store.len()
    );
}

async fn a_reconnecting_client_gets_exactly_what_it_missed(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "0")]).await;
    let cast = Cast::new(&app).await;
    // Alice reads one message live, then her connection drops.
    let mut ws = app.ws(&cast.alice).await;
    let seen = app.send_ok(&cast.bob, json!({"content": "before"})).await;
    assert_eq!(id_of(&ws.recv_event().await["message"]), id_of(&seen));
    ws.close().await;

    let stored = AtomicUsize::new(0);
    let mut written = write_http(&app, &cast, 0..GAP, &stored).await;
    let gap: Vec<String> = written.visible.clone();

    // Two writers keep storing while she reconnects and is replayed to.
    let bob_ws = app.ws(&cast.bob).await;
    let during = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let writers = async {
        let (over_ws, over_http) = tokio::join!(
            write_ws(bob_ws, &cast, DURING, &during),
            write_http(&app, &cast, GAP..GAP + DURING, &during),
        );
        done.store(true, Ordering::Relaxed);
        (over_ws, over_http)
    };
    let reader = async {
        until(&during, 10).await;
        let mut ws = app.ws_since(&cast.alice, &id_of(&seen)).await;
        let received = read_until_quiet(&mut ws, &done).await;
        ws.assert_usable().await;
        received
    };
    let ((over_ws, over_http), received) = tokio::join!(writers, reader);
    written.absorb(over_ws);
    written.absorb(over_http);

    assert!(received.others.is_empty(), "{:?}", received.others);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &received.messages {
        *counts.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "received twice: {repeated:?}");
    let got: HashSet<&str> = counts.keys().copied().collect();
    let hidden: Vec<_> = written
        .hidden
        .iter()
        .filter(|id| got.contains(id.as_str()))
        .collect();
    assert!(hidden.is_empty(), "not hers to read: {hidden:?}");
    let missed: Vec<_> = written
        .visible
        .iter()
        .filter(|id| !got.contains(id.as_str()))
        .collect();
    assert!(missed.is_empty(), "{} missed: {missed:?}", missed.len());
    assert_eq!(got.len(), written.visible.len(), "nothing else arrived");

    // The store agrees, and the replay (everything up to the last message
    // of the gap) came in the store's order.
    let store = history_after(&app, &cast.alice, &id_of(&seen)).await;
    let store_set: HashSet<&str> = store.iter().map(String::as_str).collect();
    assert_eq!(store_set, got, "the visible feed after since");
    let position: HashMap<&str, usize> = store
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let gap_set: HashSet<&str> = gap.iter().map(String::as_str).collect();
    let last_gap = received
        .messages
        .iter()
        .rposition(|id| gap_set.contains(id.as_str()))
        .expect("the gap was replayed");
    let replayed: Vec<usize> = received.messages[..=last_gap]
        .iter()
        .map(|id| position[id.as_str()])
        .collect();
    assert!(
        replayed.windows(2).all(|w| w[0] < w[1]),
        "the replay follows the store's order"
    );
    assert!(replayed.len() >= gap.len());
}

async fn an_unusable_since_is_an_error_frame_then_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cast = Cast::new(&app).await;
    let theirs = app
        .send_ok(&cast.bob, json!({"content": "psst", "recipient": "carol"}))
        .await;
    let cases = [
        (uuid::Uuid::now_v7().to_string(), "message_not_found"),
        (id_of(&theirs), "message_not_found"),
        ("-42".to_owned(), "validation_error"),
    ];
    for (since, code) in cases {
        let mut ws = app.ws_since(&cast.alice, &since).await;
        let error = ws.recv_event().await;
        assert_eq!(error["type"], "error", "since={since}: {error}");
        assert_eq!(error["code"], code, "since={since}: {error}");
        assert!(error["error"].as_str().is_some_and(|e| e.contains("since")));
        // Nothing was replayed, and the connection is live.
        ws.expect_silence(QUIET).await;
        let live = app.send_ok(&cast.bob, json!({"content": "now"})).await;
        assert_eq!(id_of(&ws.recv_event().await["message"]), id_of(&live));
        ws.assert_usable().await;
        ws.close().await;
    }
}

async fn the_replay_stops_at_its_limit_and_says_where(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_REPLAY_LIMIT", "5")]).await;
    let cast = Cast::new(&app).await;
    let since = app.send_ok(&cast.bob, json!({"content": "since"})).await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let message = app
            .send_ok(&cast.bob, json!({"content": format!("m{n}")}))
            .await;
        sent.push(id_of(&message));
    }
    // Exactly the limit: all of it, and no truncation.
    let mut ws = app.ws_since(&cast.alice, &id_of(&since)).await;
    for id in &sent {
        assert_eq!(&id_of(&ws.recv_event().await["message"]), id);
    }
    ws.expect_silence(QUIET).await;
    ws.close().await;

    for n in 5..8 {
        let message = app
            .send_ok(&cast.bob, json!({"content": format!("m{n}")}))
            .await;
        sent.push(id_of(&message));
    }
    let mut ws = app.ws_since(&cast.alice, &id_of(&since)).await;
    for id in &sent[..5] {
        assert_eq!(&id_of(&ws.recv_event().await["message"]), id);
    }
    let truncated = ws.recv_event().await;
    assert_eq!(truncated["type"], "error", "{truncated}");
    assert_eq!(truncated["code"], "replay_truncated", "{truncated}");
    let last = &sent[4];
    let error = truncated["error"].as_str().expect("a sentence");
    let cursor = error
        .split("since=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the error names the cursor to resume from");
    // Over HTTP from the last replayed id, or by resuming from the cursor:
    // the rest either way; the socket is live.
    assert_eq!(history_after(&app, &cast.alice, last).await, sent[5..]);
    let mut rest = app.ws_since(&cast.alice, cursor).await;
    for id in &sent[5..] {
        assert_eq!(&id_of(&rest.recv_event().await["message"]), id);
    }
    rest.close().await;
    let live = app.send_ok(&cast.bob, json!({"content": "live"})).await;
    assert_eq!(id_of(&ws.recv_event().await["message"]), id_of(&live));
}

async fn a_client_id_stores_once_over_both_channels_and_a_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let cast = Cast::new(&app).await;
    let mut ws = app.ws(&cast.alice).await;
    ws.send_json(json!({"type": "message", "content": "one", "client_id": "k1"}))
        .await;
    let first = acked(&mut ws, "k1").await;
    let res = app
        .send(&cast.alice, json!({"content": "two", "client_id": "k2"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let second: Value = res.json().await.expect("message");
    let originals = [(String::from("k1"), first), (String::from("k2"), second)];
    assert_resends_store_nothing(&app, &cast.alice, &mut ws, &originals).await;
    ws.close().await;

    if backend == Backend::Postgres {
        // A deploy: the same database, a new process.
        app = app.restart().await;
        let mut ws = app.ws(&cast.alice).await;
        assert_resends_store_nothing(&app, &cast.alice, &mut ws, &originals).await;
        ws.close().await;
    }
    let history: Vec<Value> = app
        .get("/api/messages?limit=200", &cast.alice.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("a page");
    let contents: Vec<&str> = history
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["one", "two"], "each stored once");
}

/// Resends each `(client_id, original)` over the WebSocket and over HTTP,
/// with new content: each answer is the original, and nothing new is
/// delivered.
async fn assert_resends_store_nothing(
    app: &TestApp,
    user: &TestUser,
    ws: &mut WsClient,
    originals: &[(String, Value)],
) {
    for (client_id, original) in originals {
        ws.send_json(json!({"type": "message", "content": "again", "client_id": client_id}))
            .await;
        let again = acked(ws, client_id).await;
        assert_eq!(&again, original, "the WebSocket resend of {client_id}");
        let res = app
            .send(user, json!({"content": "again", "client_id": client_id}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "an HTTP resend is 200");
        let again: Value = res.json().await.expect("message");
        assert_eq!(&again, original, "the HTTP resend of {client_id}");
    }
    ws.expect_silence(QUIET).await;
}

/// Reads until the `ack` of `client_id` and returns its message.
async fn acked(ws: &mut WsClient, client_id: &str) -> Value {
    loop {
        let frame = ws.recv_event().await;
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["client_id"], client_id, "{frame}");
                return frame["message"].clone();
            }
            // Its own live copy of a first send; a resend ("again") must
            // not be delivered.
            Some("message") if frame["message"]["content"] != "again" => continue,
            _ => panic!("expected the ack of {client_id}, got {frame}"),
        }
    }
}
