//! Accounts by username, kept once read: every direct message looks its
//! recipient up by name, and at thousands of messages a second that was a
//! PostgreSQL round trip (and two hand-offs between threads) per message
//! (docs/benchmarks.md, "Direct messages on PostgreSQL").
//!
//! Kept without invalidation because an account never changes once
//! registered: the service has no rename, no deletion and no password
//! change, so every instance reads the same row for as long as it runs.
//! Whoever adds one of those must drop the entry here, on every instance.
//! Only accounts found are kept (a name not found may be registered the
//! next moment), and at most [`CAPACITY`], after which the cache starts
//! over.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chat_domain::UserAccount;

/// Accounts kept at most: about 200 bytes each.
pub(crate) const CAPACITY: usize = 65_536;

/// Accounts by case-folded username.
#[derive(Default)]
pub(crate) struct AccountCache {
    entries: Mutex<HashMap<String, UserAccount>>,
}

impl AccountCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, UserAccount>> {
        // A panic cannot leave a map insert or look-up half done.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account registered under `folded`, if it was read before.
    pub(crate) fn get(&self, folded: &str) -> Option<UserAccount> {
        self.entries().get(folded).cloned()
    }

    /// Keeps `account` under its case-folded name.
    pub(crate) fn put(&self, account: &UserAccount) {
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let folded = account.username.as_str().to_ascii_lowercase();
        entries.insert(folded, account.clone());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
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
        assert!(
            cache.get("Alice").is_none(),
            "keys are folded by the caller"
        );
        for n in 0..CAPACITY {
            cache.put(&account(&format!("user{n}")));
        }
        assert!(cache.len() <= CAPACITY);
    }
}
