//! Presence, per connection: whom it follows, and the latest status of
//! each followed user whose presence changed since the connection last
//! took its changes. Never a queue: a change overwrites the pending one of
//! the same user, so a connection that is behind holds at most one entry
//! per user it follows.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;

use chat_domain::{DomainResult, PresenceFollows, PresenceStatus, UserPresence, Username};

use crate::hub::Inner;
use crate::registry::ConnKey;

/// The key a followed user is known by: the name, lowercased (usernames
/// compare case-insensitively).
pub(crate) fn follow_key(username: &Username) -> String {
    username.as_str().to_ascii_lowercase()
}

/// One connection's presence, shared by the hub (which routes changes
/// into it) and the connection's subscription (which takes them).
#[derive(Debug, Default)]
pub(crate) struct PresenceBox(Mutex<PresenceState>);

#[derive(Debug, Default)]
pub(crate) struct PresenceState {
    /// Whom the connection follows, by [`follow_key`].
    pub(crate) following: HashSet<String>,
    /// Changes not yet taken, by [`follow_key`]; in name order when taken.
    pending: BTreeMap<String, UserPresence>,
    /// Followed users whose presence changed since they were followed: a
    /// status read before that change must not replace it.
    changed: HashSet<String>,
    /// Statuses were seeded: hand them over without waiting for the batch
    /// interval.
    seeded: bool,
    /// The subscription, waiting for a change.
    waker: Option<Waker>,
}

impl PresenceBox {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PresenceState> {
        // Each update is an insert or a take: a panic cannot leave the
        // state half-done in a way that matters.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a change of a followed user, replacing one not yet taken.
    pub(crate) fn changed(&self, key: &str, username: &Username, status: PresenceStatus) {
        let mut state = self.lock();
        if !state.following.contains(key) {
            return;
        }
        let presence = UserPresence {
            username: username.as_str().to_owned(),
            status,
        };
        state.pending.insert(key.to_owned(), presence);
        state.changed.insert(key.to_owned());
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl PresenceState {
    /// Whether changes wait to be taken.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the pending changes, in name order.
    pub(crate) fn take(&mut self) -> Vec<UserPresence> {
        self.seeded = false;
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Whether seeded statuses wait, to go out without the batch interval.
    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// Starts following `key`: no change of it seen yet.
    pub(crate) fn start_following(&mut self, key: String) {
        self.changed.remove(&key);
        self.following.insert(key);
    }

    /// Stops following `key`; whether it was followed.
    pub(crate) fn stop_following(&mut self, key: &str) -> bool {
        self.changed.remove(key);
        self.pending.remove(key);
        self.following.remove(key)
    }

    /// Everyone followed, forgotten (the connection is gone).
    pub(crate) fn stop_following_all(&mut self) -> Vec<String> {
        self.changed.clear();
        self.pending.clear();
        self.following.drain().collect()
    }

    /// Asks to be woken by the next change.
    pub(crate) fn wake_on_change(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(current) if current.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }
}

/// The handle a subscription gives out ([`Subscription::presence`]):
/// follows and unfollows through the hub's registry.
///
/// [`Subscription::presence`]: chat_domain::Subscription::presence
pub(crate) struct HubPresence {
    pub(crate) key: ConnKey,
    pub(crate) presence: Arc<PresenceBox>,
    pub(crate) hub: Weak<Inner>,
}

impl PresenceBox {
    /// Statuses read after following: pending now, unless a change of the
    /// same user came since it was followed.
    pub(crate) fn seed(&self, statuses: Vec<UserPresence>) {
        let mut state = self.lock();
        for presence in statuses {
            let key = presence.username.to_ascii_lowercase();
            if !state.changed.contains(&key) {
                state.pending.insert(key, presence);
                state.seeded = true;
            }
        }
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl PresenceFollows for HubPresence {
    fn follow(&self, users: &[Username], limit: usize) -> DomainResult<()> {
        match self.hub.upgrade() {
            Some(hub) => hub.write().follow(self.key, users, limit),
            // The hub is gone, and so is the connection.
            None => Ok(()),
        }
    }

    fn unfollow(&self, users: &[Username]) {
        if let Some(hub) = self.hub.upgrade() {
            hub.write().unfollow(self.key, users);
        }
    }

    fn seed(&self, statuses: Vec<UserPresence>) {
        self.presence.seed(statuses);
    }
}
