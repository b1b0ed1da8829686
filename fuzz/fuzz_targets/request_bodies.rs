//! JSON request bodies and the value constructors they go through.
//!
//! The input is tried three ways, each checking the constructors'
//! invariants (the bounds SPEC sets, trimming, and that a parsed value
//! parses again to itself and survives a JSON round trip):
//! - as the raw text of every validated value (`Username`, `Email`, ...);
//! - as the JSON bodies of SPEC's POST routes, mirrored here field for
//!   field, with each field run through its constructor as a handler does;
//! - as a stored `Message` (what the stores and the Redis fan-out decode),
//!   and as the bytes of a pagination query.

#![no_main]

use chat_domain::{
    ClientId, Email, Message, MessageContent, MessageId, PageRequest, Password, RoomDescription,
    RoomId, RoomName, UserId, Username,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_values(text);
    }
    check_bodies(data);
    check_message(data);
    check_page_request(data);
});

/// `POST /api/auth/register`.
#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
}

/// `POST /api/auth/login`.
#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/messages`.
#[derive(Deserialize)]
struct SendBody {
    content: String,
    recipient: Option<String>,
    room_id: Option<RoomId>,
    sender: Option<String>,
    client_id: Option<String>,
}

/// `POST /api/rooms`.
#[derive(Deserialize)]
struct CreateRoomBody {
    name: String,
    description: Option<String>,
    members: Option<Vec<UserId>>,
}

fn check_values(text: &str) {
    if let Ok(name) = Username::parse(text) {
        let len = name.as_str().chars().count();
        assert!((3..=32).contains(&len));
        assert!(name
            .as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
        assert!(name.same_account(&name));
        round_trip(&name, Username::parse);
    }
    if let Ok(email) = Email::parse(text) {
        assert!((3..=254).contains(&email.as_str().chars().count()));
        assert_eq!(email.as_str().matches('@').count(), 1);
        assert!(!email.as_str().chars().any(char::is_whitespace));
        round_trip(&email, Email::parse);
    }
    if let Ok(password) = Password::parse(text) {
        assert!((8..=128).contains(&password.expose().chars().count()));
        // A fixed text, whatever the password (a password may itself be a
        // substring of it, such as "redacted").
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
    if let Ok(content) = MessageContent::parse(text) {
        assert_trimmed_len(content.as_str(), 1, MessageContent::MAX_CHARS);
        assert_eq!(content.as_str(), text.trim());
        round_trip(&content, MessageContent::parse);
    }
    if let Ok(name) = RoomName::parse(text) {
        assert_trimmed_len(name.as_str(), 1, 100);
        round_trip(&name, RoomName::parse);
    }
    if let Ok(description) = RoomDescription::parse(text) {
        assert_trimmed_len(description.as_str(), 0, 1000);
        round_trip(&description, RoomDescription::parse);
    }
    if let Ok(client_id) = ClientId::parse(text) {
        assert!((1..=64).contains(&client_id.as_str().len()));
        assert!(client_id.as_str().chars().all(|c| c.is_ascii_graphic()));
        round_trip(&client_id, ClientId::parse);
    }
}

fn check_bodies(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<RegisterBody>(data) {
        check_values(&body.username);
        check_values(&body.email);
        check_values(&body.password);
    }
    if let Ok(body) = serde_json::from_slice::<LoginBody>(data) {
        check_values(&body.username);
        check_values(&body.password);
    }
    if let Ok(body) = serde_json::from_slice::<SendBody>(data) {
        check_values(&body.content);
        for field in [body.recipient, body.sender, body.client_id]
            .into_iter()
            .flatten()
        {
            check_values(&field);
        }
        if let Some(room_id) = body.room_id {
            assert_eq!(room_id.to_string().parse::<RoomId>().ok(), Some(room_id));
        }
    }
    if let Ok(body) = serde_json::from_slice::<CreateRoomBody>(data) {
        check_values(&body.name);
        if let Some(description) = body.description {
            check_values(&description);
        }
        for member in body.members.unwrap_or_default() {
            assert_eq!(member.to_string().parse::<UserId>().ok(), Some(member));
        }
    }
}

fn check_message(data: &[u8]) {
    let Ok(message) = serde_json::from_slice::<Message>(data) else {
        return;
    };
    assert_trimmed_len(message.content.as_str(), 1, MessageContent::MAX_CHARS);
    assert!(
        message.recipient().is_none() || message.room_id().is_none(),
        "a message is exactly one of global, direct, room"
    );
    let json = serde_json::to_string(&message).expect("a message serializes");
    let again: Message = serde_json::from_str(&json).expect("a serialized message parses");
    assert_eq!(again, message);
}

/// The query `?limit=&before=&after=` as a handler hands it over: up to 8
/// bytes of limit and two optional cursors, each present or not by a flag
/// bit of the first byte.
fn check_page_request(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut limit_bytes = [0u8; 8];
    let n = rest.len().min(8);
    limit_bytes[..n].copy_from_slice(&rest[..n]);
    let limit = (flags & 1 != 0).then(|| usize::from_le_bytes(limit_bytes));
    let before = (flags & 2 != 0).then(MessageId::generate);
    let after = (flags & 4 != 0).then(MessageId::generate);
    match PageRequest::new(limit, before, after) {
        Ok(page) => {
            assert!((1..=PageRequest::<MessageId>::MAX_LIMIT).contains(&page.limit));
            assert!(before.is_none() || after.is_none());
            if limit.is_none() {
                assert_eq!(page.limit, PageRequest::<MessageId>::DEFAULT_LIMIT);
            }
        }
        Err(error) => {
            assert_eq!(error.code(), "validation_error");
            assert!(limit == Some(0) || (before.is_some() && after.is_some()));
        }
    }
}

fn assert_trimmed_len(text: &str, min: usize, max: usize) {
    assert_eq!(text, text.trim(), "kept text has no surrounding whitespace");
    assert!((min..=max).contains(&text.chars().count()));
}

/// A valid value parses again to itself, and survives a JSON round trip
/// (deserializing validates, so this also checks serde agrees with `parse`).
fn round_trip<T, E>(value: &T, parse: impl Fn(String) -> Result<T, E>)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + AsRef<str>,
    E: std::fmt::Debug,
{
    let reparsed = parse(value.as_ref().to_owned()).expect("a valid value parses again");
    assert_eq!(&reparsed, value);
    let json = serde_json::to_string(value).expect("a value serializes");
    let back: T = serde_json::from_str(&json).expect("a serialized value deserializes");
    assert_eq!(&back, value);
}
