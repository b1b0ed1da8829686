//! # chat-http
//!
//! The HTTP adapter of the chat service: every JSON route of the API on
//! actix-web, over a [`chat_domain::ChatService`]. It translates and
//! nothing more: the rules live in the domain.
//!
//! - [`configure`] mounts the JSON API and the WebSocket on an actix-web
//!   [`ServiceConfig`](actix_web::web::ServiceConfig), so another actix-web
//!   app can serve the chat API at its root or under a prefix of its own;
//!   [`configure_with`] adds, as [`Parts`] says, the browser client, the
//!   API reference and `/metrics`.
//! - [`app`] is the whole standalone app: every part plus CORS ([`cors`]),
//!   request ids and one tracing span per request ([`trace_requests`]),
//!   and the security headers ([`security_headers`]).
//! - Every error is `{"error": "...", "code": "..."}` ([`ApiError`]), from
//!   the domain and from actix-web alike (bad JSON 400 `invalid_json`,
//!   wrong content type 415, too large 413, unknown route 404 `not_found`,
//!   wrong method 405 `method_not_allowed`).
//! - Lists are paginated with `?limit=&before=&after=`; the body is a JSON
//!   array and the `Link` header names the neighbouring pages
//!   (see [`pagination`]).
//! - The OpenAPI 3.1 document is served at `/api/openapi.json` ([`ApiDoc`]),
//!   and rendered as a self-contained HTML reference page at `/api/docs`
//!   (no script, nothing fetched).
//! - `GET /metrics` serves the app's metrics when it gives a renderer
//!   ([`ApiState::with_metrics`]); what is counted, and how, is in
//!   [`metrics`] (recorded through the `metrics` facade; no recorder is
//!   installed here).
//! - [`server`] serves [`app`] on a listener as actix-web's `HttpServer`
//!   would, and takes upgraded WebSockets off the HTTP dispatcher, so that
//!   an idle socket does not keep the dispatcher's buffers.
//! - Live delivery is the WebSocket at `/api/ws/connect` ([`ws`]): token
//!   and `Origin` checked before the upgrade, one task per connection,
//!   sends through the same use case as HTTP, bounded in size, rate and
//!   time spent waiting on a slow client.
//!
//! Mounting the chat API under `/chat` in an app of your own (a runnable
//! version is `examples/embed.rs`):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use actix_web::{web, App, HttpResponse, HttpServer};
//! use chat_auth::{BcryptHasher, JwtCodec};
//! use chat_domain::{AuthPolicy, ChatService, Stores};
//! use chat_http::{ApiState, HttpSettings};
//! use chat_realtime::{Hub, HubConfig};
//! use chat_store_memory::MemoryStore;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let service = ChatService::new(
//!         Stores::single(Arc::new(MemoryStore::new())),
//!         Arc::new(Hub::new(HubConfig::default())),
//!         Arc::new(BcryptHasher::new(12).expect("valid cost")),
//!         Arc::new(JwtCodec::new(b"a secret of at least thirty-two bytes!")),
//!         AuthPolicy::default(),
//!     );
//!     let state = ApiState::new(Arc::new(service), HttpSettings::default());
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(actix_web::middleware::from_fn(chat_http::trace_requests))
//!             .service(web::scope("/chat").configure(chat_http::configure(state.clone())))
//!             .route("/", web::get().to(|| async { HttpResponse::Ok().body("my app") }))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! The standalone app is `HttpServer::new(move || chat_http::app(state.clone()))`.

pub mod auth;
pub mod body_deadline;
mod client_addr;
pub mod error;
pub mod metrics;
mod openapi;
pub mod pagination;
mod reference;
pub mod request_id;
pub mod routes;
pub mod security;
pub mod server;
mod state;
pub mod web_client;
pub mod ws;

use actix_cors::{Cors, CorsError};
use actix_web::body::MessageBody;
use actix_web::dev::{RequestHead, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, App, ResponseError};

pub use auth::{presented_token, Authenticated, TOKEN_COOKIE};
pub use client_addr::client_addr;
pub use error::{not_found, ApiError, ErrorBody};
pub use metrics::RenderMetrics;
pub use openapi::ApiDoc;
pub use request_id::{trace_requests, RequestId, REQUEST_ID_HEADER};
pub use routes::Parts;
pub use security::security_headers;
pub use state::{ApiState, HttpSettings, WsSettings, DEFAULT_BODY_LIMIT};

/// Mounts the chat API's JSON routes and its WebSocket, with their
/// extractor settings (body limit, JSON errors) and a JSON 404 for unknown
/// paths under the mount point: [`configure_with`] and [`Parts::API`].
/// Use it with `App::configure` or `Scope::configure`:
///
/// ```ignore
/// App::new().service(web::scope("/chat").configure(chat_http::configure(state)))
/// ```
pub fn configure(state: ApiState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    configure_with(state, Parts::API)
}

/// [`configure`], with the browser client, the API reference and
/// `/metrics` as `parts` says. Wrap the app in [`security_headers`] when it
/// serves the browser client or the reference page.
pub fn configure_with(state: ApiState, parts: Parts) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let limit = state.settings().body_limit;
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(error::json_config(limit))
            .app_data(error::payload_config(limit))
            .app_data(error::path_config())
            .app_data(error::query_config());
        routes::route_table(cfg, parts);
        cfg.default_service(web::to(not_found));
    }
}

/// The standalone app: every part ([`Parts::ALL`]) at the root, CORS from
/// the settings, `X-Request-Id` and one tracing span per request, a
/// deadline on request bodies ([`body_deadline`]) and the security headers
/// ([`security_headers`]).
///
/// ```ignore
/// HttpServer::new(move || chat_http::app(state.clone())).bind(("0.0.0.0", 8080))?.run().await
/// ```
pub fn app(
    state: ApiState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors(state.settings());
    App::new()
        .wrap(actix_web::middleware::from_fn(body_deadline::body_deadline))
        .wrap(cors)
        .wrap(actix_web::middleware::from_fn(cors_refusals_as_json))
        .wrap(actix_web::middleware::from_fn(security_headers))
        .wrap(actix_web::middleware::from_fn(trace_requests))
        .configure(configure_with(state, Parts::ALL))
}

/// CORS for the configured origins. Exact origins get credentials (the
/// token cookie); `*` allows any origin without credentials; the server's
/// own origin is always allowed. A request from any other origin is still
/// served, without CORS headers, so browsers keep its response from the
/// calling page.
pub fn cors(settings: &HttpSettings) -> Cors {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let base = Cors::default()
        .allowed_methods(["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            request_id.clone(),
        ])
        .expose_headers([header::LINK, header::RETRY_AFTER, request_id])
        .max_age(3600);
    if allows_any_origin(settings) {
        return base.allow_any_origin().send_wildcard();
    }
    let origins = settings.cors_allowed_origins.clone();
    base.supports_credentials().allowed_origin_fn(
        move |origin: &HeaderValue, head: &RequestHead| {
            let host = head
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            origin
                .to_str()
                .is_ok_and(|origin| origin_in(&origins, origin, host))
        },
    )
}

/// Rewrites a refusal of [`cors`] (a preflight from an origin, or asking
/// for a method or header, that is not allowed) as the JSON error shape,
/// 400 `cors_refused`: actix-cors answers those itself, in plain text.
/// Wrap it around the `Cors` middleware.
pub async fn cors_refusals_as_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|err| err.as_error::<CorsError>())
        .map(ToString::to_string);
    let Some(reason) = refusal else {
        return Ok(res.map_into_left_body());
    };
    let (req, refused) = res.into_parts();
    let mut json = ApiError::CorsRefused(reason).error_response();
    // What the answer varies by (Origin, ...) still holds for caches.
    for value in refused.headers().get_all(header::VARY) {
        json.headers_mut().append(header::VARY, value.clone());
    }
    Ok(ServiceResponse::new(req, json).map_into_right_body())
}

/// Whether a browser page at `origin` may use the API (and open its
/// WebSocket): it is listed in `cors_allowed_origins`, the list is `*`, or
/// it is the server's own origin (its host and port equal the request's
/// `Host`).
pub fn origin_allowed(settings: &HttpSettings, origin: &str, host: Option<&str>) -> bool {
    allows_any_origin(settings) || origin_in(&settings.cors_allowed_origins, origin, host)
}

fn allows_any_origin(settings: &HttpSettings) -> bool {
    settings.cors_allowed_origins.iter().any(|o| o == "*")
}

fn origin_in(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    let listed = allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    let own = host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
    });
    listed || own
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str]) -> HttpSettings {
        HttpSettings {
            cors_allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn listed_and_own_origins_are_allowed() {
        let s = settings(&["https://chat.example.com"]);
        assert!(origin_allowed(&s, "https://chat.example.com", None));
        assert!(origin_allowed(
            &s,
            "http://localhost:8080",
            Some("localhost:8080")
        ));
        assert!(!origin_allowed(
            &s,
            "https://evil.example",
            Some("localhost:8080")
        ));
        assert!(!origin_allowed(
            &settings(&[]),
            "https://evil.example",
            None
        ));
    }

    #[test]
    fn a_star_allows_everyone() {
        assert!(origin_allowed(
            &settings(&["*"]),
            "https://any.example",
            None
        ));
    }
}
