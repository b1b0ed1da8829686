//! Answering one client text frame: parse it, apply the send rate limit,
//! call the same use cases as HTTP, and say what to write back (`pong`,
//! `ack`, `error`, or nothing).

use std::num::NonZeroU32;
use std::sync::Arc;

use chat_domain::{
    Caller, ChatService, ClientFrame, DomainError, RoomId, SendMessage, ServerFrame,
};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Answers one connection's frames on behalf of its user.
pub(crate) struct FrameHandler {
    service: Arc<ChatService>,
    caller: Caller,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl FrameHandler {
    /// A handler for `caller`, allowing `rate_limit` `message` and `typing`
    /// frames per second (bursts of twice that); 0 means no limit.
    pub(crate) fn new(service: Arc<ChatService>, caller: Caller, rate_limit: u32) -> Self {
        Self {
            service,
            caller,
            limiter: send_limiter(rate_limit),
        }
    }

    /// The caller this connection belongs to.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// What to write back for a text frame, if anything.
    pub(crate) async fn answer(&self, text: &str) -> Option<ServerFrame> {
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err(err) => return Some(err.to_frame()),
        };
        match frame {
            ClientFrame::Ping => Some(ServerFrame::pong()),
            ClientFrame::Message {
                content,
                recipient,
                room_id,
                client_id,
            } => self.send(content, recipient, room_id, client_id).await,
            ClientFrame::Typing { recipient, room_id } => self.typing(recipient, room_id).await,
        }
    }

    /// The `error` frame for a binary message: the protocol is JSON text.
    pub(crate) fn binary_refused() -> ServerFrame {
        ServerFrame::Error {
            error: "binary frames are not supported: send one JSON object per text frame".into(),
            code: "unsupported_frame".into(),
            client_id: None,
        }
    }

    /// Stores then delivers a message (the one send path, as over HTTP);
    /// with a `client_id`, acknowledges it with the stored message, or the
    /// original one for a resend.
    async fn send(
        &self,
        content: String,
        recipient: Option<String>,
        room_id: Option<RoomId>,
        client_id: Option<String>,
    ) -> Option<ServerFrame> {
        if let Err(err) = self.check_rate() {
            return Some(ServerFrame::from_error(&err, client_id));
        }
        let request = SendMessage {
            content,
            recipient,
            room_id,
            sender: None,
            client_id: client_id.clone(),
        };
        match self.service.send_message(&self.caller, request).await {
            Ok(stored) => client_id.map(|client_id| ServerFrame::Ack {
                client_id,
                message: stored.message().clone(),
            }),
            Err(err) => Some(self.refused(&err, client_id)),
        }
    }

    /// Relays "typing" to the DM partner or the room's other members.
    async fn typing(
        &self,
        recipient: Option<String>,
        room_id: Option<RoomId>,
    ) -> Option<ServerFrame> {
        if let Err(err) = self.check_rate() {
            return Some(ServerFrame::from_error(&err, None));
        }
        match self
            .service
            .typing(&self.caller, recipient.as_deref(), room_id)
            .await
        {
            Ok(()) => None,
            Err(err) => Some(self.refused(&err, None)),
        }
    }

    fn refused(&self, err: &DomainError, client_id: Option<String>) -> ServerFrame {
        match err {
            DomainError::Internal(detail) => {
                tracing::error!(user_id = %self.caller.user_id, detail = %detail, "internal error handling a WebSocket frame");
            }
            DomainError::StoreUnavailable => {
                tracing::warn!(user_id = %self.caller.user_id, "store unavailable handling a WebSocket frame");
            }
            _ => {}
        }
        ServerFrame::from_error(err, client_id)
    }

    fn check_rate(&self) -> Result<(), DomainError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            DomainError::RateLimited {
                retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            }
        })
    }
}

/// `per_second` frames a second, bursts of twice that; `None` for 0.
fn send_limiter(per_second: u32) -> Option<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_a_burst_of_twice_the_rate() {
        let limiter = send_limiter(3).expect("a limit");
        let allowed = (0..20).filter(|_| limiter.check().is_ok()).count();
        assert_eq!(allowed, 6);
        assert!(send_limiter(0).is_none());
    }
}
