//! What the HTTP adapter counts, through the [`metrics`] facade: requests
//! by route template and status with their latency, open WebSockets, live
//! deliveries written to sockets, messages stored, rate-limit rejections
//! and writes that timed out on a slow reader.
//!
//! This crate installs no recorder: without one every call here is a
//! no-op, and an embedding app picks its own (the `chat-server` binary
//! installs a Prometheus one and serves it at `/metrics` through
//! [`ApiState::with_metrics`](crate::ApiState::with_metrics)). Install the
//! recorder before the app serves its first request: the per-frame
//! counter's handle is taken on first use and kept.
//!
//! Label values are fixed strings or bounded sets (route *templates*,
//! never raw paths; a handful of methods; status codes), so the number of
//! series stays bounded whatever clients send.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use chat_domain::MessageTarget;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Unit};

/// The `route` label of a request that matched no route (an unknown path):
/// one fixed value, so scanners cannot create series.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// Renders the metrics of the process in the Prometheus text format, for
/// the `/metrics` route (see [`ApiState::with_metrics`](crate::ApiState::with_metrics)).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// How a message came in: the `transport` label of
/// `chat_messages_stored_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Http,
    WebSocket,
}

/// Registers the help text and unit of every series this crate records.
/// Call once after installing a recorder (the `HELP` lines of the
/// exposition come from here).
pub fn describe() {
    describe_counter!(
        "chat_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "chat_http_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving an HTTP request to its response head, by method and route template"
    );
    describe_gauge!(
        "chat_ws_connections",
        "WebSocket connections open in this process"
    );
    describe_counter!(
        "chat_ws_deliveries_total",
        "Live frames (messages, presence, typing) written to WebSocket connections"
    );
    describe_counter!(
        "chat_messages_stored_total",
        "New messages stored (resends of a client_id not counted), by kind and transport"
    );
    describe_counter!(
        "chat_rate_limited_total",
        "Requests or frames refused by a rate limiter (auth: login/register 429; ws_send: WebSocket message/typing frames)"
    );
    describe_counter!(
        "chat_ws_hole_fills_total",
        "Holes of the live stream (Redis lost for a while) filled on a WebSocket connection from the store"
    );
    describe_counter!(
        "chat_ws_hole_filled_messages_total",
        "Messages sent to WebSocket connections to fill holes of the live stream"
    );
    describe_counter!(
        "chat_ws_resyncs_total",
        "WebSocket connections closed with 4001 (resync: a hole too large or not known exactly)"
    );
    describe_counter!(
        "chat_ws_slow_reader_disconnects_total",
        "WebSocket connections closed with 1013 because the client read too slowly, by reason"
    );
}

/// A hole of the live stream was filled on a connection with `sent`
/// messages.
pub(crate) fn hole_filled(sent: usize) {
    counter!("chat_ws_hole_fills_total").increment(1);
    counter!("chat_ws_hole_filled_messages_total")
        .increment(u64::try_from(sent).unwrap_or(u64::MAX));
}

/// A connection was closed with the resync code.
pub(crate) fn resynced() {
    counter!("chat_ws_resyncs_total").increment(1);
}

/// Counts one answered HTTP request and its latency.
pub(crate) fn http_request(method: &Method, route: &str, status: StatusCode, took: Duration) {
    let method = method_label(method);
    // Route templates and status codes are bounded sets; owning them costs
    // an allocation per request, which is small beside the request itself.
    counter!(
        "chat_http_requests_total",
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.as_str().to_owned(),
    )
    .increment(1);
    histogram!(
        "chat_http_request_duration_seconds",
        "method" => method,
        "route" => route.to_owned(),
    )
    .record(took.as_secs_f64());
}

/// The `method` label: the standard methods by name, anything else as
/// `other` (a client can send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts one new message.
pub(crate) fn message_stored(target: &MessageTarget, transport: Transport) {
    let kind = match target {
        MessageTarget::Global => "global",
        MessageTarget::Direct(_) => "direct",
        MessageTarget::Room(_) => "room",
    };
    let transport = match transport {
        Transport::Http => "http",
        Transport::WebSocket => "ws",
    };
    counter!("chat_messages_stored_total", "kind" => kind, "transport" => transport).increment(1);
}

/// Counts a login or register attempt refused with 429.
pub(crate) fn auth_rate_limited() {
    counter!("chat_rate_limited_total", "limiter" => "auth").increment(1);
}

/// Counts a WebSocket `message` or `typing` frame refused as over the
/// per-connection rate.
pub(crate) fn ws_send_rate_limited() {
    counter!("chat_rate_limited_total", "limiter" => "ws_send").increment(1);
}

/// Counts a connection closed because a write to it waited longer than
/// WEBSOCKET_WRITE_WAIT. A connection is counted once, for what its
/// session saw first: a stuck write, or its notifier queue full
/// ([`queue_overflowed`]); often both happen to one slow reader.
pub(crate) fn write_timed_out() {
    counter!("chat_ws_slow_reader_disconnects_total", "reason" => "write_timeout").increment(1);
}

/// Counts a connection closed because its queue of deliveries filled up
/// (the notifier closed it: `Delivery::Close(TooSlow)`).
pub(crate) fn queue_overflowed() {
    counter!("chat_ws_slow_reader_disconnects_total", "reason" => "queue_full").increment(1);
}

/// Counts one live frame written to a socket. Called once per frame per
/// connection (the fan-out's hot path), so the handle is looked up once
/// and kept: one atomic add per call, no allocation.
pub(crate) fn delivered() {
    static DELIVERED: OnceLock<Counter> = OnceLock::new();
    DELIVERED
        .get_or_init(|| counter!("chat_ws_deliveries_total"))
        .increment(1);
}

/// An open WebSocket, counted in `chat_ws_connections` while it lives
/// (dropped when the session task ends, however it ends).
pub(crate) struct OpenSocket(());

impl OpenSocket {
    pub(crate) fn new() -> Self {
        gauge!("chat_ws_connections").increment(1.0);
        Self(())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        gauge!("chat_ws_connections").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"FROBNICATE").expect("a valid token");
        assert_eq!(method_label(&odd), "other");
    }
}
