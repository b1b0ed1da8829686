//! One connection's life, in one task: a `select!` over the client's
//! frames, the notifier's deliveries, the heartbeat and the token's expiry.
//!
//! Deliveries are taken from the notifier's bounded queue one at a time and
//! written before the next is taken, so the queue is the only buffer that
//! grows with a slow client; when it fills, the notifier closes the
//! connection (`Delivery::Close(TooSlow)`, 1013) without waiting on it.
//! A write that cannot complete within WEBSOCKET_WRITE_WAIT also closes it
//! with 1013 (see `writer.rs`).
//!
//! The client's frames come from actix-ws's `MessageStream` (behind the
//! header guard of `guard.rs`), with continuations joined; a frame that
//! breaks the protocol closes the connection at once with the code that
//! says why (1002, 1007, 1009), without waiting for the client's close.
//!
//! Every frame the client sends counts against WEBSOCKET_RATE_LIMIT (see
//! `frames.rs`); over it, the frame is answered with an `error`
//! (`rate_limited`) and otherwise ignored.
//!
//! A client frame that needs the store (a message, a typing) is answered
//! by futures the loop polls beside the deliveries: while the store works,
//! the connection keeps draining its queue, so a client that sends fast and
//! reads promptly is never taken for a slow reader because of the store's
//! latency. A frame's handling has two steps (see `frames.rs`): the first
//! (a message's checks and its place in the store's order) finishes before
//! the next frame is read, so messages are stored in the order the client
//! sent them; the second (a message's commit) does not hold up the next
//! frame, so one connection's messages are pipelined into the store's
//! group commit instead of waiting one commit each. Replies are written in
//! the order the frames came, each once its frame is done (an `ack` after
//! its message's commit; a failed message's `error` frame in its place,
//! the others unaffected). At most [`MAX_IN_FLIGHT`] replies may wait:
//! then the client's frames are not read until one is written
//! (back-pressure through TCP, no unbounded queue). And a new frame is
//! read only when nothing is waiting to be written (or after 32
//! deliveries in a row, so that a queue that never empties cannot starve
//! the client's pongs and sends): a client that sends faster than the
//! server fans its messages out is slowed down by TCP, not closed.
//!
//! With `?since=`, the session first replays the stored messages after it
//! (see `replay.rs`), then serves the deliveries queued meanwhile, dropping
//! live copies of messages the replay already sent and of messages at or
//! below `since`.
//!
//! A `Delivery::Gap` (the notifier's live stream had a hole) is filled the
//! same way, in the queue's order: the messages of the hole the
//! connection was not handed are read from the store and sent before the
//! deliveries behind it, or the connection is closed with the resync code
//! (4001) naming where to reconnect from. At most
//! [`FILL_CONCURRENCY`](crate::ws::FILL_CONCURRENCY) sessions of the
//! process read the store for a hole at once: a hole reaches every
//! connection at the same moment, and must not stampede the database.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason, ProtocolError};
use chat_domain::{CloseReason as NotifierClose, Delivery, Hole, MessageId, Subscription};
use chat_protocol::{Close, ServerFrame};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::time::{sleep_until, Instant};

use super::connections::ConnectionSlot;
use super::frames::{Answer, FrameHandler, Pending, Started, Starting};
use super::guard::Refused;
use super::replay::{self, Missed, Outcome, Replayed, Since};
use super::writer::{WriteError, Writer};
use crate::state::WsSettings;

/// What the client sends, whole messages.
pub(crate) type Inbound = AggregatedMessageStream;

/// One read of the client's stream.
type Incoming = Option<Result<AggregatedMessage, ProtocolError>>;

/// A connection, upgraded and registered with the notifier.
pub(crate) struct WsSession {
    pub(crate) handler: FrameHandler,
    pub(crate) out: Writer,
    pub(crate) inbound: Inbound,
    pub(crate) subscription: Box<dyn Subscription>,
    pub(crate) settings: WsSettings,
    /// What to replay before going live (taken when the replay starts).
    pub(crate) since: Since,
    /// What the replay covered, while live copies of it may still come.
    pub(crate) replayed: Option<Replayed>,
    /// This connection's place among its user's (none when uncapped).
    #[expect(
        dead_code,
        reason = "held for its drop: the user's count goes down when the session ends"
    )]
    pub(crate) slot: Option<ConnectionSlot>,
    /// Holes are filled under one of these permits.
    pub(crate) fills: Arc<tokio::sync::Semaphore>,
}

/// Something the session must react to.
enum Event {
    Incoming(Incoming),
    /// The frame being started took its first step: the next may be read.
    Started,
    /// The oldest frame being handled is answered (`None`: nothing to
    /// write). Boxed: a frame is large (a whole message) and this enum
    /// lives in the session's future for the connection's life.
    Answered(Option<Box<ServerFrame>>),
    Delivery(Option<Delivery>),
    PingDue,
    HeartbeatLost,
    TokenExpired,
}

/// How long, after its close frame, the server waits for the client's
/// (the closing handshake) before letting go of the connection.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(1);

/// How long a session that is ending waits for the frame it was handling
/// (a message being stored is stored, as a graceful shutdown promises),
/// then for room to write its reply; both well within the server's
/// shutdown grace.
const SETTLE_ANSWER: Duration = Duration::from_secs(5);
const SETTLE_REPLY: Duration = Duration::from_secs(1);

/// Deliveries written in a row, at most, before a client frame that has
/// already arrived is taken (the queue holds 256 by default).
const CLIENT_TURN: usize = 32;

/// Replies that may wait at once on one connection (its messages waiting
/// for their commits): past it, the client's next frame is read only once
/// the oldest is answered. A commit takes a few milliseconds, so 64 keep
/// one connection far past 2,000 messages a second; the group commit's
/// queue holds 1,024 messages for the whole server.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// How a session ends.
#[derive(Debug)]
enum Ending {
    /// Send this close frame and wait for the client's.
    Close(Close),
    /// The client broke the protocol: send this close frame and let go at
    /// once.
    Fail(Close),
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
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would keep `self` twice in the task (the argument and \
                  the body's copy of it); the `async move` block keeps it once"
    )]
    pub(crate) fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            let ending = self.serve().await;
            match &ending {
                Ending::Stuck => {
                    crate::metrics::write_timed_out();
                    tracing::warn!("closing a WebSocket whose client stopped reading")
                }
                ending => tracing::debug!(?ending, "WebSocket closing"),
            }
            let Self {
                out,
                subscription,
                mut inbound,
                ..
            } = self;
            drop(subscription);
            // Boxed, as the other large steps are (see `on`).
            Box::pin(async move {
                match ending {
                    Ending::Close(close) => {
                        out.close(&close).await;
                        // Letting go at once would close the TCP connection under
                        // the client's feet: whatever it sends meanwhile (pongs)
                        // would draw a reset that can destroy our close frame
                        // before the client reads it.
                        let _ =
                            tokio::time::timeout(CLOSING_HANDSHAKE, client_closed(&mut inbound))
                                .await;
                    }
                    Ending::Fail(close) => out.close(&close).await,
                    Ending::Answer(reason) => out.echo_close(reason).await,
                    Ending::Stuck => out.close_if_room(&Close::too_slow()).await,
                    Ending::Gone => {}
                }
            })
            .await;
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
        // The subscription is already live and queueing: what is published
        // while the replay reads the store waits for the loop below.
        // Boxed, as the other large steps are (see `on`).
        if let ControlFlow::Break(ending) = Box::pin(self.recover()).await {
            return ending;
        }

        let mut timers = Timers::new(&self.settings, instant_at(expires_at));
        let alarm = sleep_until(timers.next());
        tokio::pin!(alarm);
        let mut handling = Handling::default();
        // Deliveries written since the client's frames were last looked at.
        let mut streak = 0;
        loop {
            // A queue that never empties (a server near capacity) must not
            // starve the client's frames (its pongs, its sends): after
            // CLIENT_TURN deliveries in a row, one that has arrived is taken.
            let turn = streak >= CLIENT_TURN && handling.can_take();
            let ready = if turn {
                self.client_frame_if_ready().await
            } else {
                None
            };
            // Otherwise in this order: what the session owes the client (its
            // reply, the deliveries queued for it) before taking new work
            // from it. A client sending faster than the server can fan out
            // is then slowed down (its frames wait in TCP) instead of
            // letting its own queue fill and being closed as a slow reader.
            let event = match ready {
                Some(event) => event,
                None => tokio::select! {
                    biased;
                    () = &mut alarm => match timers.due(Instant::now()) {
                        Some(event) => event,
                        // Woken early (the heartbeat moved on): set again.
                        None => {
                            alarm.as_mut().reset(timers.next());
                            continue;
                        }
                    },
                    progress = handling.next() => progress,
                    delivery = self.subscription.next() => Event::Delivery(delivery),
                    incoming = self.inbound.recv(), if handling.can_take() => Event::Incoming(incoming),
                },
            };
            if let Event::PingDue = event {
                timers.pinged(Instant::now());
                alarm.as_mut().reset(timers.next());
            }
            streak = streak_after(streak, &event, turn);
            if let Event::Incoming(Some(_)) = event {
                // Any frame proves the client is there, not only a pong.
                // The alarm is not moved: if it goes off before the new
                // deadline, it is set again then.
                timers.heard_from_client(Instant::now());
                // Frames already read are decoded without touching the
                // socket, so a client that sent thousands at once would be
                // answered in one go, keeping its worker from the
                // connections it sends to until their queues overflow:
                // each frame costs a unit of tokio's task budget, and the
                // task yields when it is spent.
                tokio::task::coop::consume_budget().await;
            }
            if let ControlFlow::Break(ending) = self.on(event, &mut handling).await {
                return Box::pin(self.settle(handling, ending)).await;
            }
        }
    }

    /// The client's next frame if it has already arrived, without waiting
    /// for one.
    async fn client_frame_if_ready(&mut self) -> Option<Event> {
        tokio::select! {
            biased;
            incoming = self.inbound.recv() => Some(Event::Incoming(incoming)),
            () = std::future::ready(()) => None,
        }
    }

    /// Before the session ends: lets the frames being handled finish (a
    /// message queued for the store is stored and published, as a graceful
    /// shutdown promises) and, unless the client is gone or too slow,
    /// writes their replies (`ack`s) in order, ahead of the close frame.
    async fn settle(&mut self, mut handling: Handling, ending: Ending) -> Ending {
        if handling.is_idle() {
            return ending;
        }
        let mut writable = match &ending {
            Ending::Close(close) => !close.is_try_again_later(),
            Ending::Fail(_) | Ending::Answer(_) => true,
            Ending::Gone | Ending::Stuck => false,
        };
        let answer_by = Instant::now() + SETTLE_ANSWER;
        let mut write_by = None;
        while !handling.is_idle() {
            let Ok(progress) = tokio::time::timeout_at(answer_by, handling.next()).await else {
                tracing::warn!(
                    waiting = handling.waiting(),
                    "WebSocket frames were still being handled when their session ended"
                );
                return ending;
            };
            let (Event::Answered(Some(reply)), true) = (progress, writable) else {
                continue;
            };
            let by = *write_by.get_or_insert_with(|| Instant::now() + SETTLE_REPLY);
            let wrote = tokio::time::timeout_at(by, self.out.text(reply.to_json())).await;
            writable = matches!(wrote, Ok(Ok(())));
        }
        ending
    }

    /// Replays what `?since=` asks for, then says why it stopped short,
    /// if it did. A `since` that cannot be replayed from is an `error`
    /// frame and the connection stays live; a store failure is an `error`
    /// frame and a close with 1013, so that the client retries the same
    /// `since`.
    async fn recover(&mut self) -> Flow {
        let outcome = match std::mem::replace(&mut self.since, Since::Absent) {
            Since::Absent => return ControlFlow::Continue(()),
            Since::Invalid(err) => {
                let frame = ServerFrame::from_error(&err, None);
                return written(self.out.text(frame.to_json()).await);
            }
            Since::After(since) => {
                let limit = self.settings.replay_limit;
                let (service, caller) = (self.handler.service(), self.handler.caller());
                match replay::replay(service, caller, since, limit, &mut self.out).await {
                    Ok((outcome, replayed)) => {
                        self.replayed = Some(replayed);
                        outcome
                    }
                    Err(err) => return ControlFlow::Break(err.into()),
                }
            }
        };
        if let Some(frame) = replay::error_frame(&outcome) {
            if let Err(err) = self.out.text(frame.to_json()).await {
                return ControlFlow::Break(err.into());
            }
        }
        match outcome {
            Outcome::Failed(err) => {
                tracing::warn!(code = err.code(), error = %err, "replay for ?since= failed");
                close(Close::history_unavailable())
            }
            Outcome::Truncated { sent, .. } => {
                tracing::debug!(sent, "replay for ?since= truncated at the limit");
                ControlFlow::Continue(())
            }
            Outcome::Complete | Outcome::UnknownSince => ControlFlow::Continue(()),
        }
    }

    /// Whether a live frame of this message (at this position, if known)
    /// repeats what the replay covered: a message it sent, or one at or
    /// below `since`.
    fn replayed_already(&mut self, message: Option<MessageId>, position: Option<u64>) -> bool {
        let Some(replayed) = &self.replayed else {
            return false;
        };
        if replayed.expired() {
            self.replayed = None;
            return false;
        }
        match message {
            Some(id) => replayed.covers(id, position),
            // A read receipt names no message: judged by its position.
            None => position.is_some_and(|position| replayed.covers_position(position)),
        }
    }

    /// Fills a hole of the notifier's live stream from the store, or
    /// closes the connection with the resync code naming where to
    /// reconnect from (the hole is too large, its start unknown, or the
    /// store failed). The store is read under one of the process's fill
    /// permits; the client is written to after.
    async fn fill(&mut self, hole: Arc<Hole>) -> Flow {
        let missed = {
            // Closed only if the process's semaphore were: never.
            let _permit = self.fills.acquire().await;
            let covered = self
                .replayed
                .as_ref()
                .filter(|replayed| !replayed.expired());
            let (service, caller) = (self.handler.service(), self.handler.caller());
            let limit = self.settings.replay_limit;
            replay::missed(service, caller, &hole, covered, limit).await
        };
        match missed {
            Missed::Changes(changes) => match replay::fill(changes, &mut self.out).await {
                Ok(sent) => {
                    crate::metrics::hole_filled(sent.len());
                    self.replayed = Some(match self.replayed.take() {
                        Some(replayed) => replayed.merge(sent),
                        None => sent,
                    });
                    ControlFlow::Continue(())
                }
                Err(err) => ControlFlow::Break(err.into()),
            },
            Missed::Resync => Self::resync(&hole),
            Missed::Failed(err) => {
                tracing::warn!(code = err.code(), error = %err, "reading a hole of the live stream failed");
                Self::resync(&hole)
            }
        }
    }

    /// Closes with the resync code, naming the cursor the hole starts
    /// after (the client's own last cursor may lie past messages of the
    /// hole: it kept getting this instance's), or, if the hole's start is
    /// unknown, asking to reload the history.
    fn resync(hole: &Hole) -> Flow {
        crate::metrics::resynced();
        close(Close::resync(hole.after))
    }

    async fn on(&mut self, event: Event, handling: &mut Handling) -> Flow {
        // A task is allocated at the size of its largest state, for its
        // whole life: the steps whose futures are large (answering a client
        // frame, like the replay and the settling) are boxed, so an idle
        // connection does not carry them; deliveries, the hot path, stay
        // inline (docs/benchmarks.md, "Memory per idle socket").
        match event {
            Event::Incoming(incoming) => Box::pin(self.on_incoming(incoming, handling)).await,
            Event::Started => ControlFlow::Continue(()),
            Event::Answered(reply) => Box::pin(self.reply(reply.map(|frame| *frame))).await,
            Event::Delivery(delivery) => self.on_delivery(delivery).await,
            Event::PingDue => written(self.out.ping().await),
            Event::HeartbeatLost => close(Close::heartbeat_lost()),
            Event::TokenExpired => close(Close::token_expired()),
        }
    }

    async fn on_incoming(&mut self, incoming: Incoming, handling: &mut Handling) -> Flow {
        let incoming = match incoming {
            None => return ControlFlow::Break(Ending::Gone),
            Some(Ok(incoming)) => incoming,
            Some(Err(err)) => return self.refuse_stream(&err),
        };
        match incoming {
            AggregatedMessage::Text(text) => match self.handler.answer(&text) {
                // Behind replies still waiting, it waits its turn.
                Answer::Now(Some(reply)) if handling.waiting() > 0 => {
                    handling.queue(Box::pin(std::future::ready(Some(*reply))));
                    ControlFlow::Continue(())
                }
                Answer::Now(reply) => self.reply(reply.map(|frame| *frame)).await,
                Answer::Later(starting) => {
                    handling.start(starting);
                    ControlFlow::Continue(())
                }
            },
            AggregatedMessage::Binary(_) => {
                let reply = match self.handler.admit() {
                    Ok(()) => FrameHandler::binary_refused(),
                    Err(err) => ServerFrame::from_error(&err, None),
                };
                if handling.waiting() > 0 {
                    // Behind replies still waiting, it waits its turn.
                    handling.queue(Box::pin(std::future::ready(Some(reply))));
                    return ControlFlow::Continue(());
                }
                written(self.out.text(reply.to_json()).await)
            }
            AggregatedMessage::Ping(payload) => match self.handler.admit() {
                Ok(()) => written(self.out.pong(&payload).await),
                Err(err) => self.reply(Some(ServerFrame::from_error(&err, None))).await,
            },
            // Counted like any frame, but never answered: a pong is itself
            // an answer.
            AggregatedMessage::Pong(_) => {
                let _ = self.handler.admit();
                ControlFlow::Continue(())
            }
            AggregatedMessage::Close(reason) => ControlFlow::Break(Ending::Answer(reason)),
        }
    }

    async fn reply(&mut self, reply: Option<ServerFrame>) -> Flow {
        match reply {
            Some(reply) => written(self.out.text(reply.to_json()).await),
            None => ControlFlow::Continue(()),
        }
    }

    /// The client's stream failed: the client broke the protocol (any
    /// client can, so it is logged at debug level), or its connection is
    /// gone.
    fn refuse_stream(&self, err: &ProtocolError) -> Flow {
        let Some(close) = protocol_close(err, self.settings.max_message_size) else {
            return ControlFlow::Break(Ending::Gone);
        };
        tracing::debug!(error = %err, code = close.code, "WebSocket client broke the protocol");
        ControlFlow::Break(Ending::Fail(close))
    }

    async fn on_delivery(&mut self, delivery: Option<Delivery>) -> Flow {
        match delivery {
            Some(Delivery::Frame {
                message, position, ..
            }) if self.replayed_already(message, position) => ControlFlow::Continue(()),
            Some(Delivery::Frame { text, .. }) => written(
                self.out
                    .text(&*text)
                    .await
                    .inspect(|()| crate::metrics::delivered()),
            ),
            Some(Delivery::Presence(users)) => {
                let frame = ServerFrame::Presence { users }.to_json();
                written(
                    self.out
                        .text(frame)
                        .await
                        .inspect(|()| crate::metrics::delivered()),
                )
            }
            Some(Delivery::Close(reason)) => {
                if reason == NotifierClose::TooSlow {
                    crate::metrics::queue_overflowed();
                }
                close(Close::notifier(reason))
            }
            // Rare and large: boxed, as the other large steps are (see `on`).
            Some(Delivery::Gap(hole)) => Box::pin(self.fill(hole)).await,
            // The notifier let go of us without a reason: it is gone.
            None => close(Close::realtime_stopped()),
        }
    }
}

/// The session's three deadlines (the token's expiry, the heartbeat, the
/// next ping) behind one timer: every wake-up of the session polls its
/// timer, and at one delivery per wake-up three timers cost more than the
/// delivery's own work (docs/benchmarks.md, "Fan-out").
struct Timers {
    expires_at: Instant,
    /// No frame from the client by then: the heartbeat is lost.
    heartbeat_at: Instant,
    next_ping: Instant,
    ping_period: Duration,
    pong_wait: Duration,
}

impl Timers {
    fn new(settings: &WsSettings, expires_at: Instant) -> Self {
        let now = Instant::now();
        Self {
            expires_at,
            heartbeat_at: now + settings.pong_wait,
            next_ping: now + settings.ping_period,
            ping_period: settings.ping_period,
            pong_wait: settings.pong_wait,
        }
    }

    /// When the timer must go off next.
    fn next(&self) -> Instant {
        self.expires_at.min(self.heartbeat_at).min(self.next_ping)
    }

    /// What is due at `now`, most pressing first.
    fn due(&self, now: Instant) -> Option<Event> {
        if self.expires_at <= now {
            Some(Event::TokenExpired)
        } else if self.heartbeat_at <= now {
            Some(Event::HeartbeatLost)
        } else if self.next_ping <= now {
            Some(Event::PingDue)
        } else {
            None
        }
    }

    /// A ping went out: the next one is a period later (a late ping delays
    /// the ones after it, rather than bursting to catch up).
    fn pinged(&mut self, now: Instant) {
        self.next_ping = now + self.ping_period;
    }

    /// A frame came from the client.
    fn heard_from_client(&mut self, now: Instant) {
        self.heartbeat_at = now + self.pong_wait;
    }
}

/// The client frames being handled: at most one taking its first step
/// (no frame is read meanwhile), and the replies waiting behind it, in the
/// order the frames came (at most [`MAX_IN_FLIGHT`]). The queue of replies
/// exists only while one waits, so an idle connection carries none.
#[derive(Default)]
struct Handling {
    starting: Option<Starting>,
    replies: Option<Box<FuturesOrdered<Pending>>>,
}

impl Handling {
    fn is_idle(&self) -> bool {
        self.starting.is_none() && self.waiting() == 0
    }

    /// Replies waiting to be written.
    fn waiting(&self) -> usize {
        self.replies.as_ref().map_or(0, |replies| replies.len())
    }

    /// Whether the client's next frame may be read: the last one has taken
    /// its first step, and there is room for its reply.
    fn can_take(&self) -> bool {
        self.starting.is_none() && self.waiting() < MAX_IN_FLIGHT
    }

    fn start(&mut self, starting: Starting) {
        debug_assert!(self.starting.is_none(), "one frame starts at a time");
        self.starting = Some(starting);
    }

    /// Puts a reply behind those waiting.
    fn queue(&mut self, reply: Pending) {
        self.replies.get_or_insert_default().push_back(reply);
    }

    /// What happened next: the frame being started took its first step
    /// ([`Event::Started`]; its reply now waits behind the others, or is
    /// [`Event::Answered`] at once when it is known and nothing waits
    /// ahead of it), or the oldest waiting reply is ready
    /// ([`Event::Answered`]). Never resolves while idle. Cancel-safe:
    /// dropped before completion, the work stays here and resumes at the
    /// next call.
    async fn next(&mut self) -> Event {
        std::future::poll_fn(|cx| {
            if let Some(starting) = self.starting.as_mut() {
                if let std::task::Poll::Ready(started) = starting.as_mut().poll(cx) {
                    self.starting = None;
                    return std::task::Poll::Ready(match started {
                        Started::Done(reply) if self.waiting() == 0 => {
                            Event::Answered(reply.map(Box::new))
                        }
                        Started::Done(reply) => {
                            self.queue(Box::pin(std::future::ready(reply)));
                            Event::Started
                        }
                        Started::Waiting(reply) => {
                            self.queue(reply);
                            Event::Started
                        }
                    });
                }
            }
            let Some(replies) = self.replies.as_mut() else {
                return std::task::Poll::Pending;
            };
            match replies.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(reply)) => {
                    if replies.is_empty() {
                        self.replies = None;
                    }
                    std::task::Poll::Ready(Event::Answered(reply.map(Box::new)))
                }
                // Empty (never kept so) or waiting.
                std::task::Poll::Ready(None) | std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await
    }
}

/// Deliveries written in a row after `event`: one more for a delivery,
/// none once the client's frames were looked at (`looked`) or one came.
fn streak_after(streak: usize, event: &Event, looked: bool) -> usize {
    match (event, looked) {
        (Event::Delivery(_), false) => streak + 1,
        (Event::Delivery(_), true) | (Event::Incoming(_), _) => 0,
        _ => streak,
    }
}

fn written(result: Result<(), WriteError>) -> Flow {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err.into()),
    }
}

fn close(close: Close) -> Flow {
    ControlFlow::Break(Ending::Close(close))
}

/// The close for an error of the client's stream; `None` when the
/// connection itself failed (nothing can be sent).
fn protocol_close(err: &ProtocolError, limit: usize) -> Option<Close> {
    match err {
        ProtocolError::Overflow => Some(Close::too_big(limit)),
        ProtocolError::Io(io) => match Refused::find(io) {
            Some(Refused::TooBig) => Some(Close::too_big(limit)),
            Some(Refused::Malformed) => Some(Close::protocol_error()),
            // The socket's own error, passed through by actix-ws.
            None if io
                .get_ref()
                .is_some_and(|inner| inner.is::<actix_http::error::PayloadError>()) =>
            {
                None
            }
            // actix-ws reports text that is not UTF-8 as invalid data; the
            // guard refuses the other frames it would (reserved bits)
            // before it sees them.
            None if io.kind() == std::io::ErrorKind::InvalidData => Some(Close::not_utf8()),
            None => Some(Close::protocol_error()),
        },
        _ => Some(Close::protocol_error()),
    }
}

/// Reads and discards until the client's close frame, or the end of its
/// stream or an error.
async fn client_closed(inbound: &mut Inbound) {
    while let Some(Ok(incoming)) = inbound.recv().await {
        if let AggregatedMessage::Close(_) = incoming {
            return;
        }
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
    fn a_run_of_deliveries_is_counted_until_the_client_gets_its_turn() {
        let delivery = || Event::Delivery(None);
        let mut streak = 0;
        for _ in 0..CLIENT_TURN {
            streak = streak_after(streak, &delivery(), false);
        }
        assert_eq!(streak, CLIENT_TURN);
        // Timers and replies neither count nor reset.
        assert_eq!(streak_after(streak, &Event::PingDue, false), CLIENT_TURN);
        assert_eq!(
            streak_after(streak, &Event::Answered(None), true),
            CLIENT_TURN
        );
        // The client's frames were looked at (none had come): start again.
        assert_eq!(streak_after(streak, &delivery(), true), 0);
        // A client frame came.
        assert_eq!(streak_after(streak, &Event::Incoming(None), false), 0);
    }

    #[test]
    fn one_timer_serves_the_three_deadlines_most_pressing_first() {
        let settings = WsSettings {
            ping_period: Duration::from_secs(54),
            pong_wait: Duration::from_secs(60),
            ..WsSettings::default()
        };
        let start = Instant::now();
        let mut timers = Timers::new(&settings, start + Duration::from_secs(1000));
        assert!(timers.due(start).is_none());
        assert_eq!(timers.next(), timers.next_ping, "the ping comes first");
        let ping_at = timers.next_ping;
        assert!(matches!(timers.due(ping_at), Some(Event::PingDue)));
        timers.pinged(ping_at);
        assert_eq!(timers.next(), timers.heartbeat_at, "then the heartbeat");
        // A frame from the client moves the heartbeat: nothing is due at
        // its old deadline, the next alarm is later.
        let old = timers.heartbeat_at;
        timers.heard_from_client(ping_at);
        assert!(timers.due(old).is_none());
        assert!(timers.next() > old);
        // Silence past the heartbeat loses it; past the expiry, the token
        // expiring is what is reported.
        assert!(matches!(
            timers.due(timers.heartbeat_at),
            Some(Event::HeartbeatLost)
        ));
        let late = start + Duration::from_secs(1500);
        assert!(matches!(timers.due(late), Some(Event::TokenExpired)));
    }

    #[test]
    fn an_idle_session_task_stays_small() {
        // The task is allocated at its future's size for the connection's
        // whole life; the large, rare steps are boxed (see `on`), and this
        // bound catches a step that is not (docs/benchmarks.md, "Memory per
        // idle socket").
        fn size<F: std::future::Future>(_: &dyn Fn(WsSession) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let run = size(&WsSession::run);
        assert!(run <= 2_560, "the session's future is {run} bytes");
    }

    #[test]
    fn past_and_far_times_are_clamped() {
        let now = Instant::now();
        let past = instant_at(OffsetDateTime::now_utc() - time::Duration::hours(1));
        assert!(past <= Instant::now() && past >= now);
        let far = instant_at(OffsetDateTime::now_utc() + time::Duration::days(10_000));
        assert!(far <= Instant::now() + Duration::from_secs(366 * 24 * 3600));
    }
}
