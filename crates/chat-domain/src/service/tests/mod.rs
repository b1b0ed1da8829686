//! Unit tests of the use cases, against mocked ports.
//!
//! [`Harness`] holds one mock per port. A test sets the expectations that
//! matter to it (writes, publishes, hashing, tokens) and then calls
//! [`Harness::build`], which adds read-only fallbacks behind them: three
//! known users, the rooms the test registered, nobody online, a fixed clock.
//! Mockall matches expectations first-in first-out, so a test's own
//! expectation on a read always wins over the fallback. Any port call that
//! no expectation covers panics, so an unplanned side effect fails the test.

mod accounts;
mod messages;
mod reads;
mod replay;
mod rooms;
mod typing;

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::auth::{Caller, Claims};
use crate::entities::{Message, MessageTarget, NewMessage, Room, Stored, UserAccount};
use crate::error::DomainResult;
use crate::ids::{MessageId, RoomId, TokenId, UserId};
use crate::pagination::Page;
use crate::ports::{
    Audience, Event, MockClock, MockMessageStore, MockNotifier, MockPasswordHasher, MockReadStore,
    MockRevocationStore, MockRoomStore, MockStoreHealth, MockTokenCodec, MockUserStore,
};
use crate::values::{Email, MessageContent, PasswordHash, RoomDescription, RoomName, Username};

use super::{AuthPolicy, ChatService, Stores};

/// What the fallback `decoy_hash` returns.
const DECOY: &str = "decoy-hash";

/// The fixed "now" of every test: 2026-01-01T00:00:00Z.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a valid timestamp")
}

fn name(raw: &str) -> Username {
    Username::parse(raw).expect("a valid test username")
}

fn user_id(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

fn room_id(n: u128) -> RoomId {
    RoomId::from_uuid(Uuid::from_u128(0x1000 + n))
}

fn account(n: u128, username: &str) -> UserAccount {
    UserAccount {
        id: user_id(n),
        username: name(username),
        email: Email::parse(format!("{username}@example.com")).expect("a valid test email"),
        password_hash: PasswordHash::new(format!("hash-of-{username}")),
        created_at: now() - Duration::days(30),
    }
}

fn alice() -> UserAccount {
    account(1, "alice")
}

fn bob() -> UserAccount {
    account(2, "bob")
}

fn carol() -> UserAccount {
    account(3, "carol")
}

/// A user whom no store knows.
fn stranger() -> UserAccount {
    account(99, "stranger")
}

/// The identity `account` has after presenting a token that expires in
/// `expires_in`.
fn caller_expiring(account: &UserAccount, expires_in: Duration) -> Caller {
    Caller {
        user_id: account.id,
        username: account.username.clone(),
        token_id: TokenId::from_uuid(Uuid::from_u128(0x2000 + account.id.as_uuid().as_u128())),
        expires_at: now() + expires_in,
    }
}

/// The identity of `account` with a freshly issued day-long token.
fn caller(account: &UserAccount) -> Caller {
    caller_expiring(account, Duration::hours(24))
}

fn claims(account: &UserAccount, expires_at: OffsetDateTime) -> Claims {
    Claims {
        sub: account.id.to_string(),
        user_id: account.id,
        username: account.username.clone(),
        iat: (expires_at - Duration::hours(24)).unix_timestamp(),
        nbf: None,
        exp: expires_at.unix_timestamp(),
        jti: TokenId::from_uuid(Uuid::from_u128(0x3000)),
    }
}

fn room(n: u128, created_by: &UserAccount, members: &[&UserAccount]) -> Room {
    Room {
        id: room_id(n),
        name: RoomName::parse(format!("room {n}")).expect("a valid room name"),
        description: RoomDescription::parse("").expect("an empty description"),
        members: members.iter().map(|a| a.id).collect(),
        created_by: created_by.id,
        created_at: now() - Duration::days(1),
    }
}

fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        has_older: false,
        has_newer: false,
    }
}

/// A message as a store would hand it back.
fn stored_message(sender: &UserAccount, target: MessageTarget, content: &str) -> Message {
    Message::new(
        MessageId::generate(),
        sender.username.clone(),
        target,
        MessageContent::parse(content).expect("valid content"),
        now(),
    )
}

/// A store that keeps whatever it is given: the `insert_message` answer of
/// a store seeing a message for the first time.
fn created(new: &NewMessage) -> DomainResult<Stored> {
    Ok(Stored::Created(new.message.clone()))
}

/// Every value a mock was called with, in call order.
#[derive(Clone)]
struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Recorder<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, value: T) {
        self.0.lock().expect("recorder lock").push(value);
    }

    fn calls(&self) -> Vec<T> {
        self.0.lock().expect("recorder lock").clone()
    }
}

/// Records every publish and lets it through.
fn record_publishes(notifier: &mut MockNotifier) -> Recorder<(Event, Audience)> {
    let recorder = Recorder::new();
    let sink = recorder.clone();
    notifier
        .expect_publish()
        .returning(move |event, audience| sink.push((event, audience)));
    recorder
}

/// Records every inserted message and stores it as new.
fn record_inserts(messages: &mut MockMessageStore) -> Recorder<NewMessage> {
    let recorder = Recorder::new();
    let sink = recorder.clone();
    messages.expect_insert_message().returning(move |new| {
        sink.push(new.clone());
        created(new)
    });
    recorder
}

/// One mock per port, assembled into a [`ChatService`] by [`Harness::build`].
struct Harness {
    users: MockUserStore,
    rooms: MockRoomStore,
    messages: MockMessageStore,
    revocations: MockRevocationStore,
    reads: MockReadStore,
    health: MockStoreHealth,
    notifier: MockNotifier,
    hasher: MockPasswordHasher,
    tokens: MockTokenCodec,
    policy: AuthPolicy,
    known_users: Vec<UserAccount>,
    known_rooms: Vec<Room>,
    online: Vec<UserId>,
}

impl Harness {
    /// Mocks that know alice, bob and carol, no room, and nobody online.
    fn new() -> Self {
        Self {
            users: MockUserStore::new(),
            rooms: MockRoomStore::new(),
            messages: MockMessageStore::new(),
            revocations: MockRevocationStore::new(),
            reads: MockReadStore::new(),
            health: MockStoreHealth::new(),
            notifier: MockNotifier::new(),
            hasher: MockPasswordHasher::new(),
            tokens: MockTokenCodec::new(),
            policy: AuthPolicy::default(),
            known_users: vec![alice(), bob(), carol()],
            known_rooms: Vec::new(),
            online: Vec::new(),
        }
    }

    /// Makes `room_by_id` find this room.
    fn with_room(mut self, room: Room) -> Self {
        self.known_rooms.push(room);
        self
    }

    /// Makes the notifier report this user as connected.
    fn with_online(mut self, user: UserId) -> Self {
        self.online.push(user);
        self
    }

    /// Adds the read-only fallbacks behind the test's own expectations and
    /// wires the service on a clock stopped at [`now`].
    fn build(mut self) -> ChatService {
        self.install_fallbacks();
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        let stores = Stores {
            users: Arc::new(self.users),
            rooms: Arc::new(self.rooms),
            messages: Arc::new(self.messages),
            revocations: Arc::new(self.revocations),
            reads: Arc::new(self.reads),
            health: Arc::new(self.health),
        };
        ChatService::new(
            stores,
            Arc::new(self.notifier),
            Arc::new(self.hasher),
            Arc::new(self.tokens),
            self.policy,
        )
        .with_clock(Arc::new(clock))
    }

    fn install_fallbacks(&mut self) {
        let users = self.known_users.clone();
        self.users
            .expect_user_by_id()
            .returning(move |id| Ok(users.iter().find(|a| a.id == id).cloned()));
        let users = self.known_users.clone();
        self.users
            .expect_user_by_username()
            .returning(move |wanted| {
                Ok(users
                    .iter()
                    .find(|a| a.username.same_account(wanted))
                    .cloned())
            });
        let rooms = self.known_rooms.clone();
        self.rooms
            .expect_room_by_id()
            .returning(move |id| Ok(rooms.iter().find(|r| r.id == id).cloned()));
        let online = self.online.clone();
        self.notifier.expect_online_among().returning(move |ids| {
            Ok(ids
                .iter()
                .copied()
                .filter(|id| online.contains(id))
                .collect())
        });
        self.hasher
            .expect_decoy_hash()
            .returning(|| PasswordHash::new(DECOY));
        // Unless a test says otherwise, a store that inserts one message at
        // a time (`insert_message`).
        self.messages.expect_reports_positions().return_const(false);
    }
}

#[tokio::test]
async fn store_health_reports_what_the_store_says() {
    let mut h = Harness::new();
    h.health
        .expect_check()
        .times(1)
        .returning(|| Err(crate::DomainError::StoreUnavailable));
    let service = h.build();

    assert_eq!(
        service.store_health().await,
        Err(crate::DomainError::StoreUnavailable)
    );
}
