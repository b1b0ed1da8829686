//! Small builders for test data. They panic on invalid input: they are for
//! tests, where a bad literal is a bug in the test.

use chat_domain::{
    ClientId, Cursor, Email, Message, MessageContent, MessageId, MessageTarget, NewMessage,
    PageRequest, PasswordHash, Room, RoomDescription, RoomId, RoomName, UserAccount, UserId,
    UserStore, Username,
};
use time::OffsetDateTime;

/// A well-formed bcrypt hash (cost 4) that matches no password a test uses.
pub const DUMMY_PASSWORD_HASH: &str =
    "$2b$04$C6UzMDM.H6dfI/f/IKxGhuZ8l4NvPZ0yYkC2KoC1JPn7Znm1J7YEu";

/// Now, cut to whole microseconds: what PostgreSQL keeps, so a value read
/// back from any store equals the one written.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("a whole number of microseconds is a valid nanosecond")
}

/// A user name, checked.
pub fn username(name: &str) -> Username {
    Username::parse(name).expect("test usernames are valid")
}

/// An account named `name` with email `name@example.com` and a dummy hash.
pub fn account(name: &str) -> UserAccount {
    account_with_email(name, &format!("{name}@example.com"))
}

/// An account with a chosen email.
pub fn account_with_email(name: &str, email: &str) -> UserAccount {
    UserAccount {
        id: UserId::generate(),
        username: username(name),
        email: Email::parse(email).expect("test emails are valid"),
        password_hash: PasswordHash::new(DUMMY_PASSWORD_HASH),
        created_at: now(),
    }
}

/// Stores [`account`]`(name)` and returns it.
pub async fn seed_user<S: UserStore + ?Sized>(store: &S, name: &str) -> UserAccount {
    let account = account(name);
    store
        .create_user(&account)
        .await
        .expect("a fresh test user can be stored");
    account
}

/// A room created by `created_by`, whose members are the creator and then
/// `members` (each once, in order).
pub fn room(name: &str, created_by: UserId, members: &[UserId]) -> Room {
    let mut all = vec![created_by];
    for &member in members {
        if !all.contains(&member) {
            all.push(member);
        }
    }
    Room {
        id: RoomId::generate(),
        name: RoomName::parse(name).expect("test room names are valid"),
        description: RoomDescription::parse("").expect("empty is a valid description"),
        members: all,
        created_by,
        created_at: now(),
    }
}

/// A message from `sender` to `target`, with a fresh id and no client id.
pub fn new_message(sender: &UserAccount, target: MessageTarget, content: &str) -> NewMessage {
    NewMessage {
        message: Message::new(
            MessageId::generate(),
            sender.username.clone(),
            target,
            MessageContent::parse(content).expect("test content is valid"),
            now(),
        ),
        sender_id: sender.id,
        client_id: None,
    }
}

/// [`new_message`] with an idempotency key.
pub fn new_message_with_client_id(
    sender: &UserAccount,
    target: MessageTarget,
    content: &str,
    client_id: &str,
) -> NewMessage {
    NewMessage {
        client_id: Some(ClientId::parse(client_id).expect("test client ids are valid")),
        ..new_message(sender, target, content)
    }
}

/// [`new_message`] answering `parent` in its thread.
pub fn new_reply(
    sender: &UserAccount,
    target: MessageTarget,
    content: &str,
    parent: MessageId,
) -> NewMessage {
    let mut new = new_message(sender, target, content);
    new.message.reply_to = Some(parent);
    new
}

/// An emoji, checked.
pub fn emoji(text: &str) -> chat_domain::Emoji {
    chat_domain::Emoji::parse(text).expect("test emojis are valid")
}

/// A direct-message target: `to`.
pub fn to(user: &UserAccount) -> MessageTarget {
    MessageTarget::Direct(user.username.clone())
}

/// A page request.
pub fn page<I>(limit: usize, cursor: Cursor<I>) -> PageRequest<I> {
    PageRequest { limit, cursor }
}
