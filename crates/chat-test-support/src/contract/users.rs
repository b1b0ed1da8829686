//! `UserStore`: accounts, unique names and emails, listing.

use super::*;

/// A stored user comes back whole by id.
pub async fn users_are_found_by_id<S: FullStore>(store: Arc<S>) {
    let alice = account("Alice");
    store.create_user(&alice).await.expect("stored");
    let found = store.user_by_id(alice.id).await.expect("reads");
    assert_eq!(found, Some(alice));
}

/// Look-up by name ignores case and returns the spelling given at
/// registration.
pub async fn users_are_found_by_username_ignoring_case<S: FullStore>(store: Arc<S>) {
    let alice = account("Alice.B");
    store.create_user(&alice).await.expect("stored");
    for spelling in ["Alice.B", "alice.b", "ALICE.B", "aLiCe.b"] {
        let found = store
            .user_by_username(&username(spelling))
            .await
            .expect("reads");
        assert_eq!(found.as_ref(), Some(&alice), "{spelling}");
    }
}

/// Unknown ids and names give `None`, not an error.
pub async fn unknown_users_are_not_found<S: FullStore>(store: Arc<S>) {
    seed_user(&*store, "alice").await;
    assert_eq!(
        store.user_by_id(UserId::generate()).await.expect("reads"),
        None
    );
    let nobody = store
        .user_by_username(&username("nobody"))
        .await
        .expect("reads");
    assert_eq!(nobody, None);
}

/// A username differing only in case is taken; nothing is stored.
pub async fn usernames_are_unique_ignoring_case<S: FullStore>(store: Arc<S>) {
    seed_user(&*store, "alice").await;
    let twin = account_with_email("ALICE", "other@example.com");
    assert_eq!(
        store.create_user(&twin).await,
        Err(DomainError::UsernameTaken)
    );
    assert_eq!(store.user_by_id(twin.id).await.expect("reads"), None);
    let all = store.list_users(latest()).await.expect("reads");
    assert_eq!(all.items.len(), 1);
}

/// An email differing only in case is taken; nothing is stored.
pub async fn emails_are_unique_ignoring_case<S: FullStore>(store: Arc<S>) {
    store
        .create_user(&account_with_email("alice", "alice@example.com"))
        .await
        .expect("stored");
    let twin = account_with_email("bob", "ALICE@Example.COM");
    assert_eq!(store.create_user(&twin).await, Err(DomainError::EmailTaken));
    assert_eq!(store.user_by_id(twin.id).await.expect("reads"), None);
    // The name is still free for a registration with a fresh email.
    store
        .create_user(&account_with_email("bob", "bob@example.com"))
        .await
        .expect("stored");
}

/// Sixteen simultaneous registrations of one name, spelled in different
/// cases: exactly one succeeds, the others are `UsernameTaken`.
pub async fn concurrent_registrations_of_one_name_admit_exactly_one<S: FullStore>(store: Arc<S>) {
    let mut tasks = JoinSet::new();
    for i in 0..RACERS {
        // Upper-case the letters whose bit is set in i: 16 spellings.
        let name: String = "racer"
            .chars()
            .enumerate()
            .map(|(bit, c)| {
                if i >> bit & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let account = account_with_email(&name, &format!("racer{i}@example.com"));
        let store = store.clone();
        tasks.spawn(async move { store.create_user(&account).await.map(|()| account) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task ran") {
            Ok(account) => winners.push(account),
            Err(e) => assert_eq!(e, DomainError::UsernameTaken),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let stored = store
        .user_by_username(&username("racer"))
        .await
        .expect("reads");
    assert_eq!(stored.as_ref(), winners.first());
    assert_eq!(
        store.list_users(latest()).await.expect("reads").items.len(),
        1
    );
}

/// Users are listed by id; `Latest`, `Before` and `After` pages and their
/// flags follow the pagination rules.
pub async fn users_are_listed_in_id_order_and_paged<S: FullStore>(store: Arc<S>) {
    let mut ids = Vec::new();
    for name in ["user0", "user1", "user2", "user3", "user4"] {
        ids.push(seed_user(&*store, name).await.id);
    }
    let ids = sorted(ids);
    let list = |request: PageRequest<UserId>| {
        let store = store.clone();
        async move {
            let got = store.list_users(request).await.expect("reads");
            let ids: Vec<UserId> = got.items.iter().map(|a| a.id).collect();
            (ids, got.has_older, got.has_newer)
        }
    };
    assert_eq!(list(latest()).await, (ids.clone(), false, false));
    assert_eq!(
        list(page(2, Cursor::Latest)).await,
        (ids[3..].to_vec(), true, false)
    );
    assert_eq!(
        list(page(2, Cursor::Before(ids[3]))).await,
        (ids[1..3].to_vec(), true, true)
    );
    assert_eq!(
        list(page(2, Cursor::Before(ids[1]))).await,
        (ids[..1].to_vec(), false, true)
    );
    assert_eq!(
        list(page(2, Cursor::After(ids[0]))).await,
        (ids[1..3].to_vec(), true, true)
    );
    assert_eq!(
        list(page(2, Cursor::After(ids[2]))).await,
        (ids[3..].to_vec(), true, false)
    );
    assert_eq!(
        list(page(2, Cursor::After(ids[4]))).await,
        (Vec::new(), true, false)
    );
}
