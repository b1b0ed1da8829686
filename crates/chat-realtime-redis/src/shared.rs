//! What the notifier handle and its two background tasks share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_domain::{PresenceStatus, Username};
use chat_realtime::Hub;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::{oneshot, Notify};

use crate::options::RedisOptions;
use crate::presence::Presence;

pub(crate) struct Shared {
    /// This instance's connections.
    pub(crate) hub: Hub,
    /// This instance's id: a v4 UUID, 32 hex digits.
    pub(crate) instance: String,
    /// `<prefix>:events`.
    pub(crate) channel: String,
    pub(crate) presence: Presence,
    pub(crate) health: RedisHealth,
    pub(crate) client: redis::Client,
    pub(crate) options: RedisOptions,
    /// The writer's current connection, lent to reads (`connected_users`,
    /// `online_among`); `None` while Redis is lost.
    pub(crate) link: Mutex<Option<MultiplexedConnection>>,
    /// Sync markers published and not yet seen by the subscriber.
    pub(crate) syncs: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    pub(crate) next_sync: AtomicU64,
    /// The subscriber lost its connection: the writer checks its own at
    /// once, rather than at its next use (it may be just as dead, with
    /// Redis restarted behind it).
    pub(crate) check_link: Notify,
    /// The writer lost Redis: the subscriber subscribes again, rather than
    /// listen on a connection that may be half-open.
    pub(crate) resubscribe: Notify,
}

impl Shared {
    /// A new sync marker number, and what resolves when it comes back.
    pub(crate) fn expect_sync(&self) -> (u64, oneshot::Receiver<()>) {
        let token = self.next_sync.fetch_add(1, Ordering::Relaxed);
        let (done, seen) = oneshot::channel();
        self.lock_syncs().insert(token, done);
        (token, seen)
    }

    /// The subscriber saw this instance's sync marker.
    pub(crate) fn synced(&self, token: u64) {
        if let Some(done) = self.lock_syncs().remove(&token) {
            let _ = done.send(());
        }
    }

    /// Stops waiting for a marker (seen, or given up on).
    pub(crate) fn forget_sync(&self, token: u64) {
        self.lock_syncs().remove(&token);
    }

    fn lock_syncs(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.syncs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn current_link(&self) -> Option<MultiplexedConnection> {
        self.link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_link(&self, conn: Option<MultiplexedConnection>) {
        self.health.set_linked(conn.is_some());
        *self.link.lock().unwrap_or_else(PoisonError::into_inner) = conn;
    }

    /// Opens a command connection (multiplexed: one socket, pipelined).
    pub(crate) async fn open_link(
        client: redis::Client,
        timeout: Duration,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Tells a presence change to this instance's connections only: what
    /// presence falls back to while Redis is lost.
    pub(crate) fn announce_locally(&self, username: &Username, status: PresenceStatus) {
        self.hub.presence_changed(username, status);
    }
}

/// Whether a [`RedisNotifier`](crate::RedisNotifier) reaches Redis: a
/// cheap handle to clone into a health check. Degraded means this instance
/// delivers to its own connections only, and presence and
/// `connected_users` cover this instance only, until Redis is back.
#[derive(Clone, Debug, Default)]
pub struct RedisHealth {
    flags: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    /// The events channel is subscribed.
    subscribed: AtomicBool,
    /// The command connection is up and this instance registered.
    linked: AtomicBool,
}

impl RedisHealth {
    /// `true` unless both the subscription and the command connection are
    /// up.
    pub fn is_degraded(&self) -> bool {
        !(self.flags.subscribed.load(Ordering::Acquire) && self.is_linked())
    }

    /// `"connected"` or `"degraded"`, for a health document.
    pub fn status(&self) -> &'static str {
        if self.is_degraded() {
            "degraded"
        } else {
            "connected"
        }
    }

    pub(crate) fn is_linked(&self) -> bool {
        self.flags.linked.load(Ordering::Acquire)
    }

    pub(crate) fn set_linked(&self, up: bool) {
        self.flags.linked.store(up, Ordering::Release);
    }

    pub(crate) fn set_subscribed(&self, up: bool) {
        self.flags.subscribed.store(up, Ordering::Release);
    }
}
