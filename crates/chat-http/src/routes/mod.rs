//! The route table: every path of the API, in one place.

pub mod auth;
pub mod conversations;
pub mod messages;
pub mod rooms;
pub mod system;
pub mod users;

use std::str::FromStr;

use actix_web::{web, HttpResponse, Resource};
use chat_domain::DomainError;

use crate::error::ApiError;

/// What a mount of the chat API serves beside the JSON API and the
/// WebSocket, which it always serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    /// The browser client at `/`, `/style.css` and its modules (`/app.js`, ...).
    pub web_client: bool,
    /// The OpenAPI document (`/api/openapi.json`) and its reference page
    /// (`/api/docs`).
    pub docs: bool,
    /// `GET /metrics`, answered when the state has a renderer
    /// ([`ApiState::with_metrics`](crate::ApiState::with_metrics)).
    pub metrics: bool,
}

impl Parts {
    /// The JSON API and the WebSocket only.
    pub const API: Self = Self {
        web_client: false,
        docs: false,
        metrics: false,
    };

    /// Everything: what the standalone [`app`](crate::app) serves.
    pub const ALL: Self = Self {
        web_client: true,
        docs: true,
        metrics: true,
    };
}

/// Mounts the routes of `parts`. Paths are relative to wherever the caller
/// mounts the API (the root, or a scope such as `/chat`).
pub(crate) fn route_table(cfg: &mut web::ServiceConfig, parts: Parts) {
    if parts.metrics {
        // Prometheus text; not in the OpenAPI document (not part of the
        // JSON API, and operators keep it off the public network).
        cfg.service(resource("/metrics", "GET").route(web::get().to(system::metrics)));
    }
    if parts.docs {
        cfg.service(
            resource("/api/openapi.json", "GET").route(web::get().to(crate::openapi::openapi_json)),
        )
        .service(resource("/api/docs", "GET").route(web::get().to(crate::openapi::api_docs)));
    }
    if parts.web_client {
        // The browser client: `/`, `/style.css`, its modules.
        cfg.configure(crate::web_client::routes);
    }
    api_routes(cfg);
}

/// The JSON API and the WebSocket: what every mount serves.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", "GET").route(web::get().to(system::health)))
        // Accounts and tokens.
        .service(resource("/api/auth/register", "POST").route(web::post().to(auth::register)))
        .service(resource("/api/auth/login", "POST").route(web::post().to(auth::login)))
        .service(resource("/api/auth/refresh", "POST").route(web::post().to(auth::refresh)))
        .service(resource("/api/auth/logout", "POST").route(web::post().to(auth::logout)))
        .service(resource("/api/auth/profile", "GET").route(web::get().to(auth::profile)))
        // Messages.
        .service(
            resource("/api/messages", "GET, POST")
                .route(web::get().to(messages::list_messages))
                .route(web::post().to(messages::send_message)),
        )
        .service(
            resource("/api/messages/between/{user1}/{user2}", "GET")
                .route(web::get().to(messages::messages_between)),
        )
        .service(
            resource("/api/messages/{id}", "PATCH, DELETE")
                .route(web::patch().to(messages::edit_message))
                .route(web::delete().to(messages::delete_message)),
        )
        .service(
            resource("/api/messages/{id}/reactions/{emoji}", "PUT, DELETE")
                .route(web::put().to(messages::add_reaction))
                .route(web::delete().to(messages::remove_reaction)),
        )
        .service(
            resource("/api/messages/{id}/replies", "GET").route(web::get().to(messages::replies)),
        )
        // Read state.
        .service(
            resource("/api/conversations", "GET")
                .route(web::get().to(conversations::list_conversations)),
        )
        .service(
            resource("/api/conversations/{kind}/{id}/read", "PUT")
                .route(web::put().to(conversations::mark_read)),
        )
        // Realtime.
        .service(resource("/api/ws/connect", "GET").route(web::get().to(crate::ws::connect)))
        .service(resource("/api/ws/users", "GET").route(web::get().to(system::ws_users)))
        // Users.
        .service(resource("/api/users", "GET").route(web::get().to(users::list_users)))
        .service(resource("/api/users/{userId}", "GET").route(web::get().to(users::get_user)))
        .service(
            resource("/api/users/{userId}/rooms", "GET").route(web::get().to(users::user_rooms)),
        )
        // Rooms.
        .service(resource("/api/rooms", "POST").route(web::post().to(rooms::create_room)))
        .service(resource("/api/rooms/{roomId}", "GET").route(web::get().to(rooms::get_room)))
        .service(
            resource("/api/rooms/{roomId}/messages", "GET")
                .route(web::get().to(rooms::room_messages)),
        )
        .service(
            resource("/api/rooms/{roomId}/members/{userId}", "POST, DELETE")
                .route(web::post().to(rooms::add_member))
                .route(web::delete().to(rooms::remove_member)),
        );
}

/// A resource that answers a method it does not route with a JSON 405 and
/// an `Allow` header.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, ApiError>(ApiError::MethodNotAllowed { allow })
    }))
}

/// Parses an id from a path segment, blanks around it ignored: 400
/// `validation_error` if malformed.
fn path_id<I: FromStr<Err = DomainError>>(raw: &str) -> Result<I, ApiError> {
    Ok(raw.trim().parse::<I>()?)
}
