//! The upgrade: the token and the `Origin` are checked before it, and a
//! refusal is a plain JSON error.

use reqwest::StatusCode;
use tokio_tungstenite::tungstenite;

use crate::support::ws::set;
use crate::support::{expect_error, Backend, TestApp};

backend_tests!(
    no_token_is_401_before_the_upgrade,
    a_revoked_token_is_401,
    a_foreign_origin_is_403,
    the_servers_own_origin_is_allowed,
    the_cookie_opens_a_socket_as_a_browser_would,
    a_plain_get_is_426,
);

per_backend!(listed_origins_are_allowed_and_a_star_needs_a_bearer);

async fn no_token_is_401_before_the_upgrade(app: TestApp) {
    let res = app.upgrade_request().send().await.expect("request");
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app
        .upgrade_request()
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A real WebSocket client sees the refusal as the handshake's answer.
    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    match refused {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 401),
        other => panic!("expected a 401 handshake, got {other:?}"),
    }
}

async fn a_revoked_token_is_401(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .post("/api/auth/logout", &alice.token)
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .upgrade_request()
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

async fn a_foreign_origin_is_403(app: TestApp) {
    let alice = app.user("alice").await;
    // A page on another site, riding on the user's cookie.
    let res = app
        .upgrade_request()
        .header("cookie", format!("jwt_token={}", alice.token))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    let mut request = app.ws_request(&alice);
    set(&mut request, "origin", "null");
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 403),
        other => panic!("expected a 403 handshake, got {other:?}"),
    }
}

async fn the_servers_own_origin_is_allowed(app: TestApp) {
    let alice = app.user("alice").await;
    let mut request = app.ws_request(&alice);
    set(&mut request, "origin", &app.base_url);
    let socket = app.ws_with(&alice, request).await;
    socket.close().await;
}

async fn the_cookie_opens_a_socket_as_a_browser_would(app: TestApp) {
    let alice = app.user("alice").await;
    let mut socket = app.ws_with_cookie(&alice).await;
    socket.assert_usable().await;
    socket.close().await;
}

async fn a_plain_get_is_426(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .get("/api/ws/connect", &alice.token)
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.headers().get("upgrade").and_then(|v| v.to_str().ok()),
        Some("websocket")
    );
    expect_error(res, StatusCode::UPGRADE_REQUIRED, "upgrade_required").await;
}

async fn listed_origins_are_allowed_and_a_star_needs_a_bearer(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let alice = app.user("alice").await;
    let mut request = app.ws_request(&alice);
    set(&mut request, "origin", "https://app.example");
    app.ws_with(&alice, request).await.close().await;
    let res = app
        .upgrade_request()
        .header("cookie", format!("jwt_token={}", alice.token))
        .header("origin", "https://other.example")
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    drop(app);

    // `*` lets any page call the API without credentials; the cookie is a
    // credential, so a foreign page still cannot open a socket with it.
    let app = TestApp::spawn_with(backend, &[("CORS_ALLOWED_ORIGINS", "*")]).await;
    let bob = app.user("bob").await;
    let mut request = app.ws_request(&bob);
    set(&mut request, "origin", "https://any.example");
    app.ws_with(&bob, request).await.close().await;
    let res = app
        .upgrade_request()
        .header("cookie", format!("jwt_token={}", bob.token))
        .header("origin", "https://any.example")
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::FORBIDDEN, "origin_not_allowed").await;
}
