//! What only the PostgreSQL adapter has: constraints enforced by the
//! database itself (checked with raw Diesel inserts that bypass the domain),
//! concurrent migrations, and behaviour when the database is missing or
//! drops its connections.

use std::time::{Duration, Instant};

use chat_domain::{ConversationRef, MessageStore, ReadStore, RoomStore};
use chat_domain::{DomainError, MessageTarget, PageRequest, StoreHealth, UserId, UserStore};
use chat_store_postgres::schema::{messages, read_markers, users};
use chat_store_postgres::{build_pool, run_migrations, PgStore, StartupError, MIGRATIONS};
use chat_test_support::pg::{admin_url, PgTestStore, TestDatabase};
use chat_test_support::{new_message, room, seed_user, to, username};
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use uuid::Uuid;

/// The kind and constraint of a database error, or a panic saying what came
/// instead.
fn violation(result: Result<usize, DieselError>) -> (String, String) {
    match result {
        Err(DieselError::DatabaseError(kind, info)) => {
            let kind = match kind {
                DatabaseErrorKind::CheckViolation => "check",
                DatabaseErrorKind::UniqueViolation => "unique",
                DatabaseErrorKind::ForeignKeyViolation => "foreign key",
                _ => "other",
            };
            let constraint = info.constraint_name().unwrap_or_default().to_owned();
            (kind.to_owned(), constraint)
        }
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

/// A port that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a free port");
    listener.local_addr().expect("has an address").port()
}

#[tokio::test]
async fn a_message_cannot_be_both_direct_and_for_a_room() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let general = room("general", alice.id, &[bob.id]);
    store.create_room(&general).await.expect("room stored");
    let mut conn = store.pool().get().await.expect("connection");
    let both = diesel::insert_into(messages::table)
        .values((
            messages::id.eq(Uuid::now_v7()),
            messages::sender_id.eq(alice.id.as_uuid()),
            messages::sender.eq("alice"),
            messages::recipient_id.eq(bob.id.as_uuid()),
            messages::recipient.eq("bob"),
            messages::room_id.eq(general.id.as_uuid()),
            messages::content.eq("to bob and the room"),
        ))
        .execute(&mut conn)
        .await;
    assert_eq!(
        violation(both),
        ("check".to_owned(), "messages_one_target".to_owned())
    );
    let half = diesel::insert_into(messages::table)
        .values((
            messages::id.eq(Uuid::now_v7()),
            messages::sender_id.eq(alice.id.as_uuid()),
            messages::sender.eq("alice"),
            messages::recipient_id.eq(bob.id.as_uuid()),
            messages::content.eq("a recipient id without its name"),
        ))
        .execute(&mut conn)
        .await;
    assert_eq!(
        violation(half),
        ("check".to_owned(), "messages_recipient_complete".to_owned())
    );
}

#[tokio::test]
async fn message_rows_must_follow_the_domain_rules() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let mut conn = store.pool().get().await.expect("connection");
    let insert = |sender: &'static str, content: String| {
        diesel::insert_into(messages::table).values((
            messages::id.eq(Uuid::now_v7()),
            messages::sender_id.eq(alice.id.as_uuid()),
            messages::sender.eq(sender),
            messages::content.eq(content),
        ))
    };
    let too_long = insert("alice", "x".repeat(4001)).execute(&mut conn).await;
    assert_eq!(
        violation(too_long),
        ("check".to_owned(), "messages_content_length".to_owned())
    );
    // The denormalized sender name must be the account's own.
    let renamed = insert("mallory", "hi".to_owned()).execute(&mut conn).await;
    assert_eq!(
        violation(renamed),
        ("foreign key".to_owned(), "messages_sender_fkey".to_owned())
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_ignoring_case_in_the_database() {
    let store = PgTestStore::create().await;
    seed_user(&*store, "Alice").await;
    let mut conn = store.pool().get().await.expect("connection");
    let insert = |name: &str, email: &str| {
        diesel::insert_into(users::table).values((
            users::id.eq(Uuid::now_v7()),
            users::username.eq(name.to_owned()),
            users::email.eq(email.to_owned()),
            users::password_hash.eq("x"),
        ))
    };
    let same_name = insert("aLICE", "other@example.com")
        .execute(&mut conn)
        .await;
    assert_eq!(
        violation(same_name),
        ("unique".to_owned(), "users_username_lower_key".to_owned())
    );
    let same_email = insert("bob", "ALICE@example.COM").execute(&mut conn).await;
    assert_eq!(
        violation(same_email),
        ("unique".to_owned(), "users_email_lower_key".to_owned())
    );
    let bad_name = insert("no spaces", "c@example.com")
        .execute(&mut conn)
        .await;
    assert_eq!(
        violation(bad_name),
        ("check".to_owned(), "users_username_format".to_owned())
    );
}

#[tokio::test]
async fn unknown_recipients_and_rooms_are_not_found_errors() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let to_nobody = new_message(
        &alice,
        MessageTarget::Direct(username("nobody")),
        "anyone there?",
    );
    assert_eq!(
        store.insert_message(&to_nobody).await,
        Err(DomainError::UserNotFound)
    );
    let to_no_room = new_message(
        &alice,
        MessageTarget::Room(chat_domain::RoomId::generate()),
        "hello?",
    );
    assert_eq!(
        store.insert_message(&to_no_room).await,
        Err(DomainError::RoomNotFound)
    );
    let with_stranger = room("r", alice.id, &[UserId::generate()]);
    assert_eq!(
        store.create_room(&with_stranger).await,
        Err(DomainError::UserNotFound)
    );
    assert_eq!(
        store.room_by_id(with_stranger.id).await,
        Ok(None),
        "a failed creation leaves no room behind"
    );
}

#[tokio::test]
async fn migrations_run_twice_at_once_apply_each_migration_once() {
    let db = TestDatabase::empty().await;
    let (first, second) = tokio::join!(run_migrations(&db.url), run_migrations(&db.url));
    let (first, second) = (first.expect("migrates"), second.expect("migrates"));
    let mut applied = [first, second].concat();
    applied.sort();
    let expected = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .expect("embedded migrations list")
        .len();
    assert_eq!(
        applied.len(),
        expected,
        "every migration applied once: {applied:?}"
    );
    applied.dedup();
    assert_eq!(applied.len(), expected);
    assert_eq!(
        run_migrations(&db.url).await.expect("migrates"),
        Vec::<String>::new(),
        "nothing is left to apply"
    );
    // And two stores starting together on it both come up.
    let (a, b) = tokio::join!(PgStore::connect(&db.url, 2), PgStore::connect(&db.url, 2));
    a.expect("first store").check().await.expect("healthy");
    b.expect("second store").check().await.expect("healthy");
}

#[tokio::test]
async fn a_store_on_a_closed_port_is_unavailable_not_broken() {
    let url = format!("postgres://postgres@127.0.0.1:{}/chat", closed_port());
    let store = PgStore::from_pool(build_pool(&url, 2).expect("a pool builds lazily"));
    let started = Instant::now();
    assert_eq!(store.check().await, Err(DomainError::StoreUnavailable));
    assert_eq!(
        store.user_by_id(UserId::generate()).await,
        Err(DomainError::StoreUnavailable)
    );
    assert_eq!(
        store.user_by_username(&username("alice")).await,
        Err(DomainError::StoreUnavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_within_ten_seconds_naming_the_database() {
    let port = closed_port();
    let url = format!("postgres://chat:secret@127.0.0.1:{port}/chat_prod");
    let started = Instant::now();
    let err = PgStore::connect(&url, 2)
        .await
        .expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, StartupError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}/chat_prod")),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    assert!(
        message.to_lowercase().contains("refused"),
        "says why: {message}"
    );
}

#[tokio::test]
async fn the_store_recovers_by_itself_when_its_connections_are_killed() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    store.check().await.expect("healthy");
    // What a database restart does to the pool: every session is gone.
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin connection");
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(&store.database.name)
    .execute(&mut admin)
    .await
    .expect("terminates the store's sessions");
    // A call may still hit a dead connection once; it must then say
    // "unavailable", never "internal". Soon after, everything works again.
    // (A list: an account read by name or id may be answered from the
    // store's cache, without a connection.)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.list_users(PageRequest::latest()).await {
            Ok(found) => {
                assert!(found.items.iter().any(|a| a.id == alice.id));
                break;
            }
            Err(DomainError::StoreUnavailable) => {
                assert!(Instant::now() < deadline, "the store did not recover");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("a lost connection must be StoreUnavailable, got {other:?}"),
        }
    }
    store.check().await.expect("healthy again");
}

#[tokio::test]
async fn members_are_listed_in_the_order_they_joined() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let carol = seed_user(&*store, "carol").await;
    let general = room("general", alice.id, &[carol.id, bob.id]);
    store.create_room(&general).await.expect("room stored");
    assert!(store
        .remove_member(general.id, carol.id)
        .await
        .expect("removes"));
    assert!(store.add_member(general.id, carol.id).await.expect("adds"));
    let found = store
        .room_by_id(general.id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(found.members, vec![alice.id, bob.id, carol.id]);
}

#[tokio::test]
async fn visible_messages_merge_many_rooms_in_id_order() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let mut rooms = Vec::new();
    for name in ["r1", "r2", "r3", "r4"] {
        let created = room(name, bob.id, &[alice.id]);
        store.create_room(&created).await.expect("room stored");
        rooms.push(created.id);
    }
    let mut expected = Vec::new();
    for i in 0..20 {
        let target = match i % 3 {
            0 => MessageTarget::Global,
            1 => MessageTarget::Direct(alice.username.clone()),
            _ => MessageTarget::Room(rooms[i % rooms.len()]),
        };
        let stored = store
            .insert_message(&new_message(&bob, target, &format!("m{i}")))
            .await
            .expect("stores");
        expected.push(stored.message().id);
    }
    // Walk back two at a time: every message once, in id order.
    let mut seen = Vec::new();
    let mut cursor = chat_domain::Cursor::Latest;
    loop {
        let page = store
            .visible_messages(
                alice.id,
                &alice.username,
                chat_test_support::page(2, cursor),
            )
            .await
            .expect("reads");
        let ids: Vec<_> = page.items.iter().map(|m| m.id).collect();
        seen.splice(0..0, ids.iter().copied());
        match (page.has_older, ids.as_slice().first()) {
            (true, Some(&first)) => cursor = chat_domain::Cursor::Before(first),
            _ => break,
        }
    }
    assert_eq!(seen, expected);
}

/// Accounts read by name are cached per store (`account_cache.rs`), and a
/// cache per instance must never hide an account another instance
/// registered: only accounts found are kept.
#[tokio::test]
async fn an_account_registered_elsewhere_is_found_after_a_miss() {
    let here = PgTestStore::create().await;
    let elsewhere = here.database.store().await;
    assert_eq!(
        here.user_by_username(&username("bob"))
            .await
            .expect("reads"),
        None
    );
    let bob = seed_user(&elsewhere, "bob").await;
    let found = here
        .user_by_username(&username("BOB"))
        .await
        .expect("reads")
        .expect("registered by the other instance");
    assert_eq!(found.id, bob.id);
    // A direct message to an account this instance never read is stored
    // too (the batch resolves its recipient in the database).
    let alice = seed_user(&*here, "alice").await;
    seed_user(&elsewhere, "carol").await;
    for to in ["bob", "carol"] {
        let dm = new_message(&alice, MessageTarget::Direct(username(to)), "hi");
        here.insert_message(&dm).await.expect("stored");
    }
}

/// A direct message writes no marker row: what its sender has read is
/// their latest own message, kept on the conversation's row, which the
/// batch writes anyway. Rooms and the global conversation still move the
/// sender's marker row.
#[tokio::test]
async fn direct_messages_move_no_marker_rows() {
    let store = PgTestStore::create().await;
    let alice = seed_user(&*store, "alice").await;
    let bob = seed_user(&*store, "bob").await;
    let batch: Vec<_> = (0..4)
        .map(|i| new_message(&alice, to(&bob), &format!("m{i}")))
        .chain([new_message(&bob, to(&alice), "reply")])
        .collect();
    for stored in store.insert_messages(&batch).await {
        stored.expect("stores");
    }
    store
        .insert_message(&new_message(&alice, MessageTarget::Global, "hello"))
        .await
        .expect("stores");
    let mut conn = AsyncPgConnection::establish(&store.database.url)
        .await
        .expect("connects");
    let direct_markers: i64 = read_markers::table
        .filter(read_markers::peer_id.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .expect("counts");
    assert_eq!(direct_markers, 0);
    let alices_global: Option<Uuid> = read_markers::table
        .filter(read_markers::user_id.eq(alice.id.as_uuid()))
        .filter(read_markers::conv_key.eq(Uuid::nil()))
        .select(read_markers::message_id)
        .first(&mut conn)
        .await
        .expect("alice's global marker");
    assert!(alices_global.is_some(), "sending moved it");
    let alices = store
        .conversation(alice.id, &ConversationRef::Direct(bob.username.clone()))
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(alices.unread_count, 1, "bob's reply");
}

/// `direct_own_places` carries what senders of direct messages have read
/// over from the marker rows to the conversations' rows, and back when
/// reverted.
#[tokio::test]
async fn migrating_direct_own_places_up_and_down_keeps_what_was_read() {
    let db = TestDatabase::create().await;
    let migrate = |url: String, revert: bool| {
        tokio::task::spawn_blocking(move || {
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                    .expect("connects");
            if revert {
                // The later migrations first, then this one.
                while conn
                    .revert_last_migration(MIGRATIONS)
                    .expect("reverts")
                    .to_string()
                    != "20261206000008"
                {}
            } else {
                conn.run_pending_migrations(MIGRATIONS).expect("migrates");
            }
        })
    };
    migrate(db.url.clone(), true).await.expect("reverted");
    let store = db.store().await;
    let alice = seed_user(&store, "alice").await;
    let bob = seed_user(&store, "bob").await;
    // Plain inserts: the store's own insert needs the later migrations.
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connects");
    let mut sent = Vec::new();
    for (from, to_user, text) in [
        (&alice, &bob, "a1"),
        (&alice, &bob, "a2"),
        (&bob, &alice, "b1"),
    ] {
        let id = Uuid::now_v7();
        diesel::insert_into(messages::table)
            .values((
                messages::id.eq(id),
                messages::sender_id.eq(from.id.as_uuid()),
                messages::sender.eq(from.username.as_str()),
                messages::recipient_id.eq(to_user.id.as_uuid()),
                messages::recipient.eq(to_user.username.as_str()),
                messages::content.eq(text),
            ))
            .execute(&mut conn)
            .await
            .expect("stores");
        sent.push(chat_domain::MessageId::from_uuid(id));
    }
    migrate(db.url.clone(), false).await.expect("migrated");
    let view = |user: UserId, peer: &chat_domain::Username| {
        let store = &store;
        let conversation = ConversationRef::Direct(peer.clone());
        async move {
            let seen = store
                .conversation(user, &conversation)
                .await
                .expect("reads")
                .expect("exists");
            (seen.unread_count, seen.last_read_id, seen.peer_last_read_id)
        }
    };
    assert_eq!(
        view(alice.id, &bob.username).await,
        (1, Some(sent[1]), Some(sent[2]))
    );
    assert_eq!(
        view(bob.id, &alice.username).await,
        (0, Some(sent[2]), Some(sent[1]))
    );
    let a3 = store
        .insert_message(&new_message(&alice, to(&bob), "a3"))
        .await
        .expect("stores")
        .message()
        .id;
    migrate(db.url.clone(), true).await.expect("reverted");
    let mut markers: Vec<(Uuid, Option<Uuid>, Option<Uuid>)> = read_markers::table
        .filter(read_markers::peer_id.is_not_null())
        .select((
            read_markers::user_id,
            read_markers::message_id,
            read_markers::peer_id,
        ))
        .load(&mut conn)
        .await
        .expect("reads");
    markers.sort();
    let mut expected = vec![
        (
            alice.id.as_uuid(),
            Some(a3.as_uuid()),
            Some(bob.id.as_uuid()),
        ),
        (
            bob.id.as_uuid(),
            Some(sent[2].as_uuid()),
            Some(alice.id.as_uuid()),
        ),
    ];
    expected.sort();
    assert_eq!(
        markers, expected,
        "each sender's marker on their latest own"
    );
}
