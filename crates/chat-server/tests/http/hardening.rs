//! What a hostile or careless client meets: bad bodies, unknown routes,
//! rate limits, proxies, request ids and CORS.

use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{expect_error, Backend, TestApp, PASSWORD};

backend_tests!(
    malformed_json_is_400,
    wrong_types_are_400,
    a_wrong_content_type_is_415,
    an_oversized_body_is_413,
    unknown_routes_are_json_404,
    wrong_methods_are_json_405,
    request_ids_are_echoed_or_made,
);

async fn malformed_json_is_400(app: TestApp) {
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"username\": \"alice\",")
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_json").await;
}

async fn wrong_types_are_400(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": 5, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_json").await;
    let res = app.send(&alice, json!({"content": ["not", "text"]})).await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_json").await;
    let res = app.send(&alice, json!({"recipient": "bob"})).await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_json").await;
}

async fn a_wrong_content_type_is_415(app: TestApp) {
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(json!({"username": "alice", "password": PASSWORD}).to_string())
        .send()
        .await
        .expect("request");
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

async fn an_oversized_body_is_413(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .send(&alice, json!({"content": "x".repeat(70_000)}))
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "u".repeat(100_000), "email": "e@x.io", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

async fn unknown_routes_are_json_404(app: TestApp) {
    for path in ["/nope", "/api/nope", "/api/messages/between/alice"] {
        let res = app.client.get(app.url(path)).send().await.expect("request");
        expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn wrong_methods_are_json_405(app: TestApp) {
    let res = app
        .client
        .delete(app.url("/api/messages"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok()),
        Some("GET, POST")
    );
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app
        .client
        .get(app.url("/api/auth/login"))
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

async fn request_ids_are_echoed_or_made(app: TestApp) {
    let request_id = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(request_id(&res).as_deref(), Some("trace-abc-123"));

    // Errors carry it too.
    let res = app
        .client
        .get(app.url("/nope"))
        .header("X-Request-Id", "trace-404")
        .send()
        .await
        .expect("request");
    assert_eq!(request_id(&res).as_deref(), Some("trace-404"));

    let res = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("request");
    let made = request_id(&res).expect("an id is made");
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");

    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "x".repeat(65))
        .send()
        .await
        .expect("request");
    let replaced = request_id(&res).expect("an id is made");
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
}

/// CORS answers configured origins and the server's own, no others.
#[tokio::test]
async fn cors_allows_configured_and_own_origins_only() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &[("CORS_ALLOWED_ORIGINS", "https://chat.example.com")],
    )
    .await;
    let allow_origin = |res: &reqwest::Response| {
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let res = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, "https://chat.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(
        allow_origin(&res).as_deref(),
        Some("https://chat.example.com")
    );
    assert_eq!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    let own = format!("http://{}", app.addr);
    let res = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, own.as_str())
        .send()
        .await
        .expect("request");
    assert_eq!(allow_origin(&res).as_deref(), Some(own.as_str()));

    let res = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(allow_origin(&res), None);

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/messages"))
        .header(header::ORIGIN, "https://chat.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type, authorization",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        allow_origin(&preflight).as_deref(),
        Some("https://chat.example.com")
    );
}

/// Sends `head` and `partial` of a body on a raw connection, then waits:
/// everything the server wrote until it closed the connection, and when
/// that was. Fails if the connection is still open after `bound`.
async fn partial_body(
    app: &TestApp,
    head: &str,
    partial: &str,
    bound: Duration,
) -> (String, Duration) {
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    socket
        .write_all(format!("{head}{partial}").as_bytes())
        .await
        .expect("writes");
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(bound, socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("reads");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// A body that does not fully arrive within HTTP_REQUEST_TIMEOUT gets a
/// JSON 408 and its connection closed, on public and authenticated routes.
#[tokio::test]
async fn a_body_that_never_arrives_is_408_and_the_connection_closes() {
    let app = TestApp::spawn_with(Backend::Memory, &[("HTTP_REQUEST_TIMEOUT", "1s")]).await;
    let alice = app.user("alice").await;
    let register = "POST /api/auth/register HTTP/1.1\r\nHost: chat\r\n\
                    Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        .to_owned();
    let send = format!(
        "POST /api/messages HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n",
        alice.token
    );
    for head in [register, send] {
        let (answer, took) = partial_body(&app, &head, "{", Duration::from_secs(15)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{answer}");
        assert!(lower.contains("connection: close"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(
            took >= Duration::from_millis(900),
            "not before the deadline: {took:?}"
        );
    }
    // A body that arrives slowly but in time is served.
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    let body = json!({"content": "slow but in time"}).to_string();
    let (first, rest) = body.split_at(5);
    let head = format!(
        "POST /api/messages HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        alice.token,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.expect("writes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.write_all(rest.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("reads");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// A preflight the CORS rules refuse is answered in the JSON error shape.
#[tokio::test]
async fn a_refused_cors_preflight_is_a_json_error() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &[("CORS_ALLOWED_ORIGINS", "https://chat.example.com")],
    )
    .await;
    let preflight = |origin: &str, method: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/messages"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
    };
    let foreign = preflight("https://evil.example", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(foreign
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    expect_error(foreign, StatusCode::BAD_REQUEST, "cors_refused").await;
    let bad_method = preflight("https://chat.example.com", "TRACE")
        .send()
        .await
        .expect("preflight");
    expect_error(bad_method, StatusCode::BAD_REQUEST, "cors_refused").await;
}

/// Login attempts beyond AUTH_RATE_LIMIT per minute are refused.
#[tokio::test]
async fn auth_attempts_are_rate_limited() {
    let app = TestApp::spawn_with(Backend::Memory, &[("AUTH_RATE_LIMIT", "3")]).await;
    // Registering is the first of the three attempts.
    app.register("alice").await;
    for _ in 0..2 {
        let res = app.try_login("alice", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app.try_login("alice", PASSWORD).await;
    let retry_after: u64 = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Registration counts against the same quota.
    let res = app.try_register("bob").await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// A trusted proxy's X-Forwarded-For names the client.
#[tokio::test]
async fn forwarded_for_is_honoured_from_a_trusted_proxy() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &[("AUTH_RATE_LIMIT", "1"), ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let attempt = |client_addr: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("X-Forwarded-For", format!("203.0.113.50, {client_addr}"))
            .json(&json!({"username": "nobody", "password": PASSWORD}))
            .send()
    };
    let first = attempt("198.51.100.1").await.expect("request");
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let second = attempt("198.51.100.1").await.expect("request");
    expect_error(second, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let other_client = attempt("198.51.100.2").await.expect("request");
    assert_eq!(other_client.status(), StatusCode::UNAUTHORIZED);
}

/// An untrusted peer cannot dodge the limit by writing X-Forwarded-For.
#[tokio::test]
async fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let app = TestApp::spawn_with(Backend::Memory, &[("AUTH_RATE_LIMIT", "1")]).await;
    for (i, expected) in [
        (1, StatusCode::UNAUTHORIZED),
        (2, StatusCode::TOO_MANY_REQUESTS),
    ] {
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({"username": "nobody", "password": PASSWORD}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), expected, "attempt {i}");
    }
}

/// In production the token cookie is marked Secure.
#[tokio::test]
async fn the_cookie_is_secure_in_production() {
    let secret = "production-test-secret-0123456789abcdef";
    let app = TestApp::spawn_with(
        Backend::Memory,
        &[("ENVIRONMENT", "production"), ("JWT_SECRET", secret)],
    )
    .await;
    app.register("alice").await;
    let res = app.try_login("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
}
