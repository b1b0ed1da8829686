//! `ReadStore`: read markers, unread counts, the conversation list, and
//! marker moves in the stream of changes.

use chat_domain::{Conversation, ConversationPage, ConversationRef, ReadMarker, UserAccount};

use super::*;

/// The conversation as `user` sees it now.
async fn seen<S: FullStore>(store: &S, user: &UserAccount, conv: &ConversationRef) -> Conversation {
    store
        .conversation(user.id, conv)
        .await
        .expect("reads")
        .expect("the conversation exists")
}

async fn unread<S: FullStore>(store: &S, user: &UserAccount, conv: &ConversationRef) -> u64 {
    seen(store, user, conv).await.unread_count
}

fn direct(with: &UserAccount) -> ConversationRef {
    ConversationRef::Direct(with.username.clone())
}

/// Registration starts the global marker at the latest global message:
/// older history is not unread, what comes after is.
pub async fn a_new_user_has_read_the_global_history_so_far<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let old = post(&*store, &new_message(&alice, MessageTarget::Global, "old")).await;
    let bob = seed_user(&*store, "bob").await;
    let global = ConversationRef::Global;
    let bobs = seen(&*store, &bob, &global).await;
    assert_eq!(bobs.unread_count, 0, "history before registration");
    assert_eq!(bobs.last_read_id, Some(old.id));
    let new = post(&*store, &new_message(&alice, MessageTarget::Global, "new")).await;
    let bobs = seen(&*store, &bob, &global).await;
    assert_eq!(bobs.unread_count, 1);
    assert_eq!(bobs.last_message.map(|m| m.id), Some(new.id));
    let carol = seed_user(&*store, "carol").await;
    assert_eq!(unread(&*store, &carol, &global).await, 0);
}

/// A user's own messages are never unread: sending moves their marker to
/// the message sent, past whatever came before it.
pub async fn own_messages_are_not_unread_and_move_the_marker<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let global = ConversationRef::Global;
    post(&*store, &new_message(&bob, MessageTarget::Global, "b1")).await;
    post(&*store, &new_message(&bob, MessageTarget::Global, "b2")).await;
    assert_eq!(unread(&*store, &alice, &global).await, 2);
    let mine = post(&*store, &new_message(&alice, MessageTarget::Global, "a1")).await;
    let alices = seen(&*store, &alice, &global).await;
    assert_eq!(alices.unread_count, 0, "replying reads what came before");
    assert_eq!(alices.last_read_id, Some(mine.id));
    post(&*store, &new_message(&bob, MessageTarget::Global, "b3")).await;
    assert_eq!(unread(&*store, &alice, &global).await, 1);
    assert_eq!(unread(&*store, &bob, &global).await, 0);
    // A batch of one's own messages leaves the marker on the last.
    let dm = direct(&bob);
    let first = post(&*store, &new_message(&alice, to(&bob), "x")).await;
    let last = post(&*store, &new_message(&alice, to(&bob), "y")).await;
    let alices = seen(&*store, &alice, &dm).await;
    assert_eq!(
        (alices.unread_count, alices.last_read_id),
        (0, Some(last.id))
    );
    assert_ne!(first.id, last.id);
}

/// Deleted messages are not unread, whether deleted before or after they
/// arrived; deleting a message already read changes nothing.
pub async fn deleted_messages_are_not_unread<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let dm = direct(&alice);
    let read = post(&*store, &new_message(&alice, to(&bob), "read")).await;
    store.mark_read(bob.id, &dm, read.id).await.expect("marks");
    let gone = post(&*store, &new_message(&alice, to(&bob), "gone")).await;
    post(&*store, &new_message(&alice, to(&bob), "kept")).await;
    assert_eq!(unread(&*store, &bob, &dm).await, 2);
    store.delete_message(gone.id, now()).await.expect("deletes");
    assert_eq!(unread(&*store, &bob, &dm).await, 1);
    store.delete_message(read.id, now()).await.expect("deletes");
    assert_eq!(unread(&*store, &bob, &dm).await, 1, "it was read already");
    // The sender's own deleted message counts for nobody.
    assert_eq!(unread(&*store, &alice, &direct(&bob)).await, 0);
}

/// Joining a room with history starts the marker at its latest message;
/// leaving and re-joining starts it again at the latest then.
pub async fn joining_a_room_starts_at_its_latest_message<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let r = room("general", alice.id, &[]);
    store.create_room(&r).await.expect("creates");
    let in_room = ConversationRef::Room(r.id);
    let target = MessageTarget::Room(r.id);
    for n in 0..3 {
        post(
            &*store,
            &new_message(&alice, target.clone(), &format!("m{n}")),
        )
        .await;
    }
    store.add_member(r.id, bob.id).await.expect("joins");
    assert_eq!(
        unread(&*store, &bob, &in_room).await,
        0,
        "history is not unread"
    );
    post(&*store, &new_message(&alice, target.clone(), "while in")).await;
    assert_eq!(unread(&*store, &bob, &in_room).await, 1);
    store.remove_member(r.id, bob.id).await.expect("leaves");
    post(&*store, &new_message(&alice, target.clone(), "while away")).await;
    let latest = post(
        &*store,
        &new_message(&alice, target.clone(), "while away 2"),
    )
    .await;
    store.add_member(r.id, bob.id).await.expect("re-joins");
    let bobs = seen(&*store, &bob, &in_room).await;
    assert_eq!(
        bobs.unread_count, 0,
        "re-joining starts again at the latest"
    );
    assert_eq!(bobs.last_read_id, Some(latest.id));
    post(&*store, &new_message(&alice, target, "back")).await;
    assert_eq!(unread(&*store, &bob, &in_room).await, 1);
    // The creator of a room made with members has read its (empty)
    // history; a member named at creation too.
    let carol = seed_user(&*store, "carol").await;
    let r2 = room("second", alice.id, &[carol.id]);
    store.create_room(&r2).await.expect("creates");
    assert_eq!(
        unread(&*store, &carol, &ConversationRef::Room(r2.id)).await,
        0
    );
}

/// A new direct conversation starts with nothing read: the first message
/// is unread for its recipient, and the conversation is in both lists.
pub async fn a_new_direct_conversation_is_unread_for_the_recipient<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let first = post(&*store, &new_message(&alice, to(&bob), "hi bob")).await;
    let bobs = seen(&*store, &bob, &direct(&alice)).await;
    assert_eq!(bobs.unread_count, 1);
    assert_eq!(bobs.last_read_id, None);
    assert_eq!(
        bobs.peer_last_read_id,
        Some(first.id),
        "alice has read her own"
    );
    assert_eq!(bobs.name, "alice");
    let alices = seen(&*store, &alice, &direct(&bob)).await;
    assert_eq!(alices.unread_count, 0);
    assert_eq!(alices.peer_last_read_id, None, "bob has read nothing");
    let bobs_list = store.conversations(bob.id, 50, None).await.expect("lists");
    assert!(bobs_list
        .items
        .iter()
        .any(|c| c.conversation == direct(&alice) && c.unread_count == 1));
    let carols = store
        .conversations(carol.id, 50, None)
        .await
        .expect("lists");
    assert_eq!(
        carols
            .items
            .iter()
            .map(|c| c.conversation.clone())
            .collect::<Vec<_>>(),
        vec![ConversationRef::Global],
        "nobody else's direct conversation"
    );
    store
        .mark_read(bob.id, &direct(&alice), first.id)
        .await
        .expect("marks");
    let alices = seen(&*store, &alice, &direct(&bob)).await;
    assert_eq!(alices.peer_last_read_id, Some(first.id), "the receipt");
}

/// In a direct conversation each party has read up to their own latest
/// message, as far as their reads go: a read behind it moves nothing, a
/// read past it moves the marker; the other party's receipt is whichever
/// of the two is further, in the list as in the one conversation.
pub async fn in_a_direct_conversation_sending_reads_up_to_ones_own_message<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let a1 = post(&*store, &new_message(&alice, to(&bob), "a1")).await;
    let a2 = post(&*store, &new_message(&alice, to(&bob), "a2")).await;
    let b1 = post(&*store, &new_message(&bob, to(&alice), "b1")).await;
    let in_list = |list: ConversationPage, with: &UserAccount| {
        list.items
            .into_iter()
            .find(|c| c.conversation == direct(with))
            .expect("listed")
    };
    for alices in [
        seen(&*store, &alice, &direct(&bob)).await,
        in_list(
            store
                .conversations(alice.id, 50, None)
                .await
                .expect("lists"),
            &bob,
        ),
    ] {
        assert_eq!(
            (
                alices.unread_count,
                alices.last_read_id,
                alices.peer_last_read_id
            ),
            (1, Some(a2.id), Some(b1.id)),
            "alice has read her own, bob replied after them"
        );
    }
    let dm = direct(&bob);
    assert_eq!(store.mark_read(alice.id, &dm, a1.id).await, Ok(None));
    assert_eq!(store.mark_read(alice.id, &dm, a2.id).await, Ok(None));
    assert!(store
        .mark_read(alice.id, &dm, b1.id)
        .await
        .expect("marks")
        .is_some());
    let alices = seen(&*store, &alice, &dm).await;
    assert_eq!((alices.unread_count, alices.last_read_id), (0, Some(b1.id)));
    // Bob's own message after alice's read is his receipt again, and a
    // read behind it moves nothing.
    let b2 = post(&*store, &new_message(&bob, to(&alice), "b2")).await;
    assert_eq!(
        store.mark_read(bob.id, &direct(&alice), a2.id).await,
        Ok(None)
    );
    for bobs in [
        seen(&*store, &bob, &direct(&alice)).await,
        in_list(
            store.conversations(bob.id, 50, None).await.expect("lists"),
            &alice,
        ),
    ] {
        assert_eq!(
            (bobs.unread_count, bobs.last_read_id, bobs.peer_last_read_id),
            (0, Some(b2.id), Some(b1.id))
        );
    }
    let alices = seen(&*store, &alice, &dm).await;
    assert_eq!(
        (
            alices.unread_count,
            alices.last_read_id,
            alices.peer_last_read_id
        ),
        (1, Some(b1.id), Some(b2.id))
    );
    // Alice's reply reads bob's message; bob's read of it moves his marker.
    let a3 = post(&*store, &new_message(&alice, to(&bob), "a3")).await;
    assert_eq!(seen(&*store, &alice, &dm).await.unread_count, 0);
    assert_eq!(unread(&*store, &bob, &direct(&alice)).await, 1);
    assert!(store
        .mark_read(bob.id, &direct(&alice), a3.id)
        .await
        .expect("marks")
        .is_some());
    let bobs = seen(&*store, &bob, &direct(&alice)).await;
    assert_eq!(
        (bobs.unread_count, bobs.last_read_id, bobs.peer_last_read_id),
        (0, Some(a3.id), Some(a3.id))
    );
}

/// A marker only moves forward: reading an older message, or the same
/// one again, changes nothing (no position).
pub async fn markers_never_move_back<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let m1 = post(&*store, &new_message(&alice, MessageTarget::Global, "1")).await;
    let m2 = post(&*store, &new_message(&alice, MessageTarget::Global, "2")).await;
    post(&*store, &new_message(&alice, MessageTarget::Global, "3")).await;
    let global = ConversationRef::Global;
    let before = store.latest_position().await.expect("reads");
    let moved = store
        .mark_read(bob.id, &global, m2.id)
        .await
        .expect("marks");
    let position = moved.expect("a move");
    assert!(position > before, "a move takes a new position");
    assert_eq!(store.latest_position().await, Ok(position));
    assert_eq!(unread(&*store, &bob, &global).await, 1);
    assert_eq!(store.mark_read(bob.id, &global, m1.id).await, Ok(None));
    assert_eq!(store.mark_read(bob.id, &global, m2.id).await, Ok(None));
    let bobs = seen(&*store, &bob, &global).await;
    assert_eq!((bobs.unread_count, bobs.last_read_id), (1, Some(m2.id)));
}

/// Reading a message of another conversation, or none, is
/// `MessageNotFound`; a direct conversation with nobody, `UserNotFound`.
pub async fn a_read_names_a_message_of_its_conversation<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let global = post(&*store, &new_message(&alice, MessageTarget::Global, "g")).await;
    let dm = post(&*store, &new_message(&alice, to(&carol), "to carol")).await;
    let not_found = Err(DomainError::MessageNotFound);
    assert_eq!(
        store.mark_read(bob.id, &direct(&alice), global.id).await,
        not_found
    );
    assert_eq!(
        store.mark_read(bob.id, &direct(&alice), dm.id).await,
        not_found
    );
    assert_eq!(
        store
            .mark_read(bob.id, &ConversationRef::Global, dm.id)
            .await,
        not_found
    );
    let unknown = MessageId::generate();
    assert_eq!(
        store
            .mark_read(bob.id, &ConversationRef::Global, unknown)
            .await,
        not_found
    );
    let nobody = ConversationRef::Direct(username("nobody"));
    assert_eq!(
        store.mark_read(bob.id, &nobody, global.id).await,
        Err(DomainError::UserNotFound)
    );
    assert_eq!(store.conversation(bob.id, &nobody).await, Ok(None));
}

/// The list is the global conversation, the user's rooms and direct
/// conversations, most recent activity first, paged with `before` without
/// gaps or repeats.
pub async fn the_conversation_list_is_ordered_by_activity_and_paged<S: FullStore>(store: Arc<S>) {
    let me = seed_user(&*store, "myself").await;
    let mut expected = Vec::new();
    let empty = room("quiet", me.id, &[]);
    store.create_room(&empty).await.expect("creates");
    for n in 0..5 {
        let friend = seed_user(&*store, &format!("friend{n}")).await;
        post(&*store, &new_message(&friend, to(&me), "hi")).await;
        expected.push(direct(&friend));
        let r = room(&format!("room{n}"), me.id, &[]);
        store.create_room(&r).await.expect("creates");
        post(&*store, &new_message(&me, MessageTarget::Room(r.id), "hi")).await;
        expected.push(ConversationRef::Room(r.id));
    }
    let stranger = seed_user(&*store, "stranger").await;
    post(
        &*store,
        &new_message(&stranger, MessageTarget::Global, "hi all"),
    )
    .await;
    expected.push(ConversationRef::Global);
    expected.reverse();
    expected.push(ConversationRef::Room(empty.id));
    let mut listed = Vec::new();
    let mut before = None;
    loop {
        let page = store.conversations(me.id, 3, before).await.expect("lists");
        assert!(page.items.len() <= 3);
        listed.extend(page.items.iter().map(|c| c.conversation.clone()));
        match (page.has_more, page.items.last()) {
            (true, Some(last)) => before = Some(last.activity),
            _ => break,
        }
        assert!(listed.len() <= expected.len(), "no repeats: {listed:?}");
    }
    assert_eq!(listed, expected);
    let all = store.conversations(me.id, 50, None).await.expect("lists");
    let global = &all.items[0];
    assert_eq!((global.name.as_str(), global.unread_count), ("Global", 1));
    let quiet = all.items.last().expect("the quiet room");
    assert_eq!((quiet.name.as_str(), quiet.unread_count), ("quiet", 0));
    assert!(quiet.last_message.is_none());
}

/// A marker move is in the stream of changes of the reader and, in a
/// direct conversation, of the other party, each naming the conversation
/// as they do; not in anyone else's.
pub async fn reads_are_in_the_stream_of_the_reader_and_the_other_party<S: FullStore>(
    store: Arc<S>,
) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let m = post(&*store, &new_message(&alice, to(&bob), "hi")).await;
    let g = post(&*store, &new_message(&alice, MessageTarget::Global, "all")).await;
    let after = store.latest_position().await.expect("reads");
    let dm_read = store
        .mark_read(bob.id, &direct(&alice), m.id)
        .await
        .expect("marks")
        .expect("moves");
    let global_read = store
        .mark_read(bob.id, &ConversationRef::Global, g.id)
        .await
        .expect("marks")
        .expect("moves");
    let stream = |user: UserAccount| {
        let store = Arc::clone(&store);
        async move {
            store
                .changes_after(user.id, &user.username, after, 50)
                .await
                .expect("reads")
                .items
        }
    };
    let read = |conversation, reader: &UserAccount, message_id| ReadMarker {
        conversation,
        reader: reader.username.clone(),
        message_id,
    };
    assert_eq!(
        stream(bob.clone()).await,
        vec![
            StreamItem::Read {
                read: read(direct(&alice), &bob, m.id),
                position: dm_read
            },
            StreamItem::Read {
                read: read(ConversationRef::Global, &bob, g.id),
                position: global_read
            },
        ]
    );
    assert_eq!(
        stream(alice.clone()).await,
        vec![StreamItem::Read {
            read: read(direct(&bob), &bob, m.id),
            position: dm_read
        }],
        "the receipt, named by the reader; not bob's global marker"
    );
    assert_eq!(stream(carol).await, vec![]);
    // Paged like the rest: one at a time.
    let first = store
        .changes_after(bob.id, &bob.username, after, 1)
        .await
        .expect("reads");
    assert!(first.has_more);
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].position(), dm_read);
}

/// Messages stored concurrently (sharing batches, where the store batches
/// them) with resends among them leave the counts exact: every message
/// stored counts once, a resend not at all, and each sender has read
/// their own latest.
pub async fn concurrent_sends_and_resends_keep_counts_exact<S: FullStore>(store: Arc<S>) {
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let mut tasks = JoinSet::new();
    for i in 0..RACERS {
        for sender in [&alice, &carol] {
            let new = if i % 4 == 0 {
                let key = format!("{}-{}", sender.username.as_str(), i / 8);
                new_message_with_client_id(sender, to(&bob), &format!("m{i}"), &key)
            } else {
                new_message(sender, to(&bob), &format!("m{i}"))
            };
            let global = new_message(sender, MessageTarget::Global, &format!("g{i}"));
            let store = store.clone();
            tasks.spawn(async move {
                let dm = store.insert_message(&new).await;
                let all = store.insert_message(&global).await;
                (dm, all)
            });
        }
    }
    let mut stored_dms = 0;
    while let Some(joined) = tasks.join_next().await {
        let (dm, global) = joined.expect("task ran");
        if matches!(dm.expect("stored"), Stored::Created(_)) {
            stored_dms += 1;
        }
        assert!(matches!(global.expect("stored"), Stored::Created(_)));
    }
    // Each sender's keys `<name>-0` and `<name>-1` are used twice each.
    assert_eq!(stored_dms, 2 * (RACERS - 2), "the resends stored nothing");
    let from_alice = unread(&*store, &bob, &direct(&alice)).await;
    let from_carol = unread(&*store, &bob, &direct(&carol)).await;
    assert_eq!(from_alice + from_carol, stored_dms as u64);
    assert_eq!(from_alice, (RACERS - 2) as u64);
    assert_eq!(
        unread(&*store, &bob, &ConversationRef::Global).await,
        2 * RACERS as u64
    );
    for sender in [&alice, &carol] {
        assert_eq!(unread(&*store, sender, &direct(&bob)).await, 0);
        let theirs = store
            .direct_messages(&sender.username, &bob.username, latest())
            .await
            .expect("reads");
        let last = theirs.items.last().map(|m| m.id);
        assert_eq!(
            seen(&*store, sender, &direct(&bob)).await.last_read_id,
            last
        );
        // Global: the other sender's messages after their own last one.
        let global = seen(&*store, sender, &ConversationRef::Global).await;
        assert!(global.unread_count < 2 * RACERS as u64);
    }
}
