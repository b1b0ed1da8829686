//! A deadline on the request body: the whole body must arrive within
//! [`HttpSettings::request_timeout`](crate::HttpSettings::request_timeout)
//! of the request's head, else the answer is 408 `request_timeout` and the
//! connection is closed.
//!
//! actix-http bounds the wait for a request's head, not for its body: a
//! client that declares a large `Content-Length` and sends one byte holds
//! its connection, and a handler waiting on its body, for as long as it
//! likes. Here the body stream is wrapped so that reading past the
//! deadline fails; whatever the handler then answered (a JSON error of
//! its extractor, typically) is replaced by the 408, on every route that
//! reads a body, authenticated or not. A route that answers without
//! reading the body is not held up: actix-http closes a connection whose
//! body was left unread after the answer.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, ResponseError};
use futures_util::Stream;

use crate::error::ApiError;
use crate::state::ApiState;

/// Middleware: enforces the body deadline of the app's [`ApiState`] on
/// every request but WebSocket upgrades (whose frames are not a request
/// body). Without an `ApiState`, requests pass untouched.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<ApiState>>()
        .map(|state| state.settings().request_timeout);
    let Some(timeout) = timeout.filter(|_| !req.head().upgrade()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let expired = Rc::new(Cell::new(false));
    let body = Deadline {
        inner: req.take_payload(),
        timer: Box::pin(tokio::time::sleep(timeout)),
        expired: Rc::clone(&expired),
    };
    req.set_payload(Payload::from(
        Box::pin(body) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let answered = next.call(req).await;
    if !expired.get() {
        return answered.map(ServiceResponse::map_into_left_body);
    }
    let (req, _) = match answered {
        Ok(res) => res.into_parts(),
        Err(err) => {
            // The handler failed without a response of its own: the 408
            // still goes out, on a connection that then closes.
            tracing::debug!(error = %err, "request body timed out");
            return Err(ApiError::RequestTimeout {
                secs: timeout.as_secs(),
            }
            .into());
        }
    };
    let mut res = ApiError::RequestTimeout {
        secs: timeout.as_secs(),
    }
    .error_response();
    // The rest of the body may still be on its way: the connection cannot
    // serve another request.
    res.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, res).map_into_right_body())
}

/// The request body, failing with a timeout once `timer` fires before the
/// body has ended.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Set when the deadline cut the body short.
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired.get() {
            return Poll::Ready(None);
        }
        // What already arrived is handed on first.
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.set(true);
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request body not received in time",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The default of [`HttpSettings::request_timeout`](crate::HttpSettings::request_timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
