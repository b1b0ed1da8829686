//! Messages that change, across instances: a client on instance B that
//! was away while a user on instance A edited, deleted and reacted to older
//! messages and posted new ones gets exactly those changes, once, in the
//! store's order, when it reconnects to B with its last cursor.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::support::ws::{WsClient, QUIET};

fn id_of(message: &Value) -> String {
    message["id"].as_str().expect("id").to_owned()
}

/// Percent-encodes every byte: emojis in a path segment.
fn encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The next frame that comes from the store (skips typing; presence is
/// skipped by `recv_event`).
async fn next_stored(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.recv_event().await;
        if frame["type"] != "typing" {
            return frame;
        }
    }
}

fn position(frame: &Value) -> u64 {
    frame["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a cursor in {frame}"))
}

#[tokio::test]
async fn a_client_reconnecting_to_one_instance_catches_up_on_changes_made_through_the_other() {
    let cluster = Cluster::start().await;
    let (a, b) = (&cluster.a, &cluster.b);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;

    let mut bob_ws = b.ws(&bob).await;
    let mut old = Vec::new();
    for text in ["one", "two", "three"] {
        old.push(a.send_ok(&alice, json!({"content": text})).await);
    }
    let dm = a
        .send_ok(&alice, json!({"content": "dm", "recipient": "bob"}))
        .await;
    // Bob sees all four live on B, through Redis; his last cursor is the
    // direct message's.
    let mut cursor = String::new();
    for expected in old.iter().chain([&dm]) {
        let frame = next_stored(&mut bob_ws).await;
        assert_eq!(frame["message"]["id"], expected["id"], "{frame}");
        cursor = frame["cursor"].as_str().expect("cursor").to_owned();
    }
    bob_ws.close().await;

    // While bob is away, alice changes things through A.
    let res = a
        .patch(&format!("/api/messages/{}", id_of(&old[0])), &alice.token)
        .json(&json!({"content": "one, edited"}))
        .send()
        .await
        .expect("edit");
    assert_eq!(res.status(), StatusCode::OK);
    let res = a
        .delete(&format!("/api/messages/{}", id_of(&old[1])), &alice.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), StatusCode::OK);
    let thumbs = encoded("👍");
    let res = a
        .put(
            &format!("/api/messages/{}/reactions/{thumbs}", id_of(&old[2])),
            &alice.token,
        )
        .send()
        .await
        .expect("react");
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = a.send_ok(&alice, json!({"content": "four"})).await;
    let reply = a
        .send_ok(
            &alice,
            json!({"content": "a reply", "reply_to": id_of(&old[0])}),
        )
        .await;
    let heart = encoded("❤️");
    let res = a
        .put(
            &format!("/api/messages/{}/reactions/{heart}", id_of(&dm)),
            &alice.token,
        )
        .send()
        .await
        .expect("react to the direct message");
    assert_eq!(res.status(), StatusCode::OK);

    let mut bob_ws = b.ws_since(&bob, &cursor).await;
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(next_stored(&mut bob_ws).await);
    }
    let summary: Vec<(&str, &Value)> = got
        .iter()
        .map(|f| (f["type"].as_str().unwrap_or_default(), &f["message"]["id"]))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("message_updated", &old[0]["id"]),
            ("message_updated", &old[1]["id"]),
            ("message_updated", &old[2]["id"]),
            ("message", &fresh["id"]),
            ("message", &reply["id"]),
            ("message_updated", &dm["id"]),
        ],
        "{got:#?}"
    );
    assert_eq!(got[0]["message"]["content"], "one, edited");
    assert!(got[0]["message"]["edited_at"].is_string(), "{}", got[0]);
    assert_eq!(got[1]["message"]["content"], "");
    assert!(got[1]["message"]["deleted_at"].is_string(), "{}", got[1]);
    assert_eq!(
        got[2]["message"]["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": ["alice"]}])
    );
    assert_eq!(got[4]["message"]["reply_to"], old[0]["id"]);
    assert_eq!(
        got[5]["message"]["reactions"],
        json!([{"emoji": "❤️", "count": 1, "users": ["alice"]}])
    );
    let positions: Vec<u64> = got.iter().map(position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(position(&got[0]) > cursor.parse::<u64>().expect("a numeric cursor"));

    // Nothing of the replay comes again; the next frame is live, from A.
    let live = a.send_ok(&alice, json!({"content": "five"})).await;
    let next = next_stored(&mut bob_ws).await;
    assert_eq!(next["message"]["id"], live["id"], "got {next}");
    assert!(position(&next) > position(&got[5]));
    bob_ws.expect_silence(QUIET).await;
}
