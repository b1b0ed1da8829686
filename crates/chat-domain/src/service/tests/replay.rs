//! Recovery after a disconnect: `replay_since`, which also answers the
//! position of `since` as the store gives it.

use super::*;
use crate::error::{DomainError, DomainResult};
use crate::pagination::PageRequest;
use crate::ports::{StreamItem, StreamPage};
use crate::service::{Replay, Since};

/// A page a store might answer with: these messages, new after `since`.
fn page_of(messages: Vec<Message>) -> StreamPage {
    StreamPage {
        items: messages
            .into_iter()
            .zip(SINCE_POSITION + 1..)
            .map(|(message, position)| StreamItem::New { message, position })
            .collect(),
        has_more: false,
    }
}

fn empty_page() -> StreamPage {
    StreamPage::default()
}

/// The position the store answers for a known `since`.
const SINCE_POSITION: u64 = 41;

/// Makes `message_by_id_positioned` find exactly this message, once, at
/// [`SINCE_POSITION`].
fn knows(h: &mut Harness, message: &Message) {
    let (id, found) = (message.id, message.clone());
    h.messages
        .expect_message_by_id_positioned()
        .times(1)
        .withf(move |asked| *asked == id)
        .returning(move |_| Ok(Some((found.clone(), Some(SINCE_POSITION)))));
}

/// A successful replay's first page and the position of `since`.
fn replayed_page(page: StreamPage) -> DomainResult<Replay> {
    Ok(Replay {
        page,
        since_position: SINCE_POSITION,
    })
}

/// A harness whose visible feed must not be read.
fn no_replay(h: &mut Harness) {
    h.messages.expect_changes_after().times(0);
}

/// Expects one read of alice's stream of changes after the position of
/// `since`, `limit` long, and answers `answer`.
fn replays_for_alice(h: &mut Harness, _since: MessageId, limit: usize, answer: StreamPage) {
    h.messages
        .expect_changes_after()
        .times(1)
        .withf(move |viewer, viewer_name, after, asked| {
            *viewer == alice().id
                && *viewer_name == alice().username
                && *after == SINCE_POSITION
                && *asked == limit
        })
        .returning(move |_, _, _, _| Ok(answer.clone()));
}

#[tokio::test]
async fn a_global_message_replays_the_callers_visible_feed_after_it() {
    let since = stored_message(&bob(), MessageTarget::Global, "before the gap");
    let missed = stored_message(&carol(), MessageTarget::Global, "during the gap");
    let mut h = Harness::new();
    knows(&mut h, &since);
    replays_for_alice(&mut h, since.id, 100, page_of(vec![missed.clone()]));

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 100)
        .await;

    assert_eq!(replayed, replayed_page(page_of(vec![missed])));
}

#[tokio::test]
async fn the_replay_limit_is_capped_like_any_page() {
    let since = stored_message(&bob(), MessageTarget::Global, "x");
    let mut h = Harness::new();
    knows(&mut h, &since);
    replays_for_alice(
        &mut h,
        since.id,
        PageRequest::<MessageId>::MAX_LIMIT,
        empty_page(),
    );

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 10_000)
        .await;

    assert_eq!(replayed, replayed_page(empty_page()));
}

#[tokio::test]
async fn a_zero_limit_is_refused_before_any_read() {
    let mut h = Harness::new();
    h.messages.expect_message_by_id_positioned().times(0);
    no_replay(&mut h);

    let err = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(MessageId::generate()), 0)
        .await
        .expect_err("a limit of 0 is refused");

    assert!(
        matches!(err, DomainError::Validation { field: "limit", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_since_is_message_not_found_not_a_full_replay() {
    let mut h = Harness::new();
    h.messages
        .expect_message_by_id_positioned()
        .times(1)
        .returning(|_| Ok(None));
    no_replay(&mut h);

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(MessageId::generate()), 50)
        .await;

    assert_eq!(replayed, Err(DomainError::MessageNotFound));
}

#[tokio::test]
async fn someone_elses_direct_message_is_not_found() {
    let since = stored_message(&bob(), MessageTarget::Direct(carol().username), "psst");
    let mut h = Harness::new();
    knows(&mut h, &since);
    no_replay(&mut h);

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 50)
        .await;

    assert_eq!(replayed, Err(DomainError::MessageNotFound));
}

#[tokio::test]
async fn direct_messages_to_or_from_the_caller_are_valid_starting_points() {
    let received = stored_message(&bob(), MessageTarget::Direct(name("ALICE")), "hi");
    let sent = stored_message(&alice(), MessageTarget::Direct(bob().username), "hey");
    for since in [received, sent] {
        let mut h = Harness::new();
        knows(&mut h, &since);
        replays_for_alice(&mut h, since.id, 50, empty_page());

        let replayed = h
            .build()
            .replay_since(&caller(&alice()), Since::Message(since.id), 50)
            .await;

        assert_eq!(replayed, replayed_page(empty_page()), "{since:?}");
    }
}

#[tokio::test]
async fn a_message_of_a_room_the_caller_is_in_is_a_valid_starting_point() {
    let since = stored_message(&bob(), MessageTarget::Room(room_id(1)), "in the room");
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice()]));
    knows(&mut h, &since);
    replays_for_alice(&mut h, since.id, 50, empty_page());

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 50)
        .await;

    assert_eq!(replayed, replayed_page(empty_page()));
}

#[tokio::test]
async fn a_message_of_a_room_the_caller_is_not_in_is_not_found() {
    let since = stored_message(&bob(), MessageTarget::Room(room_id(1)), "members only");
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &carol()]));
    knows(&mut h, &since);
    no_replay(&mut h);

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 50)
        .await;

    assert_eq!(replayed, Err(DomainError::MessageNotFound));
}

#[tokio::test]
async fn a_message_of_a_room_that_is_gone_is_not_found() {
    let since = stored_message(&bob(), MessageTarget::Room(room_id(7)), "orphan");
    let mut h = Harness::new();
    knows(&mut h, &since);
    no_replay(&mut h);

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(since.id), 50)
        .await;

    assert_eq!(replayed, Err(DomainError::MessageNotFound));
}

#[tokio::test]
async fn a_store_failure_is_reported_as_it_is() {
    let mut h = Harness::new();
    h.messages
        .expect_message_by_id_positioned()
        .times(1)
        .returning(|_| Err(DomainError::StoreUnavailable));
    no_replay(&mut h);

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Message(MessageId::generate()), 50)
        .await;

    assert_eq!(replayed, Err(DomainError::StoreUnavailable));
}

#[tokio::test]
async fn a_cursor_replays_from_its_position_without_reading_a_message() {
    let missed = stored_message(&carol(), MessageTarget::Global, "during the gap");
    let mut h = Harness::new();
    h.messages.expect_message_by_id_positioned().times(0);
    replays_for_alice(&mut h, missed.id, 50, page_of(vec![missed.clone()]));

    let replayed = h
        .build()
        .replay_since(&caller(&alice()), Since::Position(SINCE_POSITION), 50)
        .await;

    assert_eq!(replayed, replayed_page(page_of(vec![missed])));
}
