//! Users and the rooms they belong to.

use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{Room, User, UserId};

use super::path_id;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::pagination::{page_response, PageParams};
use crate::state::ApiState;

/// Registered users.
///
/// In registration order. Only the caller's own entry carries an `email`;
/// everyone else's is `null`. Paginated: the body is a JSON array; the `Link` header holds
/// `rel="prev"` (`?before=<first id>&limit=N`) and `rel="next"`
/// (`?after=<last id>&limit=N`) when there is more.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    params(PageParams),
    responses(
        (status = 200, description = "A page of users", body = [User],
            headers(("Link" = String, description = "RFC 8288 links to the previous and next pages"))),
        (status = 400, description = "`validation_error` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn list_users(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let request = query.to_request()?;
    let page = state.service().users(&caller, request).await?;
    Ok(page_response(&req, &request, page, |u: &User| u.id))
}

/// One user.
///
/// The `email` is `null` unless the user is the caller.
#[utoipa::path(
    get,
    path = "/api/users/{userId}",
    tag = "users",
    params(("userId" = String, Path, format = Uuid, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "`validation_error`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn get_user(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: UserId = path_id(&path)?;
    let user = state.service().user(&caller, id).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// The rooms of a user that the caller can see.
///
/// All of the caller's own; of another user, only the rooms the caller
/// shares with them. Paginated like `GET /api/users`.
#[utoipa::path(
    get,
    path = "/api/users/{userId}/rooms",
    tag = "users",
    params(("userId" = String, Path, format = Uuid, description = "The user's id"), PageParams),
    responses(
        (status = 200, description = "A page of rooms", body = [Room],
            headers(("Link" = String, description = "RFC 8288 links to the previous and next pages"))),
        (status = 400, description = "`validation_error` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn user_rooms(
    state: web::Data<ApiState>,
    caller: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id: UserId = path_id(&path)?;
    let request = query.to_request()?;
    let page = state.service().user_rooms(&caller, id, request).await?;
    Ok(page_response(&req, &request, page, |r: &Room| r.id))
}
