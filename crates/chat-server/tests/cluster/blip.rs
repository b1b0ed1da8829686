//! A Redis blip under traffic, as an operator would try it: two instances
//! on one database and a private `redis-server`, alice on A and bob on B.
//! Redis is killed (or paused with SIGSTOP), alice sends five messages
//! over her WebSocket (all acknowledged), Redis comes back. Bob, who
//! never disconnected, gets the five exactly once and in order within a
//! few seconds, before anything sent afterwards; or, when the hole is
//! larger than `WEBSOCKET_REPLAY_LIMIT`, his socket is closed with 4001
//! and he gets them through `?since=` as the close reason says.
//! Meanwhile `/health` says `"realtime":"degraded"`, and the metrics
//! count the break and what was filled in.

use std::time::{Duration, Instant};

use chat_test_support::pg::TestDatabase;
use chat_test_support::redis_server::PrivateRedis;
use serde_json::{json, Value};

use crate::exposition::{scrape_until, Scrape};
use crate::harness::{cluster_vars, free_port, Instance};
use crate::support::ws::{WsClient, QUIET};
use crate::support::TestUser;

/// How Redis goes away.
#[derive(Clone, Copy, Debug)]
enum Blip {
    /// SIGKILL, then a new server on the same port (empty).
    Kill,
    /// SIGSTOP, then SIGCONT: the connections stay open and silent.
    Pause,
}

/// Two instances on a fresh database and a private Redis; B starts once
/// `before_b` has run on A (so that B starts with messages in the store).
struct Blipped {
    a: Instance,
    b: Instance,
    redis: Redis,
    _database: TestDatabase,
}

/// The private Redis of a [`Blipped`] cluster.
struct Redis {
    server: Option<PrivateRedis>,
    port: u16,
}

impl Blipped {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let redis = PrivateRedis::start(port).await;
        let database = TestDatabase::create().await;
        let url = redis.url();
        let mut extra = extra.to_vec();
        extra.push(("REDIS_URL", url.as_str()));
        let vars = cluster_vars(&database.url, &extra);
        let (a, b) = tokio::join!(Instance::spawn("a", &vars), Instance::spawn("b", &vars));
        Self {
            a,
            b,
            redis: Redis {
                server: Some(redis),
                port,
            },
            _database: database,
        }
    }

    /// Takes Redis away, runs `during`, waits until both instances say
    /// they are degraded, and brings Redis back; what `during` gave, and
    /// when Redis was back.
    async fn blip<T>(
        &mut self,
        blip: Blip,
        during: impl std::future::Future<Output = T>,
    ) -> (T, Instant) {
        self.redis.blip(&self.a, &self.b, blip, during).await
    }
}

impl Redis {
    /// [`Blipped::blip`], for a `during` that borrows the instances.
    async fn blip<T>(
        &mut self,
        a: &Instance,
        b: &Instance,
        blip: Blip,
        during: impl std::future::Future<Output = T>,
    ) -> (T, Instant) {
        let redis = self.server.take().expect("Redis is up");
        let redis = match blip {
            Blip::Kill => {
                redis.kill();
                None
            }
            Blip::Pause => {
                redis.pause();
                Some(redis)
            }
        };
        let out = during.await;
        for instance in [a, b] {
            wait_realtime(instance, "degraded").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.server = Some(match redis {
            Some(redis) => {
                redis.resume();
                redis
            }
            None => PrivateRedis::start(self.port).await,
        });
        (out, Instant::now())
    }
}

/// Polls `/health` until its `realtime` is `status`.
async fn wait_realtime(instance: &Instance, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = instance.health().await;
        if body["realtime"] == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance {} never said realtime {status}: {body}",
            instance.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `texts` over `ws` as global messages, one after the other, each
/// with a `client_id`, and reads each one's ack and own copy; the stored
/// messages, in order.
async fn send_acked(ws: &mut WsClient, texts: &[&str]) -> Vec<Value> {
    let mut acked = Vec::new();
    for text in texts {
        let client_id = format!("c-{}", uuid::Uuid::new_v4().simple());
        ws.send_json(json!({"type": "message", "content": text, "client_id": client_id}))
            .await;
        let (mut ack, mut copy) = (None, None);
        while ack.is_none() || copy.is_none() {
            let frame = ws.recv_event().await;
            match frame["type"].as_str() {
                Some("ack") => {
                    assert_eq!(frame["client_id"], client_id.as_str(), "{frame}");
                    ack = Some(frame["message"].clone());
                }
                Some("message") => copy = Some(frame["message"].clone()),
                _ => panic!("{}: unexpected {frame}", ws.username),
            }
        }
        assert_eq!(
            ack, copy,
            "{}: the ack and the copy of one message",
            ws.username
        );
        acked.extend(ack);
    }
    acked
}

/// The next `count` message frames `ws` receives (presence skipped; any
/// other frame fails), as the messages they carry.
async fn messages(ws: &mut WsClient, count: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < count {
        let frame = ws.recv_event().await;
        assert_eq!(frame["type"], "message", "{}: {frame}", ws.username);
        got.push(frame["message"].clone());
    }
    got
}

/// A sent after the hole reaches both, as the next message each gets:
/// nothing of the hole comes again.
async fn live_again(cluster: &Blipped, alice: &mut WsClient, bob: &mut WsClient) {
    let after = send_acked(alice, &["after the blip"]).await;
    assert_eq!(messages(bob, 1).await, after, "bob: live, and no repeat");
    // Nothing of the hole is repeated to alice either.
    alice.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
    for instance in [&cluster.a, &cluster.b] {
        assert_eq!(instance.health().await.1["realtime"], "connected");
    }
}

async fn bob_gets_what_he_missed_once_and_in_order(blip: Blip) {
    let mut cluster = Blipped::start(&[]).await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut alice_ws = cluster.a.ws(&alice).await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    let before = send_acked(&mut alice_ws, &["before"]).await;
    assert_eq!(messages(&mut bob_ws, 1).await, before);

    let texts = ["one", "two", "three", "four", "five"];
    let (sent, back) = cluster.blip(blip, send_acked(&mut alice_ws, &texts)).await;
    assert_eq!(sent.len(), 5, "all five acknowledged and stored");

    // Within a few seconds of Redis' return: the five, in order, once.
    assert_eq!(messages(&mut bob_ws, 5).await, sent, "bob after a {blip:?}");
    let took = back.elapsed();
    eprintln!("after a {blip:?}, bob had the five {took:?} after Redis was back");
    assert!(took < Duration::from_secs(8), "{took:?}");
    wait_realtime(&cluster.b, "connected").await;
    live_again(&cluster, &mut alice_ws, &mut bob_ws).await;

    // The break and the fill are counted on B.
    let filled = scrape_until(
        &cluster.b.client,
        &cluster.b.base_url,
        Duration::from_secs(5),
        |scrape: &Scrape| scrape.get("chat_ws_hole_filled_messages_total", &[]) == Some(5.0),
    )
    .await;
    assert!(
        filled
            .get("chat_redis_subscription_breaks_total", &[])
            .is_some_and(|breaks| breaks >= 1.0),
        "a break is counted"
    );
}

#[tokio::test]
async fn a_killed_redis_leaves_no_silent_gap() {
    bob_gets_what_he_missed_once_and_in_order(Blip::Kill).await;
}

#[tokio::test]
async fn a_paused_redis_leaves_no_silent_gap() {
    bob_gets_what_he_missed_once_and_in_order(Blip::Pause).await;
}

/// Reconnects as `user` with `?since=` until the replay is complete (a
/// `replay_truncated` asks to go on from the last cursor); every message
/// replayed, in order.
async fn replay_from(instance: &Instance, user: &TestUser, since: &str) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    let mut since = since.to_owned();
    loop {
        let mut ws = instance.ws_since(user, &since).await;
        let mut truncated = false;
        while let Some(frame) = ws.recv_within(QUIET).await {
            match frame["type"].as_str() {
                Some("message") => {
                    since = frame["cursor"].as_str().expect("a cursor").to_owned();
                    got.push(frame["message"].clone());
                }
                Some("error") if frame["code"] == "replay_truncated" => truncated = true,
                Some("presence") => {}
                _ => panic!("{}: unexpected {frame}", user.username),
            }
        }
        ws.close().await;
        if !truncated {
            return got;
        }
    }
}

/// The cursor a 4001 close's reason names.
fn named_since(reason: &str) -> String {
    reason
        .split_once("since=")
        .map(|(_, cursor)| cursor.to_owned())
        .unwrap_or_else(|| panic!("no since in {reason:?}"))
}

#[tokio::test]
async fn a_hole_over_the_replay_limit_closes_with_4001_naming_where_to_resume() {
    let mut cluster = Blipped::start(&[("WEBSOCKET_REPLAY_LIMIT", "3")]).await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut alice_ws = cluster.a.ws(&alice).await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    let before = send_acked(&mut alice_ws, &["before"]).await;
    assert_eq!(messages(&mut bob_ws, 1).await, before);

    let texts = ["one", "two", "three", "four", "five"];
    let (sent, _) = cluster
        .blip(Blip::Kill, send_acked(&mut alice_ws, &texts))
        .await;
    // Five missed, more than three: closed, naming a cursor at or before
    // the hole (B had delivered nothing long before it: where the store
    // stood when B started). The replay from there brings the five, in
    // order, after what bob already had (dropped by id).
    let (code, reason) = bob_ws.expect_close_frame().await;
    assert_eq!(code, 4001, "{reason}");
    wait_realtime(&cluster.b, "connected").await;
    let replayed = replay_from(&cluster.b, &bob, &named_since(&reason)).await;
    let new: Vec<Value> = replayed
        .into_iter()
        .filter(|message| !before.contains(message))
        .collect();
    assert_eq!(new, sent, "every message of the hole, once, in order");
    // Alice's instance had handed out every one: nothing filled or
    // repeated there. Bob's new socket is live.
    let mut bob_ws = cluster.b.ws(&bob).await;
    let after = send_acked(&mut alice_ws, &["after the blip"]).await;
    let frame = bob_ws.recv_event().await;
    assert_eq!(frame["message"], after[0], "{frame}");
    let after_cursor = frame["cursor"].as_str().expect("a cursor").to_owned();
    alice_ws.expect_silence(QUIET).await;

    // Once B delivered a change longer ago than the in-flight margin, a
    // hole starts after it: the close names its cursor, and `?since=`
    // brings the hole exactly, each message once, in order.
    tokio::time::sleep(chat_realtime::IN_FLIGHT + Duration::from_secs(1)).await;
    let texts = ["six", "seven", "eight", "nine", "ten"];
    let (more, _) = cluster
        .blip(Blip::Kill, send_acked(&mut alice_ws, &texts))
        .await;
    let (code, reason) = bob_ws.expect_close_frame().await;
    assert_eq!(code, 4001, "{reason}");
    assert_eq!(
        named_since(&reason),
        after_cursor,
        "the last change bob had before the hole"
    );
    wait_realtime(&cluster.b, "connected").await;
    assert_eq!(replay_from(&cluster.b, &bob, &after_cursor).await, more);
}

/// Edits `id` as `user` over HTTP on `instance`; the message as it now is.
async fn edit(instance: &Instance, user: &TestUser, id: &str, content: &str) -> Value {
    let res = instance
        .client
        .patch(instance.url(&format!("/api/messages/{id}")))
        .bearer_auth(&user.token)
        .json(&json!({"content": content}))
        .send()
        .await
        .expect("edit");
    assert_eq!(res.status(), 200, "editing on {}", instance.name);
    res.json().await.expect("message JSON")
}

#[tokio::test]
async fn edits_made_during_a_blip_reach_the_other_instance_once_in_their_latest_state() {
    let mut cluster = Blipped::start(&[]).await;
    let alice = cluster.a.user("alice").await;
    let bob = cluster.b.user("bob").await;
    let mut alice_ws = cluster.a.ws(&alice).await;
    let mut bob_ws = cluster.b.ws(&bob).await;
    let before = send_acked(&mut alice_ws, &["to be edited"]).await;
    assert_eq!(messages(&mut bob_ws, 1).await, before);
    let id = before[0]["id"].as_str().expect("id").to_owned();

    let (latest, _) = cluster
        .redis
        .blip(&cluster.a, &cluster.b, Blip::Kill, async {
            edit(&cluster.a, &alice, &id, "edited once").await;
            edit(&cluster.a, &alice, &id, "edited twice").await
        })
        .await;
    // Alice saw both edits live on her own instance.
    for content in ["edited once", "edited twice"] {
        let frame = alice_ws.recv_event().await;
        assert_eq!(frame["type"], "message_updated", "{frame}");
        assert_eq!(frame["message"]["content"], content, "{frame}");
    }
    // Bob gets the message once, in its latest state, then live again.
    let frame = bob_ws.recv_event().await;
    assert_eq!(frame["type"], "message_updated", "{frame}");
    assert_eq!(frame["message"], latest, "{frame}");
    assert_eq!(latest["content"], "edited twice");
    live_again(&cluster, &mut alice_ws, &mut bob_ws).await;
}
