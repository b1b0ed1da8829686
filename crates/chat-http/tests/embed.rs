//! The embedding of `examples/embed.rs`, exercised in process: the chat API
//! answers under the host's prefix and the host's own route still works.

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

use actix_web::http::StatusCode;
use actix_web::{test, App};
use serde_json::{json, Value};

/// The host app of the example, as an in-process service.
macro_rules! host_app {
    () => {{
        let chat = embed::chat_state(4, b"test secret, at least thirty-two bytes").expect("state");
        test::init_service(App::new().configure(|cfg| embed::host_routes(cfg, chat))).await
    }};
}

#[actix_web::test]
async fn health_answers_under_the_prefix() {
    let app = host_app!();
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/chat/health").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(
        body,
        json!({"status": "healthy", "database": "connected", "websocket": "ready", "realtime": "local"})
    );
}

#[actix_web::test]
async fn register_answers_under_the_prefix() {
    let app = host_app!();
    let req = test::TestRequest::post()
        .uri("/chat/api/auth/register")
        .set_json(
            json!({"username": "alice", "email": "alice@example.com", "password": "correct horse"}),
        )
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = test::read_body_json(res).await;
    assert_eq!(user["username"], "alice");
    assert!(user.get("password").is_none());
}

#[actix_web::test]
async fn the_host_keeps_its_own_routes_and_unknown_chat_paths_are_json_404() {
    let app = host_app!();
    let res = test::call_service(&app, test::TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(test::read_body(res).await, "hello from the host app");

    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/chat/nope").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["code"], "not_found");
}

#[actix_web::test]
async fn the_openapi_document_names_the_prefix() {
    let app = host_app!();
    let req = test::TestRequest::get()
        .uri("/chat/api/openapi.json")
        .to_request();
    let doc: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(doc["servers"][0]["url"], "/chat");
    assert!(doc["paths"]["/api/auth/register"]["post"].is_object());
}
