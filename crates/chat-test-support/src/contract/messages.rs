//! `MessageStore`: storing, resends, who sees what, paging through each
//! history.

use super::*;

/// Messages of every kind come back whole by id; unknown ids give `None`.
pub async fn messages_are_stored_and_found_by_id<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let general = room("general", alice.id, &[bob.id]);
    store.create_room(&general).await.expect("stored");
    for target in [
        MessageTarget::Global,
        to(&bob),
        MessageTarget::Room(general.id),
    ] {
        let new = new_message(&alice, target, "héllo ✓ with unicode");
        let stored = store.insert_message(&new).await.expect("stores");
        assert_eq!(stored, Stored::Created(new.message.clone()));
        let found = store.message_by_id(new.message.id).await.expect("reads");
        assert_eq!(found, Some(new.message));
    }
    let unknown = store
        .message_by_id(MessageId::generate())
        .await
        .expect("reads");
    assert_eq!(unknown, None);
}

/// A resend with a used client id returns the original and stores nothing,
/// even with other content.
pub async fn a_resent_client_id_returns_the_original_and_stores_nothing<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let first = new_message_with_client_id(&alice, MessageTarget::Global, "once", "c-1");
    let original = first.message.clone();
    assert_eq!(
        store.insert_message(&first).await.expect("stores"),
        Stored::Created(original.clone())
    );
    let resend = new_message_with_client_id(&alice, MessageTarget::Global, "twice", "c-1");
    assert_eq!(
        store.insert_message(&resend).await.expect("stores"),
        Stored::Duplicate(original.clone())
    );
    assert_eq!(
        store.message_by_id(resend.message.id).await.expect("reads"),
        None
    );
    assert_eq!(visible_ids(&*store, &alice).await, vec![original.id]);
}

/// Two senders may use the same client id; messages without one are never
/// deduplicated.
pub async fn client_ids_belong_to_their_sender<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let mut expected = Vec::new();
    for sender in [&alice, &bob] {
        let new = new_message_with_client_id(sender, MessageTarget::Global, "hi", "same");
        expected.push(post(&*store, &new).await.id);
    }
    for _ in 0..2 {
        let new = new_message(&alice, MessageTarget::Global, "hi");
        expected.push(post(&*store, &new).await.id);
    }
    assert_eq!(visible_ids(&*store, &alice).await, expected);
}

/// Sixteen simultaneous sends with one client id (each with its own message
/// id, as real resends have): one is `Created`, the rest are `Duplicate` of
/// it, and one message is stored.
pub async fn concurrent_resends_store_exactly_one_message<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let mut tasks = JoinSet::new();
    for i in 0..RACERS {
        let new = new_message_with_client_id(&alice, to(&bob), &format!("try {i}"), "retry-me");
        let store = store.clone();
        tasks.spawn(async move { store.insert_message(&new).await });
    }
    let mut created = Vec::new();
    let mut duplicates = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task ran").expect("insert succeeds") {
            Stored::Created(m) => created.push(m),
            Stored::Duplicate(m) => duplicates.push(m),
        }
    }
    assert_eq!(created.len(), 1, "exactly one send stores");
    let original = created.remove(0);
    assert!(duplicates.iter().all(|d| *d == original));
    assert_eq!(visible_ids(&*store, &bob).await, vec![original.id]);
}

/// A user sees global messages, direct messages to and from them, and the
/// messages of their rooms, in the order they were stored; not others'
/// direct messages nor other rooms.
pub async fn visible_messages_are_global_own_direct_and_joined_rooms<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    assert_eq!(
        visible_ids(&*store, &s.alice).await,
        vec![
            s.global.id,
            s.alice_to_bob.id,
            s.bob_to_alice.id,
            s.in_r1.id
        ]
    );
    assert_eq!(
        visible_ids(&*store, &s.carol).await,
        vec![s.global.id, s.bob_to_carol.id, s.in_r2.id]
    );
    assert_eq!(
        visible_ids(&*store, &s.bob).await,
        vec![
            s.global.id,
            s.alice_to_bob.id,
            s.bob_to_alice.id,
            s.bob_to_carol.id,
            s.in_r1.id,
            s.in_r2.id,
        ]
    );
    let whole = store
        .visible_messages(s.alice.id, &s.alice.username, latest())
        .await
        .expect("reads");
    assert!(
        whole.items.contains(&s.alice_to_bob),
        "messages come back whole"
    );
}

/// Direct messages are matched to the viewer's name ignoring case.
pub async fn visible_direct_messages_match_the_name_ignoring_case<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    let shouted = store
        .visible_messages(s.alice.id, &username("ALICE"), latest())
        .await
        .expect("reads");
    assert_eq!(
        ids_of(&shouted),
        vec![
            s.global.id,
            s.alice_to_bob.id,
            s.bob_to_alice.id,
            s.in_r1.id
        ]
    );
}

/// Visibility of room messages follows current membership: leaving hides
/// the room's whole history, joining shows it.
pub async fn room_messages_are_visible_only_while_a_member<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    assert!(store
        .remove_member(s.r1, s.alice.id)
        .await
        .expect("removes"));
    assert_eq!(
        visible_ids(&*store, &s.alice).await,
        vec![s.global.id, s.alice_to_bob.id, s.bob_to_alice.id]
    );
    assert!(store.add_member(s.r2, s.alice.id).await.expect("adds"));
    assert_eq!(
        visible_ids(&*store, &s.alice).await,
        vec![
            s.global.id,
            s.alice_to_bob.id,
            s.bob_to_alice.id,
            s.in_r2.id
        ]
    );
}

/// Direct messages between two users, both directions, whatever the order
/// and case of the names; nobody else's.
pub async fn direct_messages_are_those_between_the_pair<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    let between = |a: &str, b: &str| {
        let (store, a, b) = (store.clone(), username(a), username(b));
        async move {
            let got = store
                .direct_messages(&a, &b, latest())
                .await
                .expect("reads");
            ids_of(&got)
        }
    };
    let alice_bob = vec![s.alice_to_bob.id, s.bob_to_alice.id];
    assert_eq!(between("alice", "bob").await, alice_bob);
    assert_eq!(between("bob", "alice").await, alice_bob);
    assert_eq!(between("BOB", "Alice").await, alice_bob);
    assert_eq!(between("carol", "bob").await, vec![s.bob_to_carol.id]);
    assert_eq!(between("alice", "carol").await, Vec::<MessageId>::new());
    let whole = store
        .direct_messages(&s.bob.username, &s.carol.username, latest())
        .await
        .expect("reads");
    assert_eq!(whole.items, vec![s.bob_to_carol]);
}

/// A room's messages are that room's only; an unknown room has none.
pub async fn room_messages_are_those_of_the_room<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    let r1 = store.room_messages(s.r1, latest()).await.expect("reads");
    assert_eq!(r1.items, vec![s.in_r1]);
    let r2 = store.room_messages(s.r2, latest()).await.expect("reads");
    assert_eq!(r2.items, vec![s.in_r2]);
    let none = store
        .room_messages(RoomId::generate(), latest())
        .await
        .expect("reads");
    assert!(none.items.is_empty());
    assert!(!none.has_older && !none.has_newer);
}

/// Paging back with `Before` and forward with `After` through visible,
/// direct and room messages (interleaved with messages the list must skip)
/// yields every message exactly once, in the order they were stored. The
/// forward walks start after a message that belongs to none of the three
/// lists: any stored message is a valid position in any list.
pub async fn message_pages_walk_each_history_exactly_once<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let ab = room("ab", alice.id, &[bob.id]);
    let bc = room("bc", bob.id, &[carol.id]);
    store.create_room(&ab).await.expect("stored");
    store.create_room(&bc).await.expect("stored");
    let start = post(&*store, &new_message(&carol, to(&bob), "before all")).await;
    let (mut visible, mut direct, mut in_room) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..23 {
        let text = format!("message {i}");
        let id = match i % 5 {
            0 => {
                post(&*store, &new_message(&carol, MessageTarget::Global, &text))
                    .await
                    .id
            }
            1 => {
                post(&*store, &new_message(&alice, to(&bob), &text))
                    .await
                    .id
            }
            2 => {
                post(
                    &*store,
                    &new_message(&bob, MessageTarget::Room(ab.id), &text),
                )
                .await
                .id
            }
            3 => {
                post(&*store, &new_message(&bob, to(&carol), &text))
                    .await
                    .id
            }
            _ => {
                post(
                    &*store,
                    &new_message(&carol, MessageTarget::Room(bc.id), &text),
                )
                .await
                .id
            }
        };
        match i % 5 {
            0 => visible.push(id),
            1 => {
                visible.push(id);
                direct.push(id);
            }
            2 => {
                visible.push(id);
                in_room.push(id);
            }
            _ => {}
        }
    }
    for limit in [1, 2, 3, 7, 50] {
        let fetch_visible = |request| {
            let (store, alice) = (store.clone(), alice.clone());
            async move {
                store
                    .visible_messages(alice.id, &alice.username, request)
                    .await
            }
        };
        let fetch_direct = |request| {
            let (store, a, b) = (store.clone(), bob.username.clone(), alice.username.clone());
            async move { store.direct_messages(&a, &b, request).await }
        };
        let fetch_room = |request| {
            let store = store.clone();
            async move { store.room_messages(ab.id, request).await }
        };
        let from = start.id;
        assert_eq!(walk_back(limit, message_id, fetch_visible).await, visible);
        assert_eq!(
            walk_forward(limit, from, message_id, fetch_visible).await,
            visible
        );
        assert_eq!(walk_back(limit, message_id, fetch_direct).await, direct);
        assert_eq!(
            walk_forward(limit, from, message_id, fetch_direct).await,
            direct
        );
        assert_eq!(walk_back(limit, message_id, fetch_room).await, in_room);
        assert_eq!(
            walk_forward(limit, from, message_id, fetch_room).await,
            in_room
        );
    }
}
