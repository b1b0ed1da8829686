//! The one error type of the HTTP adapter and its one `ResponseError` impl:
//! every status code and error body the API sends is decided here, for
//! domain errors and for actix-web's own (bad JSON, bad query, unknown
//! route, wrong method) alike.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chat_domain::DomainError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human sentence.
    #[schema(example = "room not found")]
    pub error: String,
    /// A stable snake_case code to branch on.
    #[schema(example = "room_not_found")]
    pub code: String,
}

/// Everything a request can fail with: a domain refusal, or a request the
/// adapter could not even read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A use case said no (or failed).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The body is not JSON, or not the expected shape or types.
    #[error("request body is not valid: {0}")]
    InvalidJson(String),
    /// The body is not declared as `application/json`.
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than the configured limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The query string does not parse (e.g. `limit=abc`).
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// A path segment does not parse (e.g. a room id that is not a UUID).
    #[error("invalid path parameter: {0}")]
    InvalidPath(String),
    /// No route has this path.
    #[error("no route matches this path")]
    NotFound,
    /// The path exists, but not with this method.
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The methods the path accepts, as for the `Allow` header.
        allow: &'static str,
    },
    /// A WebSocket upgrade from a browser page of a foreign origin.
    #[error("WebSocket connections from this origin are not allowed")]
    OriginNotAllowed,
    /// A plain request to a WebSocket-only path.
    #[error("this endpoint only accepts WebSocket upgrades (Upgrade: websocket)")]
    UpgradeRequired,
    /// A WebSocket handshake with a missing or invalid header.
    #[error("invalid WebSocket handshake: {0}")]
    InvalidHandshake(String),
    /// The request body did not fully arrive in time
    /// (`HTTP_REQUEST_TIMEOUT`).
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout {
        /// The time limit, in seconds.
        secs: u64,
    },
    /// A CORS preflight (or cross-origin request) the CORS rules refuse:
    /// an origin, method or header that is not allowed.
    #[error("cross-origin request refused: {0}")]
    CorsRefused(String),
}

impl ApiError {
    /// The stable machine-readable code sent to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(e) => e.code(),
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidPath(_) => "validation_error",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::UpgradeRequired => "upgrade_required",
            Self::InvalidHandshake(_) => "invalid_handshake",
            Self::CorsRefused(_) => "cors_refused",
            Self::RequestTimeout { .. } => "request_timeout",
        }
    }

    /// The body sent to the client.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            code: self.code().to_owned(),
        }
    }

    fn from_json(err: &JsonPayloadError, limit: usize) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { .. }
            | JsonPayloadError::Overflow { .. }
            | JsonPayloadError::Payload(PayloadError::Overflow) => Self::PayloadTooLarge { limit },
            JsonPayloadError::ContentType => Self::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) => Self::InvalidJson(e.to_string()),
            other => Self::InvalidJson(other.to_string()),
        }
    }
}

fn domain_status(err: &DomainError) -> StatusCode {
    match err {
        DomainError::Validation { .. }
        | DomainError::EmptyContent
        | DomainError::BadReplyTo
        | DomainError::TooManySubscriptions { .. } => StatusCode::BAD_REQUEST,
        DomainError::UsernameTaken | DomainError::EmailTaken | DomainError::MessageDeleted => {
            StatusCode::CONFLICT
        }
        DomainError::InvalidCredentials
        | DomainError::Unauthenticated
        | DomainError::TokenRevoked
        | DomainError::InvalidToken
        | DomainError::NotEligibleForRefresh => StatusCode::UNAUTHORIZED,
        DomainError::SenderMismatch
        | DomainError::NotAMember
        | DomainError::NotSender
        | DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
        DomainError::UserNotFound | DomainError::RoomNotFound | DomainError::MessageNotFound => {
            StatusCode::NOT_FOUND
        }
        DomainError::RateLimited { .. } | DomainError::TooManyConnections { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        DomainError::StoreUnavailable | DomainError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Domain(e) => domain_status(e),
            Self::InvalidJson(_)
            | Self::InvalidQuery(_)
            | Self::InvalidPath(_)
            | Self::InvalidHandshake(_)
            | Self::CorsRefused(_) => StatusCode::BAD_REQUEST,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // The detail is for operators only; the client gets a generic body.
            Self::Domain(DomainError::Internal(detail)) => {
                tracing::error!(detail = %detail, "internal error");
            }
            Self::Domain(DomainError::StoreUnavailable) => {
                tracing::warn!("store unavailable");
            }
            _ => {}
        }
        let mut res = HttpResponse::build(status);
        match self {
            Self::Domain(DomainError::RateLimited { retry_after_secs }) => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::MethodNotAllowed { allow } => {
                res.insert_header((header::ALLOW, *allow));
            }
            Self::UpgradeRequired => {
                res.insert_header((header::UPGRADE, "websocket"));
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        // `json` sets `Content-Type: application/json`.
        res.json(self.body())
    }
}

/// JSON body extraction: limit and error mapping (400 `invalid_json`,
/// 415 `unsupported_media_type`, 413 `payload_too_large`).
pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req: &HttpRequest| ApiError::from_json(&err, limit).into())
}

/// Path extraction: a segment of the wrong type is 400 `validation_error`.
pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req: &HttpRequest| {
        let detail = match &err {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::InvalidPath(detail).into()
    })
}

/// Query extraction: a parameter of the wrong type is 400 `invalid_query`.
pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req: &HttpRequest| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::InvalidQuery(detail).into()
    })
}

/// Any other body extraction (raw bytes, text): only the size limit.
pub(crate) fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

/// The default service: 404 `not_found` as JSON for any unknown path.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value) {
        let res = err.error_response();
        let status = res.status();
        let bytes = to_bytes(res.into_body()).await.expect("body");
        let json = serde_json::from_slice(&bytes).expect("json body");
        (status, json)
    }

    #[actix_web::test]
    async fn every_domain_error_has_its_status() {
        let cases = [
            (DomainError::invalid("username", "too short"), 400),
            (DomainError::EmptyContent, 400),
            (DomainError::UsernameTaken, 409),
            (DomainError::EmailTaken, 409),
            (DomainError::InvalidCredentials, 401),
            (DomainError::Unauthenticated, 401),
            (DomainError::TokenRevoked, 401),
            (DomainError::InvalidToken, 401),
            (DomainError::NotEligibleForRefresh, 401),
            (DomainError::SenderMismatch, 403),
            (DomainError::NotAMember, 403),
            (DomainError::Forbidden("no"), 403),
            (DomainError::UserNotFound, 404),
            (DomainError::RoomNotFound, 404),
            (DomainError::MessageNotFound, 404),
            (
                DomainError::RateLimited {
                    retry_after_secs: 7,
                },
                429,
            ),
            (DomainError::TooManyConnections { limit: 16 }, 429),
            (DomainError::StoreUnavailable, 503),
            (DomainError::ShuttingDown, 503),
            (DomainError::internal("db exploded at row 7"), 500),
        ];
        for (err, status) in cases {
            let code = err.code();
            let (got, json) = body_of(ApiError::from(err)).await;
            assert_eq!(got.as_u16(), status, "{code}");
            assert_eq!(json["code"], code);
            assert!(json["error"].is_string());
        }
    }

    #[actix_web::test]
    async fn internal_detail_never_reaches_the_client() {
        let (_, json) = body_of(DomainError::internal("secret detail").into()).await;
        assert_eq!(json["error"], "internal error");
        assert_eq!(json["code"], "internal_error");
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let res = ApiError::from(DomainError::RateLimited {
            retry_after_secs: 7,
        })
        .error_response();
        assert_eq!(
            res.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }
}
