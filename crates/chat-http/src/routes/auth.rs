//! Registration, login, token refresh, logout and the caller's profile.

use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{Session, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{cleared_token_cookie, token_cookie, Authenticated};
use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// A new account.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3-32 characters of `A-Z a-z 0-9 _ . -`, unique (case-insensitive).
    #[schema(
        example = "alice",
        min_length = 3,
        max_length = 32,
        pattern = r"^[A-Za-z0-9_.-]{3,32}$"
    )]
    pub username: String,
    /// A valid email address, unique (case-insensitive).
    #[schema(example = "alice@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8-128 characters.
    #[schema(example = "correct horse battery", min_length = 8, max_length = 128)]
    pub password: String,
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username (case-insensitive).
    #[schema(example = "alice")]
    pub username: String,
    /// The password.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// A confirmation sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    /// What happened.
    #[schema(example = "Logged out successfully")]
    pub message: String,
}

/// Registers a user.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 400, description = "`validation_error` or `invalid_json`", body = ErrorBody),
        (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (AUTH_RATE_LIMIT per minute per client address); see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
pub async fn register(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_auth_attempt(&req)?;
    let user = state
        .service()
        .register(&body.username, &body.email, &body.password)
        .await?;
    Ok(HttpResponse::Created().json(user))
}

/// Logs in.
///
/// Returns a token and sets it as the `jwt_token` cookie.
///
/// An unknown user and a wrong password get the same answer.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token (also set as the `jwt_token` cookie: HttpOnly, SameSite=Lax, Path=/, Max-Age = token lifetime, Secure in production); `expires_at` in unix seconds", body = Session,
            headers(("Set-Cookie" = String, description = "jwt_token=<token>"))),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_auth_attempt(&req)?;
    let session = state
        .service()
        .login(&body.username, &body.password)
        .await?;
    Ok(session_response(&state, session))
}

/// Refreshes a token.
///
/// A token that expires within 15 minutes is exchanged for a new one; the
/// old one is revoked.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    responses(
        (status = 200, description = "A new token, also set as the cookie", body = Session),
        (status = 401, description = "`unauthorized`, `token_revoked`, `invalid_token`, or `not_eligible_for_refresh` (more than 15 minutes before expiry)", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn refresh(
    state: web::Data<ApiState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let session = state.service().refresh(&caller).await?;
    Ok(session_response(&state, session))
}

/// Logs out.
///
/// Revokes the presented token and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "The token is revoked; a replay of it gets 401", body = MessageResponse),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn logout(
    state: web::Data<ApiState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.service().logout(&caller).await?;
    Ok(HttpResponse::Ok()
        .cookie(cleared_token_cookie(state.settings().production))
        .json(MessageResponse {
            message: "Logged out successfully".to_owned(),
        }))
}

/// The caller's own profile.
#[utoipa::path(
    get,
    path = "/api/auth/profile",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = User),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn profile(
    state: web::Data<ApiState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let user = state.service().profile(&caller).await?;
    Ok(HttpResponse::Ok().json(user))
}

fn session_response(state: &ApiState, session: Session) -> HttpResponse {
    let lifetime = state.service().policy().token_lifetime.whole_seconds();
    let cookie = token_cookie(&session.token, lifetime, state.settings().production);
    HttpResponse::Ok().cookie(cookie).json(session)
}
