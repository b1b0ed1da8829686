//! One connection's life, in one task: a `select!` over the client's
//! frames, the notifier's deliveries, the heartbeat and the token's expiry.
//!
//! Deliveries are taken from the notifier's bounded queue one at a time and
//! written before the next is taken, so the queue is the only buffer that
//! grows with a slow client; when it fills, the notifier closes the
//! connection (`Delivery::Close(TooSlow)`, 1013) without waiting on it.
//! A write that cannot complete within WEBSOCKET_WRITE_WAIT also closes it
//! with 1013 (see `outbound.rs`).

use std::ops::ControlFlow;
use std::time::Duration;

use actix_ws::CloseReason;
use chat_domain::{CloseReason as NotifierClose, Delivery, ServerFrame, Subscription};
use time::OffsetDateTime;
use tokio::time::{interval_at, sleep, sleep_until, Instant, MissedTickBehavior};

use super::frames::FrameHandler;
use super::inbound::{Inbound, InboundError, Incoming};
use super::outbound::{close_reason, Outbound, WriteError};
use crate::state::WsSettings;

/// Close codes this module sends besides the notifier's (1001, 1013).
mod code {
    /// Going away: heartbeat lost, or the notifier let go.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The token the connection was opened with expired.
    pub const POLICY: u16 = 1008;
    /// A frame over WEBSOCKET_MAX_MESSAGE_SIZE.
    pub const TOO_BIG: u16 = 1009;
    /// Writes to the client are stuck.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A connection, upgraded and registered with the notifier.
pub(crate) struct WsSession {
    pub(crate) handler: FrameHandler,
    pub(crate) out: Outbound,
    pub(crate) inbound: Inbound,
    pub(crate) subscription: Box<dyn Subscription>,
    pub(crate) settings: WsSettings,
}

/// Something the session must react to.
enum Event {
    Incoming(Option<Result<Incoming, InboundError>>),
    Delivery(Option<Delivery>),
    PingDue,
    HeartbeatLost,
    TokenExpired,
}

/// How long, after its close frame, the server waits for the client's
/// (the closing handshake) before letting go of the connection.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(1);

/// How a session ends.
#[derive(Debug)]
enum Ending {
    /// Send this close frame and wait for the client's.
    Close(Option<CloseReason>),
    /// The client closed: answer with this close frame.
    Answer(Option<CloseReason>),
    /// The client's side is gone: nothing can be sent.
    Gone,
    /// Writes are stuck: send 1013 if there happens to be room.
    Stuck,
}

impl From<WriteError> for Ending {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Closed => Self::Gone,
            WriteError::TooSlow => Self::Stuck,
        }
    }
}

type Flow = ControlFlow<Ending>;

impl WsSession {
    /// Serves the connection until it ends, then closes it. Dropping the
    /// subscription unregisters it from the notifier.
    pub(crate) async fn run(mut self) {
        let ending = self.serve().await;
        match &ending {
            Ending::Stuck => tracing::warn!("closing a WebSocket whose client stopped reading"),
            ending => tracing::debug!(?ending, "WebSocket closing"),
        }
        let Self {
            out,
            subscription,
            mut inbound,
            ..
        } = self;
        drop(subscription);
        match ending {
            Ending::Close(reason) => {
                out.close(reason).await;
                // Letting go at once would close the TCP connection under
                // the client's feet: whatever it sends meanwhile (pongs)
                // would draw a reset that can destroy our close frame
                // before the client reads it.
                let _ = tokio::time::timeout(CLOSING_HANDSHAKE, inbound.closed()).await;
            }
            Ending::Answer(reason) => out.close(reason).await,
            Ending::Stuck => {
                let reason = close_reason(code::TRY_AGAIN_LATER, "the client reads too slowly");
                out.close_if_room(reason).await;
            }
            Ending::Gone => {}
        }
    }

    async fn serve(&mut self) -> Ending {
        let caller = self.handler.caller();
        let hello = ServerFrame::Connection {
            status: "connected".into(),
            user_id: caller.user_id,
            username: caller.username.clone(),
        };
        let expires_at = caller.expires_at;
        if let Err(err) = self.out.text(hello.to_json()).await {
            return err.into();
        }
        // Recovery (`?since=<message id>`, not yet implemented) belongs
        // here: the subscription is already live and queueing, so replay
        // the stored messages after `since` now, then skip queued
        // deliveries of messages the replay already sent.

        let ping_period = self.settings.ping_period;
        let pong_wait = self.settings.pong_wait;
        let mut ping = interval_at(Instant::now() + ping_period, ping_period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let heartbeat = sleep(pong_wait);
        let expiry = sleep_until(instant_at(expires_at));
        tokio::pin!(heartbeat, expiry);
        loop {
            let event = tokio::select! {
                incoming = self.inbound.next() => Event::Incoming(incoming),
                delivery = self.subscription.next() => Event::Delivery(delivery),
                _ = ping.tick() => Event::PingDue,
                () = &mut heartbeat => Event::HeartbeatLost,
                () = &mut expiry => Event::TokenExpired,
            };
            if let Event::Incoming(Some(_)) = event {
                // Any frame proves the client is there, not only a pong.
                heartbeat.as_mut().reset(Instant::now() + pong_wait);
            }
            if let ControlFlow::Break(ending) = self.on(event).await {
                return ending;
            }
        }
    }

    async fn on(&mut self, event: Event) -> Flow {
        match event {
            Event::Incoming(incoming) => self.on_incoming(incoming).await,
            Event::Delivery(delivery) => self.on_delivery(delivery).await,
            Event::PingDue => written(self.out.ping().await),
            Event::HeartbeatLost => close(
                code::GOING_AWAY,
                "no pong within WEBSOCKET_PONG_WAIT: reconnect",
            ),
            Event::TokenExpired => close(code::POLICY, "token expired: refresh it and reconnect"),
        }
    }

    async fn on_incoming(&mut self, incoming: Option<Result<Incoming, InboundError>>) -> Flow {
        let incoming = match incoming {
            None => return ControlFlow::Break(Ending::Gone),
            Some(Ok(incoming)) => incoming,
            Some(Err(err)) => return self.refuse_stream(err),
        };
        match incoming {
            Incoming::Text(text) => match self.handler.answer(&text).await {
                Some(reply) => written(self.out.text(reply.to_json()).await),
                None => ControlFlow::Continue(()),
            },
            Incoming::Binary => {
                let reply = FrameHandler::binary_refused().to_json();
                written(self.out.text(reply).await)
            }
            Incoming::Ping(payload) => written(self.out.pong(&payload).await),
            Incoming::Pong => ControlFlow::Continue(()),
            // Echo the client's code, as RFC 6455 suggests.
            Incoming::Close(reason) => ControlFlow::Break(Ending::Answer(reason)),
        }
    }

    fn refuse_stream(&self, err: InboundError) -> Flow {
        match err {
            InboundError::TooBig => {
                let limit = self.settings.max_message_size;
                let reason = format!("frames are limited to {limit} bytes");
                close(code::TOO_BIG, &reason)
            }
            InboundError::NotUtf8 => close(code::INVALID_DATA, "text frames must be UTF-8"),
            InboundError::Protocol(err) => {
                tracing::debug!(error = %err, "WebSocket protocol error");
                close(code::PROTOCOL, "WebSocket protocol error")
            }
        }
    }

    async fn on_delivery(&mut self, delivery: Option<Delivery>) -> Flow {
        match delivery {
            Some(Delivery::Frame(text)) => written(self.out.text(&*text).await),
            Some(Delivery::Close(reason)) => close(reason.close_code(), describe(reason)),
            // The notifier let go of us without a reason: it is gone.
            None => close(code::GOING_AWAY, "the realtime service stopped: reconnect"),
        }
    }
}

fn written(result: Result<(), WriteError>) -> Flow {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err.into()),
    }
}

fn close(code: u16, description: &str) -> Flow {
    ControlFlow::Break(Ending::Close(close_reason(code, description)))
}

fn describe(reason: NotifierClose) -> &'static str {
    match reason {
        NotifierClose::TooSlow => {
            "the client reads too slowly: reconnect and catch up from the history"
        }
        NotifierClose::ShuttingDown => "the server is shutting down: reconnect",
    }
}

/// The tokio instant of a wall-clock time (now, if it is past). Times
/// more than a year away are taken as a year away: a token never lives
/// that long, and it keeps the addition from overflowing.
fn instant_at(at: OffsetDateTime) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let left = Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO);
    Instant::now() + left.min(YEAR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_and_far_times_are_clamped() {
        let now = Instant::now();
        let past = instant_at(OffsetDateTime::now_utc() - time::Duration::hours(1));
        assert!(past <= Instant::now() && past >= now);
        let far = instant_at(OffsetDateTime::now_utc() + time::Duration::days(10_000));
        assert!(far <= Instant::now() + Duration::from_secs(366 * 24 * 3600));
    }
}
