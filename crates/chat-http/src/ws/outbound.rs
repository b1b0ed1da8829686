//! What the server writes to one client, with a bound on how long a write
//! may wait.
//!
//! The session encodes each frame straight into a small shared buffer that
//! the connection's response body ([`FrameBody`]) hands to actix-http's
//! HTTP dispatcher. The dispatcher only pulls from the body while its own
//! write buffer (32 KiB) has room, and that buffer only drains as fast as
//! the client reads. So when a client stops reading, the kernel's socket
//! buffer fills, then the dispatcher's buffer, then ours (up to
//! [`PENDING_LIMIT`] bytes), and a write waits. Memory per connection is
//! bounded by those three buffers; [`Outbound`] bounds the *time*: a write
//! that cannot complete within WEBSOCKET_WRITE_WAIT fails with
//! [`WriteError::TooSlow`] and the session closes the connection (1013)
//! instead of hanging.
//!
//! This replaces actix-ws's `Session`, whose channel of 32 frames cost
//! every connection about 1.8 KiB from its first moment (a tokio channel
//! allocates a block of 32 slots up front), idle or not; the shared buffer
//! here holds nothing while nothing waits to be written (docs/benchmarks.md,
//! "Memory per idle socket").

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_codec::Encoder;
use actix_http::body::{BodySize, MessageBody};
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::web::{Bytes, BytesMut};

/// The longest a close frame may wait for room in a stuck connection: the
/// session ends either way, and shutdown must not wait on slow readers.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Encoded bytes the body may hold that the dispatcher has not taken yet;
/// a write waits while more are pending. About as much as actix-ws's 32
/// queued frames of a few hundred bytes each.
const PENDING_LIMIT: usize = 16 * 1024;

/// Why a write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The connection is already closed.
    Closed,
    /// The client has not made room for it within the write wait.
    TooSlow,
}

/// What the session and the response body share: the frames encoded but
/// not yet taken by the dispatcher, and who waits on whom. Single-threaded
/// (the session is a local task on the connection's worker).
#[derive(Default)]
struct Shared {
    /// Encoded frames not yet taken; empty, it holds no allocation.
    pending: BytesMut,
    /// No more frames will come (the session closed or let go): the body
    /// ends once `pending` is taken.
    finished: bool,
    /// The body was dropped: the connection is gone.
    gone: bool,
    /// The body, waiting for frames.
    body: Option<Waker>,
    /// The session, waiting for room.
    writer: Option<Waker>,
}

impl Shared {
    fn wake_body(&mut self) {
        if let Some(waker) = self.body.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }
}

/// The response body of an upgraded connection: the frames the session
/// writes, as the dispatcher asks for them.
pub(crate) struct FrameBody(Rc<RefCell<Shared>>);

impl MessageBody for FrameBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut shared = self.0.borrow_mut();
        if !shared.pending.is_empty() {
            // Taken whole, so that an idle connection keeps no buffer.
            let bytes = std::mem::take(&mut shared.pending).freeze();
            shared.wake_writer();
            return Poll::Ready(Some(Ok(bytes)));
        }
        if shared.finished {
            return Poll::Ready(None);
        }
        shared.body = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for FrameBody {
    fn drop(&mut self) {
        let mut shared = self.0.borrow_mut();
        shared.gone = true;
        shared.wake_writer();
    }
}

/// The writing half of one connection.
pub(crate) struct Outbound {
    shared: Rc<RefCell<Shared>>,
    codec: Codec,
    write_wait: Duration,
}

impl Outbound {
    /// The writing half and the response body it feeds.
    pub(crate) fn new(write_wait: Duration) -> (Self, FrameBody) {
        let shared = Rc::new(RefCell::new(Shared::default()));
        let body = FrameBody(Rc::clone(&shared));
        let out = Self {
            shared,
            codec: Codec::new(),
            write_wait,
        };
        (out, body)
    }

    /// Writes one text frame.
    pub(crate) async fn text(&mut self, text: impl Into<String>) -> Result<(), WriteError> {
        let text: String = text.into();
        self.write(self.write_wait, Message::Text(text.into()))
            .await
    }

    /// Sends a heartbeat ping.
    pub(crate) async fn ping(&mut self) -> Result<(), WriteError> {
        self.write(self.write_wait, Message::Ping(Bytes::new()))
            .await
    }

    /// Answers a client's ping.
    pub(crate) async fn pong(&mut self, payload: &[u8]) -> Result<(), WriteError> {
        let payload = Bytes::copy_from_slice(payload);
        self.write(self.write_wait, Message::Pong(payload)).await
    }

    /// Sends a close frame, waiting at most a second for room, and lets go
    /// of the connection: once the close frame is written, the body ends
    /// and the server closes the TCP connection.
    pub(crate) async fn close(mut self, reason: Option<CloseReason>) {
        let wait = self.write_wait.min(CLOSE_WAIT);
        let _ = self.write(wait, Message::Close(reason)).await;
    }

    /// Sends a close frame only if there is room right now (the connection
    /// is known to be stuck), then lets go of it.
    pub(crate) async fn close_if_room(mut self, reason: Option<CloseReason>) {
        let _ = self.write(Duration::ZERO, Message::Close(reason)).await;
    }

    /// Waits (at most `wait`) until the body has room, then encodes
    /// `message` for it.
    async fn write(&mut self, wait: Duration, message: Message) -> Result<(), WriteError> {
        bounded(wait, self.room()).await?;
        let mut shared = self.shared.borrow_mut();
        // Encoding a server frame (unmasked) fails only for a frame over
        // the codec's limit, which applies to frames read, not written.
        self.codec
            .encode(message, &mut shared.pending)
            .map_err(|_| WriteError::Closed)?;
        shared.wake_body();
        Ok(())
    }

    /// Resolves once the body may take another frame.
    fn room(&self) -> impl Future<Output = Result<(), WriteError>> + '_ {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if shared.gone {
                Poll::Ready(Err(WriteError::Closed))
            } else if shared.pending.len() < PENDING_LIMIT {
                Poll::Ready(Ok(()))
            } else {
                shared.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

impl Drop for Outbound {
    /// Letting go ends the body (after what is pending), so the dispatcher
    /// finishes the response and closes the connection.
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.finished = true;
        shared.wake_body();
    }
}

/// A close frame with a code and a reason for the client's logs.
pub(crate) fn close_reason(code: u16, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(description.to_owned()),
    })
}

/// Runs a wait for room for at most `wait`. `tokio::time::timeout` polls
/// it once before looking at the clock, so a zero wait still writes when
/// there is room.
async fn bounded(
    wait: Duration,
    room: impl Future<Output = Result<(), WriteError>>,
) -> Result<(), WriteError> {
    match tokio::time::timeout(wait, room).await {
        Ok(result) => result,
        Err(_elapsed) => Err(WriteError::TooSlow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(body: &mut FrameBody) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|item| item.map(|bytes| bytes.unwrap_or_else(|never| match never {})))
    }

    #[tokio::test]
    async fn a_write_that_cannot_complete_in_time_is_too_slow() {
        let stuck = std::future::pending::<Result<(), WriteError>>();
        assert_eq!(
            bounded(Duration::from_millis(20), stuck).await,
            Err(WriteError::TooSlow)
        );
        // A zero wait still writes when there is room.
        assert_eq!(bounded(Duration::ZERO, async { Ok(()) }).await, Ok(()));
        assert_eq!(
            bounded(Duration::ZERO, async { Err(WriteError::Closed) }).await,
            Err(WriteError::Closed)
        );
    }

    #[tokio::test]
    async fn frames_reach_the_body_and_an_idle_body_holds_no_buffer() {
        let (mut out, mut body) = Outbound::new(Duration::from_millis(20));
        assert_eq!(next(&mut body), Poll::Pending);
        out.text("hi").await.expect("room");
        out.ping().await.expect("room");
        // One unmasked text frame "hi", then an empty ping.
        assert_eq!(
            next(&mut body),
            Poll::Ready(Some(Bytes::from_static(b"\x81\x02hi\x89\x00")))
        );
        assert_eq!(out.shared.borrow().pending.capacity(), 0);
        assert_eq!(next(&mut body), Poll::Pending);
        // Letting go ends the body after the close frame.
        out.close(None).await;
        assert_eq!(
            next(&mut body),
            Poll::Ready(Some(Bytes::from_static(b"\x88\x00")))
        );
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[tokio::test]
    async fn a_body_that_is_not_read_makes_writes_wait_then_fail() {
        let (mut out, body) = Outbound::new(Duration::from_millis(20));
        let frame = "x".repeat(1024);
        let mut written = 0;
        while out.text(frame.as_str()).await.is_ok() {
            written += 1;
            assert!(written <= PENDING_LIMIT / 1024 + 1, "the buffer is bounded");
        }
        assert_eq!(out.text("y").await, Err(WriteError::TooSlow));
        // The connection gone: writes fail at once.
        drop(body);
        assert_eq!(out.text("y").await, Err(WriteError::Closed));
    }
}
