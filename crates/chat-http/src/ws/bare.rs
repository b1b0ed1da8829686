//! A WebSocket served on the bare TCP connection, once [`crate::server`]
//! has taken the upgraded connection away from actix-http's HTTP/1
//! dispatcher.
//!
//! Under an actix-web `HttpServer`, a WebSocket is a streaming response of
//! the connection's dispatcher, which keeps its 8 KiB read and 8 KiB
//! write buffers, its task and its request payload channel for as long as
//! the socket lives: most of what an idle socket costs
//! (docs/benchmarks.md, "Memory per idle socket"). [`crate::server`]
//! instead hands upgrade requests to its own service: it runs the app on
//! the request as usual, and when the handler answers 101 it leaves a
//! [`StartSession`] in the request's [`BareUpgrade`] slot; the service
//! writes the 101, lets go of the dispatcher's buffers, and runs the
//! session on the socket itself, in the connection's own task:
//!
//! - the client's bytes are read only once the socket is readable, into a
//!   buffer on the stack, and handed to the session's `Inbound` as exact
//!   sized chunks ([`SocketReader`]), so an idle socket holds no read
//!   buffer;
//! - the frames the session encodes are written to the socket at once
//!   (`Outbound::with_socket`); what the socket does not take waits in the
//!   `Outbound`'s buffer, which its body writes as the socket drains
//!   (`FrameBody::write_to_socket`). When the client stops reading, the
//!   kernel's buffer fills, then that one, and the session's writes wait
//!   and time out (1013) exactly as under the dispatcher.
//!
//! Under any other server (an app embedding [`crate::configure`] in its own
//! `HttpServer`) the slot is absent and the session is served as a
//! streaming response, as before: same frames, same limits.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_http::error::PayloadError;
use actix_http::{BoxedPayloadStream, Payload};
use actix_web::web::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::Stream;
use tokio::net::TcpStream;

/// Bytes read from the socket at most per read. On the stack, and copied
/// out at the size read; a WebSocket frame of the protocol is a few
/// hundred bytes, WEBSOCKET_MAX_MESSAGE_SIZE 4 KiB by default.
const READ_CHUNK: usize = 4096;

/// An upgraded connection, handed to its session: the socket, and what the
/// client sent after its upgrade request before the 101 was written (a
/// client may pipeline its first frame).
pub(crate) struct Socket {
    pub(crate) io: TcpStream,
    pub(crate) early: Option<Bytes>,
}

/// Runs a session on the socket it is given, to its end.
pub(crate) type StartSession = Box<dyn FnOnce(Socket) -> LocalBoxFuture<'static, ()>>;

/// The slot [`crate::server`] puts in an upgrade request's extensions; the
/// WebSocket handler leaves its session there instead of answering with a
/// streaming body.
#[derive(Clone, Default)]
pub(crate) struct BareUpgrade(Rc<Cell<Option<StartSession>>>);

impl BareUpgrade {
    /// Leaves the session to start once the 101 is written.
    pub(crate) fn put(&self, start: StartSession) {
        self.0.set(Some(start));
    }

    /// The session the handler left, if it left one.
    pub(crate) fn take(&self) -> Option<StartSession> {
        self.0.take()
    }
}

/// What the session reads: `Inbound`'s payload, fed from the socket.
pub(crate) fn payload(io: Rc<TcpStream>, early: Option<Bytes>) -> Payload {
    let reader: BoxedPayloadStream = Box::pin(SocketReader {
        io,
        early,
        ended: false,
    });
    Payload::Stream { payload: reader }
}

/// The client's bytes, read when the socket is readable.
struct SocketReader {
    io: Rc<TcpStream>,
    early: Option<Bytes>,
    ended: bool,
}

impl Stream for SocketReader {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(early) = self.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            if let Err(err) = ready!(self.io.poll_read_ready(cx)) {
                self.ended = true;
                return Poll::Ready(Some(Err(PayloadError::Io(err))));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match self.io.try_read(&mut chunk) {
                Ok(0) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Ok(read) => {
                    let read = chunk.get(..read).unwrap_or_default();
                    return Poll::Ready(Some(Ok(Bytes::copy_from_slice(read))));
                }
                // The readiness was stale; `try_read` cleared it, so the
                // next poll waits for the socket again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(PayloadError::Io(err))));
                }
            }
        }
    }
}
