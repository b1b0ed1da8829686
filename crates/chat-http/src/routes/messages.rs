//! Sending and reading messages.

use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{Message, MessageId, MessageWire, RoomId, SendMessage, Stored};
use serde::Deserialize;
use utoipa::ToSchema;

use super::path_id;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::metrics::Transport;
use crate::pagination::{page_response, PageParams};
use crate::state::ApiState;

/// A message to send: global (no `recipient`, no `room_id`), direct
/// (`recipient`) or to a room (`room_id`). Empty strings count as absent.
#[derive(Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// 1-4000 characters after trimming; no NUL characters.
    #[schema(example = "Hello!", min_length = 1, max_length = 4000)]
    pub content: String,
    /// A username, for a direct message.
    #[serde(default)]
    #[schema(example = "bob")]
    pub recipient: Option<String>,
    /// A room the caller belongs to, for a room message.
    #[serde(default)]
    #[schema(format = Uuid)]
    pub room_id: Option<String>,
    /// Optional; if given it must be the caller's username (else 403
    /// `sender_mismatch`). The sender is always the authenticated user.
    #[serde(default)]
    pub sender: Option<String>,
    /// Optional idempotency key (1-64 visible ASCII characters): a resend
    /// with the same key returns the original message (200) and stores
    /// nothing.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Optional: the id of a message this one answers in a thread. It must
    /// be a message of the same conversation that the caller can read and
    /// that is not deleted (else 400 `bad_reply_to`).
    #[serde(default)]
    #[schema(format = Uuid)]
    pub reply_to: Option<String>,
}

/// New text for a message.
#[derive(Deserialize, ToSchema)]
pub struct EditMessageRequest {
    /// 1-4000 characters after trimming; no NUL characters.
    #[schema(example = "Hello, fixed!", min_length = 1, max_length = 4000)]
    pub content: String,
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Sends a message.
///
/// Stored, then delivered live to whoever may see it. Limited per user
/// (MESSAGE_RATE_LIMIT), over WebSocket and HTTP together.
#[utoipa::path(
    post,
    path = "/api/messages",
    tag = "messages",
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "Stored and delivered", body = MessageWire),
        (status = 200, description = "A resend of a `client_id` already used by the caller: the original message; nothing stored", body = MessageWire),
        (status = 400, description = "`validation_error`, `empty_content` (no visible character), `bad_reply_to` or `invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`sender_mismatch`, or `not_a_member` of the room", body = ErrorBody),
        (status = 404, description = "`user_not_found` (recipient) or `room_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over MESSAGE_RATE_LIMIT messages per second for this user (over all of their connections and HTTP); nothing stored. `Retry-After` says when to try again", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn send_message(
    state: web::Data<ApiState>,
    caller: Authenticated,
    body: web::Json<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let room_id = present(body.room_id)
        .map(|raw| raw.parse::<RoomId>())
        .transpose()?;
    let request = SendMessage {
        content: body.content,
        recipient: present(body.recipient),
        room_id,
        sender: present(body.sender),
        client_id: present(body.client_id),
        reply_to: present(body.reply_to)
            .map(|raw| raw.trim().parse::<MessageId>())
            .transpose()?,
    };
    Ok(
        match state.service().send_message(&caller, request).await? {
            Stored::Created(message) => {
                crate::metrics::message_stored(&message.target, Transport::Http);
                HttpResponse::Created().json(message)
            }
            Stored::Duplicate(message) => HttpResponse::Ok().json(message),
        },
    )
}

/// The messages the caller may read.
///
/// Global messages, direct messages to or from the caller, and messages of
/// rooms the caller belongs to. Paginated: the body is a JSON array, oldest first; the `Link` header
/// holds `rel="prev"` (older: `?before=<first id>&limit=N`) when older
/// messages exist and `rel="next"` (newer: `?after=<last id>&limit=N`) when
/// newer ones existed at the time of the read.
#[utoipa::path(
    get,
    path = "/api/messages",
    tag = "messages",
    params(PageParams),
    responses(
        (status = 200, description = "A page of messages, oldest first", body = [MessageWire],
            headers(("Link" = String, description = "RFC 8288 links to the previous (older) and next (newer) pages"))),
        (status = 400, description = "`validation_error` (bad cursor, limit 0, both cursors) or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`message_not_found`: the `before`/`after` cursor names no message, or one the caller may not read (the same answer); drop it and reload the newest page", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn list_messages(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let request = query.to_request()?;
    let page = state.service().visible_messages(&caller, request).await?;
    Ok(page_response(&req, &request, page, |m: &Message| m.id))
}

/// Direct messages between two users.
///
/// Both directions, oldest first. Only those two users may read them.
/// Paginated like `GET /api/messages`.
#[utoipa::path(
    get,
    path = "/api/messages/between/{user1}/{user2}",
    tag = "messages",
    params(
        ("user1" = String, Path, description = "A username (any case)", example = "alice"),
        ("user2" = String, Path, description = "Another username (any case)", example = "bob"),
        PageParams,
    ),
    responses(
        (status = 200, description = "A page of direct messages, oldest first", body = [MessageWire],
            headers(("Link" = String, description = "RFC 8288 links to the previous (older) and next (newer) pages"))),
        (status = 400, description = "`validation_error` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is neither user", body = ErrorBody),
        (status = 404, description = "`user_not_found`, or `message_not_found`: the cursor names no message, or one the caller may not read", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn messages_between(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (user1, user2) = path.into_inner();
    let request = query.to_request()?;
    let page = state
        .service()
        .messages_between(&caller, &user1, &user2, request)
        .await?;
    Ok(page_response(&req, &request, page, |m: &Message| m.id))
}

/// Edits one of the caller's own messages.
///
/// Replaces its text and sets `edited_at`; delivered live as
/// `message_updated` to whoever may read it.
#[utoipa::path(
    patch,
    path = "/api/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id", format = Uuid)),
    request_body = EditMessageRequest,
    responses(
        (status = 200, description = "The message as it now is", body = MessageWire),
        (status = 400, description = "`validation_error` (id, content), `empty_content` or `invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`not_sender`: only the sender may edit a message", body = ErrorBody),
        (status = 404, description = "`message_not_found`: no such message, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "`message_deleted`: a deleted message cannot be edited", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (MESSAGE_RATE_LIMIT counts edits and reactions too)", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn edit_message(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<String>,
    body: web::Json<EditMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let id: MessageId = path_id(&path)?;
    let message = state
        .service()
        .edit_message(&caller, id, &body.content)
        .await?;
    Ok(HttpResponse::Ok().json(message))
}

/// Deletes a message.
///
/// Its sender may, and so may the creator of its room (while a member).
/// It keeps its place as a tombstone (`content` `""`, `deleted_at` set, no
/// reactions). Idempotent; delivered live as `message_updated`.
#[utoipa::path(
    delete,
    path = "/api/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id", format = Uuid)),
    responses(
        (status = 200, description = "Deleted (or already deleted)", body = crate::routes::rooms::StatusResponse),
        (status = 400, description = "`validation_error`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: neither the sender nor the room's creator", body = ErrorBody),
        (status = 404, description = "`message_not_found`: no such message, or one the caller may not read", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn delete_message(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: MessageId = path_id(&path)?;
    state.service().delete_message(&caller, id).await?;
    Ok(HttpResponse::Ok().json(crate::routes::rooms::StatusResponse { status: "success" }))
}

/// Reacts to a message with an emoji.
///
/// One reaction per user per emoji: idempotent. Delivered live as
/// `message_updated`.
#[utoipa::path(
    put,
    path = "/api/messages/{id}/reactions/{emoji}",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The message's id", format = Uuid),
        ("emoji" = String, Path, description = "One emoji (URL-encoded)", example = "👍"),
    ),
    responses(
        (status = 200, description = "The message with its reactions", body = MessageWire),
        (status = 400, description = "`validation_error`: not a UUID, or not exactly one emoji", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`message_not_found`: no such message, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "`message_deleted`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn add_reaction(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, emoji) = path.into_inner();
    let id: MessageId = path_id(&id)?;
    let message = state.service().add_reaction(&caller, id, &emoji).await?;
    Ok(HttpResponse::Ok().json(message))
}

/// Takes back the caller's own reaction.
///
/// Idempotent. Delivered live as `message_updated` when it changed
/// something.
#[utoipa::path(
    delete,
    path = "/api/messages/{id}/reactions/{emoji}",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The message's id", format = Uuid),
        ("emoji" = String, Path, description = "One emoji (URL-encoded)", example = "👍"),
    ),
    responses(
        (status = 200, description = "The message with its reactions", body = MessageWire),
        (status = 400, description = "`validation_error`: not a UUID, or not exactly one emoji", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`message_not_found`: no such message, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "`message_deleted`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn remove_reaction(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, emoji) = path.into_inner();
    let id: MessageId = path_id(&id)?;
    let message = state.service().remove_reaction(&caller, id, &emoji).await?;
    Ok(HttpResponse::Ok().json(message))
}

/// A message's thread.
///
/// The replies to a message the caller can read (deleted ones as
/// tombstones), oldest first; paginated like `GET /api/messages`.
#[utoipa::path(
    get,
    path = "/api/messages/{id}/replies",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The parent message's id", format = Uuid),
        PageParams,
    ),
    responses(
        (status = 200, description = "A page of replies, oldest first", body = [MessageWire],
            headers(("Link" = String, description = "RFC 8288 links to the previous (older) and next (newer) pages"))),
        (status = 400, description = "`validation_error` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`message_not_found`: the parent or the cursor names no message the caller may read", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn replies(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id: MessageId = path_id(&path)?;
    let request = query.to_request()?;
    let page = state.service().replies(&caller, id, request).await?;
    Ok(page_response(&req, &request, page, |m: &Message| m.id))
}
