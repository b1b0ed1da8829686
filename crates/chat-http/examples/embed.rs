//! Another actix-web app that serves the chat API under its own prefix
//! (`/chat`), with its own choice of store (in memory here) and a route of
//! its own next to it.
//!
//! ```text
//! cargo run -p chat-http --example embed
//! curl localhost:8081/hello
//! curl localhost:8081/chat/health
//! curl -H 'Content-Type: application/json' \
//!      -d '{"username":"alice","email":"alice@example.com","password":"correct horse"}' \
//!      localhost:8081/chat/api/auth/register
//! ```

use std::sync::Arc;

use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use chat_auth::{BcryptHasher, JwtCodec};
use chat_domain::{AuthPolicy, ChatService, Stores};
use chat_http::{ApiState, HttpSettings, Parts};
use chat_realtime::{Hub, HubConfig};
use chat_store_memory::MemoryStore;

/// The chat service this app embeds, on an in-memory store.
pub fn chat_state(bcrypt_cost: u32, jwt_secret: &[u8]) -> std::io::Result<ApiState> {
    let hasher = BcryptHasher::new(bcrypt_cost).map_err(std::io::Error::other)?;
    let service = ChatService::new(
        Stores::single(Arc::new(MemoryStore::new())),
        Arc::new(Hub::new(HubConfig::default())),
        Arc::new(hasher),
        Arc::new(JwtCodec::new(jwt_secret)),
        AuthPolicy::default(),
    );
    Ok(ApiState::new(Arc::new(service), HttpSettings::default()))
}

/// The host app's routes: the chat API under `/chat` with its OpenAPI
/// document and reference page but neither the browser client nor
/// `/metrics` (this app has its own), and its own `/hello`.
pub fn host_routes(cfg: &mut web::ServiceConfig, chat: ApiState) {
    let parts = Parts {
        docs: true,
        ..Parts::API
    };
    cfg.service(web::scope("/chat").configure(chat_http::configure_with(chat, parts)))
        .route(
            "/hello",
            web::get().to(|| async { HttpResponse::Ok().body("hello from the host app") }),
        );
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let chat = chat_state(12, b"example only: use a real 32+ byte secret")?;
    println!("listening on http://127.0.0.1:8081 (chat API under /chat)");
    HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(chat_http::trace_requests))
            .configure(|cfg| host_routes(cfg, chat.clone()))
    })
    .bind(("127.0.0.1", 8081))?
    .run()
    .await
}
