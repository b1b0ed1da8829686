//! Presence, per connection: whom it follows, and the latest status of
//! each followed user whose presence changed since the connection last
//! took its changes. Never a queue: a change overwrites the pending one of
//! the same user, so a connection that is behind holds at most one entry
//! per user it follows.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
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
        std::mem::take(&mut self.pending).into_values().collect()
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
    pub(crate) hub: Weak<Inner>,
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
}
