//! A WebSocket served on the bare TCP connection, once [`crate::server`]
//! has taken the upgraded connection away from actix-http's HTTP/1
//! dispatcher. The session is the same actix-ws session as under any
//! other server; only what feeds its payload and what writes its response
//! body differ.
//!
//! Under an actix-web `HttpServer`, a WebSocket is a streaming response of
//! the connection's dispatcher, which keeps its read and write buffers, its
//! task and its request payload channel for as long as the socket lives:
//! most of what an idle socket costs (docs/benchmarks.md, "Memory per idle
//! socket"). [`crate::server`] instead gives an upgrade request a payload
//! that reads the socket itself ([`BareUpgrade::payload`]) and runs the
//! app on it as usual; when the handler answers 101 it leaves its session
//! in the request's [`BareUpgrade`] slot instead of spawning it. The server
//! writes the 101, lets go of the dispatcher's buffers and runs
//! [`serve`]: the session, and its response body written to the socket as
//! the socket takes it.
//!
//! - the client's bytes are read only once the socket is readable, into a
//!   buffer on the stack, and handed on as exact sized chunks, so an idle
//!   socket holds no read buffer;
//! - when the client stops reading, the kernel's buffer fills, the body is
//!   no longer polled, actix-ws's channel fills, and the session's writes
//!   wait and time out (1013) exactly as under the dispatcher.

use std::cell::Cell;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::{BoxedPayloadStream, Payload};
use actix_web::web::Bytes;
use futures_util::future::{self, Either, LocalBoxFuture};
use futures_util::Stream;
use tokio::net::TcpStream;

/// Bytes read from the socket at most per read. On the stack, and copied
/// out at the size read: most frames of the protocol are a few hundred
/// bytes.
const READ_CHUNK: usize = 4096;

/// How long, once the session and its close frame are done, the server
/// reads and discards what the client still sends before closing: closing
/// with unread bytes would send a reset that, on some systems, destroys
/// the close frame before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

/// How much it discards at most: a client still streaming a refused frame
/// is not read on for long.
const LINGER_BYTES: usize = 64 * 1024;

/// What the slot shares between the handler, the payload and the server.
#[derive(Default)]
struct Shared {
    /// The session the handler left, to run once the 101 is written.
    session: Cell<Option<LocalBoxFuture<'static, ()>>>,
    /// The socket, and what the client sent after its upgrade request
    /// before the 101 was written (a client may pipeline its first frame).
    socket: Cell<Option<(Rc<TcpStream>, Option<Bytes>)>>,
    /// The payload, polled before the socket was there.
    waiting: Cell<Option<std::task::Waker>>,
}

/// The slot [`crate::server`] puts in an upgrade request's extensions; the
/// WebSocket handler leaves its session there instead of spawning it.
#[derive(Clone, Default)]
pub(crate) struct BareUpgrade(Rc<Shared>);

impl BareUpgrade {
    /// The request's payload: the socket's bytes, once [`connect`]ed.
    ///
    /// [`connect`]: Self::connect
    pub(crate) fn payload(&self) -> Payload {
        let reader: BoxedPayloadStream = Box::pin(SocketReader::Waiting(Rc::clone(&self.0)));
        Payload::Stream { payload: reader }
    }

    /// Leaves the session to run once the 101 is written.
    pub(crate) fn put(&self, session: LocalBoxFuture<'static, ()>) {
        self.0.session.set(Some(session));
    }

    /// The session the handler left, if it left one.
    pub(crate) fn take(&self) -> Option<LocalBoxFuture<'static, ()>> {
        self.0.session.take()
    }

    /// Hands the payload its socket, and the bytes that came early.
    pub(crate) fn connect(&self, io: Rc<TcpStream>, early: Option<Bytes>) {
        self.0.socket.set(Some((io, early)));
        if let Some(waker) = self.0.waiting.take() {
            waker.wake();
        }
    }
}

/// Runs an upgraded connection to its end: the session, and its response
/// body written to `io`; then closes the connection.
pub(crate) async fn serve(session: LocalBoxFuture<'static, ()>, body: BoxBody, io: Rc<TcpStream>) {
    // The body is polled after the session in each wake-up of the task, so
    // every frame the session queued in that wake-up goes out in one write.
    let writing = pin!(write_body(body, &io));
    match future::select(session, writing).await {
        // What the session left unwritten gets a bounded time: a client
        // that does not read must not hold the connection.
        Either::Left(((), writing)) => {
            let _ = Box::pin(tokio::time::timeout(LINGER, writing)).await;
        }
        // The body ended (its close frame written) or the socket failed:
        // the session sees its writes fail and its stream end.
        Either::Right(((), session)) => session.await,
    }
    // A half close: the client reads the close frame, then the end.
    let _ = socket2::SockRef::from(&*io).shutdown(std::net::Shutdown::Write);
    // Boxed: this future is part of every upgraded connection's task for
    // its whole life, and the last step's state is not.
    let _ = Box::pin(tokio::time::timeout(LINGER, discard_until_end(&io))).await;
}

/// Writes the response body to the socket as it takes it, until the body
/// ends (after the close frame) or the socket fails.
async fn write_body(body: BoxBody, io: &TcpStream) {
    let mut body = pin!(body);
    while let Some(Ok(mut bytes)) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        while !bytes.is_empty() {
            if io.writable().await.is_err() {
                return;
            }
            match io.try_write(&bytes) {
                Ok(0) => return,
                Ok(written) => {
                    let _ = bytes.split_to(written);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

/// Reads and drops what the client sends until it closes its side, or
/// [`LINGER_BYTES`] were dropped.
async fn discard_until_end(io: &TcpStream) {
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        if io.readable().await.is_err() {
            return;
        }
        // Not held across the await: the buffer is no part of the future.
        let mut sink = [0u8; READ_CHUNK];
        match io.try_read(&mut sink) {
            Ok(0) => return,
            Ok(read) => discarded += read,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// The client's bytes, read when the socket is readable.
enum SocketReader {
    /// The 101 is not written yet.
    Waiting(Rc<Shared>),
    Connected {
        io: Rc<TcpStream>,
        early: Option<Bytes>,
    },
    Ended,
}

impl Stream for SocketReader {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Self::Waiting(shared) = this {
            match shared.socket.take() {
                Some((io, early)) => *this = Self::Connected { io, early },
                None => {
                    shared.waiting.set(Some(cx.waker().clone()));
                    return Poll::Pending;
                }
            }
        }
        let Self::Connected { io, early } = this else {
            return Poll::Ready(None);
        };
        if let Some(early) = early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        let read = loop {
            if let Err(err) = ready!(io.poll_read_ready(cx)) {
                break Err(err);
            }
            let mut chunk = [0u8; READ_CHUNK];
            match io.try_read(&mut chunk) {
                Ok(read) => {
                    break Ok(Bytes::copy_from_slice(
                        chunk.get(..read).unwrap_or_default(),
                    ))
                }
                // The readiness was stale; `try_read` cleared it, so the
                // next poll waits for the socket again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => break Err(err),
            }
        };
        match read {
            Ok(bytes) if !bytes.is_empty() => Poll::Ready(Some(Ok(bytes))),
            Ok(_end) => {
                *this = Self::Ended;
                Poll::Ready(None)
            }
            Err(err) => {
                *this = Self::Ended;
                Poll::Ready(Some(Err(PayloadError::Io(err))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgraded_connections_task_stays_small() {
        // Part of every upgraded connection's task for its whole life: its
        // rare last steps are boxed, and no buffer lives across an await.
        fn size<F: std::future::Future>(
            _: &dyn Fn(LocalBoxFuture<'static, ()>, BoxBody, Rc<TcpStream>) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        let serve = size(&serve);
        assert!(
            serve <= 512,
            "serving an upgraded connection takes {serve} bytes"
        );
    }
}
