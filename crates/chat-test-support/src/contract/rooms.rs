//! `RoomStore`: rooms, members, a user's rooms.

use super::*;

/// A room comes back with its fields and members in the order given.
pub async fn rooms_are_stored_with_their_members<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let created = room("general", alice.id, &[carol.id, bob.id]);
    store.create_room(&created).await.expect("stored");
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.as_ref(), Some(&created));
    let members = found.map(|r| r.members).unwrap_or_default();
    assert_eq!(members, vec![alice.id, carol.id, bob.id]);
}

/// An unknown room id gives `None`.
pub async fn unknown_rooms_are_not_found<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    store
        .create_room(&room("general", alice.id, &[]))
        .await
        .expect("stored");
    assert_eq!(
        store.room_by_id(RoomId::generate()).await.expect("reads"),
        None
    );
}

/// Adding a member says `true` once, then `false`; members are listed in
/// the order they joined.
pub async fn adding_a_member_is_idempotent<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let created = room("general", alice.id, &[]);
    store.create_room(&created).await.expect("stored");
    assert!(store.add_member(created.id, bob.id).await.expect("adds"));
    assert!(!store.add_member(created.id, bob.id).await.expect("adds"));
    assert!(!store.add_member(created.id, alice.id).await.expect("adds"));
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.map(|r| r.members), Some(vec![alice.id, bob.id]));
}

/// Removing a member says `true` once, then `false`.
pub async fn removing_a_member_reports_whether_they_were_one<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let created = room("general", alice.id, &[bob.id]);
    store.create_room(&created).await.expect("stored");
    assert!(store
        .remove_member(created.id, bob.id)
        .await
        .expect("removes"));
    assert!(!store
        .remove_member(created.id, bob.id)
        .await
        .expect("removes"));
    assert!(!store
        .remove_member(created.id, carol.id)
        .await
        .expect("removes"));
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.map(|r| r.members), Some(vec![alice.id]));
    // Leaving and coming back is a fresh join, at the end of the list.
    assert!(store.add_member(created.id, bob.id).await.expect("adds"));
    assert!(store
        .remove_member(created.id, alice.id)
        .await
        .expect("removes"));
    assert!(store.add_member(created.id, alice.id).await.expect("adds"));
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.map(|r| r.members), Some(vec![bob.id, alice.id]));
}

/// Adding to an unknown room is `RoomNotFound`; adding an unknown user is
/// `UserNotFound`.
pub async fn adding_to_an_unknown_room_or_an_unknown_user_fails<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let created = room("general", alice.id, &[]);
    store.create_room(&created).await.expect("stored");
    assert_eq!(
        store.add_member(RoomId::generate(), alice.id).await,
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        store.add_member(created.id, UserId::generate()).await,
        Err(DomainError::UserNotFound)
    );
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.map(|r| r.members), Some(vec![alice.id]));
}

/// Sixteen simultaneous joins of one user: one says `true`, and the user
/// is a member once.
pub async fn concurrent_joins_of_one_user_add_them_once<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let created = room("general", alice.id, &[]);
    store.create_room(&created).await.expect("stored");
    let mut tasks = JoinSet::new();
    for _ in 0..RACERS {
        let store = store.clone();
        tasks.spawn(async move { store.add_member(created.id, bob.id).await });
    }
    let mut added = 0;
    while let Some(joined) = tasks.join_next().await {
        if joined.expect("task ran").expect("join succeeds") {
            added += 1;
        }
    }
    assert_eq!(added, 1, "exactly one join adds");
    let found = store.room_by_id(created.id).await.expect("reads");
    assert_eq!(found.map(|r| r.members), Some(vec![alice.id, bob.id]));
}

/// Sixteen users joining at once: every join succeeds and every user is a
/// member exactly once.
pub async fn concurrent_joins_of_many_users_add_each_once<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let created = room("general", alice.id, &[]);
    store.create_room(&created).await.expect("stored");
    let mut joiners = Vec::new();
    for i in 0..RACERS {
        joiners.push(seed_user(&*store, &format!("joiner{i}")).await.id);
    }
    let mut tasks = JoinSet::new();
    for &user in &joiners {
        let store = store.clone();
        tasks.spawn(async move { store.add_member(created.id, user).await });
    }
    while let Some(joined) = tasks.join_next().await {
        assert!(joined.expect("task ran").expect("join succeeds"));
    }
    let members = store
        .room_by_id(created.id)
        .await
        .expect("reads")
        .map(|r| r.members)
        .unwrap_or_default();
    assert_eq!(members.len(), RACERS + 1);
    assert_eq!(members.first(), Some(&alice.id));
    let unique: HashSet<UserId> = members.iter().copied().collect();
    assert_eq!(unique.len(), members.len(), "nobody twice");
    assert!(joiners.iter().all(|j| unique.contains(j)));
}

/// A user sees all their own rooms; another user sees only the rooms they
/// share, and stops seeing one once they leave it.
pub async fn rooms_of_a_user_show_all_to_them_and_shared_ones_to_others<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let only_alice = room("a", alice.id, &[]);
    let shared = room("ab", bob.id, &[alice.id]);
    let only_bob = room("b", bob.id, &[]);
    for r in [&only_alice, &shared, &only_bob] {
        store.create_room(r).await.expect("stored");
    }
    let rooms = |member: UserId, viewer: UserId| {
        let store = store.clone();
        async move {
            let got = store
                .rooms_of_user(member, viewer, latest())
                .await
                .expect("reads");
            got.items.iter().map(|r| r.id).collect::<Vec<RoomId>>()
        }
    };
    assert_eq!(
        rooms(alice.id, alice.id).await,
        sorted(vec![only_alice.id, shared.id])
    );
    assert_eq!(rooms(alice.id, bob.id).await, vec![shared.id]);
    assert_eq!(rooms(bob.id, alice.id).await, vec![shared.id]);
    assert_eq!(rooms(alice.id, carol.id).await, Vec::<RoomId>::new());
    assert_eq!(rooms(carol.id, carol.id).await, Vec::<RoomId>::new());
    assert!(store
        .remove_member(shared.id, alice.id)
        .await
        .expect("removes"));
    assert_eq!(rooms(bob.id, alice.id).await, Vec::<RoomId>::new());
    assert_eq!(
        rooms(bob.id, bob.id).await,
        sorted(vec![shared.id, only_bob.id])
    );
    let full = store
        .rooms_of_user(bob.id, bob.id, latest())
        .await
        .expect("reads");
    assert_eq!(full.items.first().map(|r| r.members.len()), Some(1));
}

/// A user's rooms come in room-id order and page like every list.
pub async fn rooms_of_a_user_are_paged_in_id_order<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = room(&format!("room {i}"), alice.id, &[]);
        store.create_room(&r).await.expect("stored");
        ids.push(r.id);
    }
    let ids = sorted(ids);
    let rooms = |request: PageRequest<RoomId>| {
        let store = store.clone();
        async move {
            let got = store
                .rooms_of_user(alice.id, alice.id, request)
                .await
                .expect("reads");
            let ids: Vec<RoomId> = got.items.iter().map(|r| r.id).collect();
            (ids, got.has_older, got.has_newer)
        }
    };
    assert_eq!(
        rooms(page(2, Cursor::Latest)).await,
        (ids[3..].to_vec(), true, false)
    );
    assert_eq!(
        rooms(page(2, Cursor::Before(ids[3]))).await,
        (ids[1..3].to_vec(), true, true)
    );
    assert_eq!(
        rooms(page(3, Cursor::After(ids[1]))).await,
        (ids[2..].to_vec(), true, false)
    );
}
