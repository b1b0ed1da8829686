//! The group-commit write path: concurrent inserts share statements and
//! commits, yet each caller gets its own answer; resends within one batch
//! store one message; one bad row fails alone; a lost database fails the
//! batch with `StoreUnavailable` and the writer recovers when it returns.
//!
//! To make batches form deterministically, a test can hold the message
//! ordering lock from another session: the writer's statement then waits in
//! the insert trigger, and every message sent meanwhile queues up behind it
//! and goes into the next statement (or transaction, with the changes and
//! reads queued meanwhile).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_domain::{
    ConversationRef, DomainError, DomainResult, Emoji, MessageContent, MessageStore, MessageTarget,
    ReadStore, RoomId, RoomStore, Stored, UserAccount, UserId,
};
use chat_store_postgres::{build_pool, PgStore};
use chat_test_support::pg::PgTestStore;
use chat_test_support::{account, new_message, new_message_with_client_id, room, seed_user, to};
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

/// The key of the insert trigger's ordering lock ("chatordr").
const ORDERING_LOCK_KEY: i64 = 0x6368_6174_6f72_6472;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .n
}

/// A session of its own on the test database, holding the ordering lock
/// until [`OrderingLock::release`].
struct OrderingLock {
    conn: AsyncPgConnection,
}

impl OrderingLock {
    async fn take(url: &str) -> Self {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .expect("a second session");
        diesel::sql_query(format!("SELECT pg_advisory_lock({ORDERING_LOCK_KEY})"))
            .execute(&mut conn)
            .await
            .expect("takes the ordering lock");
        Self { conn }
    }

    /// Waits until some insert waits for the lock, that is until the writer
    /// is busy with a statement.
    async fn wait_for_a_waiter(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(
            &mut self.conn,
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .await
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "no insert came to wait for the lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn release(mut self) {
        diesel::sql_query(format!("SELECT pg_advisory_unlock({ORDERING_LOCK_KEY})"))
            .execute(&mut self.conn)
            .await
            .expect("releases the ordering lock");
    }
}

/// The writer held busy: the ordering lock taken from another session and
/// one message (`first`) sent, whose statement waits for it; whatever is
/// sent meanwhile queues up and becomes the next batch.
struct HeldWriter {
    lock: OrderingLock,
    first: tokio::task::JoinHandle<DomainResult<Stored>>,
}

impl HeldWriter {
    async fn hold(store: &Arc<PgTestStore>, sender: &UserAccount) -> Self {
        let mut lock = OrderingLock::take(&store.database.url).await;
        let first = {
            let store = store.clone();
            let new = new_message(sender, MessageTarget::Global, "first");
            tokio::spawn(async move { store.insert_message(&new).await })
        };
        lock.wait_for_a_waiter().await;
        Self { lock, first }
    }

    /// Lets every call reach the queue (`settle`), releases the lock and
    /// waits for the first message.
    async fn release(self, settle: Duration) {
        tokio::time::sleep(settle).await;
        self.lock.release().await;
        self.first
            .await
            .expect("first caller ran")
            .expect("first stored");
    }
}

/// The results without their positions.
fn stored(results: &[DomainResult<(Stored, Option<u64>)>]) -> Vec<DomainResult<Stored>> {
    results
        .iter()
        .map(|result| result.clone().map(|(stored, _)| stored))
        .collect()
}

/// The positions of the results (`None` for a failure or a resend).
fn positions(results: &[DomainResult<(Stored, Option<u64>)>]) -> Vec<Option<u64>> {
    results
        .iter()
        .map(|result| result.as_ref().ok().and_then(|(_, position)| *position))
        .collect()
}

/// In how many transactions the stored messages were written (rows written
/// by one transaction share its `xmin`).
async fn transactions_of_messages(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .expect("a second session");
    count(
        &mut conn,
        "SELECT count(DISTINCT xmin::text) AS n FROM messages",
    )
    .await
}

#[tokio::test]
async fn two_hundred_concurrent_inserts_each_get_their_own_reply() {
    let store = Arc::new(PgTestStore::create().await);
    let alice = seed_user(&**store, "alice").await;
    let bob = seed_user(&**store, "bob").await;
    let general = room("general", alice.id, &[bob.id]);
    store.create_room(&general).await.expect("room stored");
    let held = HeldWriter::hold(&store, &alice).await;

    let mut calls = JoinSet::new();
    for i in 0..200 {
        let (sender, target) = match i % 4 {
            0 => (&alice, MessageTarget::Global),
            1 => (&alice, to(&bob)),
            2 => (&bob, MessageTarget::Room(general.id)),
            _ => (&bob, to(&alice)),
        };
        let new = if i % 2 == 0 {
            new_message(sender, target, &format!("message {i}"))
        } else {
            new_message_with_client_id(sender, target, &format!("message {i}"), &format!("c{i}"))
        };
        let store = store.clone();
        calls.spawn(async move { (new.message.clone(), store.insert_message(&new).await) });
    }
    held.release(Duration::from_millis(300)).await;

    let mut ids = HashSet::new();
    while let Some(joined) = calls.join_next().await {
        let (sent, stored) = joined.expect("caller ran");
        assert_eq!(stored, Ok(Stored::Created(sent.clone())), "its own reply");
        ids.insert(sent.id);
    }
    assert_eq!(ids.len(), 200);
    for id in ids.iter().take(20) {
        assert!(store.message_by_id(*id).await.expect("reads").is_some());
    }
    let transactions = transactions_of_messages(&store.database.url).await;
    assert!(
        transactions <= 5,
        "201 messages were written in {transactions} transactions, not grouped"
    );
}

#[tokio::test]
async fn resends_within_one_batch_store_one_message() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let first = new_message_with_client_id(&alice, to(&bob), "once", "c-1");
    let other = new_message_with_client_id(&bob, to(&alice), "same key, other sender", "c-1");
    let resend = new_message_with_client_id(&alice, to(&bob), "twice", "c-1");
    let results = store
        .insert_messages(&[first.clone(), other.clone(), resend.clone()])
        .await;
    assert_eq!(
        stored(&results),
        vec![
            Ok(Stored::Created(first.message.clone())),
            Ok(Stored::Created(other.message.clone())),
            Ok(Stored::Duplicate(first.message.clone())),
        ]
    );
    // New messages have positions in batch order; a resend has none.
    let placed = positions(&results);
    assert!(
        matches!(placed[..], [Some(a), Some(b), None] if a < b),
        "{placed:?}"
    );
    assert_eq!(
        store.message_by_id(resend.message.id).await.expect("reads"),
        None
    );
    // A later batch finds the committed original.
    let late = new_message_with_client_id(&alice, to(&bob), "thrice", "c-1");
    assert_eq!(
        stored(&store.insert_messages(&[late]).await),
        vec![Ok(Stored::Duplicate(first.message.clone()))]
    );
}

/// A counted conversation's places count its messages: each new message
/// takes the next one, whether it came in a batch or by a plain INSERT
/// (the trigger's way), and a resend takes none. A direct message's place
/// is its position, and its conversation's row, which only names the two
/// parties, is written once whichever way its messages came in.
#[tokio::test]
async fn places_have_no_holes_whichever_way_messages_come_in() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let first = new_message_with_client_id(&alice, MessageTarget::Global, "one", "p-1");
    store
        .insert_messages(&[
            first.clone(),
            new_message(&alice, to(&bob), "elsewhere"),
            new_message(&bob, MessageTarget::Global, "two"),
        ])
        .await;
    let mut conn = AsyncPgConnection::establish(&store.database.url)
        .await
        .expect("connects");
    for (recipient, content) in [
        ("NULL, NULL", "three"),
        (&*format!("'{}', 'alice'", alice.id.as_uuid()), "to alice"),
    ] {
        diesel::sql_query(format!(
            "INSERT INTO messages (id, sender_id, sender, recipient_id, recipient, content) \
             VALUES (gen_random_uuid(), '{}', 'bob', {recipient}, '{content}')",
            bob.id.as_uuid(),
        ))
        .execute(&mut conn)
        .await
        .expect("a plain insert");
    }
    let resend = new_message_with_client_id(&alice, MessageTarget::Global, "one again", "p-1");
    let results = store
        .insert_messages(&[resend, new_message(&alice, MessageTarget::Global, "four")])
        .await;
    assert_eq!(
        stored(&results)[0],
        Ok(Stored::Duplicate(first.message.clone()))
    );
    let global = "FROM messages WHERE recipient_id IS NULL AND room_id IS NULL";
    assert_eq!(
        count(&mut conn, &format!("SELECT count(*) AS n {global}")).await,
        4
    );
    let numbered = format!(
        "SELECT count(*) AS n FROM (SELECT place, row_number() OVER (ORDER BY seq) AS k {global}) \
         AS p WHERE place = k"
    );
    assert_eq!(
        count(&mut conn, &numbered).await,
        4,
        "places 1 to 4 in order"
    );
    let last = "SELECT last_place AS n FROM conversations WHERE user_a IS NULL";
    assert_eq!(count(&mut conn, last).await, 4);
    let sent = new_message_with_client_id(&bob, to(&alice), "direct", "d-1");
    store.insert_messages(std::slice::from_ref(&sent)).await;
    let resend = new_message_with_client_id(&bob, to(&alice), "direct again", "d-1");
    let results = store
        .insert_messages(&[resend, new_message(&alice, to(&bob), "direct too")])
        .await;
    assert_eq!(
        stored(&results)[0],
        Ok(Stored::Duplicate(sent.message.clone())),
        "a batch of direct messages only leaves resends out too"
    );
    let direct =
        "SELECT count(*) AS n FROM messages WHERE recipient_id IS NOT NULL AND place = seq";
    assert_eq!(count(&mut conn, direct).await, 4);
    let pairs = "SELECT count(*) AS n FROM conversations WHERE user_a IS NOT NULL";
    assert_eq!(count(&mut conn, pairs).await, 1);
}

/// One call naming a sender's client id twice fails whole and stores
/// nothing: leaving the second row out would leave a hole in the places.
#[tokio::test]
async fn a_batch_naming_one_client_id_twice_stores_nothing() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let mut conn = AsyncPgConnection::establish(&store.database.url)
        .await
        .expect("connects");
    let sender = alice.id.as_uuid();
    let call = format!(
        "SELECT * FROM messages_insert_batch(\
         ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['{sender}', '{sender}']::uuid[], \
         ARRAY['alice', 'alice'], ARRAY[NULL, NULL]::uuid[], ARRAY[NULL, NULL]::text[], \
         ARRAY[NULL, NULL]::uuid[], ARRAY['a', 'b'], ARRAY['same', 'same'], \
         ARRAY[now(), now()], ARRAY[NULL, NULL]::uuid[], ARRAY[]::uuid[], ARRAY[]::uuid[])"
    );
    let failed = diesel::sql_query(call).execute(&mut conn).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM messages").await,
        0
    );
}

#[tokio::test]
async fn resends_queued_together_get_one_created_and_one_duplicate() {
    let store = Arc::new(PgTestStore::create().await);
    let alice = seed_user(&**store, "alice").await;
    let bob = seed_user(&**store, "bob").await;
    let held = HeldWriter::hold(&store, &alice).await;
    let mut calls = JoinSet::new();
    for n in 0..2 {
        let new = new_message_with_client_id(&alice, to(&bob), &format!("try {n}"), "retry");
        let store = store.clone();
        calls.spawn(async move { store.insert_message(&new).await });
    }
    held.release(Duration::from_millis(200)).await;
    let mut created = Vec::new();
    let mut duplicates = Vec::new();
    while let Some(joined) = calls.join_next().await {
        match joined.expect("ran").expect("stored") {
            Stored::Created(m) => created.push(m),
            Stored::Duplicate(m) => duplicates.push(m),
        }
    }
    assert_eq!(created.len(), 1, "one created: {created:?}");
    assert_eq!(duplicates, created, "the other is a duplicate of it");
    let stored = store
        .direct_messages(
            &alice.username,
            &bob.username,
            chat_test_support::page(10, chat_domain::Cursor::Latest),
        )
        .await
        .expect("reads");
    assert_eq!(stored.items, created);
}

#[tokio::test]
async fn one_failing_message_does_not_fail_the_rest_of_its_batch() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let general = room("general", alice.id, &[bob.id]);
    store.create_room(&general).await.expect("room stored");
    let earlier = new_message(&alice, MessageTarget::Global, "earlier");
    store.insert_message(&earlier).await.expect("stored");

    let global = new_message(&alice, MessageTarget::Global, "fine");
    let no_room = new_message(&alice, MessageTarget::Room(RoomId::generate()), "lost room");
    let no_user = new_message(&alice, to(&account("nobody")), "nobody");
    let direct = new_message_with_client_id(&alice, to(&bob), "fine too", "d-1");
    // Same id as a stored message: the primary key refuses it, which makes
    // the batch's statement fail and the batch be written row by row.
    let same_id = chat_domain::NewMessage {
        message: chat_domain::Message {
            content: chat_domain::MessageContent::parse("again").expect("valid"),
            ..earlier.message.clone()
        },
        ..earlier.clone()
    };
    let in_room = new_message(&bob, MessageTarget::Room(general.id), "in the room");
    let results = store
        .insert_messages(&[
            global.clone(),
            no_room,
            no_user,
            direct.clone(),
            same_id,
            in_room.clone(),
        ])
        .await;
    let placed = positions(&results);
    let results = stored(&results);
    assert_eq!(results[0], Ok(Stored::Created(global.message.clone())));
    assert_eq!(results[1], Err(DomainError::RoomNotFound));
    assert_eq!(results[2], Err(DomainError::UserNotFound));
    assert_eq!(results[3], Ok(Stored::Created(direct.message.clone())));
    assert!(
        matches!(results[4], Err(DomainError::Internal(_))),
        "{:?}",
        results[4]
    );
    assert_eq!(results[5], Ok(Stored::Created(in_room.message.clone())));
    let kept: Vec<u64> = placed.iter().flatten().copied().collect();
    assert_eq!(kept.len(), 3, "{placed:?}");
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]),
        "in batch order: {placed:?}"
    );
    for kept in [&global, &direct, &in_room] {
        assert!(store
            .message_by_id(kept.message.id)
            .await
            .expect("reads")
            .is_some());
    }
    // Through the writer, an unknown recipient fails only its own caller.
    let (to_ghost, to_alice) = (
        new_message(&bob, to(&account("ghost")), "?"),
        new_message(&bob, to(&alice), "hi alice"),
    );
    let (lost, kept) = tokio::join!(
        store.insert_message(&to_ghost),
        store.insert_message(&to_alice),
    );
    assert_eq!(lost, Err(DomainError::UserNotFound));
    assert!(kept.expect("stored").is_new());
}

/// One caller's messages queued back to back (each queued before the
/// next, none waiting for a commit) are stored in that order, the one
/// whose room is gone (the batch's statement fails, and its messages are
/// written one by one) failing alone.
#[tokio::test]
async fn messages_queued_back_to_back_keep_their_order_around_a_failing_one() {
    const SENT: usize = 2_000;
    const FAILING: usize = 1_000;
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let mut sent = Vec::with_capacity(SENT);
    let mut queued = Vec::with_capacity(SENT);
    for i in 0..SENT {
        let target = if i == FAILING {
            MessageTarget::Room(RoomId::generate())
        } else {
            MessageTarget::Global
        };
        let new = new_message(&alice, target, &format!("m{i}"));
        queued.push(store.queue_message(&new).await.expect("queued"));
        sent.push(new.message);
    }
    let mut results = Vec::with_capacity(SENT);
    for insert in queued {
        results.push(insert.await);
    }
    assert_eq!(results[FAILING], Err(DomainError::RoomNotFound));
    let mut last = None;
    for (i, (result, message)) in results.iter().zip(&sent).enumerate() {
        if i == FAILING {
            continue;
        }
        let (stored, position) = result.clone().unwrap_or_else(|err| panic!("m{i}: {err}"));
        assert_eq!(
            stored,
            Stored::Created(message.clone()),
            "m{i}'s own answer"
        );
        let position = position.expect("a new message's position");
        assert!(last < Some(position), "m{i} placed after the one before it");
        last = Some(position);
    }
    let newest = store
        .visible_messages(
            alice.id,
            &alice.username,
            chat_test_support::page(100, chat_domain::Cursor::Latest),
        )
        .await
        .expect("reads");
    let expected: Vec<_> = sent[SENT - 100..].to_vec();
    assert_eq!(
        newest.items, expected,
        "the history's order is the order sent"
    );
}

/// A TCP relay to the test server that can be switched off (existing
/// connections cut, new ones closed at once) and on again: a database
/// going away and coming back, on a port of our own.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    listener: AbortHandle,
}

impl Relay {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("has an address").port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepting = {
            let (up, links) = (up.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    // (Not `up.load`: Diesel's `RunQueryDsl::load` is in scope.)
                    if !AtomicBool::load(&up, Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let target = target.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links
                        .lock()
                        .expect("not poisoned")
                        .push(link.abort_handle());
                }
            })
        };
        Self {
            port,
            up,
            links,
            listener: accepting.abort_handle(),
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("not poisoned").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
        self.listener.abort();
    }
}

/// Host and port of a `postgres://user@host:port/db` URL, and the URL with
/// another port.
fn through(url: &str, port: u16) -> ((String, u16), String) {
    let (scheme_user, rest) = url.split_once('@').expect("URL has a user part");
    let (host_port, database) = rest.split_once('/').expect("URL names a database");
    let (host, db_port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    let db_port: u16 = db_port.parse().expect("numeric port");
    (
        (host.to_owned(), db_port),
        format!("{scheme_user}@127.0.0.1:{port}/{database}"),
    )
}

#[tokio::test]
async fn inserts_fail_unavailable_while_the_database_is_away_and_recover_when_it_returns() {
    let database = PgTestStore::create().await;
    let alice = seed_user(&*database, "alice").await;
    let bob = seed_user(&*database, "bob").await;
    let (target, _) = through(&database.database.url, 0);
    let relay = Relay::start(target).await;
    let (_, url) = through(&database.database.url, relay.port);
    let store = PgStore::from_pool(build_pool(&url, 4).expect("pool builds"));
    let hello = new_message(&alice, to(&bob), "through the relay");
    assert!(store.insert_message(&hello).await.expect("stored").is_new());

    relay.down();
    let started = Instant::now();
    let sends: Vec<_> = (0..20)
        .map(|n| new_message_with_client_id(&alice, to(&bob), &format!("m{n}"), &format!("k{n}")))
        .collect();
    let results =
        futures_util::future::join_all(sends.iter().map(|new| store.insert_message(new))).await;
    for result in &results {
        assert_eq!(result, &Err(DomainError::StoreUnavailable));
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "fails within the pool's time limits: {:?}",
        started.elapsed()
    );

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.insert_message(&sends[0]).await {
            Ok(stored) => {
                assert!(stored.is_new(), "the failed send was not stored");
                break;
            }
            Err(DomainError::StoreUnavailable) => {
                assert!(Instant::now() < deadline, "the writer did not recover");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("expected recovery or StoreUnavailable, got {other:?}"),
        }
    }
    let results =
        futures_util::future::join_all(sends.iter().map(|new| store.insert_message(new))).await;
    assert!(matches!(results[0], Ok(Stored::Duplicate(_))));
    assert!(results[1..]
        .iter()
        .all(|result| matches!(result, Ok(Stored::Created(_)))));
}

#[tokio::test]
async fn positions_of_racing_inserts_follow_the_order_lists_use() {
    let store = Arc::new(PgTestStore::create().await);
    let alice = seed_user(&**store, "alice").await;
    let mut writers = JoinSet::new();
    for w in 0..8 {
        let (store, alice) = (store.clone(), alice.clone());
        writers.spawn(async move {
            let mut placed = Vec::new();
            for n in 0..24 {
                let new = new_message(&alice, MessageTarget::Global, &format!("{w}/{n}"));
                let (stored, position) =
                    store.insert_message_positioned(&new).await.expect("stored");
                assert!(stored.is_new());
                placed.push((
                    position.expect("a new message has a position"),
                    new.message.id,
                ));
            }
            placed
        });
    }
    let mut placed = Vec::new();
    while let Some(joined) = writers.join_next().await {
        placed.extend(joined.expect("writer ran"));
    }
    placed.sort_unstable();
    let by_position: Vec<_> = placed.iter().map(|(_, id)| *id).collect();
    let listed = store
        .visible_messages(
            alice.id,
            &alice.username,
            chat_test_support::page(
                chat_domain::PageRequest::<chat_domain::MessageId>::MAX_LIMIT,
                chat_domain::Cursor::Latest,
            ),
        )
        .await
        .expect("reads");
    assert!(!listed.has_older, "one page holds all 192");
    let listed: Vec<_> = listed.items.iter().map(|m| m.id).collect();
    assert_eq!(listed, by_position);
}

/// Edits, deletions, reactions and read-marker moves take their positions
/// under the same ordering lock as messages: queued together with
/// messages, they are written in the same transaction and commit, instead
/// of one commit each holding up the messages behind it.
#[tokio::test]
async fn changes_and_reads_share_the_batch_and_commit_of_messages() {
    let store = Arc::new(PgTestStore::create().await);
    let alice = seed_user(&**store, "alice").await;
    let bob = seed_user(&**store, "bob").await;
    let (edited, deleted, direct) = (
        new_message(&alice, MessageTarget::Global, "typo"),
        new_message(&alice, MessageTarget::Global, "oops"),
        new_message(&alice, to(&bob), "hi bob"),
    );
    for new in [&edited, &deleted, &direct] {
        store.insert_message(new).await.expect("stored");
    }
    let held = HeldWriter::hold(&store, &bob).await;

    let now = time::OffsetDateTime::now_utc();
    let thumbs = Emoji::parse("👍").expect("an emoji");
    let fixed = MessageContent::parse("fixed").expect("valid content");
    let later = new_message(&bob, MessageTarget::Global, "later");
    let (e, d, m) = (edited.message.id, deleted.message.id, direct.message.id);
    let peer = ConversationRef::Direct(alice.username.clone());
    let (s1, s2, s3, s4, s5) = (
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
    );
    let (content, emoji, queued) = (fixed.clone(), thumbs.clone(), later.clone());
    let edit = tokio::spawn(async move { s1.edit_message(e, &content, now).await });
    let delete = tokio::spawn(async move { s2.delete_message(d, now).await });
    let react = tokio::spawn(async move { s3.add_reaction(e, bob.id, &emoji).await });
    let read = tokio::spawn(async move { s4.mark_read(bob.id, &peer, m).await });
    let insert = tokio::spawn(async move { s5.insert_message(&queued).await });
    held.release(Duration::from_millis(300)).await;

    let edit = edit.await.expect("ran").expect("edited");
    let delete = delete.await.expect("ran").expect("deleted");
    let react = react.await.expect("ran").expect("reacted");
    let read = read.await.expect("ran").expect("read");
    insert.await.expect("ran").expect("later stored");
    assert_eq!(edit.message.content, fixed);
    assert!(delete.message.deleted_at.is_some());
    let positions = [edit.position, delete.position, react.position, read];
    assert!(
        positions.iter().all(Option::is_some),
        "each took a position: {positions:?}"
    );

    let mut conn = AsyncPgConnection::establish(&store.database.url)
        .await
        .expect("a second session");
    let transactions = count(
        &mut conn,
        &format!(
            "SELECT count(DISTINCT x) AS n FROM ( \
                 SELECT xmin::text AS x FROM messages WHERE id IN ('{}', '{}', '{}') \
                 UNION ALL SELECT xmin::text FROM message_reactions WHERE message_id = '{}' \
                 UNION ALL SELECT xmin::text FROM read_markers \
                     WHERE user_id = '{}' AND read_seq IS NOT NULL) AS written",
            edited.message.id.as_uuid(),
            deleted.message.id.as_uuid(),
            later.message.id.as_uuid(),
            edited.message.id.as_uuid(),
            bob.id.as_uuid(),
        ),
    )
    .await;
    assert_eq!(
        transactions, 1,
        "a message, an edit, a deletion, a reaction and a read queued together commit together"
    );
}

/// A change that fails in the database (a reaction by a user that does not
/// exist) rolls back its batch's transaction: the batch is written again
/// one write at a time, and only that change fails.
#[tokio::test]
async fn a_failing_change_fails_alone_in_its_batch() {
    let store = Arc::new(PgTestStore::create().await);
    let alice = seed_user(&**store, "alice").await;
    let target = new_message(&alice, MessageTarget::Global, "react to me");
    store.insert_message(&target).await.expect("stored");
    let held = HeldWriter::hold(&store, &alice).await;

    let thumbs = Emoji::parse("👍").expect("an emoji");
    let id = target.message.id;
    let message = new_message(&alice, MessageTarget::Global, "in the batch");
    let (ghost, good, insert) = {
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        let (t1, t2) = (thumbs.clone(), thumbs.clone());
        let message = message.clone();
        (
            tokio::spawn(async move { s1.add_reaction(id, UserId::generate(), &t1).await }),
            tokio::spawn(async move { s2.add_reaction(id, alice.id, &t2).await }),
            tokio::spawn(async move { s3.insert_message(&message).await }),
        )
    };
    held.release(Duration::from_millis(300)).await;

    assert_eq!(ghost.await.expect("ran"), Err(DomainError::UserNotFound));
    let good = good.await.expect("ran").expect("reacted");
    assert!(good.position.is_some());
    assert_eq!(good.message.reactions.len(), 1);
    assert!(insert.await.expect("ran").expect("stored").is_new());
}
