//! One connection's end: its bounded queue of frames, its presence, and
//! the shared close state.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use chat_domain::{
    CloseReason, Delivery, Hole, PresenceFollows, Subscription, UserPresence, PRESENCE_BATCH,
};
use tokio::time::{sleep_until, Instant, Sleep};

use crate::hub::Inner;
use crate::presence::{HubPresence, PresenceBox};
use crate::queue::QueueReceiver;
use crate::registry::{ConnKey, ConnState, Outgoing};

/// What [`Hub::connect`](crate::Hub) hands out, boxed as a
/// `dyn Subscription`.
pub(crate) struct HubSubscription {
    queue: QueueReceiver,
    state: Arc<ConnState>,
    presence: Arc<PresenceBox>,
    /// No presence delivery before then (one per batch interval).
    presence_not_before: Option<Instant>,
    /// Set while presence changes wait for `presence_not_before`.
    presence_timer: Option<Pin<Box<Sleep>>>,
    key: ConnKey,
    /// Weak, so that a hub whose every handle is dropped lets its
    /// connections end (`next` returns `None`) instead of living on.
    hub: Weak<Inner>,
    finished: bool,
}

impl HubSubscription {
    pub(crate) fn new(
        queue: QueueReceiver,
        state: Arc<ConnState>,
        presence: Arc<PresenceBox>,
        key: ConnKey,
        hub: Weak<Inner>,
    ) -> Self {
        Self {
            queue,
            state,
            presence,
            presence_not_before: None,
            presence_timer: None,
            key,
            hub,
            finished: false,
        }
    }

    fn finish(&mut self, reason: Option<CloseReason>) -> Option<Delivery> {
        self.finished = true;
        self.queue.close();
        reason.map(Delivery::Close)
    }

    /// The pending presence changes, once there are some and the batch
    /// interval since the last delivery has passed.
    fn poll_presence(&mut self, cx: &mut Context<'_>) -> Poll<Vec<UserPresence>> {
        let mut state = self.presence.lock();
        if !state.has_pending() {
            state.wake_on_change(cx.waker());
            return Poll::Pending;
        }
        let now = Instant::now();
        let waits = self
            .presence_not_before
            .filter(|at| now < *at && !state.is_seeded());
        if let Some(not_before) = waits {
            drop(state);
            let timer = self
                .presence_timer
                .get_or_insert_with(|| Box::pin(sleep_until(not_before)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            return self.poll_presence(cx);
        }
        let batch = state.take();
        drop(state);
        self.presence_not_before = Some(now + PRESENCE_BATCH);
        self.presence_timer = None;
        Poll::Ready(batch)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        // A slow reader is closed at once, not after its backlog: the
        // backlog is what made it slow. A revoked token gets nothing more.
        if let Some(reason @ (CloseReason::TooSlow | CloseReason::TokenRevoked)) =
            self.state.reason()
        {
            // A hole not yet filled went with a slow reader's backlog: the
            // client's last message may lie past messages of the hole, so
            // resuming from it would skip them. It is told to resync
            // instead.
            if reason == CloseReason::TooSlow {
                if let Some(hole) = self.queue.take_gap() {
                    self.finish(None);
                    let hole = Hole {
                        complete: false,
                        ..Hole::clone(&hole)
                    };
                    return Poll::Ready(Some(Delivery::Gap(Arc::new(hole))));
                }
            }
            return Poll::Ready(self.finish(Some(reason)));
        }
        // Presence first: it is small, merged, and must not wait behind a
        // queue that never empties.
        if let Poll::Ready(batch) = self.poll_presence(cx) {
            return Poll::Ready(Some(Delivery::Presence(batch)));
        }
        match self.queue.poll_recv(cx) {
            Poll::Ready(Some(queued)) => Poll::Ready(Some(match &*queued {
                Outgoing::Frame {
                    text,
                    message,
                    position,
                } => Delivery::Frame {
                    text: Arc::clone(text),
                    message: *message,
                    position: *position,
                },
                Outgoing::Gap(hole) => Delivery::Gap(Arc::clone(hole)),
            })),
            // The hub dropped our sender: shut down (after the backlog was
            // drained), evicted, or the hub itself is gone.
            Poll::Ready(None) => {
                let reason = self.state.reason();
                Poll::Ready(self.finish(reason))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[async_trait]
impl Subscription for HubSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        if self.finished {
            return None;
        }
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn presence(&self) -> Arc<dyn PresenceFollows> {
        Arc::new(HubPresence {
            key: self.key,
            presence: Arc::clone(&self.presence),
            hub: Weak::clone(&self.hub),
        })
    }
}

impl Drop for HubSubscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.disconnect(vec![self.key]);
        }
    }
}

impl fmt::Debug for HubSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSubscription")
            .field("user", &self.key.user)
            .field("connection", &self.key.id)
            .field("closed", &self.state.reason())
            .finish()
    }
}
