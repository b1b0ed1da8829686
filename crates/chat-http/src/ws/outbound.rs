//! What the server writes to one client, with a bound on how long a write
//! may wait.
//!
//! actix-ws's [`Session`] hands frames to the connection's response body
//! through a channel of 32 frames; the HTTP dispatcher only pulls from it
//! while its own write buffer (32 KiB) has room, and that buffer only
//! drains as fast as the client reads. So when a client stops reading, the
//! kernel's socket buffer fills, then the dispatcher's buffer, then the
//! channel, and `Session::text` waits. Memory per connection is bounded by
//! those three buffers; [`Outbound`] bounds the *time*: a write that cannot
//! complete within WEBSOCKET_WRITE_WAIT fails with [`WriteError::TooSlow`]
//! and the session closes the connection (1013) instead of hanging.

use std::future::Future;
use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Closed, Session};

/// The longest a close frame may wait for room in a stuck connection: the
/// session ends either way, and shutdown must not wait on slow readers.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The connection is already closed.
    Closed,
    /// The client has not made room for it within the write wait.
    TooSlow,
}

/// The writing half of one connection.
pub(crate) struct Outbound {
    session: Session,
    write_wait: Duration,
}

impl Outbound {
    pub(crate) fn new(session: Session, write_wait: Duration) -> Self {
        Self {
            session,
            write_wait,
        }
    }

    /// Writes one text frame.
    pub(crate) async fn text(&mut self, text: impl Into<String>) -> Result<(), WriteError> {
        let text: String = text.into();
        bounded(self.write_wait, self.session.text(text)).await
    }

    /// Sends a heartbeat ping.
    pub(crate) async fn ping(&mut self) -> Result<(), WriteError> {
        bounded(self.write_wait, self.session.ping(b"")).await
    }

    /// Answers a client's ping.
    pub(crate) async fn pong(&mut self, payload: &[u8]) -> Result<(), WriteError> {
        bounded(self.write_wait, self.session.pong(payload)).await
    }

    /// Sends a close frame, waiting at most a second for room, and lets go
    /// of the connection: once the close frame is written, actix-ws ends
    /// the response and the server closes the TCP connection.
    pub(crate) async fn close(self, reason: Option<CloseReason>) {
        let wait = self.write_wait.min(CLOSE_WAIT);
        let _ = bounded(wait, self.session.close(reason)).await;
    }

    /// Sends a close frame only if there is room right now (the connection
    /// is known to be stuck), then lets go of it.
    pub(crate) async fn close_if_room(self, reason: Option<CloseReason>) {
        let _ = bounded(Duration::ZERO, self.session.close(reason)).await;
    }
}

/// A close frame with a code and a reason for the client's logs.
pub(crate) fn close_reason(code: u16, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(description.to_owned()),
    })
}

/// Runs a write for at most `wait`. `tokio::time::timeout` polls the write
/// once before looking at the clock, so a zero wait still writes when there
/// is room.
async fn bounded(
    wait: Duration,
    write: impl Future<Output = Result<(), Closed>>,
) -> Result<(), WriteError> {
    match tokio::time::timeout(wait, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Closed)) => Err(WriteError::Closed),
        Err(_elapsed) => Err(WriteError::TooSlow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_cannot_complete_in_time_is_too_slow() {
        let stuck = std::future::pending::<Result<(), Closed>>();
        assert_eq!(
            bounded(Duration::from_millis(20), stuck).await,
            Err(WriteError::TooSlow)
        );
        // A zero wait still writes when there is room.
        assert_eq!(bounded(Duration::ZERO, async { Ok(()) }).await, Ok(()));
        assert_eq!(
            bounded(Duration::ZERO, async { Err(Closed) }).await,
            Err(WriteError::Closed)
        );
    }
}
