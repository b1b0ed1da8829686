//! Rooms, their history and their members.

use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{Message, MessageWire, Room, RoomId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::path_id;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::pagination::{page_response, PageParams};
use crate::state::ApiState;

/// A new room.
#[derive(Deserialize, ToSchema)]
pub struct CreateRoomRequest {
    /// 1-100 characters after trimming; no NUL characters.
    #[schema(example = "general", min_length = 1, max_length = 100)]
    pub name: String,
    /// At most 1000 characters; no NUL characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Ids of users to add besides the creator.
    #[serde(default)]
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    pub members: Option<Vec<UserId>>,
}

/// `{"status":"success"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
}

const SUCCESS: StatusResponse = StatusResponse { status: "success" };

/// Creates a room; the creator is a member.
#[utoipa::path(
    post,
    path = "/api/rooms",
    tag = "rooms",
    request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "The new room", body = Room),
        (status = 400, description = "`validation_error` or `invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`user_not_found`: a listed member does not exist", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn create_room(
    state: web::Data<ApiState>,
    caller: Authenticated,
    body: web::Json<CreateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let members = body.members.unwrap_or_default();
    let room = state
        .service()
        .create_room(&caller, &body.name, body.description.as_deref(), &members)
        .await?;
    Ok(HttpResponse::Created().json(room))
}

/// A room the caller belongs to.
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}",
    tag = "rooms",
    params(("roomId" = String, Path, format = Uuid, description = "The room's id")),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 400, description = "`validation_error`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`not_a_member`", body = ErrorBody),
        (status = 404, description = "`room_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn get_room(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RoomId = path_id(&path)?;
    let room = state.service().room(&caller, id).await?;
    Ok(HttpResponse::Ok().json(room))
}

/// A room's history, for members.
///
/// Paginated: the body is a JSON array, oldest first; the `Link` header
/// holds `rel="prev"` (`?before=<first id>&limit=N`) and `rel="next"`
/// (`?after=<last id>&limit=N`).
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}/messages",
    tag = "rooms",
    params(("roomId" = String, Path, format = Uuid, description = "The room's id"), PageParams),
    responses(
        (status = 200, description = "A page of the room's messages, oldest first", body = [MessageWire],
            headers(("Link" = String, description = "RFC 8288 links to the previous (older) and next (newer) pages"))),
        (status = 400, description = "`validation_error` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`not_a_member`", body = ErrorBody),
        (status = 404, description = "`room_not_found`, or `message_not_found`: the cursor names no message, or one the caller may not read", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn room_messages(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id: RoomId = path_id(&path)?;
    let request = query.to_request()?;
    let page = state.service().room_messages(&caller, id, request).await?;
    Ok(page_response(&req, &request, page, |m: &Message| m.id))
}

/// Adds a user to a room the caller belongs to.
///
/// Adding a member again succeeds and changes nothing.
#[utoipa::path(
    post,
    path = "/api/rooms/{roomId}/members/{userId}",
    tag = "rooms",
    params(
        ("roomId" = String, Path, format = Uuid, description = "The room's id"),
        ("userId" = String, Path, format = Uuid, description = "The user to add"),
    ),
    responses(
        (status = 200, description = "The user is a member", body = StatusResponse),
        (status = 400, description = "`validation_error`: an id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`not_a_member`: the caller is not in the room", body = ErrorBody),
        (status = 404, description = "`room_not_found` or `user_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn add_member(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, user) = member_path(&path)?;
    state.service().add_member(&caller, room, user).await?;
    Ok(HttpResponse::Ok().json(SUCCESS))
}

/// Removes a user from a room.
///
/// Allowed to the user themself and to the room's creator. Removing a
/// non-member succeeds and changes nothing.
#[utoipa::path(
    delete,
    path = "/api/rooms/{roomId}/members/{userId}",
    tag = "rooms",
    params(
        ("roomId" = String, Path, format = Uuid, description = "The room's id"),
        ("userId" = String, Path, format = Uuid, description = "The user to remove"),
    ),
    responses(
        (status = 200, description = "The user is not a member", body = StatusResponse),
        (status = 400, description = "`validation_error`: an id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the member themself or the room's creator may remove; `not_a_member`: removing someone else from a room the caller is not in (a creator who left included)", body = ErrorBody),
        (status = 404, description = "`room_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn remove_member(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, user) = member_path(&path)?;
    state.service().remove_member(&caller, room, user).await?;
    Ok(HttpResponse::Ok().json(SUCCESS))
}

fn member_path(path: &(String, String)) -> Result<(RoomId, UserId), ApiError> {
    Ok((path_id(&path.0)?, path_id(&path.1)?))
}
