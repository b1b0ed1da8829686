//! The things the service keeps: users, rooms and messages, in the shapes
//! SPEC puts on the wire.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{MessageId, RoomId, UserId};
use crate::values::{
    ClientId, Email, Emoji, MessageContent, PasswordHash, RoomDescription, RoomName, Username,
};

/// A user as clients see it. Never carries a password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The user's name, as spelled at registration.
    pub username: Username,
    /// The user's email address: only ever shown to the user themself,
    /// `null` for anyone else.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub email: Option<Email>,
    /// Whether the user has at least one live WebSocket connection.
    pub is_online: bool,
    /// When the user registered.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A user as the store keeps it: the public fields and the password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    /// The user's id.
    pub id: UserId,
    /// The user's name.
    pub username: Username,
    /// The user's email address.
    pub email: Email,
    /// The hash of the user's password.
    pub password_hash: PasswordHash,
    /// When the user registered.
    pub created_at: OffsetDateTime,
}

impl UserAccount {
    /// The public view of this account.
    pub fn to_user(&self, is_online: bool) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            email: Some(self.email.clone()),
            is_online,
            created_at: self.created_at,
        }
    }

    /// The user as `viewer` sees them: without the email address unless
    /// `viewer` is this user (an address book of every user is not for
    /// everyone to download).
    pub fn to_user_seen_by(&self, viewer: UserId, is_online: bool) -> User {
        let mut user = self.to_user(is_online);
        if viewer != self.id {
            user.email = None;
        }
        user
    }
}

/// A group conversation. Only members may read it or post to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    /// The room's id.
    pub id: RoomId,
    /// The room's name (not unique).
    pub name: RoomName,
    /// What the room is for; empty when not given.
    pub description: RoomDescription,
    /// The ids of the current members, in the order they joined.
    pub members: Vec<UserId>,
    /// The id of the user who created the room.
    pub created_by: UserId,
    /// When the room was created.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

impl Room {
    /// Whether `user` is currently a member.
    pub fn has_member(&self, user: UserId) -> bool {
        self.members.contains(&user)
    }
}

/// Where a message goes. A message is exactly one of these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageTarget {
    /// Everyone.
    Global,
    /// One user (and the sender).
    Direct(Username),
    /// The current members of a room.
    Room(RoomId),
}

/// A stored message, in its current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "MessageWire", try_from = "MessageWire")]
pub struct Message {
    /// The message's id (time-ordered).
    pub id: MessageId,
    /// Who sent it.
    pub sender: Username,
    /// Where it went.
    pub target: MessageTarget,
    /// What it says now; empty once deleted (see [`Message::content`]).
    pub content: MessageContent,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// The message this one answers in a thread (same conversation).
    pub reply_to: Option<MessageId>,
    /// When its content was last edited.
    pub edited_at: Option<OffsetDateTime>,
    /// When it was deleted: it keeps its place, sender and times, and
    /// loses its content and reactions.
    pub deleted_at: Option<OffsetDateTime>,
    /// How many replies it has that are not deleted.
    pub reply_count: u32,
    /// Reactions, in the order each emoji was first used.
    pub reactions: Vec<Reaction>,
}

/// One emoji's reactions to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    /// The emoji.
    pub emoji: Emoji,
    /// How many users reacted with it (exact).
    pub count: u32,
    /// Who reacted with it, in the order they did, at most
    /// [`Reaction::MAX_USERS`] names.
    pub users: Vec<Username>,
}

impl Reaction {
    /// Most names listed per emoji; `count` stays exact beyond it.
    pub const MAX_USERS: usize = 20;

    /// Groups `(emoji, user)` reactions, given in the order they were
    /// made, into one [`Reaction`] per emoji in the order each emoji was
    /// first used.
    pub fn group(reactions: impl IntoIterator<Item = (Emoji, Username)>) -> Vec<Reaction> {
        let mut grouped: Vec<Reaction> = Vec::new();
        for (emoji, user) in reactions {
            if !grouped.iter().any(|r| r.emoji == emoji) {
                grouped.push(Reaction {
                    emoji: emoji.clone(),
                    count: 0,
                    users: Vec::new(),
                });
            }
            if let Some(reaction) = grouped.iter_mut().find(|r| r.emoji == emoji) {
                reaction.count += 1;
                if reaction.users.len() < Self::MAX_USERS {
                    reaction.users.push(user);
                }
            }
        }
        grouped
    }
}

/// The content a deleted message shows: none.
const DELETED_CONTENT: &str = "";

/// What a deleted message holds in the domain, where content is never
/// empty; it is shown as `DELETED_CONTENT` (no content).
pub const DELETED_PLACEHOLDER: &str = "(deleted)";

impl Message {
    /// A new message as it is first stored: not edited, not deleted, no
    /// replies or reactions yet.
    pub fn new(
        id: MessageId,
        sender: Username,
        target: MessageTarget,
        content: MessageContent,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            sender,
            target,
            content,
            created_at,
            reply_to: None,
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            reactions: Vec::new(),
        }
    }

    /// Whether it was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Whether `other` belongs to the same conversation (global, the same
    /// two users' direct conversation, or the same room).
    pub fn same_conversation(&self, other: &Message) -> bool {
        match (&self.target, &other.target) {
            (MessageTarget::Global, MessageTarget::Global) => true,
            (MessageTarget::Room(a), MessageTarget::Room(b)) => a == b,
            (MessageTarget::Direct(a), MessageTarget::Direct(b)) => {
                let (s1, s2) = (&self.sender, &other.sender);
                (s1.same_account(s2) && a.same_account(b))
                    || (s1.same_account(b) && a.same_account(s2))
            }
            _ => false,
        }
    }

    /// The recipient of a direct message.
    pub fn recipient(&self) -> Option<&Username> {
        match &self.target {
            MessageTarget::Direct(user) => Some(user),
            _ => None,
        }
    }

    /// The room of a room message.
    pub fn room_id(&self) -> Option<RoomId> {
        match self.target {
            MessageTarget::Room(room) => Some(room),
            _ => None,
        }
    }
}

/// SPEC's JSON shape of a message: `recipient` and `room_id` are `null`
/// when absent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Message))]
pub struct MessageWire {
    /// The message's id.
    pub id: MessageId,
    /// The sender's username.
    pub sender: Username,
    /// The recipient's username for a direct message, else null.
    pub recipient: Option<Username>,
    /// The room's id for a room message, else null.
    pub room_id: Option<RoomId>,
    /// The text; `""` once deleted.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub content: String,
    /// When it was stored (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// When its content was last edited, else null.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime, required = true))]
    pub edited_at: Option<OffsetDateTime>,
    /// When it was deleted, else null.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime, required = true))]
    pub deleted_at: Option<OffsetDateTime>,
    /// The id of the message this one replies to in a thread, else null.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid, required = true))]
    pub reply_to: Option<MessageId>,
    /// How many replies it has that are not deleted.
    #[serde(default)]
    pub reply_count: u32,
    /// Reactions, in the order each emoji was first used; empty once
    /// deleted.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
}

impl From<Message> for MessageWire {
    fn from(m: Message) -> Self {
        let (recipient, room_id) = match m.target {
            MessageTarget::Global => (None, None),
            MessageTarget::Direct(user) => (Some(user), None),
            MessageTarget::Room(room) => (None, Some(room)),
        };
        let deleted = m.deleted_at.is_some();
        Self {
            id: m.id,
            sender: m.sender,
            recipient,
            room_id,
            content: if deleted {
                DELETED_CONTENT.to_owned()
            } else {
                m.content.into_inner()
            },
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            reply_to: m.reply_to,
            reply_count: m.reply_count,
            reactions: if deleted { Vec::new() } else { m.reactions },
        }
    }
}

impl TryFrom<MessageWire> for Message {
    type Error = DomainError;

    fn try_from(w: MessageWire) -> Result<Self, Self::Error> {
        let target = match (w.recipient, w.room_id) {
            (None, None) => MessageTarget::Global,
            (Some(user), None) => MessageTarget::Direct(user),
            (None, Some(room)) => MessageTarget::Room(room),
            (Some(_), Some(_)) => {
                return Err(DomainError::invalid(
                    "recipient",
                    "and room_id cannot both be set",
                ))
            }
        };
        // A deleted message's text is gone; the domain keeps a placeholder
        // that never reaches the wire (see `MessageWire::from`).
        let content = if w.deleted_at.is_some() && w.content.is_empty() {
            MessageContent::parse(DELETED_PLACEHOLDER)?
        } else {
            MessageContent::parse(&w.content)?
        };
        Ok(Self {
            id: w.id,
            sender: w.sender,
            target,
            content,
            created_at: w.created_at,
            reply_to: w.reply_to,
            edited_at: w.edited_at,
            deleted_at: w.deleted_at,
            reply_count: w.reply_count,
            reactions: w.reactions,
        })
    }
}

/// A message about to be stored, with its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The message as it will be stored (id and time already assigned).
    pub message: Message,
    /// The sender's id.
    pub sender_id: UserId,
    /// The client's idempotency key, when it gave one.
    pub client_id: Option<ClientId>,
}

/// What storing a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The message is new and now stored.
    Created(Message),
    /// The sender already sent a message with this client id: the original.
    Duplicate(Message),
}

impl Stored {
    /// The message, new or original.
    pub fn message(&self) -> &Message {
        match self {
            Self::Created(m) | Self::Duplicate(m) => m,
        }
    }

    /// Whether the store kept something new.
    pub fn is_new(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(target: MessageTarget) -> Message {
        Message::new(
            MessageId::generate(),
            Username::parse("alice").expect("valid"),
            target,
            MessageContent::parse("hi").expect("valid"),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_global_message_has_null_recipient_and_room() {
        let json = serde_json::to_value(message(MessageTarget::Global)).expect("serializes");
        assert_eq!(json["recipient"], serde_json::Value::Null);
        assert_eq!(json["room_id"], serde_json::Value::Null);
        assert_eq!(json["sender"], "alice");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(json["edited_at"], serde_json::Value::Null);
        assert_eq!(json["deleted_at"], serde_json::Value::Null);
        assert_eq!(json["reply_to"], serde_json::Value::Null);
        assert_eq!(json["reply_count"], 0);
        assert_eq!(json["reactions"], serde_json::json!([]));
    }

    #[test]
    fn a_deleted_message_is_a_tombstone_on_the_wire() {
        let mut m = message(MessageTarget::Global);
        m.reactions = Reaction::group([(
            Emoji::parse("👍").expect("valid"),
            Username::parse("bob").expect("valid"),
        )]);
        m.deleted_at = Some(OffsetDateTime::UNIX_EPOCH);
        let json = serde_json::to_value(&m).expect("serializes");
        assert_eq!(json["content"], "");
        assert_eq!(json["reactions"], serde_json::json!([]));
        assert_eq!(json["deleted_at"], "1970-01-01T00:00:00Z");
        let back: Message = serde_json::from_value(json).expect("parses");
        assert!(back.is_deleted());
    }

    #[test]
    fn reactions_group_by_emoji_in_first_use_order_with_at_most_20_names() {
        let up = Emoji::parse("👍").expect("valid");
        let heart = Emoji::parse("❤️").expect("valid");
        let mut made = vec![(heart.clone(), Username::parse("zed").expect("valid"))];
        for i in 0..25 {
            made.push((
                up.clone(),
                Username::parse(format!("user{i}")).expect("valid"),
            ));
        }
        let grouped = Reaction::group(made);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].emoji, heart);
        assert_eq!(grouped[1].count, 25);
        assert_eq!(grouped[1].users.len(), Reaction::MAX_USERS);
        assert_eq!(grouped[1].users[0].as_str(), "user0");
    }

    #[test]
    fn a_message_round_trips_through_json() {
        let dm = message(MessageTarget::Direct(
            Username::parse("bob").expect("valid"),
        ));
        let json = serde_json::to_string(&dm).expect("serializes");
        let back: Message = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, dm);
    }
}
