//! Close codes the server sends, each with the reason a client reads in
//! its close frame. SPEC's WebSocket section lists what a client should do
//! on each.

use chat_domain::CloseReason;

/// Why the server closes a connection: a close code and the reason sent
/// with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// The close code (RFC 6455 section 7.4).
    pub code: u16,
    /// A sentence for the client's logs.
    pub reason: String,
}

/// Going away: the server is shutting down, or the heartbeat was lost.
pub const GOING_AWAY: u16 = 1001;
/// The client broke the WebSocket protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text message that is not UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// Policy: the token the connection was opened with expired or was revoked.
pub const POLICY: u16 = 1008;
/// A frame or message over WEBSOCKET_MAX_MESSAGE_SIZE.
pub const TOO_BIG: u16 = 1009;
/// Try again later: the client reads too slowly, or the history could not
/// be read for a replay.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// Resync: the server's live stream had a hole it could not fill on this
/// connection (larger than WEBSOCKET_REPLAY_LIMIT, or not known
/// exactly). Reconnect with `?since=` the cursor the reason names (after
/// `since=`), and drop what you already have by id; a reason without
/// `since=` asks to reload the history, then reconnect without `since`.
pub const RESYNC: u16 = 4001;

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// The notifier let go of the connection, for this reason.
    pub fn notifier(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TooSlow => Self::too_slow(),
            CloseReason::ShuttingDown => {
                Self::new(GOING_AWAY, "the server is shutting down: reconnect")
            }
            CloseReason::TokenRevoked => Self::new(POLICY, "token revoked: log in again"),
        }
    }

    /// The client does not read what is sent to it fast enough.
    pub fn too_slow() -> Self {
        Self::new(
            TRY_AGAIN_LATER,
            "the client reads too slowly: reconnect and catch up from the history",
        )
    }

    /// The notifier stopped without saying why.
    pub fn realtime_stopped() -> Self {
        Self::new(GOING_AWAY, "the realtime service stopped: reconnect")
    }

    /// No frame from the client within WEBSOCKET_PONG_WAIT.
    pub fn heartbeat_lost() -> Self {
        Self::new(GOING_AWAY, "no pong within WEBSOCKET_PONG_WAIT: reconnect")
    }

    /// The connection's token expired.
    pub fn token_expired() -> Self {
        Self::new(POLICY, "token expired: refresh it and reconnect")
    }

    /// The client broke the WebSocket protocol.
    pub fn protocol_error() -> Self {
        Self::new(PROTOCOL_ERROR, "WebSocket protocol error")
    }

    /// A text message that is not UTF-8.
    pub fn not_utf8() -> Self {
        Self::new(INVALID_DATA, "text frames must be UTF-8")
    }

    /// A frame, or a message joined from fragments, over `limit` bytes.
    pub fn too_big(limit: usize) -> Self {
        Self::new(TOO_BIG, format!("frames are limited to {limit} bytes"))
    }

    /// The history could not be read for a replay.
    pub fn history_unavailable() -> Self {
        Self::new(
            TRY_AGAIN_LATER,
            "the history is unavailable: reconnect with the same since",
        )
    }

    /// The live stream had a hole this connection cannot be filled in:
    /// reconnect with `?since=<cursor>` (the position the hole starts
    /// after), or, without one, reload the history.
    pub fn resync(since: Option<u64>) -> Self {
        match since {
            Some(position) => Self::new(
                RESYNC,
                format!(
                    "missed live messages: reconnect with ?since={}",
                    crate::cursor(position)
                ),
            ),
            None => Self::new(
                RESYNC,
                "missed live messages: reload the history, then reconnect",
            ),
        }
    }

    /// The cursor a [`Close::resync`] names to reconnect after, if any.
    pub fn resync_since(&self) -> Option<u64> {
        if self.code != RESYNC {
            return None;
        }
        let (_, cursor) = self.reason.split_once("since=")?;
        crate::parse_cursor(cursor)
    }

    /// Whether this close asks the client to try again later (1013): it
    /// reads too slowly, so nothing more is queued for it.
    pub fn is_try_again_later(&self) -> bool {
        self.code == TRY_AGAIN_LATER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifier_reasons_have_their_codes() {
        assert_eq!(Close::notifier(CloseReason::TooSlow).code, 1013);
        assert_eq!(Close::notifier(CloseReason::ShuttingDown).code, 1001);
        assert_eq!(Close::notifier(CloseReason::TokenRevoked).code, 1008);
        assert!(Close::notifier(CloseReason::TooSlow).is_try_again_later());
    }

    #[test]
    fn a_resync_names_where_to_reconnect_from() {
        let close = Close::resync(Some(1234));
        assert_eq!(close.code, 4001);
        assert!(close.reason.ends_with("?since=1234"), "{close:?}");
        assert_eq!(close.resync_since(), Some(1234));
        assert_eq!(Close::resync(None).resync_since(), None);
        assert_eq!(Close::too_slow().resync_since(), None);
    }

    #[test]
    fn every_reason_fits_a_control_frame() {
        // A close frame's payload is at most 125 bytes: the code's two, and
        // the reason's.
        let all = [
            Close::too_slow(),
            Close::notifier(CloseReason::ShuttingDown),
            Close::notifier(CloseReason::TokenRevoked),
            Close::realtime_stopped(),
            Close::heartbeat_lost(),
            Close::token_expired(),
            Close::protocol_error(),
            Close::not_utf8(),
            Close::too_big(usize::MAX),
            Close::history_unavailable(),
            Close::resync(Some(u64::MAX)),
            Close::resync(None),
        ];
        for close in all {
            assert!(close.reason.len() <= 123, "{close:?}");
        }
    }
}
