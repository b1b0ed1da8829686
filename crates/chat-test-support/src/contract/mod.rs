//! The store contract: what every adapter of the store ports must do, one
//! public async function per rule. [`store_contract_tests!`](crate::store_contract_tests)
//! turns each into its own `#[tokio::test]`; they can also be called
//! directly. Each case expects a fresh, empty store.

mod health;
mod message_changes;
mod message_order;
mod messages;
mod read_state;
mod revocations;
mod rooms;
mod users;

pub use health::*;
pub use message_changes::*;
pub use message_order::*;
pub use messages::*;
pub use read_state::*;
pub use revocations::*;
pub use rooms::*;
pub use users::*;

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

// Helpers the cases share.
pub(super) async fn post<S: FullStore>(store: &S, new: &NewMessage) -> Message {
    match store.insert_message(new).await.expect("insert succeeds") {
        Stored::Created(message) => message,
        Stored::Duplicate(_) => panic!("a message without a used client id is new"),
    }
}

pub(super) fn ids_of(page: &Page<Message>) -> Vec<MessageId> {
    page.items.iter().map(|m| m.id).collect()
}

pub(super) fn sorted<I: Ord>(mut ids: Vec<I>) -> Vec<I> {
    ids.sort();
    ids
}

pub(super) fn latest<I>() -> PageRequest<I> {
    page(PageRequest::<I>::MAX_LIMIT, Cursor::Latest)
}

/// Every item id of a list, read newest page first with `Before` cursors,
/// checking each page's size and flags on the way, and that no item comes
/// twice. The result is in the store's order, oldest first.
pub(super) async fn walk_back<F, Fut, T>(
    limit: usize,
    id: fn(&T) -> MessageId,
    mut fetch: F,
) -> Vec<MessageId>
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
pub(super) async fn walk_forward<F, Fut, T>(
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

pub(super) fn assert_no_repeats(ids: &[MessageId]) {
    let unique: HashSet<MessageId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message comes twice");
}

pub(super) fn message_id(m: &Message) -> MessageId {
    m.id
}

/// Three users, two rooms and one message of every kind, for the
/// visibility cases. `r1` has alice and bob, `r2` bob and carol.
pub(super) struct Scene {
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

pub(super) async fn scene<S: FullStore>(store: &S) -> Scene {
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

pub(super) async fn visible_ids<S: FullStore>(
    store: &S,
    user: &chat_domain::UserAccount,
) -> Vec<MessageId> {
    let got = store
        .visible_messages(user.id, &user.username, latest())
        .await
        .expect("visible messages read");
    ids_of(&got)
}
