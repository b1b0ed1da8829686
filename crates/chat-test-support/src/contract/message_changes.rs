//! `MessageStore`'s changes: edits, deletions, reactions, threads, and
//! the stream of changes after a position.

use super::*;

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
                item.message_id(),
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
    assert_eq!(
        page.items[0].message().expect("a message").content.as_str(),
        "old2!"
    );
    assert_eq!(
        page.items[3].message().expect("a message").reactions[0].count,
        2
    );
    assert!(page.items[2].message().expect("a message").is_deleted());
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
            let mut ids = sorted(page.items.iter().map(|i| i.message_id()).collect());
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
