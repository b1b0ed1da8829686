//! What the server writes to one client: actix-ws's [`Session`], with a
//! bound on how long a write may wait.
//!
//! actix-ws queues a connection's frames in a channel of 32 that its
//! response body drains as the socket takes them. When a client stops
//! reading, the socket's buffers fill, then the channel, and a write
//! waits. [`Writer`] bounds that wait: a write that cannot complete within
//! WEBSOCKET_WRITE_WAIT fails with [`WriteError::TooSlow`], and the session
//! closes the connection (1013) instead of hanging.

use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Session};
use chat_protocol::Close;

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
pub(crate) struct Writer {
    session: Session,
    write_wait: Duration,
}

impl Writer {
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
    /// of the connection: once the close frame is written, the response
    /// body ends and the connection is closed.
    pub(crate) async fn close(self, close: &Close) {
        let wait = self.write_wait.min(CLOSE_WAIT);
        let _ = bounded(wait, self.session.close(Some(close_reason(close)))).await;
    }

    /// Sends a close frame only if there is room right now (the connection
    /// is known to be stuck), then lets go of it.
    pub(crate) async fn close_if_room(self, close: &Close) {
        let _ = bounded(
            Duration::ZERO,
            self.session.close(Some(close_reason(close))),
        )
        .await;
    }

    /// Answers the client's close frame with its own code, as RFC 6455
    /// suggests, and lets go of the connection.
    pub(crate) async fn echo_close(self, reason: Option<CloseReason>) {
        let wait = self.write_wait.min(CLOSE_WAIT);
        let _ = bounded(wait, self.session.close(reason)).await;
    }
}

fn close_reason(close: &Close) -> CloseReason {
    CloseReason {
        code: CloseCode::from(close.code),
        description: Some(close.reason.clone()),
    }
}

/// Runs a write for at most `wait`. `tokio::time::timeout` polls it once
/// before looking at the clock, so a zero wait still writes when there is
/// room.
async fn bounded<E>(
    wait: Duration,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), WriteError> {
    match tokio::time::timeout(wait, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(WriteError::Closed),
        Err(_elapsed) => Err(WriteError::TooSlow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_cannot_complete_in_time_is_too_slow() {
        let stuck = std::future::pending::<Result<(), ()>>();
        assert_eq!(
            bounded(Duration::from_millis(20), stuck).await,
            Err(WriteError::TooSlow)
        );
        // A zero wait still writes when there is room.
        assert_eq!(
            bounded(Duration::ZERO, async { Ok::<(), ()>(()) }).await,
            Ok(())
        );
        assert_eq!(
            bounded(Duration::ZERO, async { Err(()) }).await,
            Err(WriteError::Closed)
        );
    }
}
