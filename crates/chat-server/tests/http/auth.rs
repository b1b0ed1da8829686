//! Registration, login, refresh, logout, profile and token checking.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::support::{expect_error, unix_now, Backend, TestApp, TestUser, PASSWORD};

backend_tests!(
    register_returns_the_user,
    register_refuses_a_taken_username_or_email,
    register_validates_its_input,
    login_returns_a_session_and_the_cookie,
    login_failures_look_the_same,
    the_cookie_authenticates_and_logout_clears_it,
    logout_revokes_the_token,
    refresh_is_refused_far_from_expiry,
    refresh_near_expiry_rotates_the_token,
    forged_and_expired_tokens_are_refused,
    tokens_from_the_future_are_refused,
    tokens_of_accounts_that_do_not_exist_are_invalid,
    profile_returns_the_caller,
);

per_backend!(a_token_from_before_the_store_was_reset_is_invalid);

async fn register_returns_the_user(app: TestApp) {
    let res = app.try_register("alice").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.expect("json");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["is_online"], false);
    assert!(uuid::Uuid::parse_str(user["id"].as_str().expect("id")).is_ok());
    assert!(user["created_at"]
        .as_str()
        .expect("created_at")
        .ends_with('Z'));
    let keys: Vec<&String> = user.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 5, "exactly the User fields, no hash: {keys:?}");
}

async fn register_refuses_a_taken_username_or_email(app: TestApp) {
    app.register("alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "ALICE", "email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::CONFLICT, "username_taken").await;
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "alice2", "email": "Alice@Example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    expect_error(res, StatusCode::CONFLICT, "email_taken").await;
}

async fn register_validates_its_input(app: TestApp) {
    for body in [
        json!({"username": "al", "email": "al@example.com", "password": PASSWORD}),
        json!({"username": "alice", "email": "not-an-email", "password": PASSWORD}),
        json!({"username": "alice", "email": "alice@example.com", "password": "short"}),
    ] {
        let res = app
            .client
            .post(app.url("/api/auth/register"))
            .json(&body)
            .send()
            .await
            .expect("request");
        expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
    }
}

async fn login_returns_a_session_and_the_cookie(app: TestApp) {
    let user = app.register("alice").await;
    let res = app.try_login("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_owned();
    let body: Value = res.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    assert_eq!(body["user"], user);
    let expires_at = body["expires_at"].as_i64().expect("unix seconds");
    assert!((expires_at - (unix_now() + 24 * 3600)).abs() < 60);

    assert!(
        cookie.starts_with(&format!("jwt_token={token}")),
        "{cookie}"
    );
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure outside production: {cookie}"
    );
}

async fn login_failures_look_the_same(app: TestApp) {
    app.register("alice").await;
    let wrong_password = app.try_login("alice", "wrong password!").await;
    let unknown_user = app.try_login("nobody", PASSWORD).await;
    let a = expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let b = expect_error(
        unknown_user,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(a, b);
}

async fn the_cookie_authenticates_and_logout_clears_it(app: TestApp) {
    app.register("alice").await;
    let browser = app.client_with_cookies();
    let res = browser
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::OK);

    let profile = browser
        .get(app.url("/api/auth/profile"))
        .send()
        .await
        .expect("profile");
    assert_eq!(profile.status(), StatusCode::OK);

    let res = browser
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({"message": "Logged out successfully"}));

    let res = browser
        .get(app.url("/api/auth/profile"))
        .send()
        .await
        .expect("profile");
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn logout_revokes_the_token(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .post("/api/auth/logout", &alice.token)
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    let replay = app
        .get("/api/auth/profile", &alice.token)
        .send()
        .await
        .expect("replay");
    expect_error(replay, StatusCode::UNAUTHORIZED, "token_revoked").await;
    let again = app
        .post("/api/auth/logout", &alice.token)
        .send()
        .await
        .expect("logout");
    expect_error(again, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

async fn refresh_is_refused_far_from_expiry(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .post("/api/auth/refresh", &alice.token)
        .send()
        .await
        .expect("refresh");
    expect_error(res, StatusCode::UNAUTHORIZED, "not_eligible_for_refresh").await;
}

async fn refresh_near_expiry_rotates_the_token(app: TestApp) {
    let alice = app.user("alice").await;
    let old = app.sign(
        &app.claims(&alice, 10 * 60),
        Algorithm::HS256,
        &app.jwt_secret,
    );
    let res = app
        .post("/api/auth/refresh", &old)
        .send()
        .await
        .expect("refresh");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("jwt_token=")));
    let body: Value = res.json().await.expect("json");
    let new = body["token"].as_str().expect("token");
    assert_ne!(new, old);
    assert_eq!(body["user"]["username"], "alice");

    let res = app
        .get("/api/auth/profile", new)
        .send()
        .await
        .expect("profile");
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .get("/api/auth/profile", &old)
        .send()
        .await
        .expect("profile");
    expect_error(res, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

async fn forged_and_expired_tokens_are_refused(app: TestApp) {
    let alice = app.user("alice").await;
    let claims = app.claims(&alice, 3600);

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let alg_none = format!("{header}.{payload}.");
    let wrong_secret = app.sign(
        &claims,
        Algorithm::HS256,
        "someone else's secret, 32+ bytes",
    );
    let other_alg = app.sign(&claims, Algorithm::HS384, &app.jwt_secret);
    let expired = app.sign(&app.claims(&alice, -10), Algorithm::HS256, &app.jwt_secret);
    // Alice's own valid token with its payload swapped for Bob's claims.
    let mut tampered_claims = claims.clone();
    tampered_claims["username"] = json!("bob");
    let signature = alice.token.rsplit('.').next().expect("signature");
    let tampered = format!(
        "{}.{}.{signature}",
        alice.token.split('.').next().expect("header"),
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string())
    );

    for token in [
        alg_none,
        wrong_secret,
        other_alg,
        expired,
        tampered,
        "garbage".into(),
    ] {
        let res = app
            .get("/api/auth/profile", &token)
            .send()
            .await
            .expect("request");
        expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let res = app
        .client
        .get(app.url("/api/auth/profile"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn tokens_from_the_future_are_refused(app: TestApp) {
    let alice = app.user("alice").await;
    let in_an_hour = unix_now() + 3600;
    let mut issued_later = app.claims(&alice, 7200);
    issued_later["iat"] = json!(in_an_hour);
    let mut valid_later = app.claims(&alice, 7200);
    valid_later["nbf"] = json!(in_an_hour);
    for claims in [issued_later, valid_later] {
        let token = app.sign(&claims, Algorithm::HS256, &app.jwt_secret);
        let res = app
            .get("/api/auth/profile", &token)
            .send()
            .await
            .expect("request");
        expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // A little skew between the clocks of two instances is not a reason.
    let mut skewed = app.claims(&alice, 7200);
    skewed["iat"] = json!(unix_now() + 30);
    skewed["nbf"] = json!(unix_now() + 30);
    let token = app.sign(&skewed, Algorithm::HS256, &app.jwt_secret);
    let res = app
        .get("/api/auth/profile", &token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
}

/// A correctly signed token whose account does not exist with its id and
/// name: refused on every route and on the WebSocket upgrade.
async fn expect_invalid_token(app: &TestApp, token: &str) {
    let res = app
        .get("/api/auth/profile", token)
        .send()
        .await
        .expect("profile");
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app
        .post("/api/messages", token)
        .json(&json!({"content": "boo"}))
        .send()
        .await
        .expect("send");
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app
        .upgrade_request()
        .bearer_auth(token)
        .send()
        .await
        .expect("upgrade");
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn tokens_of_accounts_that_do_not_exist_are_invalid(app: TestApp) {
    let alice = app.user("alice").await;
    let ghost = TestUser {
        id: uuid::Uuid::new_v4().to_string(),
        username: "ghost".to_owned(),
        token: String::new(),
    };
    let made_up = app.sign(&app.claims(&ghost, 3600), Algorithm::HS256, &app.jwt_secret);
    expect_invalid_token(&app, &made_up).await;
    // A real id under another name, and a real name under another id.
    let renamed = TestUser {
        username: "alicia".to_owned(),
        ..alice.clone()
    };
    let moved = TestUser {
        id: ghost.id.clone(),
        ..alice.clone()
    };
    for user in [renamed, moved] {
        let token = app.sign(&app.claims(&user, 3600), Algorithm::HS256, &app.jwt_secret);
        expect_invalid_token(&app, &token).await;
    }
    let res = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history");
    let history: Value = res.json().await.expect("json");
    assert_eq!(history, json!([]), "nothing was posted as ghost");
}

/// A token issued before the store was reset (same JWT secret) does not
/// act as whoever registered its username since.
async fn a_token_from_before_the_store_was_reset_is_invalid(backend: Backend) {
    let before = TestApp::spawn(backend).await;
    let old = before.user("alice").await;
    let after = match backend {
        // The memory store starts empty on a restart.
        Backend::Memory => before.restart().await,
        // A fresh database behind a server with the same secret.
        Backend::Postgres => {
            TestApp::spawn_with(backend, &[("JWT_SECRET", before.jwt_secret.as_str())]).await
        }
    };
    let new = after.user("alice").await;
    assert_ne!(new.id, old.id);
    expect_invalid_token(&after, &old.token).await;
    let res = after
        .get("/api/auth/profile", &new.token)
        .send()
        .await
        .expect("profile");
    assert_eq!(res.status(), StatusCode::OK);
}

async fn profile_returns_the_caller(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app
        .get("/api/auth/profile", &alice.token)
        .send()
        .await
        .expect("profile");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["id"], alice.id);
    assert_eq!(body["username"], "alice");
}
