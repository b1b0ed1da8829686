//! HTTP requests by route template and status, their latency histogram,
//! messages stored by kind, the auth rate limiter, the store's pool, and
//! `METRICS_ENABLED=false`.

use reqwest::StatusCode;
use serde_json::json;

use crate::exclusive;
use crate::exposition::{scrape, Scrape};
use crate::support::{expect_error, Backend, TestApp};

backend_tests!(
    requests_are_counted_by_route_template_and_status,
    new_messages_are_counted_by_kind_and_resends_are_not,
    the_pool_is_reported_on_postgres_only,
);
per_backend!(
    refused_login_attempts_are_counted,
    metrics_can_be_turned_off
);

const REQUESTS: &str = "chat_http_requests_total";
const LATENCY: &str = "chat_http_request_duration_seconds";
const STORED: &str = "chat_messages_stored_total";

async fn scrape_app(app: &TestApp) -> Scrape {
    scrape(&app.client, &app.base_url).await
}

/// How much the series moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

async fn requests_are_counted_by_route_template_and_status(app: TestApp) {
    let _one = exclusive().await;
    let before = scrape_app(&app).await;

    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&alice, "general", &[&bob]).await;
    let room_id = room["id"].as_str().expect("room id");
    let res = app
        .get(&format!("/api/rooms/{room_id}"), &alice.token)
        .send()
        .await
        .expect("get room");
    assert_eq!(res.status(), StatusCode::OK);
    for content in ["one", "two", "three"] {
        app.send_ok(&alice, json!({"content": content})).await;
    }
    let res = app
        .client
        .get(app.url("/no/such/path/12345"))
        .send()
        .await
        .expect("unknown path");
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app
        .client
        .delete(app.url("/api/messages"))
        .send()
        .await
        .expect("wrong method");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    let after = scrape_app(&app).await;
    let post = |route: &'static str, status: &'static str| {
        [("method", "POST"), ("route", route), ("status", status)]
    };
    assert_eq!(
        moved(
            &before,
            &after,
            REQUESTS,
            &post("/api/auth/register", "201")
        ),
        2.0
    );
    assert_eq!(
        moved(&before, &after, REQUESTS, &post("/api/auth/login", "200")),
        2.0
    );
    assert_eq!(
        moved(&before, &after, REQUESTS, &post("/api/rooms", "201")),
        1.0
    );
    assert_eq!(
        moved(&before, &after, REQUESTS, &post("/api/messages", "201")),
        3.0
    );
    let get_room = [
        ("method", "GET"),
        ("route", "/api/rooms/{roomId}"),
        ("status", "200"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &get_room), 1.0);
    let unmatched = [
        ("method", "GET"),
        ("route", "<unmatched>"),
        ("status", "404"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &unmatched), 1.0);
    let wrong_method = [
        ("method", "DELETE"),
        ("route", "/api/messages"),
        ("status", "405"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &wrong_method), 1.0);
    // The scrape before this one is counted too, under its own route.
    let metrics = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert!(after.value(REQUESTS, &metrics) >= 1.0);

    // Raw paths never become labels: no room id, no unknown path.
    for labels in after.label_sets(REQUESTS) {
        let route = labels.get("route").expect("every request has a route");
        assert!(
            !route.contains(room_id) && !route.contains("12345"),
            "a raw path as a label: {route}"
        );
    }

    // The latency histogram: one observation per request, in buckets.
    assert_eq!(
        after.types.get(LATENCY).map(String::as_str),
        Some("histogram")
    );
    let sends = [("method", "POST"), ("route", "/api/messages")];
    let count = format!("{LATENCY}_count");
    assert_eq!(moved(&before, &after, &count, &sends), 3.0);
    let inf = [
        ("method", "POST"),
        ("route", "/api/messages"),
        ("le", "+Inf"),
    ];
    let bucket = format!("{LATENCY}_bucket");
    assert_eq!(moved(&before, &after, &bucket, &inf), 3.0);
    let sum = format!("{LATENCY}_sum");
    assert!(moved(&before, &after, &sum, &sends) > 0.0);
    let ten = [("method", "POST"), ("route", "/api/messages"), ("le", "10")];
    assert_eq!(
        after.value(&bucket, &ten),
        after.value(&bucket, &inf),
        "no send took 10 s"
    );
}

async fn new_messages_are_counted_by_kind_and_resends_are_not(app: TestApp) {
    let _one = exclusive().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.room(&alice, "general", &[&bob]).await;
    let before = scrape_app(&app).await;

    app.send_ok(&alice, json!({"content": "hello all", "client_id": "g1"}))
        .await;
    app.send_ok(&alice, json!({"content": "hi bob", "recipient": "bob"}))
        .await;
    app.send_ok(&bob, json!({"content": "hi bob", "recipient": "alice"}))
        .await;
    app.send_ok(&alice, json!({"content": "room", "room_id": room["id"]}))
        .await;
    // A resend of the same client_id stores nothing: 200, not counted.
    let resend = app
        .send(&alice, json!({"content": "hello all", "client_id": "g1"}))
        .await;
    assert_eq!(resend.status(), StatusCode::OK);

    let after = scrape_app(&app).await;
    let kind = |kind: &'static str| [("kind", kind), ("transport", "http")];
    assert_eq!(moved(&before, &after, STORED, &kind("global")), 1.0);
    assert_eq!(moved(&before, &after, STORED, &kind("direct")), 2.0);
    assert_eq!(moved(&before, &after, STORED, &kind("room")), 1.0);
    assert_eq!(after.types.get(STORED).map(String::as_str), Some("counter"));
}

async fn the_pool_is_reported_on_postgres_only(app: TestApp) {
    let _one = exclusive().await;
    let alice = app.user("alice").await;
    app.send_ok(&alice, json!({"content": "something to store"}))
        .await;
    let scrape = scrape_app(&app).await;
    match app.backend {
        Backend::Postgres => {
            // DB_POOL_SIZE=4 in the harness.
            assert_eq!(
                scrape.get("chat_store_pool_max_connections", &[]),
                Some(4.0)
            );
            let in_use = scrape
                .get("chat_store_pool_connections", &[("state", "in_use")])
                .expect("in_use reported");
            let idle = scrape
                .get("chat_store_pool_connections", &[("state", "idle")])
                .expect("idle reported");
            // Nothing is running between requests: the connections the
            // traffic opened are back in the pool.
            assert_eq!(in_use, 0.0);
            assert!((1.0..=4.0).contains(&idle), "idle {idle}");
            assert_eq!(scrape.get("chat_store_pool_waiting", &[]), Some(0.0));
        }
        // Gauges are per process: under `cargo test` another test's
        // PostgreSQL server in this process may have set them; nextest
        // runs each test in a process of its own (and says so in NEXTEST).
        Backend::Memory if std::env::var_os("NEXTEST").is_none() => {}
        Backend::Memory => {
            for name in [
                "chat_store_pool_connections",
                "chat_store_pool_max_connections",
                "chat_store_pool_waiting",
            ] {
                assert!(!scrape.has(name), "{name} on the memory store");
            }
        }
    }
    // No REDIS_URL: no Redis link to report.
    assert!(!scrape.has("chat_redis_connected"));
}

async fn refused_login_attempts_are_counted(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("AUTH_RATE_LIMIT", "3")]).await;
    let _one = exclusive().await;
    let before = scrape_app(&app).await;
    // One register and two logins use the quota of 3; the third login is
    // refused.
    app.register("alice").await;
    for _ in 0..2 {
        let res = app.try_login("alice", crate::support::PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app.try_login("alice", crate::support::PASSWORD).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    let after = scrape_app(&app).await;
    let auth = [("limiter", "auth")];
    assert_eq!(
        moved(&before, &after, "chat_rate_limited_total", &auth),
        1.0
    );
    let refused = [
        ("method", "POST"),
        ("route", "/api/auth/login"),
        ("status", "429"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &refused), 1.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "chat_rate_limited_total",
            &[("limiter", "ws_send")]
        ),
        0.0
    );
}

async fn metrics_can_be_turned_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("METRICS_ENABLED", "false")]).await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics request");
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}
