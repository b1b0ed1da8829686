//! The WebSockets each user holds on this instance, capped
//! (WEBSOCKET_MAX_CONNECTIONS_PER_USER): one user opening thousands of
//! sockets would otherwise hold that many tasks, queues and descriptors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chat_domain::{DomainError, DomainResult, UserId};

/// Live WebSockets per user; a limit of 0 counts nothing and caps nothing.
#[derive(Debug)]
pub(crate) struct UserConnections {
    limit: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// One of a user's connections, counted until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    counts: Arc<UserConnections>,
    user: UserId,
}

impl UserConnections {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection of `user`, unless they hold the limit
    /// already (`TooManyConnections`).
    pub(crate) fn open(self: &Arc<Self>, user: UserId) -> DomainResult<Option<ConnectionSlot>> {
        if self.limit == 0 {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_default();
        if *count >= self.limit {
            return Err(DomainError::TooManyConnections { limit: self.limit });
        }
        *count += 1;
        Ok(Some(ConnectionSlot {
            counts: Arc::clone(self),
            user,
        }))
    }

    #[cfg(test)]
    fn held_by(&self, user: UserId) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&user).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_limit_and_a_closed_slot_frees_one() {
        let counts = UserConnections::new(2);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let first = counts.open(alice).expect("first");
        let _second = counts.open(alice).expect("second");
        assert_eq!(
            counts.open(alice).map(|_| ()),
            Err(DomainError::TooManyConnections { limit: 2 })
        );
        assert!(counts.open(bob).is_ok(), "the cap is per user");
        drop(first);
        assert!(
            counts.open(alice).is_ok(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn users_with_no_connection_are_forgotten() {
        let counts = UserConnections::new(3);
        let alice = UserId::generate();
        drop(counts.open(alice).expect("opens"));
        assert_eq!(counts.held_by(alice), 0);
        assert!(counts.open.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_limit_of_zero_caps_nothing() {
        let counts = UserConnections::new(0);
        let alice = UserId::generate();
        let slots: Vec<_> = (0..100)
            .map(|_| counts.open(alice).expect("opens"))
            .collect();
        assert!(slots.iter().all(Option::is_none));
    }
}
