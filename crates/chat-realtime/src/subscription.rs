//! One connection's end: its bounded queue of frames and the shared close
//! state.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use chat_domain::{CloseReason, Delivery, Subscription};

use crate::hub::Inner;
use crate::queue::QueueReceiver;
use crate::registry::{ConnKey, ConnState, Outgoing};

/// What [`Hub::connect`](crate::Hub) hands out, boxed as a
/// `dyn Subscription`.
pub(crate) struct HubSubscription {
    pub(crate) queue: QueueReceiver,
    pub(crate) state: Arc<ConnState>,
    pub(crate) key: ConnKey,
    /// Weak, so that a hub whose every handle is dropped lets its
    /// connections end (`next` returns `None`) instead of living on.
    pub(crate) hub: Weak<Inner>,
    pub(crate) finished: bool,
}

impl HubSubscription {
    fn finish(&mut self, reason: Option<CloseReason>) -> Option<Delivery> {
        self.finished = true;
        self.queue.close();
        reason.map(Delivery::Close)
    }
}

#[async_trait]
impl Subscription for HubSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        if self.finished {
            return None;
        }
        // A slow reader is closed at once, not after its backlog: the
        // backlog is what made it slow.
        if let Some(CloseReason::TooSlow) = self.state.reason() {
            return self.finish(Some(CloseReason::TooSlow));
        }
        match self.queue.recv().await {
            Some(queued) => {
                let Outgoing {
                    text,
                    message,
                    position,
                } = &*queued;
                Some(Delivery::Frame {
                    text: Arc::clone(text),
                    message: *message,
                    position: *position,
                })
            }
            // The hub dropped our sender: shut down (after the backlog was
            // drained), evicted, or the hub itself is gone.
            None => {
                let reason = self.state.reason();
                self.finish(reason)
            }
        }
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
