//! What holds per user rather than per connection: a logout closes the
//! sockets opened with that token, the number of sockets a user may hold,
//! and the message rate over all of a user's sockets and HTTP.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, Backend, TestApp, TestUser};

backend_tests!(a_logout_closes_the_sockets_opened_with_that_token_only,);

per_backend!(
    a_user_holds_at_most_the_connection_cap,
    the_message_rate_is_per_user_across_sockets_and_http,
);

/// The most a revocation may take to close a socket (SPEC: 2 s).
const REVOCATION: Duration = Duration::from_secs(2);

async fn a_logout_closes_the_sockets_opened_with_that_token_only(app: TestApp) {
    let alice = app.user("alice").await;
    let laptop = TestUser {
        token: app.login("alice").await,
        ..alice.clone()
    };
    let mut phone_a = app.ws(&alice).await;
    let mut phone_b = app.ws(&alice).await;
    let mut on_laptop = app.ws(&laptop).await;

    let started = Instant::now();
    let res = app
        .post("/api/auth/logout", &alice.token)
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    for socket in [&mut phone_a, &mut phone_b] {
        assert_eq!(socket.expect_close().await, 1008);
    }
    assert!(
        started.elapsed() < REVOCATION,
        "closed {:?} after the logout",
        started.elapsed()
    );
    // The socket opened with another token is untouched, and the revoked
    // token opens nothing.
    on_laptop.assert_usable().await;
    let refused = app
        .upgrade_request()
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("upgrade attempt");
    expect_error(refused, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

async fn a_user_holds_at_most_the_connection_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_MAX_CONNECTIONS_PER_USER", "2")]).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let first = app.ws(&alice).await;
    let _second = app.ws(&alice).await;

    let refused = app
        .upgrade_request()
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("third upgrade");
    let body = expect_error(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
    )
    .await;
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains('2')),
        "{body}"
    );
    // Per user: bob is not affected.
    let _bob = app.ws(&bob).await;

    // A closed socket frees its place.
    first.close().await;
    let mut again = None;
    for _ in 0..50 {
        let res = app
            .upgrade_request()
            .bearer_auth(&alice.token)
            .send()
            .await
            .expect("upgrade");
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            again = Some(res.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again, Some(StatusCode::SWITCHING_PROTOCOLS));
}

async fn the_message_rate_is_per_user_across_sockets_and_http(backend: Backend) {
    // Frames per connection unlimited: only the per-user limit applies.
    let app = TestApp::spawn_with(
        backend,
        &[("MESSAGE_RATE_LIMIT", "2"), ("WEBSOCKET_RATE_LIMIT", "0")],
    )
    .await;
    let alice = app.user("alice").await;
    let mut sockets = [app.ws(&alice).await, app.ws(&alice).await];

    // Six messages at once over two sockets, then two over HTTP: a burst
    // of twice the rate (4) passes, maybe one more as time passes.
    for i in 0..6 {
        let frame =
            json!({"type": "message", "content": format!("ws{i}"), "client_id": format!("c{i}")});
        sockets[i % 2].send_json(frame).await;
    }
    let mut answers: Vec<Value> = Vec::new();
    for socket in &mut sockets {
        let mut mine = 0;
        while mine < 3 {
            let frame = socket.recv_event().await;
            if frame["type"] == "ack" || frame["type"] == "error" {
                answers.push(frame);
                mine += 1;
            }
        }
    }
    let mut http = Vec::new();
    for i in 0..2 {
        http.push(
            app.send(&alice, json!({"content": format!("http{i}")}))
                .await,
        );
    }

    let acked = answers.iter().filter(|a| a["type"] == "ack").count();
    for refused in answers.iter().filter(|a| a["type"] == "error") {
        assert_eq!(refused["code"], "rate_limited", "{refused}");
        assert!(refused["client_id"].is_string(), "{refused}");
    }
    let mut http_ok = 0;
    for res in http {
        if res.status() == StatusCode::CREATED {
            http_ok += 1;
        } else {
            assert!(res.headers().contains_key("retry-after"));
            expect_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
        }
    }
    let passed = acked + http_ok;
    assert!((4..=5).contains(&passed), "{passed} passed: {answers:?}");
    let history: Vec<Value> = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history.len(), passed, "nothing refused was stored");
}
