//! Read markers: what a move publishes, to whom, and what is refused
//! before the store is asked.

use super::*;
use crate::read_state::{Activity, Conversation, ConversationRef, ReadMarker};

/// The store's answer for any conversation after a move.
fn answer(conversation: ConversationRef) -> Conversation {
    Conversation {
        name: conversation.id(),
        conversation,
        last_message: None,
        unread_count: 0,
        last_read_id: None,
        peer_last_read_id: None,
        activity: Activity {
            position: 0,
            key: Uuid::nil(),
        },
    }
}

/// Makes `message_by_id` find `message`.
fn knows(h: &mut Harness, message: &Message) {
    let known = message.clone();
    h.messages
        .expect_message_by_id()
        .returning(move |id| Ok((id == known.id).then(|| known.clone())));
}

#[tokio::test]
async fn a_direct_read_goes_to_the_reader_and_as_a_receipt_to_the_other_party() {
    let mut h = Harness::new();
    let dm = stored_message(&alice(), MessageTarget::Direct(name("bob")), "hi");
    knows(&mut h, &dm);
    h.reads
        .expect_mark_read()
        .times(1)
        .withf(|reader, conversation, _| {
            *reader == bob().id && *conversation == ConversationRef::Direct(name("alice"))
        })
        .returning(|_, _, _| Ok(Some(42)));
    h.reads
        .expect_conversation()
        .returning(|_, conversation| Ok(Some(answer(conversation.clone()))));
    let published = record_publishes(&mut h.notifier);
    let service = h.build();

    let now = service
        .mark_read(
            &caller(&bob()),
            &ConversationRef::Direct(name("ALICE")),
            dm.id,
        )
        .await
        .expect("marks");
    assert_eq!(now.conversation, ConversationRef::Direct(name("alice")));
    let read = |conversation| ReadMarker {
        conversation,
        reader: name("bob"),
        message_id: dm.id,
    };
    assert_eq!(
        published.calls(),
        vec![
            (
                Event::Read {
                    read: read(ConversationRef::Direct(name("alice"))),
                    position: Some(42),
                    receipt: false
                },
                Audience::Users(vec![bob().id])
            ),
            (
                Event::Read {
                    read: read(ConversationRef::Direct(name("bob"))),
                    position: Some(42),
                    receipt: true
                },
                Audience::Users(vec![alice().id])
            ),
        ]
    );
}

#[tokio::test]
async fn a_read_that_moves_nothing_publishes_nothing() {
    let mut h = Harness::new();
    let global = stored_message(&alice(), MessageTarget::Global, "hi");
    knows(&mut h, &global);
    h.reads
        .expect_mark_read()
        .times(1)
        .returning(|_, _, _| Ok(None));
    h.reads
        .expect_conversation()
        .returning(|_, conversation| Ok(Some(answer(conversation.clone()))));
    h.notifier.expect_publish().times(0);
    let service = h.build();

    service
        .mark_read(&caller(&bob()), &ConversationRef::Global, global.id)
        .await
        .expect("answers the conversation");
}

#[tokio::test]
async fn a_message_outside_the_conversation_or_a_room_not_joined_is_refused() {
    let mut h = Harness::new().with_room(room(1, &alice(), &[]));
    let dm = stored_message(&alice(), MessageTarget::Direct(name("carol")), "psst");
    knows(&mut h, &dm);
    h.reads.expect_mark_read().times(0);
    h.notifier.expect_publish().times(0);
    let service = h.build();
    let bob = caller(&bob());

    for conversation in [
        ConversationRef::Direct(name("alice")),
        ConversationRef::Global,
        ConversationRef::Direct(name("carol")),
    ] {
        assert_eq!(
            service.mark_read(&bob, &conversation, dm.id).await,
            Err(crate::DomainError::MessageNotFound),
            "{conversation:?}"
        );
    }
    assert_eq!(
        service
            .mark_read(&bob, &ConversationRef::Room(room_id(1)), dm.id)
            .await,
        Err(crate::DomainError::NotAMember)
    );
    assert_eq!(
        service
            .mark_read(&bob, &ConversationRef::Direct(name("nobody")), dm.id)
            .await,
        Err(crate::DomainError::UserNotFound)
    );
}
