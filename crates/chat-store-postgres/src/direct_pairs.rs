//! The direct conversations this store has registered lately: a direct
//! conversation's row in `conversations` (who talks with whom) is written
//! once, when the two first talk, and the writer passes
//! `messages_insert_batch` only the pairs it has not registered, so that
//! storing a direct message reads no row but its own (the
//! `direct_counts_on_read` migration).
//!
//! A pair is kept only once the transaction that registered it has
//! committed (whoever commits calls [`DirectPairs::remember`]), and every
//! pair is forgotten when a batch fails, to be safe. A row is never deleted by the
//! service; an operator restoring the database under running instances is
//! covered as in `account_cache.rs`: a pair is trusted for [`FRESH_FOR`]
//! only, after which it is registered again (a conflict that writes
//! nothing). At most [`CAPACITY`] pairs are kept, after which the cache
//! starts over.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use uuid::Uuid;

use crate::account_cache::{CAPACITY, FRESH_FOR};

/// Two users, the smaller id first.
type Pair = (Uuid, Uuid);

fn pair(one: Uuid, other: Uuid) -> Pair {
    if one <= other {
        (one, other)
    } else {
        (other, one)
    }
}

/// Pairs to register, as the two columns the batch function takes:
/// `a[i]` with `b[i]`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct NewPairs {
    pub a: Vec<Uuid>,
    pub b: Vec<Uuid>,
}

/// Registered pairs and when.
#[derive(Default)]
pub(crate) struct DirectPairs {
    registered: Mutex<HashMap<Pair, Instant>>,
}

impl DirectPairs {
    fn registered(&self) -> MutexGuard<'_, HashMap<Pair, Instant>> {
        // A panic cannot leave a map insert or look-up half done.
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The pairs among `(sender, recipient)` not registered lately, each
    /// once.
    pub(crate) fn unregistered(&self, talks: impl IntoIterator<Item = (Uuid, Uuid)>) -> NewPairs {
        let registered = self.registered();
        let mut unregistered = HashSet::new();
        for (one, other) in talks {
            let pair = pair(one, other);
            let fresh = registered
                .get(&pair)
                .is_some_and(|at| at.elapsed() < FRESH_FOR);
            if !fresh {
                unregistered.insert(pair);
            }
        }
        let (a, b) = unregistered.into_iter().unzip();
        NewPairs { a, b }
    }

    /// Keeps `pairs`, registered by a transaction that has committed.
    pub(crate) fn remember(&self, pairs: &NewPairs) {
        self.remember_at(pairs, Instant::now());
    }

    fn remember_at(&self, pairs: &NewPairs, at: Instant) {
        let mut registered = self.registered();
        if registered.len().saturating_add(pairs.a.len()) > CAPACITY {
            registered.clear();
        }
        for (&one, &other) in pairs.a.iter().zip(&pairs.b) {
            registered.insert(pair(one, other), at);
        }
    }

    /// Forgets every pair: a failed batch may have rolled back the
    /// registration of any of them.
    pub(crate) fn forget(&self) {
        self.registered().clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_pair_is_passed_until_remembered_whichever_way_it_is_named() {
        let pairs = DirectPairs::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let new = pairs.unregistered([(alice, bob), (bob, alice)]);
        assert_eq!((new.a.len(), new.b.len()), (1, 1), "one pair, named twice");
        pairs.remember(&new);
        assert_eq!(pairs.unregistered([(bob, alice)]), NewPairs::default());
        pairs.forget();
        assert_eq!(pairs.unregistered([(alice, bob)]), new);
    }

    #[test]
    fn a_pair_registered_too_long_ago_is_passed_again() {
        let pairs = DirectPairs::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let Some(long_ago) = Instant::now().checked_sub(FRESH_FOR + Duration::from_secs(1)) else {
            return; // the machine has not been up that long
        };
        let new = pairs.unregistered([(alice, bob)]);
        pairs.remember_at(&new, long_ago);
        assert_eq!(pairs.unregistered([(alice, bob)]), new);
    }

    #[test]
    fn the_cache_is_bounded() {
        let pairs = DirectPairs::default();
        for _ in 0..=CAPACITY {
            pairs.remember(&NewPairs {
                a: vec![Uuid::now_v7()],
                b: vec![Uuid::now_v7()],
            });
        }
        assert!(pairs.registered().len() <= CAPACITY);
    }
}
