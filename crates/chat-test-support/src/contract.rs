//! The store contract: what every adapter of the store ports must do, one
//! public async function per rule. [`store_contract_tests!`](crate::store_contract_tests)
//! turns each into its own `#[tokio::test]`; they can also be called
//! directly. Each case expects a fresh, empty store.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chat_domain::{
    Cursor, DomainError, DomainResult, Message, MessageContent, MessageId, MessageTarget,
    NewMessage, Page, PageRequest, RoomId, Stored, StreamItem, TokenId, UserId,
};
use time::Duration;
use tokio::task::JoinSet;

use crate::builders::{
    account, account_with_email, emoji, new_message, new_message_with_client_id, new_reply, now,
    page, room, seed_user, to, username,
};
use crate::FullStore;

/// How many tasks the concurrency cases race.
const RACERS: usize = 16;

/// Writer tasks in the ordering races (gap-free history).
pub const RACE_WRITERS: usize = 8;
/// Messages each racing writer stores, one after the other.
pub const RACE_MESSAGES_EACH: usize = 300;
/// The racing pager's page size.
const RACE_PAGE: usize = 50;

// ---------------------------------------------------------------- helpers

async fn post<S: FullStore>(store: &S, new: &NewMessage) -> Message {
    match store.insert_message(new).await.expect("insert succeeds") {
        Stored::Created(message) => message,
        Stored::Duplicate(_) => panic!("a message without a used client id is new"),
    }
}

fn ids_of(page: &Page<Message>) -> Vec<MessageId> {
    page.items.iter().map(|m| m.id).collect()
}

fn sorted<I: Ord>(mut ids: Vec<I>) -> Vec<I> {
    ids.sort();
    ids
}

fn latest<I>() -> PageRequest<I> {
    page(PageRequest::<I>::MAX_LIMIT, Cursor::Latest)
}

/// Every item id of a list, read newest page first with `Before` cursors,
/// checking each page's size and flags on the way, and that no item comes
/// twice. The result is in the store's order, oldest first.
async fn walk_back<F, Fut, T>(limit: usize, id: fn(&T) -> MessageId, mut fetch: F) -> Vec<MessageId>
where
    F: FnMut(PageRequest<MessageId>) -> Fut,
    Fut: Future<Output = DomainResult<Page<T>>>,
{
    let mut pages: Vec<Vec<MessageId>> = Vec::new();
    let mut cursor = Cursor::Latest;
    loop {
        let got = fetch(page(limit, cursor)).await.expect("page reads");
        let ids: Vec<MessageId> = got.items.iter().map(id).collect();
        assert!(ids.len() <= limit, "a page holds at most `limit` items");
        assert_eq!(got.has_newer, matches!(cursor, Cursor::Before(_)));
        let Some(&first) = ids.first() else {
            assert!(!got.has_older, "an empty page has nothing older");
            break;
        };
        pages.push(ids);
        if !got.has_older {
            break;
        }
        assert!(pages.len() < 100_000, "paging terminates");
        cursor = Cursor::Before(first);
    }
    let all: Vec<MessageId> = pages.into_iter().rev().flatten().collect();
    assert_no_repeats(&all);
    all
}

/// Every item id of a list after `start` (a message id, not itself
/// returned), read oldest page first with `After` cursors.
async fn walk_forward<F, Fut, T>(
    limit: usize,
    start: MessageId,
    id: fn(&T) -> MessageId,
    mut fetch: F,
) -> Vec<MessageId>
where
    F: FnMut(PageRequest<MessageId>) -> Fut,
    Fut: Future<Output = DomainResult<Page<T>>>,
{
    let mut all: Vec<MessageId> = Vec::new();
    let mut cursor = Cursor::After(start);
    loop {
        let got = fetch(page(limit, cursor)).await.expect("page reads");
        let ids: Vec<MessageId> = got.items.iter().map(id).collect();
        assert!(ids.len() <= limit, "a page holds at most `limit` items");
        let Some(&last) = ids.last() else {
            assert!(!got.has_newer, "an empty page has nothing newer");
            break;
        };
        all.extend(ids);
        if !got.has_newer {
            break;
        }
        assert!(all.len() < 1_000_000, "paging terminates");
        cursor = Cursor::After(last);
    }
    assert_no_repeats(&all);
    all
}

fn assert_no_repeats(ids: &[MessageId]) {
    let unique: HashSet<MessageId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message comes twice");
}

fn message_id(m: &Message) -> MessageId {
    m.id
}

/// Three users, two rooms and one message of every kind, for the
/// visibility cases. `r1` has alice and bob, `r2` bob and carol.
struct Scene {
    alice: chat_domain::UserAccount,
    bob: chat_domain::UserAccount,
    carol: chat_domain::UserAccount,
    r1: RoomId,
    r2: RoomId,
    global: Message,
    alice_to_bob: Message,
    bob_to_alice: Message,
    bob_to_carol: Message,
    in_r1: Message,
    in_r2: Message,
}

async fn scene<S: FullStore>(store: &S) -> Scene {
    let alice = seed_user(store, "alice").await;
    let bob = seed_user(store, "bob").await;
    let carol = seed_user(store, "carol").await;
    let r1 = room("one", alice.id, &[bob.id]);
    let r2 = room("two", bob.id, &[carol.id]);
    store.create_room(&r1).await.expect("room stored");
    store.create_room(&r2).await.expect("room stored");
    let global = post(
        store,
        &new_message(&carol, MessageTarget::Global, "hello all"),
    )
    .await;
    let alice_to_bob = post(store, &new_message(&alice, to(&bob), "hi bob")).await;
    let bob_to_alice = post(store, &new_message(&bob, to(&alice), "hi alice")).await;
    let bob_to_carol = post(store, &new_message(&bob, to(&carol), "psst carol")).await;
    let in_r1 = post(
        store,
        &new_message(&bob, MessageTarget::Room(r1.id), "in one"),
    )
    .await;
    let in_r2 = post(
        store,
        &new_message(&carol, MessageTarget::Room(r2.id), "in two"),
    )
    .await;
    Scene {
        alice,
        bob,
        carol,
        r1: r1.id,
        r2: r2.id,
        global,
        alice_to_bob,
        bob_to_alice,
        bob_to_carol,
        in_r1,
        in_r2,
    }
}

async fn visible_ids<S: FullStore>(store: &S, user: &chat_domain::UserAccount) -> Vec<MessageId> {
    let got = store
        .visible_messages(user.id, &user.username, latest())
        .await
        .expect("visible messages read");
    ids_of(&got)
}

// ------------------------------------------------------------------ users

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

// ------------------------------------------------------------------ rooms

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

// --------------------------------------------------------------- messages

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

// ------------------------------------------------- ordering under writers

/// A message a racing writer stores, and whether the list under test must
/// show it.
type RaceMessage = (NewMessage, bool);

/// Races [`RACE_WRITERS`] writer tasks (writer `w` stores `make(w, n)` for
/// `n` in `0..RACE_MESSAGES_EACH`, one after the other) against a forward
/// pager, on this task, that reads `fetch` with `After` cursors from
/// `start`, [`RACE_PAGE`] at a time, until every writer has finished and a
/// page read after that is empty. Then checks that the pager saw every
/// message of the list exactly once and nothing else, in the order of a
/// final full read that walks back with `Before` from the newest page and
/// must reach `start`, the list's first message.
async fn race_writers_against_a_forward_pager<S, M, F, Fut>(
    store: &Arc<S>,
    start: MessageId,
    make: M,
    fetch: F,
) where
    S: FullStore,
    M: Fn(usize, usize) -> RaceMessage + Send + Sync + 'static,
    F: Fn(PageRequest<MessageId>) -> Fut,
    Fut: Future<Output = DomainResult<Page<Message>>>,
{
    let make = Arc::new(make);
    let finished = Arc::new(AtomicUsize::new(0));
    let mut writers = JoinSet::new();
    for w in 0..RACE_WRITERS {
        let (store, make, finished) = (store.clone(), make.clone(), finished.clone());
        writers.spawn(async move {
            let mut listed = Vec::new();
            for n in 0..RACE_MESSAGES_EACH {
                let (new, in_list) = make(w, n);
                // A real send makes the id, then does other work before the
                // insert (look-ups, a network hop): let other writers run
                // in between, so ids reach the store out of order.
                tokio::task::yield_now().await;
                let id = post(&*store, &new).await.id;
                if in_list {
                    listed.push(id);
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            listed
        });
    }
    let seen = forward_pager(start, &finished, &fetch).await;
    let mut expected = HashSet::new();
    while let Some(joined) = writers.join_next().await {
        expected.extend(joined.expect("writer ran"));
    }
    let unique: HashSet<MessageId> = seen.iter().copied().collect();
    let counts = (
        expected.difference(&unique).count(),
        seen.len() - unique.len(),
        unique.difference(&expected).count(),
    );
    assert_eq!(
        counts,
        (0, 0, 0),
        "(skipped, repeated, foreign) messages of a forward pager racing \
         {RACE_WRITERS} writers; it saw {} of {}",
        unique.len(),
        expected.len()
    );
    let full = walk_back(RACE_PAGE, message_id, &fetch).await;
    assert_eq!(full.first(), Some(&start), "walking back reaches the start");
    assert_eq!(
        full.get(1..),
        Some(seen.as_slice()),
        "the pager saw the store's order"
    );
}

/// Pages forward from `start` until all writers are done and a page read
/// after that is empty; returns every id seen, in the order seen.
async fn forward_pager<F, Fut>(
    start: MessageId,
    finished: &AtomicUsize,
    fetch: &F,
) -> Vec<MessageId>
where
    F: Fn(PageRequest<MessageId>) -> Fut,
    Fut: Future<Output = DomainResult<Page<Message>>>,
{
    let mut seen = Vec::new();
    let mut cursor = start;
    loop {
        // Read before the page: when every writer had returned before it
        // was asked for, an empty page means nothing more will come.
        let writers_done = finished.load(Ordering::SeqCst) == RACE_WRITERS;
        let got = fetch(page(RACE_PAGE, Cursor::After(cursor)))
            .await
            .expect("page reads");
        assert!(got.items.len() <= RACE_PAGE, "a page holds at most `limit`");
        match got.items.last() {
            Some(last) => {
                cursor = last.id;
                seen.extend(got.items.iter().map(|m| m.id));
            }
            None if writers_done => break,
            None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
        assert!(
            seen.len() <= 2 * RACE_WRITERS * RACE_MESSAGES_EACH,
            "the pager keeps getting messages: repeats"
        );
    }
    seen
}

/// Seeds `writer0` ... `writer7`.
async fn seed_writers<S: FullStore>(store: &S) -> Vec<chat_domain::UserAccount> {
    let mut writers = Vec::new();
    for w in 0..RACE_WRITERS {
        writers.push(seed_user(store, &format!("writer{w}")).await);
    }
    writers
}

/// Eight writers store 300 messages each into one room while a reader pages
/// the room forward with `after=`, 50 at a time: the reader sees all 2,400
/// exactly once, in the store's order, and walking back with `before=`
/// from the newest page reaches the first message, each once.
pub async fn a_forward_pager_sees_every_room_message_once_while_writers_race<S: FullStore>(
    store: Arc<S>,
) {
    let writers = seed_writers(&*store).await;
    let ids: Vec<UserId> = writers.iter().map(|w| w.id).collect();
    let general = room("general", ids[0], &ids);
    store.create_room(&general).await.expect("room stored");
    let target = MessageTarget::Room(general.id);
    let start = post(&*store, &new_message(&writers[0], target.clone(), "start")).await;
    let make = move |w: usize, n: usize| {
        let text = format!("writer {w} message {n}");
        (new_message(&writers[w], target.clone(), &text), true)
    };
    let room_id = general.id;
    let fetch = |request| {
        let store = store.clone();
        async move { store.room_messages(room_id, request).await }
    };
    race_writers_against_a_forward_pager(&store, start.id, make, fetch).await;
}

/// The same race on one user's visible feed, which merges global messages,
/// direct messages to the viewer and a room of theirs; the writers also
/// store messages the viewer must not see (another room, others' direct
/// messages), which the feed must leave out.
pub async fn a_forward_pager_sees_every_visible_message_once_while_writers_race<S: FullStore>(
    store: Arc<S>,
) {
    let writers = seed_writers(&*store).await;
    let viewer = seed_user(&*store, "viewer").await;
    let ids: Vec<UserId> = writers.iter().map(|w| w.id).collect();
    let with_viewer = room("with viewer", viewer.id, &ids);
    let without = room("without viewer", ids[0], &ids);
    store.create_room(&with_viewer).await.expect("room stored");
    store.create_room(&without).await.expect("room stored");
    let start = post(
        &*store,
        &new_message(&viewer, MessageTarget::Global, "start"),
    )
    .await;
    let (seen_room, unseen_room) = (with_viewer.id, without.id);
    let to_viewer = to(&viewer);
    let make = move |w: usize, n: usize| {
        let text = format!("writer {w} message {n}");
        let other = &writers[(w + 1) % RACE_WRITERS];
        let (target, visible) = match n % 5 {
            0 => (MessageTarget::Global, true),
            1 => (to_viewer.clone(), true),
            2 => (MessageTarget::Room(seen_room), true),
            3 => (MessageTarget::Room(unseen_room), false),
            _ => (to(other), false),
        };
        (new_message(&writers[w], target, &text), visible)
    };
    let fetch = |request| {
        let (store, viewer) = (store.clone(), viewer.clone());
        async move {
            store
                .visible_messages(viewer.id, &viewer.username, request)
                .await
        }
    };
    race_writers_against_a_forward_pager(&store, start.id, make, fetch).await;
}

/// The same race on a direct conversation: half the writers send as alice
/// to bob, half as bob to alice, with some messages to carol that the
/// conversation must leave out.
pub async fn a_forward_pager_sees_every_direct_message_once_while_writers_race<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let start = post(&*store, &new_message(&alice, to(&bob), "start")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let make = move |w: usize, n: usize| {
        let text = format!("writer {w} message {n}");
        let (from, peer) = if w < RACE_WRITERS / 2 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        if n % 10 == 9 {
            (new_message(from, to(&carol), &text), false)
        } else {
            (new_message(from, to(peer), &text), true)
        }
    };
    let fetch = |request| {
        let (store, a, b) = (store.clone(), alice.username.clone(), bob.username.clone());
        async move { store.direct_messages(&a, &b, request).await }
    };
    race_writers_against_a_forward_pager(&store, start.id, make, fetch).await;
}

/// A store that reports positions (`reports_positions`) answers, for
/// every new message, a position that grows with the order its lists use,
/// also when writers race; a resend has none. (The service publishes in
/// this order; a store that reports none is skipped here.)
pub async fn reported_positions_follow_the_store_order<S: FullStore>(store: Arc<S>) {
    if !store.reports_positions() {
        return;
    }
    let alice = seed_user(&*store, "alice").await;
    let mut writers = JoinSet::new();
    for w in 0..RACE_WRITERS {
        let (store, alice) = (Arc::clone(&store), alice.clone());
        writers.spawn(async move {
            let mut answered = Vec::new();
            for n in 0..20 {
                let new = new_message(&alice, MessageTarget::Global, &format!("{w}/{n}"));
                let (stored, position) = store
                    .insert_message_positioned(&new)
                    .await
                    .expect("insert succeeds");
                assert!(stored.is_new(), "a message without a client id is new");
                answered.push((
                    position.expect("a new message has a position"),
                    new.message.id,
                ));
            }
            answered
        });
    }
    let mut answered = Vec::new();
    while let Some(result) = writers.join_next().await {
        answered.extend(result.expect("writer finished"));
    }
    answered.sort_unstable();
    let by_position: Vec<MessageId> = answered.iter().map(|(_, id)| *id).collect();
    let listed = walk_back(PageRequest::<MessageId>::MAX_LIMIT, message_id, |p| {
        store.visible_messages(alice.id, &alice.username, p)
    })
    .await;
    assert_eq!(listed, by_position, "positions order messages as lists do");

    let keyed = new_message_with_client_id(&alice, MessageTarget::Global, "once", "k-pos");
    let (first, position) = store
        .insert_message_positioned(&keyed)
        .await
        .expect("stores");
    assert!(first.is_new() && position.is_some());
    let (again, none) = store
        .insert_message_positioned(&keyed)
        .await
        .expect("resends");
    assert!(!again.is_new());
    assert_eq!(
        none, None,
        "a resend stores nothing, so has no new position"
    );

    // Read back by id, a message has the position its insert answered
    // (what a `?since=` connection compares live frames with).
    for (position, id) in [answered[0], answered[answered.len() - 1]] {
        let (found, read) = store
            .message_by_id_positioned(id)
            .await
            .expect("reads")
            .expect("stored");
        assert_eq!((found.id, read), (id, Some(position)));
    }
    assert_eq!(
        store
            .message_by_id_positioned(MessageId::generate())
            .await
            .expect("reads"),
        None
    );
}

/// A cursor naming no stored message is `MessageNotFound` in every message
/// list, in either direction: never an empty page (a client would wait
/// forever) nor the whole history.
pub async fn unknown_cursors_are_message_not_found<S: FullStore>(store: Arc<S>) {
    let s = scene(&*store).await;
    let unknown = MessageId::generate();
    for cursor in [Cursor::Before(unknown), Cursor::After(unknown)] {
        let request = page(10, cursor);
        assert_eq!(
            store
                .visible_messages(s.alice.id, &s.alice.username, request)
                .await,
            Err(DomainError::MessageNotFound),
            "visible, {cursor:?}"
        );
        assert_eq!(
            store
                .direct_messages(&s.alice.username, &s.bob.username, request)
                .await,
            Err(DomainError::MessageNotFound),
            "direct, {cursor:?}"
        );
        assert_eq!(
            store.room_messages(s.r1, request).await,
            Err(DomainError::MessageNotFound),
            "room, {cursor:?}"
        );
    }
    // A known message is a position in every list, even one it is not in.
    let after_dm = store
        .room_messages(s.r1, page(10, Cursor::After(s.alice_to_bob.id)))
        .await
        .expect("reads");
    assert_eq!(ids_of(&after_dm), vec![s.in_r1.id]);
}

/// A fresh store lists nothing, with neither flag set.
pub async fn empty_lists_are_empty_pages<S: FullStore>(store: Arc<S>) {
    let users = store.list_users(latest()).await.expect("reads");
    assert!(users.items.is_empty() && !users.has_older && !users.has_newer);
    let alice = account("alice");
    let visible = store
        .visible_messages(alice.id, &alice.username, latest())
        .await
        .expect("reads");
    assert!(visible.items.is_empty() && !visible.has_older && !visible.has_newer);
    let direct = store
        .direct_messages(&alice.username, &username("bob"), latest())
        .await
        .expect("reads");
    assert!(direct.items.is_empty() && !direct.has_older && !direct.has_newer);
    let rooms = store
        .rooms_of_user(alice.id, alice.id, latest())
        .await
        .expect("reads");
    assert!(rooms.items.is_empty() && !rooms.has_older && !rooms.has_newer);
}

// ------------------------------------------------------------ revocations

/// Revoked tokens stay revoked until purged after their expiry; purging
/// counts what it forgot and leaves unexpired ones.
pub async fn revoked_tokens_are_remembered_until_purged<S: FullStore>(store: Arc<S>) {
    let t = now();
    let (live, expired, never) = (
        TokenId::generate(),
        TokenId::generate(),
        TokenId::generate(),
    );
    store
        .revoke(live, t + Duration::hours(1))
        .await
        .expect("revokes");
    store
        .revoke(expired, t - Duration::hours(1))
        .await
        .expect("revokes");
    assert!(store.is_revoked(live).await.expect("reads"));
    assert!(store.is_revoked(expired).await.expect("reads"));
    assert!(!store.is_revoked(never).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 1);
    assert!(store.is_revoked(live).await.expect("reads"));
    assert!(!store.is_revoked(expired).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 0);
    assert_eq!(
        store
            .purge_expired(t + Duration::hours(2))
            .await
            .expect("purges"),
        1
    );
    assert!(!store.is_revoked(live).await.expect("reads"));
}

/// Revoking a token twice is fine; it stays revoked.
pub async fn revoking_twice_is_harmless<S: FullStore>(store: Arc<S>) {
    let t = now();
    let token = TokenId::generate();
    store
        .revoke(token, t + Duration::hours(1))
        .await
        .expect("revokes");
    store
        .revoke(token, t + Duration::hours(1))
        .await
        .expect("revokes again");
    assert!(store.is_revoked(token).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 0);
}

// ----------------------------------------------------------------- health

/// A working store says so.
pub async fn the_health_check_passes<S: FullStore>(store: Arc<S>) {
    assert_eq!(store.check().await, Ok(()));
}

// --------------------------------------------------------- changing messages

fn content(text: &str) -> MessageContent {
    MessageContent::parse(text).expect("test content is valid")
}

/// Every position a store has handed out so far is below this one.
async fn next_position<S: FullStore>(store: &S) -> u64 {
    store.latest_position().await.expect("position reads") + 1
}

/// An edit keeps the message's id and place, replaces its content, sets
/// `edited_at`, and is a change at a new position after everything
/// stored before it.
pub async fn an_edit_replaces_the_content_and_takes_a_new_position<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let first = post(&*store, &new_message(&alice, MessageTarget::Global, "helo")).await;
    let second = post(&*store, &new_message(&alice, MessageTarget::Global, "two")).await;
    let floor = next_position(&*store).await;
    let at = now();
    let changed = store
        .edit_message(first.id, &content("hello"), at)
        .await
        .expect("edit succeeds");
    assert_eq!(changed.message.content.as_str(), "hello");
    assert_eq!(changed.message.edited_at, Some(at));
    assert_eq!(changed.message.created_at, first.created_at);
    let position = changed.position.expect("an edit is a change");
    assert!(position >= floor, "{position} after everything before it");
    assert_eq!(store.latest_position().await, Ok(position));
    let read = store.message_by_id(first.id).await.expect("reads");
    assert_eq!(read, Some(changed.message));
    let history = store
        .visible_messages(alice.id, &alice.username, latest())
        .await
        .expect("reads");
    assert_eq!(
        ids_of(&history),
        vec![first.id, second.id],
        "its place is kept"
    );
    assert_eq!(history.items[0].content.as_str(), "hello");
}

/// A deleted message keeps its place, loses its reactions, and can be
/// neither edited nor reacted to (`MessageDeleted`).
pub async fn a_deleted_message_is_a_tombstone_that_cannot_change<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let m = post(&*store, &new_message(&alice, to(&bob), "oops")).await;
    store
        .add_reaction(m.id, bob.id, &emoji("👍"))
        .await
        .expect("reacts");
    let at = now();
    let deleted = store.delete_message(m.id, at).await.expect("deletes");
    assert!(deleted.position.is_some());
    assert_eq!(deleted.message.deleted_at, Some(at));
    assert!(deleted.message.reactions.is_empty());
    let page = store
        .direct_messages(&alice.username, &bob.username, latest())
        .await
        .expect("reads");
    assert_eq!(ids_of(&page), vec![m.id], "a tombstone keeps its place");
    assert!(page.items[0].is_deleted());
    assert_eq!(
        store.edit_message(m.id, &content("again"), now()).await,
        Err(DomainError::MessageDeleted)
    );
    assert_eq!(
        store.add_reaction(m.id, alice.id, &emoji("👍")).await,
        Err(DomainError::MessageDeleted)
    );
    assert_eq!(
        store.remove_reaction(m.id, bob.id, &emoji("👍")).await,
        Err(DomainError::MessageDeleted)
    );
}

/// Deleting is idempotent: the second deletion changes nothing and keeps
/// the first one's time.
pub async fn deleting_twice_changes_nothing_the_second_time<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let m = post(&*store, &new_message(&alice, MessageTarget::Global, "x")).await;
    let first = store.delete_message(m.id, now()).await.expect("deletes");
    let latest_position = store.latest_position().await.expect("reads");
    let again = store
        .delete_message(m.id, now() + Duration::seconds(5))
        .await
        .expect("deletes again");
    assert_eq!(again.position, None);
    assert_eq!(again.message.deleted_at, first.message.deleted_at);
    assert_eq!(store.latest_position().await, Ok(latest_position));
}

/// One reaction per user per emoji; adding it again or removing one that
/// is not there changes nothing; emojis come in the order first used.
pub async fn reactions_are_one_per_user_per_emoji_in_first_use_order<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let m = post(&*store, &new_message(&alice, MessageTarget::Global, "x")).await;
    let up = emoji("👍");
    let heart = emoji("❤️");
    let a = store
        .add_reaction(m.id, bob.id, &heart)
        .await
        .expect("reacts");
    assert!(a.position.is_some());
    let b = store
        .add_reaction(m.id, alice.id, &up)
        .await
        .expect("reacts");
    let c = store.add_reaction(m.id, bob.id, &up).await.expect("reacts");
    assert!(
        b.position < c.position,
        "each change takes the next position"
    );
    let again = store
        .add_reaction(m.id, bob.id, &up)
        .await
        .expect("idempotent");
    assert_eq!(
        again.position, None,
        "the same reaction twice changes nothing"
    );
    let reactions = &again.message.reactions;
    assert_eq!(reactions.len(), 2);
    assert_eq!(reactions[0].emoji, heart);
    assert_eq!(reactions[0].count, 1);
    assert_eq!(reactions[1].emoji, up);
    assert_eq!(reactions[1].count, 2);
    assert_eq!(
        reactions[1].users,
        vec![alice.username.clone(), bob.username.clone()]
    );
    let none = store
        .remove_reaction(m.id, alice.id, &heart)
        .await
        .expect("idempotent");
    assert_eq!(none.position, None, "alice never reacted with a heart");
    let removed = store
        .remove_reaction(m.id, bob.id, &up)
        .await
        .expect("removes");
    assert!(removed.position.is_some());
    assert_eq!(
        removed.message.reactions[1].users,
        vec![alice.username.clone()]
    );
    let read = store.message_by_id(m.id).await.expect("reads");
    assert_eq!(read.map(|m| m.reactions), Some(removed.message.reactions));
}

/// `count` is exact; `users` lists at most 20 names.
pub async fn reactions_of_many_users_are_counted_exactly<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let m = post(&*store, &new_message(&alice, MessageTarget::Global, "x")).await;
    for i in 0..25 {
        let user = seed_user(&*store, &format!("fan{i:02}")).await;
        store
            .add_reaction(m.id, user.id, &emoji("🎉"))
            .await
            .expect("reacts");
    }
    let read = store
        .message_by_id(m.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(read.reactions.len(), 1);
    assert_eq!(read.reactions[0].count, 25);
    assert_eq!(read.reactions[0].users.len(), 20);
    assert_eq!(read.reactions[0].users[0].as_str(), "fan00");
}

/// Replies page like any list, oldest first; the parent counts the
/// replies that are not deleted.
pub async fn replies_count_and_page_in_their_thread<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let members = room("r", alice.id, &[bob.id]);
    store.create_room(&members).await.expect("room");
    let target = MessageTarget::Room(members.id);
    let parent = post(&*store, &new_message(&alice, target.clone(), "question")).await;
    let other = post(&*store, &new_message(&alice, target.clone(), "unrelated")).await;
    let mut replies = Vec::new();
    for i in 0..5 {
        let reply = post(
            &*store,
            &new_reply(&bob, target.clone(), &format!("a{i}"), parent.id),
        )
        .await;
        assert_eq!(reply.reply_to, Some(parent.id));
        replies.push(reply.id);
    }
    store
        .delete_message(replies[1], now())
        .await
        .expect("deletes");
    let read = store
        .message_by_id(parent.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(read.reply_count, 4, "the deleted reply does not count");
    let other = store
        .message_by_id(other.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(other.reply_count, 0);
    let back = walk_back(2, |m: &Message| m.id, |p| store.replies(parent.id, p)).await;
    assert_eq!(back, replies, "the thread, deleted replies as tombstones");
    let first = store
        .replies(parent.id, page(2, Cursor::After(replies[0])))
        .await
        .expect("reads");
    assert_eq!(ids_of(&first), replies[1..3].to_vec());
    assert_eq!(
        store
            .replies(MessageId::generate(), latest())
            .await
            .map(|p| p.items.len()),
        Err(DomainError::MessageNotFound)
    );
}

/// The store refuses a reply whose parent is in another conversation
/// (`BadReplyTo`), or does not exist, and stores nothing.
pub async fn a_reply_must_stay_in_its_parents_conversation<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let global = post(&*store, &new_message(&alice, MessageTarget::Global, "g")).await;
    let dm = post(&*store, &new_message(&alice, to(&bob), "d")).await;
    let members = room("r", alice.id, &[bob.id]);
    store.create_room(&members).await.expect("room");
    let in_room = MessageTarget::Room(members.id);
    for (target, parent) in [
        (in_room.clone(), global.id),
        (MessageTarget::Global, dm.id),
        (to(&carol), dm.id),
        (in_room.clone(), MessageId::generate()),
    ] {
        let reply = new_reply(&alice, target, "r", parent);
        let refused = store.insert_message(&reply).await;
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(store.message_by_id(reply.message.id).await, Ok(None));
    }
    // The other party answering in the same direct conversation is fine.
    let answer = post(&*store, &new_reply(&bob, to(&alice), "yes", dm.id)).await;
    assert_eq!(answer.reply_to, Some(dm.id));
}

/// After a position: messages stored after it (`New`), and messages
/// changed after it at their latest change (`Updated`), in position
/// order, each with its current state.
pub async fn changes_after_a_position_are_new_and_changed_messages_in_order<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let old1 = post(&*store, &new_message(&alice, MessageTarget::Global, "old1")).await;
    let old2 = post(&*store, &new_message(&alice, MessageTarget::Global, "old2")).await;
    let old3 = post(&*store, &new_message(&alice, to(&bob), "old3")).await;
    let since = store.latest_position().await.expect("reads");
    let edited = store
        .edit_message(old2.id, &content("old2!"), now())
        .await
        .expect("edits");
    let fresh = post(&*store, &new_message(&bob, MessageTarget::Global, "new")).await;
    store
        .add_reaction(old1.id, bob.id, &emoji("👍"))
        .await
        .expect("reacts");
    let deleted = store.delete_message(old3.id, now()).await.expect("deletes");
    // old1 changes again: it comes once, at its latest change.
    let reacted = store
        .add_reaction(old1.id, alice.id, &emoji("👍"))
        .await
        .expect("reacts");
    let page = store
        .changes_after(bob.id, &bob.username, since, 50)
        .await
        .expect("reads");
    assert!(!page.has_more);
    let got: Vec<(bool, MessageId, u64)> = page
        .items
        .iter()
        .map(|item| {
            (
                matches!(item, StreamItem::New { .. }),
                item.message().id,
                item.position(),
            )
        })
        .collect();
    let expected = vec![
        (false, old2.id, edited.position.expect("a change")),
        (true, fresh.id, got.get(1).map_or(0, |g| g.2)),
        (false, old3.id, deleted.position.expect("a change")),
        (false, old1.id, reacted.position.expect("a change")),
    ];
    assert_eq!(got, expected);
    assert!(
        got[0].2 < got[1].2 && got[1].2 < got[2].2,
        "in position order"
    );
    assert_eq!(page.items[0].message().content.as_str(), "old2!");
    assert_eq!(page.items[3].message().reactions[0].count, 2);
    assert!(page.items[2].message().is_deleted());
    let after_all = store
        .changes_after(bob.id, &bob.username, got[3].2, 50)
        .await
        .expect("reads");
    assert!(after_all.items.is_empty() && !after_all.has_more);
}

/// The stream holds only what the viewer may read now: not others'
/// direct messages, not rooms they are not in.
pub async fn changes_after_show_only_what_the_viewer_may_read<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let members = room("r", alice.id, &[bob.id]);
    store.create_room(&members).await.expect("room");
    let in_room = post(
        &*store,
        &new_message(&alice, MessageTarget::Room(members.id), "r"),
    )
    .await;
    let dm = post(&*store, &new_message(&alice, to(&bob), "d")).await;
    let global = post(&*store, &new_message(&alice, MessageTarget::Global, "g")).await;
    for m in [&in_room, &dm, &global] {
        store
            .edit_message(m.id, &content("edited"), now())
            .await
            .expect("edits");
    }
    let all = |viewer: &chat_domain::UserAccount| {
        let store = Arc::clone(&store);
        let (id, name) = (viewer.id, viewer.username.clone());
        async move {
            let page = store.changes_after(id, &name, 0, 50).await.expect("reads");
            let mut ids = sorted(page.items.iter().map(|i| i.message().id).collect());
            ids.dedup();
            ids
        }
    };
    assert_eq!(all(&bob).await, sorted(vec![in_room.id, dm.id, global.id]));
    assert_eq!(all(&carol).await, vec![global.id]);
    store
        .remove_member(members.id, bob.id)
        .await
        .expect("leaves");
    assert_eq!(all(&bob).await, sorted(vec![dm.id, global.id]));
}

/// Reading the stream page by page from each page's last position gives
/// every item once, in order.
pub async fn changes_after_page_without_gaps_or_repeats<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            post(
                &*store,
                &new_message(&alice, MessageTarget::Global, &format!("m{i}")),
            )
            .await
            .id,
        );
    }
    for id in ids.iter().step_by(3) {
        store
            .edit_message(*id, &content("e"), now())
            .await
            .expect("edits");
    }
    let whole = store
        .changes_after(alice.id, &alice.username, 0, 200)
        .await
        .expect("reads");
    assert_eq!(whole.items.len(), 16);
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .changes_after(alice.id, &alice.username, after, 5)
            .await
            .expect("reads");
        assert!(page.items.len() <= 5);
        walked.extend(page.items.iter().map(StreamItem::position));
        match page.items.last() {
            Some(last) if page.has_more => after = last.position(),
            _ => break,
        }
    }
    let expected: Vec<u64> = whole.items.iter().map(StreamItem::position).collect();
    assert_eq!(walked, expected);
}

/// Changing an unknown message is `MessageNotFound`.
pub async fn changes_to_unknown_messages_are_not_found<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let id = MessageId::generate();
    assert_eq!(
        store.edit_message(id, &content("x"), now()).await,
        Err(DomainError::MessageNotFound)
    );
    assert_eq!(
        store.delete_message(id, now()).await,
        Err(DomainError::MessageNotFound)
    );
    assert_eq!(
        store.add_reaction(id, alice.id, &emoji("👍")).await,
        Err(DomainError::MessageNotFound)
    );
    assert_eq!(
        store.remove_reaction(id, alice.id, &emoji("👍")).await,
        Err(DomainError::MessageNotFound)
    );
}
