//! Health, metrics, connected users and the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{PageRequest, UserId, Username};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// Whether the service can serve requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy`.
    #[schema(example = "healthy")]
    pub status: &'static str,
    /// `connected` or `unavailable`.
    #[schema(example = "connected")]
    pub database: &'static str,
    /// Always `ready`.
    #[schema(example = "ready")]
    pub websocket: &'static str,
    /// How far live delivery reaches: `local` (one instance, no
    /// `REDIS_URL`), `connected` (across instances through Redis) or
    /// `degraded` (Redis configured but out of reach: this instance's own
    /// connections still get everything; the status stays 200).
    #[schema(example = "connected")]
    pub realtime: &'static str,
}

/// Users with at least one live WebSocket connection, on any instance:
/// one page of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedUsersResponse {
    /// Usernames, sorted by byte order: this page.
    pub connected_users: Vec<String>,
    /// How many users are connected in all (not only on this page).
    pub count: usize,
    /// When this was read (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Health.
///
/// 200 when the store answers, 503 when it does not. A `degraded`
/// realtime link alone keeps 200: this instance still serves its own
/// connections, and taking it out of a load balancer would not help.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, description = "Healthy (realtime may be `degraded`)", body = HealthResponse,
            example = json!({"status": "healthy", "database": "connected", "websocket": "ready", "realtime": "connected"})),
        (status = 503, description = "The store is unavailable", body = HealthResponse,
            example = json!({"status": "unhealthy", "database": "unavailable", "websocket": "ready", "realtime": "connected"})),
    )
)]
pub async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let realtime = state.service().realtime_health().as_str();
    match state.service().store_health().await {
        Ok(()) => HttpResponse::Ok().json(HealthResponse {
            status: "healthy",
            database: "connected",
            websocket: "ready",
            realtime,
        }),
        Err(err) => {
            tracing::warn!(code = err.code(), "health check: store unavailable");
            HttpResponse::ServiceUnavailable().json(HealthResponse {
                status: "unhealthy",
                database: "unavailable",
                websocket: "ready",
                realtime,
            })
        }
    }
}

/// One page of who is connected.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectedUsersParams {
    /// Usernames per page: default 50, at most 200 (larger values are
    /// capped).
    #[param(minimum = 1, example = 50)]
    pub limit: Option<usize>,
    /// Only usernames after this one, in byte order (the last of the
    /// previous page).
    pub after: Option<String>,
}

/// Who is connected over WebSocket right now, a page at a time, sorted by
/// username; `count` is the exact total. When more follow, a `Link`
/// header names the next page (`rel="next"`).
#[utoipa::path(
    get,
    path = "/api/ws/users",
    tag = "realtime",
    params(ConnectedUsersParams),
    responses(
        (status = 200, description = "Connected usernames", body = ConnectedUsersResponse),
        (status = 400, description = "`validation_error`: a bad `limit`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn ws_users(
    req: HttpRequest,
    state: web::Data<ApiState>,
    params: web::Query<ConnectedUsersParams>,
    _caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let limit = PageRequest::<UserId>::new(params.limit, None, None)?.limit;
    let users = state.service().connected_users().await?;
    let count = users.len();
    let after = params.after.as_deref().unwrap_or_default();
    let mut rest = users
        .into_iter()
        .map(Username::into_inner)
        .filter(|name| name.as_str() > after);
    let connected_users: Vec<String> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(chat_domain::DomainError::internal)?;
    let mut res = HttpResponse::Ok();
    if let (true, Some(last)) = (more, connected_users.last()) {
        let next = format!("<{}?after={last}&limit={limit}>; rel=\"next\"", req.path());
        res.insert_header((header::LINK, next));
    }
    Ok(res.json(ConnectedUsersResponse {
        count,
        connected_users,
        timestamp,
    }))
}

/// The Prometheus content type of the text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics in the Prometheus text format, when the app
/// serves them ([`ApiState::with_metrics`]); else the JSON 404 of an
/// unknown path. Unauthenticated, like `/health`: keep it off the public
/// network (the nginx configuration refuses it from outside).
pub async fn metrics(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let render = state.metrics().ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(PROMETHEUS_TEXT)
        .body(render()))
}
