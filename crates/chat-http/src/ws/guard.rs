//! A guard on the client's byte stream, in front of actix-ws's frame
//! decoder: it reads each frame header as it passes and refuses a frame
//! the moment its header declares more than the limit.
//!
//! actix-http's decoder checks a frame's size only once the whole frame
//! has arrived, so without this a client declaring a huge frame could make
//! the connection buffer everything it streams. With it, a connection
//! never holds more than the limit of one frame (or of a message joined
//! from fragments), plus one burst of reading.
//!
//! It also hands the decoder at most [`BURST`] bytes per wake-up: actix-ws
//! reads whatever the stream gives until it would wait, then decodes it
//! all at once, so a client that floods small frames would otherwise grow
//! that buffer (and the queue of frames decoded from it) without bound.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Bytes handed on per wake-up of the reader, at most (give or take one
/// chunk of the underlying stream).
pub(crate) const BURST: usize = 16 * 1024;

/// The largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Why the guard refused the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// A data frame, or a message joined from fragments, over the limit.
    #[error("a WebSocket frame or message over the size limit")]
    TooBig,
    /// A control frame over 125 bytes, or reserved bits set.
    #[error("a malformed WebSocket frame header")]
    Malformed,
}

impl Refused {
    /// The guard's verdict inside an error from the stream it guards, as
    /// actix-ws reports it (an I/O error wrapping the stream's error).
    pub(crate) fn find(err: &std::io::Error) -> Option<Self> {
        let payload = err.get_ref()?.downcast_ref::<PayloadError>()?;
        match payload {
            PayloadError::Io(inner) => inner.get_ref()?.downcast_ref::<Self>().copied(),
            _ => None,
        }
    }

    fn into_payload_error(self) -> PayloadError {
        PayloadError::Io(std::io::Error::other(self))
    }
}

/// Where the reader is in the frame stream.
#[derive(Clone, Copy, Debug)]
enum Position {
    /// Reading a header: `have` of its bytes are in `header`.
    Header { have: usize },
    /// Inside a frame's payload: this many bytes of it are still to come.
    Payload { left: u64 },
}

/// Reads frame headers in the client's byte stream; see the module doc.
pub(crate) struct FrameGuard<S> {
    inner: S,
    max_size: u64,
    position: Position,
    /// A header's bytes so far (2 to 14 of them).
    header: [u8; 14],
    /// The size of the fragmented message in progress, if one is.
    fragmented: Option<u64>,
    /// Bytes handed on since the reader last found nothing to read.
    burst: usize,
    /// A refusal found after the bytes handed on before it.
    refused: Option<Refused>,
    ended: bool,
}

impl<S> FrameGuard<S> {
    /// Guards `inner`, refusing frames and messages over `max_size` bytes.
    pub(crate) fn new(inner: S, max_size: usize) -> Self {
        Self {
            inner,
            max_size: u64::try_from(max_size).unwrap_or(u64::MAX),
            position: Position::Header { have: 0 },
            header: [0; 14],
            fragmented: None,
            burst: 0,
            refused: None,
            ended: false,
        }
    }

    /// Reads `chunk` through; `Err((offset, refusal))` for the first frame
    /// refused, whose header starts at `offset` (0 when it started in an
    /// earlier chunk).
    fn scan(&mut self, chunk: &[u8]) -> Result<(), (usize, Refused)> {
        let mut at = 0;
        while at < chunk.len() {
            match self.position {
                Position::Payload { left } => {
                    let rest = chunk.len() - at;
                    let skip = usize::try_from(left).map_or(rest, |left| left.min(rest));
                    at += skip;
                    let left = left - skip as u64;
                    self.position = if left == 0 {
                        Position::Header { have: 0 }
                    } else {
                        Position::Payload { left }
                    };
                }
                Position::Header { have } => {
                    let start = at.saturating_sub(have);
                    let (have, used) = self.fill_header(have, chunk.get(at..).unwrap_or_default());
                    at += used;
                    self.position = Position::Header { have };
                    if let Some(len) = header_len(&self.header, have) {
                        if have == len {
                            let left = self.check_header().map_err(|r| (start, r))?;
                            self.position = if left == 0 {
                                Position::Header { have: 0 }
                            } else {
                                Position::Payload { left }
                            };
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies header bytes from `input` until the header is whole (as far
    /// as its first bytes tell its length); returns the bytes held and the
    /// bytes of `input` used.
    fn fill_header(&mut self, mut have: usize, input: &[u8]) -> (usize, usize) {
        let mut used = 0;
        for &byte in input {
            let needed = header_len(&self.header, have).unwrap_or(2);
            if have >= needed {
                break;
            }
            if let Some(slot) = self.header.get_mut(have) {
                *slot = byte;
            }
            have += 1;
            used += 1;
        }
        (have, used)
    }

    /// Checks a whole header; the payload length it declares.
    fn check_header(&mut self) -> Result<u64, Refused> {
        let [first, second, ..] = self.header;
        let fin = first & 0x80 != 0;
        let reserved = first & 0x70 != 0;
        let opcode = first & 0x0f;
        let len = declared_len(&self.header, second);
        if reserved {
            return Err(Refused::Malformed);
        }
        match opcode {
            // Continuation, text, binary.
            0..=2 => {
                let message = match (opcode, self.fragmented) {
                    (0, Some(sofar)) => sofar.saturating_add(len),
                    _ => len,
                };
                if len > self.max_size || message > self.max_size {
                    return Err(Refused::TooBig);
                }
                // A fragment out of place is the decoder's to refuse.
                self.fragmented = (!fin).then_some(message);
            }
            // Close, ping, pong.
            8..=10 if len > MAX_CONTROL_PAYLOAD => return Err(Refused::Malformed),
            // Other control frames and unknown opcodes: the decoder refuses
            // those from their header, before any payload.
            _ => {}
        }
        Ok(len)
    }
}

/// The header's whole length, once its first two bytes are there.
fn header_len(header: &[u8; 14], have: usize) -> Option<usize> {
    if have < 2 {
        return None;
    }
    let second = header[1];
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// The payload length a whole header declares.
fn declared_len(header: &[u8; 14], second: u8) -> u64 {
    match second & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => u64::from_be_bytes([
            header[2], header[3], header[4], header[5], header[6], header[7], header[8], header[9],
        ]),
        len => u64::from(len),
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(refused) = this.refused.take() {
            this.ended = true;
            return Poll::Ready(Some(Err(refused.into_payload_error())));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        if this.burst >= BURST {
            // Let the decoder work through what it has before reading on.
            this.burst = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {
                this.burst = 0;
                return Poll::Pending;
            }
        };
        this.burst += chunk.len();
        match this.scan(&chunk) {
            Ok(()) => Poll::Ready(Some(Ok(chunk))),
            // The frames before the refused one are handed on first.
            Err((start, refused)) if start > 0 => {
                this.refused = Some(refused);
                Poll::Ready(Some(Ok(chunk.slice(..start))))
            }
            Err((_, refused)) => {
                this.ended = true;
                Poll::Ready(Some(Err(refused.into_payload_error())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A masked client frame header declaring `len` bytes.
    fn header(first: u8, len: u64) -> Vec<u8> {
        let mut out = vec![first];
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = header(first, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    /// What the guard hands on from `chunks`, and its refusal if any.
    async fn run(max: usize, chunks: Vec<Vec<u8>>) -> (Vec<u8>, Option<Refused>) {
        let inner = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))))
            .boxed_local();
        let mut guard = FrameGuard::new(inner, max);
        let mut passed = Vec::new();
        while let Some(item) = guard.next().await {
            match item {
                Ok(bytes) => passed.extend_from_slice(&bytes),
                Err(err) => {
                    let PayloadError::Io(io) = &err else {
                        panic!("not the guard's: {err}");
                    };
                    let refused = io.get_ref().and_then(|e| e.downcast_ref::<Refused>());
                    return (passed, refused.copied());
                }
            }
        }
        (passed, None)
    }

    #[tokio::test]
    async fn frames_within_the_limit_pass_unchanged_however_they_are_cut() {
        let mut stream = frame(0x81, b"hello");
        stream.extend(frame(0x89, b"ping"));
        stream.extend(frame(0x82, &[7; 300]));
        // Cut into single bytes: headers span chunks.
        let bytes: Vec<Vec<u8>> = stream.iter().map(|b| vec![*b]).collect();
        assert_eq!(run(300, bytes).await, (stream.clone(), None));
        assert_eq!(run(300, vec![stream.clone()]).await, (stream, None));
    }

    #[tokio::test]
    async fn a_frame_is_refused_at_its_header_after_the_frames_before_it() {
        let ok = frame(0x81, b"hi");
        let mut stream = ok.clone();
        stream.extend(header(0x81, 2 << 30));
        assert_eq!(run(4096, vec![stream]).await, (ok, Some(Refused::TooBig)));
        // A 64-bit length split across chunks.
        let huge = header(0x82, u64::MAX >> 1);
        let parts = vec![huge[..3].to_vec(), huge[3..].to_vec(), vec![0; 1000]];
        assert_eq!(
            run(4096, parts).await,
            (huge[..3].to_vec(), Some(Refused::TooBig))
        );
    }

    #[tokio::test]
    async fn a_fragmented_message_counts_as_a_whole() {
        let first = frame(0x01, &[b'a'; 3]);
        let mut stream = first.clone();
        // A ping between fragments does not count.
        stream.extend(frame(0x89, b""));
        let before = stream.clone();
        stream.extend(frame(0x80, &[b'b'; 3]));
        assert_eq!(run(5, vec![stream]).await, (before, Some(Refused::TooBig)));
        let mut exact = frame(0x01, &[b'a'; 3]);
        exact.extend(frame(0x80, &[b'b'; 2]));
        exact.extend(frame(0x81, &[b'c'; 5]));
        assert_eq!(run(5, vec![exact.clone()]).await, (exact, None));
    }

    #[tokio::test]
    async fn oversized_control_frames_and_reserved_bits_are_malformed() {
        let ping = header(0x89, 126);
        assert_eq!(
            run(4096, vec![ping]).await,
            (vec![], Some(Refused::Malformed))
        );
        let rsv = frame(0xc1, b"x");
        assert_eq!(
            run(4096, vec![rsv]).await,
            (vec![], Some(Refused::Malformed))
        );
    }

    #[test]
    fn the_verdict_is_found_inside_actix_ws_error() {
        let payload = Refused::TooBig.into_payload_error();
        let wrapped = std::io::Error::other(payload);
        assert_eq!(Refused::find(&wrapped), Some(Refused::TooBig));
        assert_eq!(Refused::find(&std::io::Error::other("other")), None);
    }
}
