//! The upgrade: everything is checked while the request is still plain
//! HTTP, so a refusal is an ordinary JSON error (401, 403, 426, 503), then
//! the connection is registered with the notifier and its session task
//! starts.
//!
//! `?since=` is read here but answered in the session, as frames: a
//! browser's `WebSocket` cannot read the status or body of a refused
//! upgrade (it only sees close code 1006), so a bad `since` refused here
//! would leave its client retrying blind.

use actix_http::BoxedPayloadStream;
use actix_web::http::header;
use actix_web::{dev, web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::FutureExt;
use serde::Deserialize;
use tracing::Instrument;

use super::bare::BareUpgrade;
use super::frames::FrameHandler;
use super::guard::FrameGuard;
use super::replay::Since;
use super::session::WsSession;
use super::writer::Writer;
use crate::auth::{bearer_token, Authenticated};
use crate::error::ApiError;
use crate::state::{ApiState, HttpSettings};

/// `GET /api/ws/connect`: the caller is already authenticated (the
/// extractor answered 401 otherwise).
pub(crate) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, state.settings())?;
    require_upgrade(&req)?;
    let since = since(&req);
    let settings = state.settings().ws.clone();
    let body = guarded(&req, body, settings.max_message_size).await?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|err| ApiError::InvalidHandshake(err.to_string()))?;
    let Authenticated(caller) = caller;
    // Counted and registered before the 101 goes out: a refusal (too many
    // connections, the hub shutting down, the token revoked meanwhile) is
    // still a plain HTTP error, and nothing published from here on is
    // missed by this connection.
    let slot = state.open_connection_slot(caller.user_id)?;
    let subscription = state.service().open_connection(&caller).await?;
    let span = tracing::info_span!("ws", user_id = %caller.user_id, username = %caller.username);
    let max_size = settings.max_message_size;
    let session = WsSession {
        handler: FrameHandler::new(
            state.service().clone(),
            caller,
            &settings,
            subscription.presence(),
        ),
        out: Writer::new(session, settings.write_wait),
        inbound: stream
            .max_frame_size(max_size)
            .aggregate_continuations()
            .max_continuation_size(max_size),
        subscription,
        settings,
        since,
        replayed: None,
        slot,
        fills: state.fills(),
    };
    span.in_scope(|| tracing::debug!("WebSocket open"));
    let open = crate::metrics::OpenSocket::new();
    // A combinator, not an `async` block: a block awaiting the session
    // would hold it twice (captured, and as the future it awaits), and the
    // task's allocation is sized for both (docs/benchmarks.md, "Memory per
    // idle socket").
    let served = session.run().map(move |()| drop(open)).instrument(span);
    match req.extensions().get::<BareUpgrade>() {
        // Served by `crate::server`: the session runs on the bare socket
        // once the 101 is written (see `bare.rs`).
        Some(bare) => bare.put(Box::pin(served)),
        // Under any other server, the connection's dispatcher writes the
        // response body; the session is a local task, tied like the body
        // and the payload to this worker's thread.
        None => drop(actix_web::rt::spawn(served)),
    }
    Ok(response)
}

/// The request's payload behind the frame header guard (`guard.rs`).
async fn guarded(
    req: &HttpRequest,
    body: web::Payload,
    max_size: usize,
) -> Result<web::Payload, ApiError> {
    let guard: BoxedPayloadStream = Box::pin(FrameGuard::new(body.into_inner(), max_size));
    let mut payload = dev::Payload::Stream { payload: guard };
    web::Payload::from_request(req, &mut payload)
        .await
        .map_err(|err| ApiError::InvalidHandshake(err.to_string()))
}

/// The query parameters of the upgrade.
#[derive(Debug, Deserialize)]
struct ConnectQuery {
    since: Option<String>,
}

/// What `?since=` asks for; a query that cannot be read (such as two
/// `since`) is an invalid `since`.
fn since(req: &HttpRequest) -> Since {
    match web::Query::<ConnectQuery>::from_query(req.query_string()) {
        Ok(query) => Since::parse(query.since.as_deref()),
        Err(_) => Since::Invalid(chat_domain::DomainError::invalid(
            "since",
            "must be given at most once, as the id of a message you received",
        )),
    }
}

/// Refuses an upgrade from a browser page of another site, which would
/// otherwise ride on the user's cookie (cross-site WebSocket hijacking).
/// Allowed: no `Origin` (not a browser), the server's own origin, an origin
/// listed in CORS_ALLOWED_ORIGINS, or, when that list is `*`, any origin
/// with a bearer token (as for CORS, `*` never extends to the cookie).
fn check_origin(req: &HttpRequest, settings: &HttpSettings) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| ApiError::OriginNotAllowed)?;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let listed = crate::origin_in(&settings.cors_allowed_origins, origin, host);
    let any_with_bearer = crate::allows_any_origin(settings) && bearer_token(req).is_some();
    if listed || any_with_bearer {
        Ok(())
    } else {
        tracing::warn!(origin, "WebSocket upgrade from a foreign origin refused");
        Err(ApiError::OriginNotAllowed)
    }
}

/// A plain `GET` (no `Upgrade: websocket`) gets 426 rather than actix's
/// bare 400.
fn require_upgrade(req: &HttpRequest) -> Result<(), ApiError> {
    let wants_websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"));
    if wants_websocket {
        Ok(())
    } else {
        Err(ApiError::UpgradeRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(origins: &[&str]) -> HttpSettings {
        HttpSettings {
            cors_allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..HttpSettings::default()
        }
    }

    fn request(origin: Option<&str>, bearer: bool) -> HttpRequest {
        let mut req = TestRequest::get().insert_header((header::HOST, "chat.local:8080"));
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        if bearer {
            req = req.insert_header((header::AUTHORIZATION, "Bearer t"));
        }
        req.to_http_request()
    }

    #[test]
    fn own_listed_and_absent_origins_pass() {
        let s = settings(&["https://app.example"]);
        assert!(check_origin(&request(None, false), &s).is_ok());
        assert!(check_origin(&request(Some("http://chat.local:8080"), false), &s).is_ok());
        assert!(check_origin(&request(Some("https://app.example"), false), &s).is_ok());
        assert_eq!(
            check_origin(&request(Some("https://evil.example"), false), &s),
            Err(ApiError::OriginNotAllowed)
        );
        assert_eq!(
            check_origin(&request(Some("null"), false), &s),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn a_star_never_extends_to_the_cookie() {
        let s = settings(&["*"]);
        assert!(check_origin(&request(Some("https://any.example"), true), &s).is_ok());
        assert_eq!(
            check_origin(&request(Some("https://any.example"), false), &s),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn since_comes_from_the_query() {
        let id = chat_domain::MessageId::generate();
        let with = |query: &str| since(&TestRequest::get().uri(query).to_http_request());
        assert_eq!(with("/api/ws/connect"), Since::Absent);
        assert_eq!(with("/api/ws/connect?since="), Since::Absent);
        assert_eq!(
            with(&format!("/api/ws/connect?since={id}&other=1")),
            Since::After(chat_domain::Since::Message(id))
        );
        assert!(matches!(
            with("/api/ws/connect?since=nope"),
            Since::Invalid(_)
        ));
        let twice = format!("/api/ws/connect?since={id}&since={id}");
        assert!(matches!(with(&twice), Since::Invalid(_)));
    }

    #[test]
    fn a_plain_get_needs_an_upgrade() {
        assert_eq!(
            require_upgrade(&TestRequest::get().to_http_request()),
            Err(ApiError::UpgradeRequired)
        );
        let ws = TestRequest::get()
            .insert_header((header::UPGRADE, "WebSocket"))
            .to_http_request();
        assert!(require_upgrade(&ws).is_ok());
    }
}
