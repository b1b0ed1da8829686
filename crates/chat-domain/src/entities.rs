//! The things the service keeps: users, rooms and messages, in the shapes
//! SPEC puts on the wire.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{MessageId, RoomId, UserId};
use crate::values::{
    ClientId, Email, MessageContent, PasswordHash, RoomDescription, RoomName, Username,
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

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "MessageWire", try_from = "MessageWire")]
pub struct Message {
    /// The message's id (time-ordered).
    pub id: MessageId,
    /// Who sent it.
    pub sender: Username,
    /// Where it went.
    pub target: MessageTarget,
    /// What it says.
    pub content: MessageContent,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

impl Message {
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
    /// The text.
    pub content: MessageContent,
    /// When it was stored (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

impl From<Message> for MessageWire {
    fn from(m: Message) -> Self {
        let (recipient, room_id) = match m.target {
            MessageTarget::Global => (None, None),
            MessageTarget::Direct(user) => (Some(user), None),
            MessageTarget::Room(room) => (None, Some(room)),
        };
        Self {
            id: m.id,
            sender: m.sender,
            recipient,
            room_id,
            content: m.content,
            created_at: m.created_at,
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
        Ok(Self {
            id: w.id,
            sender: w.sender,
            target,
            content: w.content,
            created_at: w.created_at,
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
        Message {
            id: MessageId::generate(),
            sender: Username::parse("alice").expect("valid"),
            target,
            content: MessageContent::parse("hi").expect("valid"),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_global_message_has_null_recipient_and_room() {
        let json = serde_json::to_value(message(MessageTarget::Global)).expect("serializes");
        assert_eq!(json["recipient"], serde_json::Value::Null);
        assert_eq!(json["room_id"], serde_json::Value::Null);
        assert_eq!(json["sender"], "alice");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
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
