//! `MessageStore` under racing writers: pages never skip or repeat, and
//! positions follow the store's order.

use super::*;

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
