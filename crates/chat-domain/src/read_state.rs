//! Read state: how far each user has read each of their conversations
//! (one marker per user per conversation), and the conversation list built
//! from it.
//!
//! A marker names the last message read. It only moves forward; it starts
//! where the user came in (registration for the global conversation, the
//! latest message of a room when joining it, nothing in a new direct
//! conversation); sending a message moves the sender's own marker to it.
//! A conversation's unread count is the number of its messages after the
//! marker that the user did not send and that are not deleted.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::entities::{Message, MessageTarget};
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, RoomId};
use crate::values::Username;

/// A conversation as one user names it: the global one, the direct one
/// with another user, or a room.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConversationRef {
    /// Everyone's conversation.
    Global,
    /// The direct conversation with this (other) user.
    Direct(Username),
    /// A room.
    Room(RoomId),
}

impl ConversationRef {
    /// `global`, `direct` or `room`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Direct(_) => "direct",
            Self::Room(_) => "room",
        }
    }

    /// `global`, the other user's name, or the room's id.
    pub fn id(&self) -> String {
        match self {
            Self::Global => "global".to_owned(),
            Self::Direct(user) => user.as_str().to_owned(),
            Self::Room(room) => room.to_string(),
        }
    }

    /// Whether `message` belongs to this conversation of `viewer`'s.
    pub fn holds(&self, message: &Message, viewer: &Username) -> bool {
        match (self, &message.target) {
            (Self::Global, MessageTarget::Global) => true,
            (Self::Room(room), MessageTarget::Room(of)) => room == of,
            (Self::Direct(peer), MessageTarget::Direct(recipient)) => {
                let sender = &message.sender;
                (sender.same_account(viewer) && recipient.same_account(peer))
                    || (sender.same_account(peer) && recipient.same_account(viewer))
            }
            _ => false,
        }
    }

    /// Reads a conversation from its kind and id as a client names it
    /// (`/api/conversations/{kind}/{id}`): a kind other than the three, or
    /// an id that cannot name one of that kind, is a validation error.
    pub fn parse(kind: &str, id: &str) -> DomainResult<Self> {
        let id = id.trim();
        match kind {
            "global" if id == "global" => Ok(Self::Global),
            "global" => Err(DomainError::invalid(
                "id",
                "the global conversation's id is \"global\"",
            )),
            "direct" => Username::parse(id).map(Self::Direct),
            "room" => id.parse().map(Self::Room),
            _ => Err(DomainError::invalid(
                "kind",
                "must be global, direct or room",
            )),
        }
    }
}

/// Where a conversation stands in a user's list, most recent activity
/// first: the position (in the store's order) of its latest message, and
/// a key that tells apart conversations with no message yet. Its text
/// form (`<position>-<key>`) is the list's `before` cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Activity {
    /// The position of the conversation's latest message; 0 without one.
    pub position: u64,
    /// The conversation's key in its store.
    pub key: Uuid,
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.position, self.key.simple())
    }
}

impl FromStr for Activity {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad =
            || DomainError::invalid("before", "must be the cursor of a conversation of the list");
        let (position, key) = raw.trim().split_once('-').ok_or_else(bad)?;
        Ok(Self {
            position: position.parse().map_err(|_| bad())?,
            key: Uuid::try_parse(key).map_err(|_| bad())?,
        })
    }
}

/// One conversation of a user's list, as that user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Which conversation, as the user names it.
    pub conversation: ConversationRef,
    /// What to call it: `Global`, the room's name, or the other user's
    /// name.
    pub name: String,
    /// Its latest message (deleted ones included, as tombstones).
    pub last_message: Option<Message>,
    /// Messages after the user's marker that the user did not send and
    /// that are not deleted.
    pub unread_count: u64,
    /// The last message the user has read, if any.
    pub last_read_id: Option<MessageId>,
    /// In a direct conversation, the last message the other user has read
    /// (what a "seen" receipt shows).
    pub peer_last_read_id: Option<MessageId>,
    /// Its place in the list.
    pub activity: Activity,
}

/// A page of a user's conversations, most recent activity first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationPage {
    /// The conversations.
    pub items: Vec<Conversation>,
    /// Whether older ones follow the last.
    pub has_more: bool,
}

/// A read marker that moved: `reader` has read `conversation` up to
/// `message_id`. `conversation` is named as the user told of it names
/// it: for the reader's own connections the direct conversation is the
/// other party's name; for that other party (a read receipt), the
/// reader's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMarker {
    /// The conversation, as the user told of it names it.
    pub conversation: ConversationRef,
    /// Who read.
    pub reader: Username,
    /// The last message they have read.
    pub message_id: MessageId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_named_by_kind_and_id() {
        assert_eq!(
            ConversationRef::parse("global", "global"),
            Ok(ConversationRef::Global)
        );
        let bob = ConversationRef::parse("direct", "bob").expect("a username");
        assert_eq!((bob.kind(), bob.id()), ("direct", "bob".to_owned()));
        let room = RoomId::generate();
        assert_eq!(
            ConversationRef::parse("room", &room.to_string()),
            Ok(ConversationRef::Room(room))
        );
        for (kind, id) in [
            ("global", "x"),
            ("channel", "x"),
            ("room", "nope"),
            ("direct", "a"),
        ] {
            assert_eq!(
                ConversationRef::parse(kind, id).map_err(|e| e.code()),
                Err("validation_error"),
                "{kind}/{id}"
            );
        }
    }

    #[test]
    fn an_activity_cursor_reads_back() {
        let activity = Activity {
            position: 42,
            key: Uuid::now_v7(),
        };
        assert_eq!(activity.to_string().parse(), Ok(activity));
        assert!("42".parse::<Activity>().is_err());
        assert!("x-y".parse::<Activity>().is_err());
    }
}
