//! The OpenAPI 3.1 document of every route, and the two routes that serve
//! it: as JSON (`/api/openapi.json`) and as a reference page (`/api/docs`,
//! rendered by `reference.rs`, which knows nothing of this API).

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{Content, Ref, RefOr, Response, Type};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{auth, conversations, messages, rooms, system, users};

/// The API's OpenAPI document. Paths are relative to where the API is
/// mounted.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chat API",
        description = "Real-time chat: accounts, direct and room messages, rooms. \
Errors are always `{\"error\": \"...\", \"code\": \"...\"}`. Lists are paginated with \
`?limit=` (default 50, max 200), `?before=<id>` and `?after=<id>`; the body is a JSON array, \
oldest first, and the `Link` header names the neighbouring pages (`rel=\"prev\"`: older, \
`rel=\"next\"`: newer). Live delivery is over the WebSocket at `/api/ws/connect`. \
Any path answers 405 `method_not_allowed` (with `Allow`) to a method it does not route, and an \
unknown path 404 `not_found`. A human-readable version of this document is at `/api/docs`."
    ),
    paths(
        system::health,
        openapi_json,
        api_docs,
        auth::register,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::profile,
        messages::send_message,
        messages::list_messages,
        messages::messages_between,
        messages::edit_message,
        messages::delete_message,
        messages::add_reaction,
        messages::remove_reaction,
        messages::replies,
        conversations::list_conversations,
        conversations::mark_read,
        crate::ws::connect,
        system::ws_users,
        users::list_users,
        users::get_user,
        users::user_rooms,
        rooms::create_room,
        rooms::get_room,
        rooms::room_messages,
        rooms::add_member,
        rooms::remove_member,
    ),
    components(schemas(
        ErrorBody,
        chat_domain::User,
        chat_domain::Room,
        chat_domain::MessageWire,
        chat_domain::Session,
        auth::RegisterRequest,
        auth::LoginRequest,
        auth::MessageResponse,
        messages::SendMessageRequest,
        messages::EditMessageRequest,
        conversations::ConversationWire,
        conversations::MarkReadRequest,
        chat_domain::Reaction,
        rooms::CreateRoomRequest,
        rooms::StatusResponse,
        system::HealthResponse,
        system::ConnectedUsersResponse,
    )),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "messages", description = "Global and direct messages"),
        (name = "rooms", description = "Rooms and their members"),
        (name = "conversations", description = "The caller's conversations, unread counts and read markers"),
        (name = "users", description = "Users"),
        (name = "realtime", description = "Live connections"),
        (name = "system", description = "Health and this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie_auth",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("jwt_token"))),
        );
    }
}

/// The error answers that do not depend on the route, added to every
/// operation that can give them so that none is forgotten: 401 (with
/// `WWW-Authenticate`) and 503 wherever a token is checked (checking one
/// reads revocations from the store), 400/413/415 wherever a JSON body is
/// read, 400 wherever a query string is parsed, and 500 everywhere but the
/// static documents. A route's own answer for a status is kept.
struct CommonErrors;

/// Operations that read nothing but the binary itself: they cannot fail.
const STATIC_PATHS: [&str; 2] = ["/api/openapi.json", "/api/docs"];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let is_static = STATIC_PATHS.contains(&path.as_str());
            for op in operations_mut(item) {
                add_common_errors(op, is_static);
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

fn add_common_errors(op: &mut Operation, is_static: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query))
    });
    let responses = &mut op.responses.responses;
    let mut ensure = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if has_body {
        ensure(
            "400",
            "`invalid_json` (malformed JSON, wrong types, missing field) or `validation_error`",
        );
        ensure(
            "408",
            "`request_timeout`: the body did not fully arrive within HTTP_REQUEST_TIMEOUT \
             (10 s by default); the connection is closed",
        );
        ensure(
            "413",
            "`payload_too_large`: the body is over the limit (64 KiB)",
        );
        ensure(
            "415",
            "`unsupported_media_type`: the body is not `application/json`",
        );
    }
    if has_query {
        ensure(
            "400",
            "`invalid_query` (a parameter of the wrong type) or `validation_error`",
        );
    }
    if secured {
        ensure(
            "401",
            "`unauthorized` (no, forged or expired token), `token_revoked` or \
             `invalid_token` (its account no longer exists with that id and name)",
        );
        ensure(
            "503",
            "`store_unavailable`: the store cannot be reached; retry shortly",
        );
    }
    if !is_static {
        ensure(
            "500",
            "`internal_error`: a bug; the detail is only in the server log",
        );
    }
    if let Some(RefOr::T(unauthorized)) = responses.get_mut("401") {
        unauthorized
            .headers
            .entry("WWW-Authenticate".to_owned())
            .or_insert_with(|| {
                let mut header = Header::new(utoipa::openapi::Object::with_type(Type::String));
                header.description = Some("`Bearer`".to_owned());
                header
            });
    }
}

/// A response whose body is an [`ErrorBody`].
fn error_response(description: &str) -> Response {
    let mut response = Response::new(description);
    response.content.insert(
        "application/json".to_owned(),
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    response
}

/// The document as served under `prefix` (empty at the root).
/// This API's OpenAPI 3.1 document.
///
/// When the API is mounted under a prefix (such as `/chat`), the
/// document's `servers` names it.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json(req: HttpRequest) -> HttpResponse {
    let prefix = req
        .path()
        .strip_suffix("/api/openapi.json")
        .unwrap_or_default();
    HttpResponse::Ok().json(document_for(prefix))
}

/// What the reference page may do: run no script, load nothing from
/// anywhere, apply only its own inline style.
pub const REFERENCE_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The reference page of this API.
///
/// Generated from `/api/openapi.json` when asked; needs nothing from the
/// network.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "system",
    responses((status = 200, description = "The API reference as an HTML page", content_type = "text/html"))
)]
pub async fn api_docs(req: HttpRequest) -> HttpResponse {
    let prefix = req.path().strip_suffix("/api/docs").unwrap_or_default();
    let doc = serde_json::to_value(document_for(prefix)).unwrap_or(serde_json::Value::Null);
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(REFERENCE_CONTENT_SECURITY_POLICY),
        ))
        .body(crate::reference::render(&doc))
}

pub(crate) fn document_for(prefix: &str) -> utoipa::openapi::OpenApi {
    static BASE: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    let mut doc = BASE.get_or_init(ApiDoc::openapi).clone();
    if !prefix.is_empty() {
        doc.servers = Some(vec![Server::new(prefix)]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::{web, App};
    use std::collections::HashSet;

    #[actix_web::test]
    async fn the_page_is_html_with_a_strict_policy_under_any_prefix() {
        let app = init_service(
            App::new()
                .route("/api/docs", web::get().to(api_docs))
                .route("/chat/api/docs", web::get().to(api_docs)),
        )
        .await;
        for uri in ["/api/docs", "/chat/api/docs"] {
            let res = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
            assert!(res.status().is_success());
            let headers = res.headers();
            assert_eq!(
                headers.get(header::CONTENT_TYPE),
                Some(&HeaderValue::from_static("text/html; charset=utf-8"))
            );
            assert_eq!(
                headers.get(header::CONTENT_SECURITY_POLICY),
                Some(&HeaderValue::from_static(REFERENCE_CONTENT_SECURITY_POLICY))
            );
            let body = String::from_utf8(read_body(res).await.to_vec()).expect("utf-8");
            assert!(body.contains("<code>/api/messages</code>"), "{uri}");
        }
    }

    #[test]
    fn every_route_is_documented_once_with_unique_parameters() {
        let doc = serde_json::to_value(document_for("")).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let expected = [
            ("/health", "get"),
            ("/api/openapi.json", "get"),
            ("/api/auth/register", "post"),
            ("/api/auth/login", "post"),
            ("/api/auth/refresh", "post"),
            ("/api/auth/logout", "post"),
            ("/api/auth/profile", "get"),
            ("/api/messages", "post"),
            ("/api/messages", "get"),
            ("/api/messages/between/{user1}/{user2}", "get"),
            ("/api/messages/{id}", "patch"),
            ("/api/messages/{id}", "delete"),
            ("/api/messages/{id}/reactions/{emoji}", "put"),
            ("/api/messages/{id}/reactions/{emoji}", "delete"),
            ("/api/messages/{id}/replies", "get"),
            ("/api/ws/connect", "get"),
            ("/api/ws/users", "get"),
            ("/api/users", "get"),
            ("/api/users/{userId}", "get"),
            ("/api/users/{userId}/rooms", "get"),
            ("/api/rooms", "post"),
            ("/api/rooms/{roomId}", "get"),
            ("/api/rooms/{roomId}/messages", "get"),
            ("/api/rooms/{roomId}/members/{userId}", "post"),
            ("/api/rooms/{roomId}/members/{userId}", "delete"),
        ];
        for (path, method) in expected {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} undocumented");
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(names.len(), unique.len(), "{method} {path}: {names:?}");
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer_auth"]["scheme"], "bearer");
        assert_eq!(schemes["cookie_auth"]["name"], "jwt_token");
        assert!(doc.get("servers").is_none());
    }

    #[test]
    fn a_users_email_is_always_there_and_may_be_null() {
        let doc = serde_json::to_value(document_for("")).expect("serializes");
        let user = &doc["components"]["schemas"]["User"];
        let required: Vec<&str> = user["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert!(required.contains(&"email"), "{user}");
        let email = user["properties"]["email"].to_string();
        assert!(email.contains("null"), "{email}");
    }

    #[test]
    fn routes_with_a_body_document_the_body_deadline() {
        let doc = serde_json::to_value(document_for("")).expect("serializes");
        let register = &doc["paths"]["/api/auth/register"]["post"]["responses"]["408"];
        assert!(
            register["description"]
                .as_str()
                .is_some_and(|d| d.contains("request_timeout")),
            "{register}"
        );
    }
}
