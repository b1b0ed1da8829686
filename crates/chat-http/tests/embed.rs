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
async fn the_host_chooses_the_parts_it_mounts() {
    let app = host_app!();
    // Not asked for: the browser client and the metrics.
    for path in ["/chat/", "/chat/app.js", "/chat/metrics"] {
        let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Asked for: the reference page.
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/chat/api/docs").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
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

/// Under the host's own `HttpServer` (no `chat_http::server`), a WebSocket
/// is a streaming response of actix-http's dispatcher: the session's
/// frames go both ways, and a close is answered.
#[actix_web::test]
async fn a_websocket_works_under_the_hosts_own_http_server() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let (addr, token, handle) = host_server_with_alice().await;
    let token = token.as_str();

    let mut request = format!("ws://{addr}/chat/api/ws/connect")
        .into_client_request()
        .expect("a WebSocket URL");
    let bearer = format!("Bearer {token}").parse().expect("a header value");
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens");
    assert_eq!(response.status().as_u16(), 101);
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection");

    let send = json!({"type": "message", "content": "hi", "client_id": "c1"});
    ws.send(Message::text(send.to_string()))
        .await
        .expect("sent");
    // Alice's own presence may come first.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let frame = next_json(&mut ws).await;
        match frame["type"].as_str() {
            Some("presence") => {}
            other => seen.push(other.unwrap_or_default().to_owned()),
        }
    }
    seen.sort();
    assert_eq!(seen, ["ack", "message"]);

    ws.close(None).await.expect("close sent");
    let answered = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .expect("closed in time");
    assert!(answered, "the server answers the close");
    handle.stop(true).await;
}

/// The same session as the binary's, under the host's own server: a frame
/// declaring more than the limit is refused from its header (1009), and a
/// malformed close frame gets 1002; both connections end.
#[actix_web::test]
async fn hostile_frames_are_refused_under_the_hosts_own_http_server() {
    use chat_test_support::raw_ws::{client_frame, client_header, RawWs};

    let (addr, token, handle) = host_server_with_alice().await;
    let mut ws = RawWs::open_under(addr, "/chat", &token, 64 * 1024).await;
    let mut huge = client_header(0x82, 2 << 30);
    huge.extend_from_slice(&[0; 64 * 1024]);
    ws.send(&huge).await;
    assert_eq!(ws.close_code().await, Some(1009));
    assert!(ws.ends().await, "the connection ends");

    let mut ws = RawWs::open_under(addr, "/chat", &token, 64 * 1024).await;
    ws.send(&client_frame(0x88, &[3])).await;
    assert_eq!(ws.close_code().await, Some(1002));
    assert!(ws.ends().await, "the connection ends");
    handle.stop(true).await;
}

/// The example's app under its own `HttpServer` on a free port, with
/// alice registered: the address, alice's token, and the server's handle.
async fn host_server_with_alice() -> (std::net::SocketAddr, String, actix_web::dev::ServerHandle) {
    let chat = embed::chat_state(4, b"test secret, at least thirty-two bytes").expect("state");
    let server = actix_web::HttpServer::new(move || {
        App::new().configure(|cfg| embed::host_routes(cfg, chat.clone()))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("binds");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let base = format!("http://{addr}/chat");
    let http = reqwest::Client::new();
    let account =
        json!({"username": "alice", "email": "alice@example.com", "password": "correct horse"});
    let res = http
        .post(format!("{base}/api/auth/register"))
        .json(&account)
        .send()
        .await
        .expect("register");
    assert_eq!(res.status().as_u16(), 201);
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("a JSON login");
    let token = login["token"].as_str().expect("a token").to_owned();
    (addr, token, handle)
}

/// The next frame, which must be JSON text, within 10 s.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a frame");
    serde_json::from_str(frame.to_text().expect("a text frame")).expect("JSON")
}
