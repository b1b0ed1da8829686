//! Who is connected, and the fan-out to their queues. Every method here is
//! synchronous and never waits on a connection: a delivery is a `try_send`,
//! so the registry lock is only ever held for a bounded burst of
//! non-blocking work, never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chat_domain::{
    Audience, CloseReason, DomainError, DomainResult, Hole, MessageId, PresenceStatus, TokenId,
    UserId, Username,
};
use tokio::sync::mpsc;

use crate::delivered::Delivered;
use crate::hub::PresenceChange;
use crate::presence::{follow_key, PresenceBox};
use crate::queue::{QueueSender, Refused};

/// Identifies one connection: its user and a number unique in the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnKey {
    pub(crate) user: UserId,
    pub(crate) id: u64,
}

/// What the hub and a subscription share about one connection: whether,
/// and why, the hub has closed it. Separate from the queue so that a full
/// queue can still be told to close at once.
#[derive(Debug, Default)]
pub(crate) struct ConnState(AtomicU8);

const OPEN: u8 = 0;
const TOO_SLOW: u8 = 1;
const SHUTTING_DOWN: u8 = 2;
const TOKEN_REVOKED: u8 = 3;

impl ConnState {
    /// Records why the connection closes; the first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
        let code = match reason {
            CloseReason::TooSlow => TOO_SLOW,
            CloseReason::ShuttingDown => SHUTTING_DOWN,
            CloseReason::TokenRevoked => TOKEN_REVOKED,
        };
        // A failed exchange means a reason is already recorded: keep it.
        let _ = self
            .0
            .compare_exchange(OPEN, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the hub closed the connection, if it did.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        match self.0.load(Ordering::Acquire) {
            TOO_SLOW => Some(CloseReason::TooSlow),
            SHUTTING_DOWN => Some(CloseReason::ShuttingDown),
            TOKEN_REVOKED => Some(CloseReason::TokenRevoked),
            _ => None,
        }
    }
}

/// What the hub puts in the connections' queues: a frame (the shared
/// text, and the id and position of the stored message it carries, if
/// any), or the mark of a hole in a cluster's live stream. Queued as a
/// [`Queued`].
#[derive(Clone, Debug)]
pub(crate) enum Outgoing {
    Frame {
        text: Arc<str>,
        message: Option<MessageId>,
        /// The message's position in the store's order, when known.
        position: Option<u64>,
    },
    Gap(Arc<Hole>),
}

#[cfg(test)]
impl Outgoing {
    /// A frame that carries no stored message.
    pub(crate) fn plain(text: Arc<str>) -> Self {
        Self::Frame {
            text,
            message: None,
            position: None,
        }
    }
}

/// What a connection's queue holds: one pointer per frame, shared by every
/// receiver, so a full queue costs a pointer per slot rather than a copy
/// of the frame per slot (docs/benchmarks.md, "Memory per idle
/// socket").
pub(crate) type Queued = Arc<Outgoing>;

/// The hub's end of one connection.
struct Conn {
    id: u64,
    /// The token the connection was opened with.
    token: TokenId,
    queue: QueueSender,
    state: Arc<ConnState>,
    presence: Arc<PresenceBox>,
}

impl Conn {
    /// Queues a frame without waiting. Returns `false` when the queue was
    /// full: the connection is then marked too slow and must be evicted.
    fn offer(&self, frame: &Queued) -> bool {
        if self.state.reason().is_some() {
            return true; // already closing: its frames no longer matter
        }
        // Cloning shares the frame (a reference count), never copies it.
        match self.queue.try_send(Arc::clone(frame)) {
            // Closed: the subscription is being dropped and unregisters itself.
            Ok(()) | Err(Refused::Closed) => true,
            Err(Refused::Full) => {
                // Once per connection: a closing one is not offered again.
                self.state.close(CloseReason::TooSlow);
                false
            }
        }
    }
}

/// The live connections of one user (usually one to a handful).
struct UserConns {
    username: Username,
    conns: Vec<Conn>,
}

/// Every live connection, by user.
#[derive(Default)]
pub(crate) struct Registry {
    users: HashMap<UserId, UserConns>,
    connections: usize,
    next_id: u64,
    shut_down: bool,
    /// Where presence changes go instead of being routed here, when set.
    reporter: Option<mpsc::UnboundedSender<PresenceChange>>,
    /// The connections that follow each user, by the user's
    /// [`follow_key`].
    followers: HashMap<String, Followed>,
    /// The positions of the stored changes handed out lately, kept by a
    /// cluster's hub (one that reports presence) to fill holes in its
    /// stream.
    delivered: Option<Mutex<Delivered>>,
}

/// One followed user: their name as registered, and who follows them.
struct Followed {
    username: Username,
    conns: Vec<(u64, Arc<PresenceBox>)>,
}

impl Registry {
    /// A registry that reports presence changes to `reporter` instead of
    /// announcing them.
    pub(crate) fn reporting_to(reporter: mpsc::UnboundedSender<PresenceChange>) -> Self {
        Self {
            reporter: Some(reporter),
            delivered: Some(Mutex::default()),
            ..Self::default()
        }
    }

    /// What was handed out lately, when this registry keeps track.
    pub(crate) fn delivered(&self) -> Option<MutexGuard<'_, Delivered>> {
        // Each update is a push or a pop: a panic cannot leave it
        // half-done in a way that matters.
        let delivered = self.delivered.as_ref()?;
        Some(delivered.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a stored change about to be handed out, by its position
    /// (and message); `false` when it was handed out already (a late or
    /// repeated live copy). Frames without a position (not from the
    /// store, or from an instance of an older version) are not recorded.
    pub(crate) fn record(&self, position: Option<u64>, message: Option<MessageId>) -> bool {
        let (Some(position), Some(mut delivered)) = (position, self.delivered()) else {
            return true;
        };
        if delivered.contains(position, message) {
            return false;
        }
        delivered.record(position, message);
        true
    }

    /// Closes the open hole, if any: queues its mark for every connection,
    /// behind what was handed out before (and over the queue's capacity:
    /// the mark never makes a connection a slow reader).
    pub(crate) fn close_hole(&self) -> Option<Arc<Hole>> {
        let hole = Arc::new(self.delivered()?.close()?);
        let mark: Queued = Arc::new(Outgoing::Gap(Arc::clone(&hole)));
        for entry in self.users.values() {
            for conn in &entry.conns {
                if conn.state.reason().is_none() {
                    conn.queue.force_send(Arc::clone(&mark));
                }
            }
        }
        Some(hole)
    }

    /// Tells every followed user's status, as `online` (their follow key
    /// in `online`) or not, to the connections that follow them, as
    /// changes: after a hole, the changes it swallowed are told again.
    pub(crate) fn restate_presence(&self, online: &HashSet<String>) {
        for (key, followed) in &self.followers {
            let status = if online.contains(key) {
                PresenceStatus::Online
            } else {
                PresenceStatus::Offline
            };
            for (_, presence) in &followed.conns {
                presence.changed(key, &followed.username, status);
            }
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections
    }

    /// Registers a connection. Returns its key and whether it is the user's
    /// first (the user just came online).
    pub(crate) fn add(
        &mut self,
        user: UserId,
        username: Username,
        token: TokenId,
        queue: QueueSender,
        state: Arc<ConnState>,
        presence: Arc<PresenceBox>,
    ) -> (ConnKey, bool) {
        self.next_id += 1;
        let id = self.next_id;
        let entry = self.users.entry(user).or_insert_with(|| UserConns {
            username,
            conns: Vec::new(),
        });
        let first = entry.conns.is_empty();
        entry.conns.push(Conn {
            id,
            token,
            queue,
            state,
            presence,
        });
        self.connections += 1;
        (ConnKey { user, id }, first)
    }

    /// Queues `frame` for every connection in `audience`. Returns the
    /// connections whose queue was full.
    pub(crate) fn deliver(&self, audience: Audience, frame: &Queued) -> Vec<ConnKey> {
        match audience {
            Audience::Everyone => self.deliver_to_all(frame),
            Audience::Users(mut users) => {
                // Owned, so de-duplicating costs no allocation; a user named
                // twice must still get the frame once.
                users.sort_unstable();
                users.dedup();
                let mut slow = Vec::new();
                for user in users {
                    if let Some(entry) = self.users.get(&user) {
                        offer_all(user, entry, frame, &mut slow);
                    }
                }
                slow
            }
        }
    }

    /// Queues `frame` for every connection.
    pub(crate) fn deliver_to_all(&self, frame: &Queued) -> Vec<ConnKey> {
        let mut slow = Vec::new();
        for (&user, entry) in &self.users {
            offer_all(user, entry, frame, &mut slow);
        }
        slow
    }

    /// A user's first connection opened or last one closed: reported when
    /// the hub has a reporter, else told to the connections that follow
    /// the user.
    pub(crate) fn presence_changed(
        &self,
        user: UserId,
        username: &Username,
        status: PresenceStatus,
    ) {
        let Some(reporter) = &self.reporter else {
            return self.route_presence(username, status);
        };
        let change = PresenceChange {
            user,
            username: username.clone(),
            status,
        };
        // A send fails only once the receiver is dropped: nobody listens
        // any more, so there is nobody to tell.
        let _ = reporter.send(change);
    }

    /// Tells a user's presence to the connections that follow them. It
    /// waits in each connection's presence, never in its queue.
    pub(crate) fn route_presence(&self, username: &Username, status: PresenceStatus) {
        let key = follow_key(username);
        let Some(followed) = self.followers.get(&key) else {
            return;
        };
        for (_, presence) in &followed.conns {
            presence.changed(&key, username, status);
        }
    }

    /// Makes a connection follow `users`, unless it would then follow more
    /// than `limit`.
    pub(crate) fn follow(
        &mut self,
        conn: ConnKey,
        users: &[Username],
        limit: usize,
    ) -> DomainResult<()> {
        let Some(presence) = self.conn_presence(conn) else {
            // Already removed: nothing left to follow for.
            return Ok(());
        };
        let mut state = presence.lock();
        let new: HashMap<String, &Username> = users
            .iter()
            .map(|user| (follow_key(user), user))
            .filter(|(key, _)| !state.following.contains(key))
            .collect();
        if state.following.len() + new.len() > limit {
            return Err(DomainError::TooManySubscriptions { limit });
        }
        for (key, username) in new {
            state.start_following(key.clone());
            self.followers
                .entry(key)
                .or_insert_with(|| Followed {
                    username: username.clone(),
                    conns: Vec::new(),
                })
                .conns
                .push((conn.id, Arc::clone(&presence)));
        }
        Ok(())
    }

    /// Makes a connection stop following `users`.
    pub(crate) fn unfollow(&mut self, conn: ConnKey, users: &[Username]) {
        let Some(presence) = self.conn_presence(conn) else {
            return;
        };
        let mut state = presence.lock();
        for key in users.iter().map(follow_key) {
            if state.stop_following(&key) {
                self.drop_follower(&key, conn.id);
            }
        }
    }

    fn conn_presence(&self, key: ConnKey) -> Option<Arc<PresenceBox>> {
        let entry = self.users.get(&key.user)?;
        let conn = entry.conns.iter().find(|c| c.id == key.id)?;
        Some(Arc::clone(&conn.presence))
    }

    fn drop_follower(&mut self, key: &str, conn: u64) {
        if let Some(followed) = self.followers.get_mut(key) {
            followed.conns.retain(|(id, _)| *id != conn);
            if followed.conns.is_empty() {
                self.followers.remove(key);
            }
        }
    }

    /// Removes connections; a user losing their last one goes offline.
    /// Keys already gone are ignored, so removal is idempotent.
    pub(crate) fn remove_all(&mut self, keys: Vec<ConnKey>) {
        for key in keys {
            if let Some(gone) = self.remove(key) {
                self.presence_changed(key.user, &gone, PresenceStatus::Offline);
            }
        }
    }

    /// Removes one connection (dropping its queue's sender, which wakes a
    /// waiting subscription). Returns the username if that was the user's
    /// last connection.
    fn remove(&mut self, key: ConnKey) -> Option<Username> {
        let entry = self.users.get_mut(&key.user)?;
        let index = entry.conns.iter().position(|c| c.id == key.id)?;
        let conn = entry.conns.swap_remove(index);
        self.connections -= 1;
        let followed = conn.presence.lock().stop_following_all();
        for followed in followed {
            self.drop_follower(&followed, key.id);
        }
        let entry = self.users.get_mut(&key.user)?;
        if !entry.conns.is_empty() {
            return None;
        }
        self.users.remove(&key.user).map(|e| e.username)
    }

    /// Closes the connections of `user` opened with `token`
    /// (`TokenRevoked`); the user goes offline if they were the last.
    pub(crate) fn revoke(&mut self, user: UserId, token: TokenId) {
        let Some(entry) = self.users.get(&user) else {
            return;
        };
        let revoked: Vec<ConnKey> = entry
            .conns
            .iter()
            .filter(|conn| conn.token == token)
            .map(|conn| {
                conn.state.close(CloseReason::TokenRevoked);
                ConnKey { user, id: conn.id }
            })
            .collect();
        self.remove_all(revoked);
    }

    /// Closes every connection with `ShuttingDown` and refuses new ones.
    /// Dropping the senders lets each subscription drain what is queued and
    /// then report the close.
    pub(crate) fn shut_down(&mut self) {
        self.shut_down = true;
        for entry in self.users.values() {
            for conn in &entry.conns {
                conn.state.close(CloseReason::ShuttingDown);
            }
        }
        self.users.clear();
        self.followers.clear();
        self.connections = 0;
    }

    /// Connected usernames in byte order.
    pub(crate) fn usernames(&self) -> Vec<Username> {
        let mut names: Vec<Username> = self.users.values().map(|e| e.username.clone()).collect();
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        names
    }

    /// Which of `users` have a live connection.
    pub(crate) fn online_among(&self, users: &[UserId]) -> HashSet<UserId> {
        users
            .iter()
            .filter(|u| self.users.contains_key(u))
            .copied()
            .collect()
    }
}

fn offer_all(user: UserId, entry: &UserConns, frame: &Queued, slow: &mut Vec<ConnKey>) {
    for conn in &entry.conns {
        if !conn.offer(frame) {
            slow.push(ConnKey { user, id: conn.id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_slot_is_one_pointer() {
        // Paid per queued frame, up to the queue's capacity.
        assert_eq!(std::mem::size_of::<Queued>(), std::mem::size_of::<usize>());
    }
}
