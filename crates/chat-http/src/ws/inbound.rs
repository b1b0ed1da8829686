//! What the client sends: WebSocket frames read from the upgraded
//! connection's payload, with continuations joined into whole messages,
//! and WEBSOCKET_MAX_MESSAGE_SIZE applied to single frames and to joined
//! messages alike.
//!
//! The frames are decoded here with actix-http's codec rather than through
//! actix-ws's `MessageStream`, which came with actix-ws's write channel
//! (see `outbound.rs`), and so that the read buffer is let go whenever it
//! is empty: an idle connection holds none.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{CloseReason, Codec, Frame, Item, ProtocolError};
use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;

/// One whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message; the protocol has none.
    Binary,
    /// A WebSocket ping, to be answered with a pong of the same payload.
    Ping(Bytes),
    /// A WebSocket pong (the heartbeat's answer).
    Pong,
    /// The client is closing.
    Close(Option<CloseReason>),
}

/// Why the client's stream cannot be read further.
#[derive(Debug)]
pub(crate) enum InboundError {
    /// A frame, or a message joined from continuations, is over the limit.
    TooBig,
    /// A text message is not valid UTF-8.
    NotUtf8,
    /// The client broke the WebSocket protocol.
    Protocol(ProtocolError),
}

/// The client's messages, read from the connection's payload.
pub(crate) struct Inbound {
    payload: Payload,
    /// Bytes read but not yet decoded; empty, it holds no allocation.
    buf: BytesMut,
    codec: Codec,
    /// The payload ended: what is left in `buf` is all there is.
    ended: bool,
    joiner: Joiner,
}

impl Inbound {
    /// Reads `payload` (the upgraded request's), refusing frames and joined
    /// messages over `max_size` bytes.
    pub(crate) fn new(payload: Payload, max_size: usize) -> Self {
        Self {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_size),
            ended: false,
            joiner: Joiner::new(max_size),
        }
    }

    /// The next whole message; `None` once the client's stream ended.
    ///
    /// Cancel safe: the only await is on the next frame, whose partial
    /// bytes, like the partial message, live in `self`, so a `select!` may
    /// drop this future at any point without losing input.
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, InboundError>> {
        loop {
            let frame = match poll_fn(|cx| self.poll_frame(cx)).await? {
                Ok(frame) => frame,
                Err(ProtocolError::Overflow) => return Some(Err(InboundError::TooBig)),
                Err(err) => return Some(Err(InboundError::Protocol(err))),
            };
            let whole = match frame {
                Frame::Text(bytes) => match std::str::from_utf8(&bytes) {
                    Ok(text) => Incoming::Text(text.to_owned()),
                    Err(_) => return Some(Err(InboundError::NotUtf8)),
                },
                Frame::Binary(_) => Incoming::Binary,
                Frame::Ping(payload) => Incoming::Ping(payload),
                Frame::Pong(_) => Incoming::Pong,
                Frame::Close(reason) => Incoming::Close(reason),
                Frame::Continuation(item) => match self.joiner.push(item) {
                    Ok(Some(whole)) => whole,
                    Ok(None) => continue,
                    Err(err) => return Some(Err(err)),
                },
            };
            return Some(Ok(whole));
        }
    }

    /// The next frame: decoded from what was read, else read more.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, ProtocolError>>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        // Let go of the allocation: most connections are idle.
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(err) => return Poll::Ready(Some(Err(err))),
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(err))) => {
                    let err = std::io::Error::other(err);
                    return Poll::Ready(Some(Err(ProtocolError::Io(err))));
                }
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads and discards until the client's close frame, or the end of
    /// its stream or an error.
    pub(crate) async fn closed(&mut self) {
        while let Some(Ok(incoming)) = self.next().await {
            if let Incoming::Close(_) = incoming {
                return;
            }
        }
    }
}

/// Joins continuation frames into one message, within a size limit.
#[derive(Debug)]
pub(crate) struct Joiner {
    max_size: usize,
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    bytes: BytesMut,
}

impl Joiner {
    pub(crate) fn new(max_size: usize) -> Self {
        Self {
            max_size,
            partial: None,
        }
    }

    /// Adds a fragment; the whole message once its last fragment arrived.
    pub(crate) fn push(&mut self, item: Item) -> Result<Option<Incoming>, InboundError> {
        let (chunk, last) = match item {
            Item::FirstText(chunk) => (self.start(true, chunk)?, false),
            Item::FirstBinary(chunk) => (self.start(false, chunk)?, false),
            Item::Continue(chunk) => (chunk, false),
            Item::Last(chunk) => (chunk, true),
        };
        let Some(partial) = self.partial.as_mut() else {
            return Err(InboundError::Protocol(
                ProtocolError::ContinuationNotStarted,
            ));
        };
        if partial.bytes.len() + chunk.len() > self.max_size {
            self.partial = None;
            return Err(InboundError::TooBig);
        }
        partial.bytes.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        match self.partial.take() {
            Some(Partial { text: true, bytes }) => String::from_utf8(bytes.to_vec())
                .map(|text| Some(Incoming::Text(text)))
                .map_err(|_| InboundError::NotUtf8),
            Some(Partial { text: false, .. }) => Ok(Some(Incoming::Binary)),
            None => Ok(None),
        }
    }

    fn start(&mut self, text: bool, chunk: Bytes) -> Result<Bytes, InboundError> {
        if self.partial.is_some() {
            return Err(InboundError::Protocol(ProtocolError::ContinuationStarted));
        }
        self.partial = Some(Partial {
            text,
            bytes: BytesMut::new(),
        });
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn fragments_join_into_one_text() {
        let mut joiner = Joiner::new(64);
        assert!(matches!(
            joiner.push(Item::FirstText(bytes("{\"type\""))),
            Ok(None)
        ));
        assert!(matches!(joiner.push(Item::Continue(bytes(":"))), Ok(None)));
        let whole = joiner.push(Item::Last(bytes("\"ping\"}")));
        assert_eq!(
            whole.ok().flatten(),
            Some(Incoming::Text("{\"type\":\"ping\"}".into()))
        );
        // Ready for the next message.
        assert!(matches!(
            joiner.push(Item::FirstBinary(bytes("x"))),
            Ok(None)
        ));
        assert_eq!(
            joiner.push(Item::Last(bytes("y"))).ok().flatten(),
            Some(Incoming::Binary)
        );
    }

    #[test]
    fn the_limit_counts_the_joined_message() {
        let mut joiner = Joiner::new(8);
        assert!(matches!(
            joiner.push(Item::FirstText(bytes("12345"))),
            Ok(None)
        ));
        assert!(matches!(
            joiner.push(Item::Continue(bytes("6789"))),
            Err(InboundError::TooBig)
        ));
        // Exactly the limit is fine.
        assert!(matches!(
            joiner.push(Item::FirstText(bytes("1234"))),
            Ok(None)
        ));
        assert!(matches!(
            joiner.push(Item::Last(bytes("5678"))),
            Ok(Some(_))
        ));
    }

    #[test]
    fn joined_text_must_be_utf8() {
        let mut joiner = Joiner::new(64);
        assert!(matches!(
            joiner.push(Item::FirstText(Bytes::from_static(&[0xe2, 0x82]))),
            Ok(None)
        ));
        assert!(matches!(
            joiner.push(Item::Last(Bytes::from_static(&[0x28]))),
            Err(InboundError::NotUtf8)
        ));
    }

    #[test]
    fn out_of_order_fragments_are_protocol_errors() {
        let mut joiner = Joiner::new(64);
        assert!(matches!(
            joiner.push(Item::Continue(bytes("a"))),
            Err(InboundError::Protocol(_))
        ));
        assert!(matches!(joiner.push(Item::FirstText(bytes("a"))), Ok(None)));
        assert!(matches!(
            joiner.push(Item::FirstText(bytes("b"))),
            Err(InboundError::Protocol(_))
        ));
    }
}
