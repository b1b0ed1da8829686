//! Accounts by username and by id, kept once read: every direct message
//! looks its recipient up by name, and every request its caller's account
//! by id (a token is honoured only while its account exists). At thousands
//! of messages a second that was a PostgreSQL round trip (and two
//! hand-offs between threads) per message (docs/benchmarks.md, "Direct
//! messages on PostgreSQL").
//!
//! Kept without invalidation because an account never changes once
//! registered: the service has no rename, no deletion and no password
//! change, so every instance reads the same row for as long as it runs.
//! Whoever adds one of those must drop the entry here, on every instance.
//! What the service cannot see is an operator resetting or restoring the
//! database under running instances: so an entry is trusted for
//! [`FRESH_FOR`] only, after which it is read again, and a token of an
//! account that is gone stops working within that time without a restart.
//! The cache belongs to one store (one pool, one database), never to the
//! process. Only accounts found are kept (a name not found may be
//! registered the next moment), and at most [`CAPACITY`], after which the
//! cache starts over.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chat_domain::{UserAccount, UserId};

/// Accounts kept at most (each under its name and its id).
pub(crate) const CAPACITY: usize = 65_536;

/// How long an account read is trusted before it is read again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(60);

/// An account and when it was read.
type Entry = (UserAccount, Instant);

#[derive(Default)]
struct Entries {
    by_name: HashMap<String, Entry>,
    by_id: HashMap<UserId, Entry>,
}

/// Accounts by case-folded username and by id.
#[derive(Default)]
pub(crate) struct AccountCache {
    entries: Mutex<Entries>,
}

fn fresh(entry: Option<&Entry>) -> Option<UserAccount> {
    entry
        .filter(|(_, read_at)| read_at.elapsed() < FRESH_FOR)
        .map(|(account, _)| account.clone())
}

impl AccountCache {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic cannot leave a map insert or look-up half done.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account registered under `folded`, if it was read lately.
    pub(crate) fn get(&self, folded: &str) -> Option<UserAccount> {
        fresh(self.entries().by_name.get(folded))
    }

    /// The account with this id, if it was read lately.
    pub(crate) fn get_by_id(&self, id: UserId) -> Option<UserAccount> {
        fresh(self.entries().by_id.get(&id))
    }

    /// Keeps `account` under its case-folded name and its id, read now.
    pub(crate) fn put(&self, account: &UserAccount) {
        self.put_read_at(account, Instant::now());
    }

    fn put_read_at(&self, account: &UserAccount, read_at: Instant) {
        let mut entries = self.entries();
        if entries.by_name.len() >= CAPACITY || entries.by_id.len() >= CAPACITY {
            entries.by_name.clear();
            entries.by_id.clear();
        }
        let folded = account.username.as_str().to_ascii_lowercase();
        entries.by_name.insert(folded, (account.clone(), read_at));
        entries.by_id.insert(account.id, (account.clone(), read_at));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let entries = self.entries();
        entries.by_name.len().max(entries.by_id.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::{Email, PasswordHash, UserId, Username};

    fn account(name: &str) -> UserAccount {
        UserAccount {
            id: UserId::generate(),
            username: Username::parse(name).expect("valid"),
            email: Email::parse(format!("{name}@example.com")).expect("valid"),
            password_hash: PasswordHash::new("hash".to_owned()),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_account_is_found_by_its_folded_name_and_the_cache_is_bounded() {
        let cache = AccountCache::default();
        let alice = account("Alice");
        cache.put(&alice);
        assert_eq!(cache.get("alice").map(|a| a.id), Some(alice.id));
        assert_eq!(cache.get_by_id(alice.id).map(|a| a.id), Some(alice.id));
        assert!(
            cache.get("Alice").is_none(),
            "keys are folded by the caller"
        );
        for n in 0..CAPACITY {
            cache.put(&account(&format!("user{n}")));
        }
        assert!(cache.len() <= CAPACITY);
    }

    #[test]
    fn an_account_read_too_long_ago_is_read_again() {
        let cache = AccountCache::default();
        let alice = account("alice");
        let Some(long_ago) = Instant::now().checked_sub(FRESH_FOR + Duration::from_secs(1)) else {
            return; // the machine has not been up that long
        };
        cache.put_read_at(&alice, long_ago);
        assert!(cache.get("alice").is_none());
        assert!(cache.get_by_id(alice.id).is_none());
        cache.put(&alice);
        assert!(cache.get_by_id(alice.id).is_some());
    }
}
