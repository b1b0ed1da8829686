//! Sending and reading messages.

use mockall::Sequence;

use super::*;
use crate::error::DomainError;
use crate::pagination::PageRequest;
use crate::ports::InsertInFlight;
use crate::service::SendInFlight;
use crate::service::SendMessage;

fn text(content: &str) -> SendMessage {
    SendMessage {
        content: content.to_owned(),
        ..SendMessage::default()
    }
}

/// A harness whose store and notifier must not be touched by the send.
fn refusing() -> Harness {
    let mut h = Harness::new();
    h.messages.expect_insert_message().times(0);
    h.notifier.expect_publish().times(0);
    h
}

/// Sends as alice through a harness that must refuse, and returns the error.
async fn refused(h: Harness, request: SendMessage) -> DomainError {
    h.build()
        .send_message(&caller(&alice()), request)
        .await
        .expect_err("the send is refused")
}

#[tokio::test]
async fn a_spoofed_sender_is_refused_and_nothing_happens() {
    let request = SendMessage {
        sender: Some("bob".into()),
        ..text("hi")
    };
    assert_eq!(
        refused(refusing(), request).await,
        DomainError::SenderMismatch
    );
}

#[tokio::test]
async fn a_malformed_sender_is_a_mismatch() {
    let request = SendMessage {
        sender: Some("<alice>".into()),
        ..text("hi")
    };
    assert_eq!(
        refused(refusing(), request).await,
        DomainError::SenderMismatch
    );
}

#[tokio::test]
async fn the_callers_own_name_in_another_case_is_accepted_as_sender() {
    let mut h = Harness::new();
    let inserts = record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);
    let request = SendMessage {
        sender: Some("ALICE".into()),
        ..text("hi")
    };

    let stored = h
        .build()
        .send_message(&caller(&alice()), request)
        .await
        .expect("sends");

    assert_eq!(inserts.calls().len(), 1);
    assert_eq!(published.calls().len(), 1);
    assert_eq!(stored.message().sender, alice().username);
}

#[tokio::test]
async fn empty_blank_or_invisible_content_is_refused() {
    for blank in ["", "   ", "\n\t ", "\u{00a0}\u{200b}\u{3000}"] {
        let err = refused(refusing(), text(blank)).await;
        assert_eq!(err, DomainError::EmptyContent, "{blank:?}");
    }
}

#[tokio::test]
async fn content_over_4000_characters_is_refused() {
    let err = refused(refusing(), text(&"x".repeat(4001))).await;
    assert!(matches!(
        err,
        DomainError::Validation {
            field: "content",
            ..
        }
    ));
}

#[tokio::test]
async fn a_recipient_and_a_room_together_are_refused() {
    let mut h = refusing();
    h.rooms.expect_room_by_id().times(0);
    let request = SendMessage {
        recipient: Some("bob".into()),
        room_id: Some(room_id(1)),
        ..text("hi")
    };
    assert!(matches!(
        refused(h, request).await,
        DomainError::Validation { .. }
    ));
}

#[tokio::test]
async fn an_unknown_recipient_is_user_not_found() {
    let request = SendMessage {
        recipient: Some("nobody".into()),
        ..text("hi")
    };
    assert_eq!(
        refused(refusing(), request).await,
        DomainError::UserNotFound
    );
}

#[tokio::test]
async fn an_unknown_room_is_room_not_found() {
    let request = SendMessage {
        room_id: Some(room_id(1)),
        ..text("hi")
    };
    assert_eq!(
        refused(refusing(), request).await,
        DomainError::RoomNotFound
    );
}

#[tokio::test]
async fn a_room_the_sender_is_not_in_is_not_a_member() {
    let h = refusing().with_room(room(1, &bob(), &[&bob(), &carol()]));
    let request = SendMessage {
        room_id: Some(room_id(1)),
        ..text("hi")
    };
    assert_eq!(refused(h, request).await, DomainError::NotAMember);
}

#[tokio::test]
async fn an_invalid_client_id_is_refused() {
    for bad in ["", "has space", &"k".repeat(65)] {
        let request = SendMessage {
            client_id: Some(bad.to_owned()),
            ..text("hi")
        };
        let err = refused(refusing(), request).await;
        assert!(
            matches!(
                err,
                DomainError::Validation {
                    field: "client_id",
                    ..
                }
            ),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_direct_message_is_stored_then_sent_to_exactly_its_two_parties() {
    let mut h = Harness::new();
    let inserts = record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);
    let request = SendMessage {
        recipient: Some("BOB".into()),
        client_id: Some("k-1".into()),
        ..text("  hello bob  ")
    };

    let stored = h
        .build()
        .send_message(&caller(&alice()), request)
        .await
        .expect("sends");

    let Stored::Created(message) = &stored else {
        panic!("expected a new message, got {stored:?}");
    };
    assert_eq!(
        inserts.calls(),
        [NewMessage {
            message: Message::new(
                message.id,
                alice().username,
                MessageTarget::Direct(bob().username),
                MessageContent::parse("hello bob").expect("valid"),
                now(),
            ),
            sender_id: alice().id,
            client_id: Some(crate::values::ClientId::parse("k-1").expect("valid")),
        }]
    );
    assert_eq!(
        published.calls(),
        [(
            Event::message(message.clone()),
            Audience::Users(vec![alice().id, bob().id])
        )]
    );
}

#[tokio::test]
async fn a_direct_message_to_oneself_reaches_only_oneself() {
    let mut h = Harness::new();
    record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);
    let request = SendMessage {
        recipient: Some("alice".into()),
        ..text("note to self")
    };

    h.build()
        .send_message(&caller(&alice()), request)
        .await
        .expect("sends");

    let calls = published.calls();
    let [(_, audience)] = calls.as_slice() else {
        panic!("expected one publish, got {calls:?}");
    };
    assert_eq!(*audience, Audience::Users(vec![alice().id]));
}

#[tokio::test]
async fn a_room_message_goes_to_the_rooms_members() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice(), &carol()]));
    record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);
    let request = SendMessage {
        room_id: Some(room_id(1)),
        ..text("hi all")
    };

    let stored = h
        .build()
        .send_message(&caller(&alice()), request)
        .await
        .expect("sends");

    assert_eq!(stored.message().target, MessageTarget::Room(room_id(1)));
    assert_eq!(
        published.calls(),
        [(
            Event::message(stored.message().clone()),
            Audience::Users(vec![bob().id, alice().id, carol().id])
        )]
    );
}

#[tokio::test]
async fn a_global_message_goes_to_everyone() {
    let mut h = Harness::new();
    record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);

    let stored = h
        .build()
        .send_message(&caller(&alice()), text("hello world"))
        .await
        .expect("sends");

    assert_eq!(stored.message().target, MessageTarget::Global);
    assert_eq!(
        published.calls(),
        [(Event::message(stored.message().clone()), Audience::Everyone)]
    );
}

#[tokio::test]
async fn a_message_is_published_only_after_it_is_stored() {
    let mut h = Harness::new();
    let mut order = Sequence::new();
    h.messages
        .expect_insert_message()
        .times(1)
        .in_sequence(&mut order)
        .returning(created);
    h.notifier
        .expect_publish()
        .times(1)
        .in_sequence(&mut order)
        .return_const(());

    h.build()
        .send_message(&caller(&alice()), text("in order"))
        .await
        .expect("sends");
}

#[tokio::test]
async fn a_failed_insert_publishes_nothing() {
    let mut h = Harness::new();
    h.messages
        .expect_insert_message()
        .times(1)
        .returning(|_| Err(DomainError::StoreUnavailable));
    h.notifier.expect_publish().times(0);

    let result = h
        .build()
        .send_message(&caller(&alice()), text("lost"))
        .await;

    assert_eq!(result, Err(DomainError::StoreUnavailable));
}

#[tokio::test]
async fn a_duplicate_client_id_returns_the_original_and_publishes_nothing() {
    let original = stored_message(&alice(), MessageTarget::Global, "first");
    let mut h = Harness::new();
    let answer = original.clone();
    h.messages
        .expect_insert_message()
        .times(1)
        .withf(|new| new.client_id.as_ref().map(|c| c.as_str()) == Some("k-1"))
        .returning(move |_| Ok(Stored::Duplicate(answer.clone())));
    h.notifier.expect_publish().times(0);
    let request = SendMessage {
        client_id: Some("k-1".into()),
        ..text("first")
    };

    let stored = h
        .build()
        .send_message(&caller(&alice()), request)
        .await
        .expect("a resend succeeds");

    assert_eq!(stored, Stored::Duplicate(original));
}

#[tokio::test]
async fn messages_between_others_are_forbidden_and_not_read() {
    let mut h = Harness::new();
    h.messages.expect_direct_messages().times(0);

    let result = h
        .build()
        .messages_between(&caller(&carol()), "alice", "bob", PageRequest::latest())
        .await;

    assert!(matches!(result, Err(DomainError::Forbidden(_))));
}

#[tokio::test]
async fn a_party_reads_direct_messages_under_canonical_names() {
    let mut h = Harness::new();
    h.messages
        .expect_direct_messages()
        .times(1)
        .withf(|a, b, page| {
            a.as_str() == "alice" && b.as_str() == "bob" && *page == PageRequest::latest()
        })
        .returning(|_, _, _| Ok(empty_page()));

    let page = h
        .build()
        .messages_between(&caller(&alice()), "ALICE", "Bob", PageRequest::latest())
        .await;

    assert_eq!(page, Ok(empty_page()));
}

#[tokio::test]
async fn the_second_party_may_read_too() {
    let mut h = Harness::new();
    h.messages
        .expect_direct_messages()
        .times(1)
        .withf(|a, b, _| a.as_str() == "alice" && b.as_str() == "bob")
        .returning(|_, _, _| Ok(empty_page()));

    let page = h
        .build()
        .messages_between(&caller(&bob()), "alice", "BOB", PageRequest::latest())
        .await;

    assert_eq!(page, Ok(empty_page()));
}

#[tokio::test]
async fn messages_with_an_unknown_user_are_user_not_found() {
    let mut h = Harness::new();
    h.messages.expect_direct_messages().times(0);

    let result = h
        .build()
        .messages_between(&caller(&alice()), "alice", "nobody", PageRequest::latest())
        .await;

    assert_eq!(result, Err(DomainError::UserNotFound));
}

/// Makes `message_by_id` find `message`, and only it.
fn store_holds(h: &mut Harness, message: &Message) {
    let known = message.clone();
    h.messages
        .expect_message_by_id()
        .returning(move |id| Ok((id == known.id).then(|| known.clone())));
}

#[tokio::test]
async fn visible_messages_are_asked_for_the_caller() {
    let mut h = Harness::new();
    let cursor = stored_message(&bob(), MessageTarget::Global, "hi all");
    store_holds(&mut h, &cursor);
    let page = PageRequest::new(Some(10), None, Some(cursor.id)).expect("valid");
    h.messages
        .expect_visible_messages()
        .times(1)
        .withf(move |viewer, viewer_name, asked| {
            *viewer == alice().id && *viewer_name == alice().username && *asked == page
        })
        .returning(|_, _, _| Ok(empty_page()));

    let result = h.build().visible_messages(&caller(&alice()), page).await;

    assert_eq!(result, Ok(empty_page()));
}

#[tokio::test]
async fn a_cursor_naming_someone_elses_direct_message_is_not_found() {
    let theirs = stored_message(&bob(), MessageTarget::Direct(carol().username), "psst");
    for (before, after) in [(Some(theirs.id), None), (None, Some(theirs.id))] {
        let page = PageRequest::new(Some(10), before, after).expect("valid");
        let mut h = Harness::new();
        store_holds(&mut h, &theirs);
        h.messages.expect_visible_messages().times(0);
        h.messages.expect_direct_messages().times(0);
        let service = h.build();

        let visible = service.visible_messages(&caller(&alice()), page).await;
        let between = service
            .messages_between(&caller(&alice()), "alice", "bob", page)
            .await;

        assert_eq!(visible, Err(DomainError::MessageNotFound));
        assert_eq!(between, Err(DomainError::MessageNotFound));
    }
}

#[tokio::test]
async fn an_unknown_cursor_is_not_found_before_any_listing() {
    let mut h = Harness::new();
    let known = stored_message(&bob(), MessageTarget::Global, "hi");
    store_holds(&mut h, &known);
    h.messages.expect_visible_messages().times(0);
    let page = PageRequest::new(Some(10), Some(MessageId::generate()), None).expect("valid");

    let result = h.build().visible_messages(&caller(&alice()), page).await;

    assert_eq!(result, Err(DomainError::MessageNotFound));
}

#[tokio::test]
async fn the_callers_own_direct_messages_are_valid_cursors() {
    let mut h = Harness::new();
    let own = stored_message(&bob(), MessageTarget::Direct(alice().username), "hi alice");
    store_holds(&mut h, &own);
    h.messages
        .expect_direct_messages()
        .times(1)
        .returning(|_, _, _| Ok(empty_page()));
    let page = PageRequest::new(Some(10), Some(own.id), None).expect("valid");

    let result = h
        .build()
        .messages_between(&caller(&alice()), "alice", "bob", page)
        .await;

    assert_eq!(result, Ok(empty_page()));
}

/// A harness whose store reports positions: the send goes through
/// `queue_message`, never `insert_message` nor `insert_message_positioned`.
fn positioned() -> Harness {
    let mut h = Harness::new();
    h.messages.expect_reports_positions().return_const(true);
    h.messages.expect_insert_message().times(0);
    h.messages.expect_insert_message_positioned().times(0);
    h
}

/// `queue_message`'s answer for an insert that answers `answer`.
fn queued(answer: DomainResult<(Stored, Option<u64>)>) -> DomainResult<InsertInFlight> {
    Ok(Box::pin(std::future::ready(answer)))
}

#[tokio::test]
async fn with_positions_a_new_message_is_stored_then_published() {
    let mut h = positioned();
    let mut order = Sequence::new();
    h.messages
        .expect_queue_message()
        .times(1)
        .in_sequence(&mut order)
        .returning(|new| queued(created(new).map(|stored| (stored, Some(42)))));
    let published = Recorder::new();
    let sink = published.clone();
    h.notifier
        .expect_publish()
        .times(1)
        .in_sequence(&mut order)
        .returning(move |event, audience| sink.push((event, audience)));

    let stored = h
        .build()
        .send_message(&caller(&alice()), text("positioned"))
        .await
        .expect("sends");

    assert!(stored.is_new());
    let event = Event::Message {
        message: stored.message().clone(),
        position: Some(42),
    };
    assert_eq!(published.calls(), [(event, Audience::Everyone)]);
}

#[tokio::test]
async fn with_positions_a_duplicate_or_a_failure_publishes_nothing() {
    let original = stored_message(&alice(), MessageTarget::Global, "first");
    let mut h = positioned();
    let found = original.clone();
    h.messages
        .expect_queue_message()
        .times(1)
        .returning(move |_| queued(Ok((Stored::Duplicate(original.clone()), None))));
    h.messages
        .expect_queue_message()
        .times(1)
        .returning(|_| queued(Err(DomainError::StoreUnavailable)));
    // A resend's answer names the original's position (its ack's cursor).
    h.messages
        .expect_message_by_id_positioned()
        .times(1)
        .returning(move |_| Ok(Some((found.clone(), Some(7)))));
    h.notifier.expect_publish().times(0);
    let service = h.build();

    let again = service
        .send_message_positioned(&caller(&alice()), text("first"))
        .await;
    assert!(
        matches!(again, Ok((Stored::Duplicate(_), Some(7)))),
        "{again:?}"
    );
    let lost = service.send_message(&caller(&alice()), text("lost")).await;
    assert_eq!(lost, Err(DomainError::StoreUnavailable));
}

#[tokio::test]
async fn a_store_that_promises_positions_must_give_them() {
    let mut h = positioned();
    h.messages
        .expect_queue_message()
        .returning(|new| queued(created(new).map(|stored| (stored, None))));
    h.notifier.expect_publish().times(0);

    let result = h
        .build()
        .send_message(&caller(&alice()), text("no position"))
        .await;

    assert!(
        matches!(result, Err(DomainError::Internal(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_user_over_the_message_rate_is_refused_and_nothing_is_stored() {
    let mut h = Harness::new();
    let inserts = record_inserts(&mut h.messages);
    let published = record_publishes(&mut h.notifier);
    let service = h.build().with_message_rate_limit(2);
    // Two callers of one user: two connections, or a connection and HTTP.
    let (phone, laptop) = (caller(&alice()), caller(&alice()));

    for (n, who) in [&phone, &laptop, &phone, &laptop].into_iter().enumerate() {
        let sent = service.send_message(who, text(&format!("#{n}"))).await;
        assert!(sent.is_ok(), "#{n} is within the burst of twice the rate");
    }
    let over = service.send_message(&laptop, text("one too many")).await;

    assert!(
        matches!(over, Err(DomainError::RateLimited { .. })),
        "{over:?}"
    );
    assert_eq!(inserts.calls().len(), 4, "nothing stored over the limit");
    assert_eq!(published.calls().len(), 4);
    let bob_sends = service.send_message(&caller(&bob()), text("hi")).await;
    assert!(bob_sends.is_ok(), "the limit is per user");
}

#[tokio::test]
async fn sends_started_in_a_row_are_published_in_their_order_whatever_answers_first() {
    type Answer = tokio::sync::oneshot::Sender<DomainResult<(Stored, Option<u64>)>>;
    let mut h = positioned();
    let (answers, inserts): (Vec<Answer>, Vec<_>) =
        (0..3).map(|_| tokio::sync::oneshot::channel()).unzip();
    let inserts = Arc::new(Mutex::new(inserts.into_iter()));
    h.messages
        .expect_queue_message()
        .times(3)
        .returning(move |_| {
            let insert = inserts
                .lock()
                .expect("not poisoned")
                .next()
                .expect("queued");
            Ok(Box::pin(async move {
                insert.await.unwrap_or(Err(DomainError::StoreUnavailable))
            }))
        });
    let published = record_publishes(&mut h.notifier);
    let service = h.build();
    let me = caller(&alice());
    let mut started = Vec::new();
    for content in ["first", "second", "third"] {
        // Each is queued before the next is started; none waits for its
        // own insert to answer.
        started.push(
            service
                .start_send(&me, text(content))
                .await
                .expect("checked"),
        );
    }
    let [first, second, third]: [SendInFlight; 3] = started.try_into().expect("three sends");
    let [to_first, to_second, to_third]: [Answer; 3] = answers.try_into().expect("three");
    let messages: Vec<Message> = ["first", "second", "third"]
        .iter()
        .map(|content| stored_message(&alice(), MessageTarget::Global, content))
        .collect();

    // The third answers first: it waits for the two queued before it.
    to_third
        .send(Ok((Stored::Created(messages[2].clone()), Some(3))))
        .expect("listening");
    let third = tokio::spawn(third);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(
        published.calls().is_empty(),
        "published before the sends ahead of it"
    );
    // The second fails: that is its answer alone.
    to_second
        .send(Err(DomainError::RoomNotFound))
        .expect("listening");
    assert_eq!(second.await, Err(DomainError::RoomNotFound));
    assert!(
        published.calls().is_empty(),
        "the first may still precede it"
    );
    to_first
        .send(Ok((Stored::Created(messages[0].clone()), Some(1))))
        .expect("listening");
    assert_eq!(
        first.await,
        Ok((Stored::Created(messages[0].clone()), Some(1)))
    );
    let third = third.await.expect("ran");
    assert_eq!(third, Ok((Stored::Created(messages[2].clone()), Some(3))));

    let order: Vec<Option<MessageId>> = published
        .calls()
        .iter()
        .map(|(event, _)| event.message_id())
        .collect();
    assert_eq!(order, [Some(messages[0].id), Some(messages[2].id)]);
}
