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
use tokio::net::TcpStream;

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
    /// The bare socket, when the connection left the dispatcher
    /// (`bare.rs`): the body writes `pending` to it in place
    /// ([`FrameBody::write_to_socket`]).
    socket: Option<Rc<TcpStream>>,
}

impl Shared {
    /// Writes what is pending to the bare socket, as far as it takes it
    /// without waiting. A socket error means the connection is gone.
    fn write_through(&mut self) {
        let Some(socket) = &self.socket else {
            return;
        };
        while !self.pending.is_empty() {
            match socket.try_write(&self.pending) {
                Ok(0) => {
                    self.gone = true;
                    break;
                }
                Ok(written) => {
                    let _ = self.pending.split_to(written);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.gone = true;
                    break;
                }
            }
        }
        if self.pending.is_empty() {
            // Let go of the allocation: most connections are idle.
            self.pending = BytesMut::new();
        }
    }

    /// Registers the body's waker; on a bare connection the body is polled
    /// on every wake-up of the connection's task, so the same waker is
    /// kept rather than cloned each time.
    fn register_body(&mut self, cx: &Context<'_>) {
        match &mut self.body {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
    }

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
        shared.register_body(cx);
        Poll::Pending
    }
}

impl FrameBody {
    /// On a bare socket ([`Outbound::with_socket`]): writes what the
    /// session encodes, as the socket takes it, until the session lets go
    /// of its `Outbound` and everything is written, or the socket fails.
    /// Run it in the session's task, polled after the session (`join`):
    /// the session does not wake it. Pending bytes are written in place,
    /// so a frame the session encodes meanwhile queues behind them.
    pub(crate) async fn write_to_socket(self) {
        let Some(socket) = self.0.borrow().socket.clone() else {
            return;
        };
        while self.pending().await {
            if socket.writable().await.is_err() {
                return;
            }
            let mut shared = self.0.borrow_mut();
            shared.write_through();
            if shared.gone {
                return;
            }
            shared.wake_writer();
        }
    }

    /// Resolves `true` once bytes are pending, `false` once none are and
    /// none will come.
    async fn pending(&self) -> bool {
        poll_fn(|cx| {
            let mut shared = self.0.borrow_mut();
            if !shared.pending.is_empty() {
                Poll::Ready(true)
            } else if shared.finished || shared.gone {
                Poll::Ready(false)
            } else {
                shared.register_body(cx);
                Poll::Pending
            }
        })
        .await
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
        Self::with_socket(write_wait, None)
    }

    /// [`Outbound::new`] for a connection on the bare `socket`, which the
    /// body writes to ([`FrameBody::write_to_socket`]): every frame the
    /// session encodes in one wake-up of the task goes out in one `write`.
    pub(crate) fn with_socket(
        write_wait: Duration,
        socket: Option<Rc<TcpStream>>,
    ) -> (Self, FrameBody) {
        let shared = Rc::new(RefCell::new(Shared {
            socket,
            ..Shared::default()
        }));
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
        // The timer is set up only when the write has to wait: a delivery
        // is one frame, and most find room.
        if !self.has_room()? {
            bounded(wait, self.room()).await?;
        }
        let mut shared = self.shared.borrow_mut();
        // Encoding a server frame (unmasked) fails only for a frame over
        // the codec's limit, which applies to frames read, not written.
        self.codec
            .encode(message, &mut shared.pending)
            .map_err(|_| WriteError::Closed)?;
        // On a bare socket the body is polled right after the session, in
        // the same wake-up of the connection's task (`bare.rs`), and writes
        // every frame the session encoded meanwhile in one go: waking it
        // would only poll the whole task a second time.
        if shared.socket.is_none() {
            shared.wake_body();
        }
        Ok(())
    }

    /// Whether a frame may be written now.
    fn has_room(&self) -> Result<bool, WriteError> {
        let shared = self.shared.borrow();
        if shared.gone {
            Err(WriteError::Closed)
        } else {
            Ok(shared.pending.len() < PENDING_LIMIT)
        }
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

    /// A connected pair on loopback with small buffers, so that a client
    /// that does not read fills them quickly: the server's end (for the
    /// `Outbound`) and the client's.
    async fn socket_pair() -> (Rc<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let client = tokio::net::TcpSocket::new_v4().expect("a socket");
        client.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let addr = listener.local_addr().expect("an address");
        let (client, accepted) = tokio::join!(client.connect(addr), listener.accept());
        let (server, _) = accepted.expect("accepts");
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .expect("SO_SNDBUF");
        (Rc::new(server), client.expect("connects"))
    }

    /// The payloads of the unmasked text frames in `bytes`, and what is
    /// left of an incomplete one.
    fn texts(mut bytes: &[u8]) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        loop {
            let (len, header) = match bytes {
                [0x81, 126, hi, lo, ..] => (usize::from(*hi) << 8 | usize::from(*lo), 4),
                [0x81, len, ..] if *len < 126 => (usize::from(*len), 2),
                [] => return (out, 0),
                _ => return (out, bytes.len()),
            };
            let Some(payload) = bytes.get(header..header + len) else {
                return (out, bytes.len());
            };
            out.push(String::from_utf8(payload.to_vec()).expect("UTF-8"));
            bytes = bytes.get(header + len..).unwrap_or_default();
        }
    }

    #[tokio::test]
    async fn on_a_bare_socket_the_body_writes_every_frame_in_order_bounded() {
        use tokio::io::AsyncReadExt;
        let (server, mut client) = socket_pair().await;
        let (mut out, body) = Outbound::with_socket(Duration::from_secs(5), Some(server));
        let frame = |n: usize| format!("{n:04}{}", "x".repeat(1000));
        let (read_now, reading) = tokio::sync::oneshot::channel::<()>();
        // The session's side: what it encodes in one wake-up is written by
        // the body polled after it, without being woken.
        let session = async {
            out.text(frame(0)).await.expect("room");
            tokio::task::yield_now().await;
            assert!(
                out.shared.borrow().pending.is_empty(),
                "written in that wake-up"
            );
            // The client does not read: the socket fills, then `pending`,
            // which stays bounded.
            let mut sent = 1;
            while out.shared.borrow().pending.len() < PENDING_LIMIT {
                out.text(frame(sent)).await.expect("room");
                sent += 1;
                assert!(sent < 10_000, "the socket never filled");
                tokio::task::yield_now().await;
            }
            // Once it reads, writes find room again, queued behind the rest.
            let _ = read_now.send(());
            for _ in 0..20 {
                out.text(frame(sent)).await.expect("room again");
                sent += 1;
            }
            drop(out);
            sent
        };
        let client = async {
            let _ = reading.await;
            let mut all = Vec::new();
            client
                .read_to_end(&mut all)
                .await
                .expect("reads to the end");
            all
        };
        let (sent, (), all) = tokio::join!(session, body.write_to_socket(), client);
        let (texts, rest) = texts(&all);
        assert_eq!(rest, 0, "no partial frame");
        let expected: Vec<String> = (0..sent).map(frame).collect();
        assert_eq!(texts, expected);
    }
}
