//! Answering one client text frame: parse it, apply the frame rate limit,
//! call the same use cases as HTTP, and say what to write back (`pong`,
//! `ack`, `error`, or nothing).

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;

use chat_domain::rate_limit::rate_limited;
use chat_domain::{
    Caller, ChatService, DomainError, DomainResult, PresenceFollows, RoomId, SendMessage, Sent,
};
use chat_protocol::{ClientFrame, ServerFrame};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics::{self, Transport};
use crate::state::WsSettings;

/// Answers one connection's frames on behalf of its user.
pub(crate) struct FrameHandler {
    service: Arc<ChatService>,
    caller: Caller,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Whose presence the connection follows.
    follows: Arc<dyn PresenceFollows>,
    presence_limit: usize,
}

/// How a client text frame is answered.
pub(crate) enum Answer {
    /// At once: a `pong`, a refusal (bad frame, rate limited), or nothing.
    /// Boxed: a frame that carries a message is large.
    Now(Option<Box<ServerFrame>>),
    /// Through the use case, in two steps: [`Starting`], then [`Pending`].
    /// The futures own what they need, so the session keeps writing
    /// deliveries while they wait on the store.
    Later(Starting),
}

/// The first step of a frame's use case, which the session lets finish
/// before it reads the client's next frame: a message's checks and its
/// place in the store's order (so one connection's messages are stored in
/// the order it sent them), a typing's or a subscribe's whole work.
pub(crate) type Starting = Pin<Box<dyn Future<Output = Started>>>;

/// What a frame's first step leaves.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once, out of the step's future: boxing the reply would allocate per frame"
)]
pub(crate) enum Started {
    /// The reply is known (`None`: nothing to write).
    Done(Option<ServerFrame>),
    /// The reply waits: a message's `ack` waits for its commit, while the
    /// frames after it are read and started.
    Waiting(Pending),
}

/// The reply of a frame whose use case is still running.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Option<ServerFrame>>>>;

impl FrameHandler {
    /// A handler for `caller`, allowing `rate_limit` frames per second
    /// (bursts of twice that); 0 means no limit.
    pub(crate) fn new(
        service: Arc<ChatService>,
        caller: Caller,
        settings: &WsSettings,
        follows: Arc<dyn PresenceFollows>,
    ) -> Self {
        Self {
            service,
            caller,
            limiter: send_limiter(settings.rate_limit),
            follows,
            presence_limit: settings.presence_max_subscriptions,
        }
    }

    /// The caller this connection belongs to.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The use cases the frames are answered with.
    pub(crate) fn service(&self) -> &ChatService {
        &self.service
    }

    /// How to answer a text frame. Every frame counts against the
    /// connection's rate limit, in the order the frames arrive, whatever
    /// it holds (a malformed one included); the use case, if the frame
    /// needs one, runs in the returned future.
    pub(crate) fn answer(&self, text: &str) -> Answer {
        let parsed = ClientFrame::parse(text);
        if let Err(err) = self.admit() {
            let client_id = match parsed {
                Ok(ClientFrame::Message { client_id, .. }) => client_id,
                _ => None,
            };
            return Answer::Now(Some(Box::new(ServerFrame::from_error(&err, client_id))));
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(err) => return Answer::Now(Some(Box::new(err.to_frame()))),
        };
        match frame {
            ClientFrame::Ping => Answer::Now(Some(Box::new(ServerFrame::pong()))),
            ClientFrame::Message {
                content,
                recipient,
                room_id,
                client_id,
                reply_to,
            } => {
                let request = SendMessage {
                    content,
                    recipient,
                    room_id,
                    sender: None,
                    client_id,
                    reply_to,
                };
                let (service, caller) = (Arc::clone(&self.service), self.caller.clone());
                Answer::Later(Box::pin(send(service, caller, request)))
            }
            ClientFrame::PresenceSubscribe { usernames } => {
                let (service, caller) = (Arc::clone(&self.service), self.caller.clone());
                let (follows, limit) = (Arc::clone(&self.follows), self.presence_limit);
                Answer::Later(Box::pin(async move {
                    // The statuses come through the connection's presence,
                    // so that no change can overtake them.
                    Started::Done(
                        match service.follow_presence(&*follows, &usernames, limit).await {
                            Ok(()) => None,
                            Err(err) => Some(refused(&caller, &err, None)),
                        },
                    )
                }))
            }
            ClientFrame::PresenceUnsubscribe { usernames } => {
                self.service.unfollow_presence(&*self.follows, &usernames);
                Answer::Now(None)
            }
            ClientFrame::Typing { recipient, room_id } => {
                let (service, caller) = (Arc::clone(&self.service), self.caller.clone());
                Answer::Later(Box::pin(async move {
                    Started::Done(typing(&service, &caller, recipient, room_id).await)
                }))
            }
        }
    }

    /// Counts a frame from the client against the connection's rate
    /// limit; `RateLimited` when over it.
    pub(crate) fn admit(&self) -> Result<(), DomainError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            metrics::ws_send_rate_limited();
            rate_limited(not_until.wait_time_from(limiter.clock().now()))
        })
    }

    /// The `error` frame for a binary message: the protocol is JSON text.
    pub(crate) fn binary_refused() -> ServerFrame {
        ServerFrame::Error {
            error: "binary frames are not supported: send one JSON object per text frame".into(),
            code: "unsupported_frame".into(),
            client_id: None,
        }
    }
}

/// Checks a message and gives it its place in the store's order (the one
/// send path, as over HTTP); the reply then waits for it to be stored and
/// delivered: with a `client_id`, an `ack` with the stored message, or
/// the original one for a resend. A refusal of the checks is answered at
/// once.
async fn send(service: Arc<ChatService>, caller: Caller, request: SendMessage) -> Started {
    let client_id = request.client_id.clone();
    match service.start_send(&caller, request).await {
        Ok(in_flight) => Started::Waiting(Box::pin(async move {
            acked(&caller, client_id, in_flight.await)
        })),
        Err(err) => Started::Done(Some(refused(&caller, &err, client_id))),
    }
}

/// The reply to a message once its send is over.
fn acked(
    caller: &Caller,
    client_id: Option<String>,
    sent: DomainResult<Sent>,
) -> Option<ServerFrame> {
    match sent {
        Ok((stored, position)) => {
            if stored.is_new() {
                metrics::message_stored(&stored.message().target, Transport::WebSocket);
            }
            client_id.map(|client_id| ServerFrame::Ack {
                client_id,
                message: stored.message().clone(),
                cursor: position.map(chat_protocol::cursor),
            })
        }
        Err(err) => Some(refused(caller, &err, client_id)),
    }
}

/// Relays "typing" to the DM partner or the room's other members.
async fn typing(
    service: &ChatService,
    caller: &Caller,
    recipient: Option<String>,
    room_id: Option<RoomId>,
) -> Option<ServerFrame> {
    match service.typing(caller, recipient.as_deref(), room_id).await {
        Ok(()) => None,
        Err(err) => Some(refused(caller, &err, None)),
    }
}

fn refused(caller: &Caller, err: &DomainError, client_id: Option<String>) -> ServerFrame {
    match err {
        DomainError::Internal(detail) => {
            tracing::error!(user_id = %caller.user_id, detail = %detail, "internal error handling a WebSocket frame");
        }
        DomainError::StoreUnavailable => {
            tracing::warn!(user_id = %caller.user_id, "store unavailable handling a WebSocket frame");
        }
        _ => {}
    }
    ServerFrame::from_error(err, client_id)
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
