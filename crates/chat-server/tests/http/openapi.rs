//! What the OpenAPI document promises: the reference page renders all of
//! it, and the answers schemathesis (scripts/test.d/30-schemathesis.sh)
//! once found outside it stay fixed.

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::support::{expect_error, TestApp};

backend_tests!(
    the_reference_page_lists_every_path,
    nul_characters_are_a_400_not_a_500,
    an_unknown_cursor_is_a_documented_404,
);

async fn the_reference_page_lists_every_path(app: TestApp) {
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let res = app
        .client
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("docs");
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = res.text().await.expect("body");
    assert!(html.starts_with("<!DOCTYPE html>"));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 18, "{:?}", paths.keys());
    for path in paths.keys() {
        assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
    }
    assert!(
        !html.contains("<script") && !html.contains("https://"),
        "the page runs and fetches nothing"
    );
}

/// PostgreSQL cannot store NUL in `text`: on that store these were 500s.
async fn nul_characters_are_a_400_not_a_500(app: TestApp) {
    let alice = app.user("alice").await;
    let res = app.send(&alice, json!({"content": "a\u{0}b"})).await;
    expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
    for body in [
        json!({"name": "a\u{0}b"}),
        json!({"name": "ok", "description": "d\u{0}"}),
    ] {
        let res = app
            .post("/api/rooms", &alice.token)
            .json(&body)
            .send()
            .await
            .expect("create room");
        expect_error(res, StatusCode::BAD_REQUEST, "validation_error").await;
    }
}

/// A cursor naming no message was an undocumented 404.
async fn an_unknown_cursor_is_a_documented_404(app: TestApp) {
    let alice = app.user("alice").await;
    let nowhere = "01a2105c-0000-7000-8000-000000000000";
    let res = app
        .get(&format!("/api/messages?after={nowhere}"), &alice.token)
        .send()
        .await
        .expect("list");
    expect_error(res, StatusCode::NOT_FOUND, "message_not_found").await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    for path in [
        "/api/messages",
        "/api/messages/between/{user1}/{user2}",
        "/api/rooms/{roomId}/messages",
    ] {
        let documented = &doc["paths"][path]["get"]["responses"]["404"]["description"];
        assert!(
            documented
                .as_str()
                .is_some_and(|d| d.contains("message_not_found")),
            "{path}: {documented}"
        );
    }
}
