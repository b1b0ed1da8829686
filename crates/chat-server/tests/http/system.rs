//! Health, connected users and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, TestApp};

backend_tests!(
    health_reports_the_store,
    connected_users_are_listed,
    the_openapi_document_lists_every_route,
);

async fn health_reports_the_store(app: TestApp) {
    let res = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.expect("json"),
        json!({"status": "healthy", "database": "connected", "websocket": "ready", "realtime": "local"})
    );
}

async fn connected_users_are_listed(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .get("/api/ws/users", &alice.token)
        .send()
        .await
        .expect("users");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["connected_users"], json!([]));
    assert_eq!(body["count"], 0);
    assert!(body["timestamp"]
        .as_str()
        .expect("timestamp")
        .ends_with('Z'));
    let res = app
        .client
        .get(app.url("/api/ws/users"))
        .send()
        .await
        .expect("users");
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn the_openapi_document_lists_every_route(app: TestApp) {
    let res = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let routes = [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/logout"),
        ("get", "/api/auth/profile"),
        ("post", "/api/messages"),
        ("get", "/api/messages"),
        ("get", "/api/messages/between/{user1}/{user2}"),
        ("get", "/api/ws/users"),
        ("get", "/api/users"),
        ("get", "/api/users/{userId}"),
        ("get", "/api/users/{userId}/rooms"),
        ("post", "/api/rooms"),
        ("get", "/api/rooms/{roomId}"),
        ("get", "/api/rooms/{roomId}/messages"),
        ("post", "/api/rooms/{roomId}/members/{userId}"),
        ("delete", "/api/rooms/{roomId}/members/{userId}"),
        ("get", "/health"),
    ];
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
    assert!(doc["components"]["securitySchemes"]["bearer_auth"].is_object());
    assert!(doc["components"]["securitySchemes"]["cookie_auth"].is_object());
}
