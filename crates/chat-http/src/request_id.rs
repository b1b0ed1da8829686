//! One tracing span per request (method, route, status, latency, request
//! id), the request's metrics (see [`crate::metrics`]) and the
//! `X-Request-Id` header both ways. Bodies, tokens, passwords and cookies
//! are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::field::Empty;
use tracing::Instrument;

/// The header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, in the request's extensions (for handlers
/// that want to mention it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Middleware: takes a sane incoming `X-Request-Id` (1-64 visible ASCII
/// characters) or makes a UUID, runs the request in a span carrying it, logs
/// one line when the response is ready, counts the request in
/// `chat_http_requests_total` and `chat_http_request_duration_seconds`
/// (by route template) and returns the id as `X-Request-Id`. Wrap an app
/// with
/// `actix_web::middleware::from_fn(chat_http::trace_requests)`.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = incoming_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "http_request",
        method = %req.method(),
        route = Empty,
        status = Empty,
        latency_ms = Empty,
        request_id = %request_id,
    );
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let started = Instant::now();
    let header = HeaderValue::from_str(&request_id).ok();
    match next.call(req).instrument(span.clone()).await {
        Ok(mut res) => {
            let route = res.request().match_pattern();
            record(&span, &method, route, res.status(), started);
            if let Some(value) = header {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(res)
        }
        // Errors raised by inner middleware still get an id and a log line.
        Err(mut err) => {
            let status = err.as_response_error().status_code();
            record(&span, &method, None, status, started);
            if let Some(value) = header {
                err.add_response_mapper(move |mut res| {
                    res.headers_mut()
                        .insert(HeaderName::from_static(REQUEST_ID_HEADER), value.clone());
                    res
                });
            }
            Err(err)
        }
    }
}

fn record(
    span: &tracing::Span,
    method: &Method,
    route: Option<String>,
    status: StatusCode,
    started: Instant,
) {
    let took = started.elapsed();
    let route = route.unwrap_or_else(|| crate::metrics::UNMATCHED_ROUTE.to_owned());
    crate::metrics::http_request(method, &route, status, took);
    span.record("route", route.as_str());
    span.record("status", status.as_u16());
    // Microsecond precision is plenty and keeps the lines short.
    let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
    span.record("latency_ms", f64::from(micros) / 1000.0);
    if status.is_server_error() {
        tracing::warn!(parent: span, "request failed");
    } else {
        tracing::info!(parent: span, "request completed");
    }
}

fn incoming_id(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_str(value).expect("header value"),
        );
        map
    }

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        assert_eq!(incoming_id(&headers("abc-123")).as_deref(), Some("abc-123"));
        assert_eq!(incoming_id(&headers(&"x".repeat(65))), None);
        assert_eq!(incoming_id(&headers("has space")), None);
        assert_eq!(incoming_id(&HeaderMap::new()), None);
    }
}
