//! Rows as the tables hold them, and their conversion to and from domain
//! entities. Stored text is validated again on the way out, so a row that
//! somehow breaks the domain's rules is an internal error, never a panic.

use chat_domain::{
    DomainError, DomainResult, Email, Message, MessageContent, MessageId, MessageTarget,
    NewMessage, PasswordHash, Room, RoomDescription, RoomId, RoomName, UserAccount, UserId,
    Username, DELETED_PLACEHOLDER,
};
use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{messages, rooms, users};

/// A `users` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
}

impl From<&UserAccount> for UserRow {
    fn from(account: &UserAccount) -> Self {
        Self {
            id: account.id.as_uuid(),
            username: account.username.as_str().to_owned(),
            email: account.email.as_str().to_owned(),
            password_hash: account.password_hash.as_str().to_owned(),
            created_at: account.created_at,
        }
    }
}

impl TryFrom<UserRow> for UserAccount {
    type Error = DomainError;

    fn try_from(row: UserRow) -> DomainResult<Self> {
        Ok(Self {
            id: UserId::from_uuid(row.id),
            username: stored(Username::parse(row.username))?,
            email: stored(Email::parse(row.email))?,
            password_hash: PasswordHash::new(row.password_hash),
            created_at: row.created_at,
        })
    }
}

/// A `rooms` row (members live in `room_members`).
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = rooms, check_for_backend(diesel::pg::Pg))]
pub(crate) struct RoomRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
}

impl From<&Room> for RoomRow {
    fn from(room: &Room) -> Self {
        Self {
            id: room.id.as_uuid(),
            name: room.name.as_str().to_owned(),
            description: room.description.as_str().to_owned(),
            created_by: room.created_by.as_uuid(),
            created_at: room.created_at,
        }
    }
}

impl RoomRow {
    /// The room with its members, in join order.
    pub fn into_room(self, members: Vec<Uuid>) -> DomainResult<Room> {
        Ok(Room {
            id: RoomId::from_uuid(self.id),
            name: stored(RoomName::parse(&self.name))?,
            description: stored(RoomDescription::parse(&self.description))?,
            members: members.into_iter().map(UserId::from_uuid).collect(),
            created_by: UserId::from_uuid(self.created_by),
            created_at: self.created_at,
        })
    }
}

/// The columns of `messages` that make up a domain [`Message`], and its
/// position in commit order (`seq`, what every history is ordered by).
#[derive(Queryable, Selectable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub(crate) struct MessageRow {
    pub id: Uuid,
    pub sender: String,
    pub recipient: Option<String>,
    pub room_id: Option<Uuid>,
    pub content: String,
    pub created_at: OffsetDateTime,
    /// Selected so that the merged visible-messages query can order the
    /// union by it, and answered as a new message's position; the domain's
    /// message has no place for it.
    pub seq: i64,
    pub reply_to: Option<Uuid>,
    pub edited_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

impl TryFrom<MessageRow> for Message {
    type Error = DomainError;

    fn try_from(row: MessageRow) -> DomainResult<Self> {
        let target = match (row.recipient, row.room_id) {
            (None, None) => MessageTarget::Global,
            (Some(name), None) => MessageTarget::Direct(stored(Username::parse(name))?),
            (None, Some(room)) => MessageTarget::Room(RoomId::from_uuid(room)),
            (Some(_), Some(_)) => {
                return Err(DomainError::internal(
                    "stored message has both a recipient and a room",
                ))
            }
        };
        // A deleted message keeps no text in the table.
        let content = if row.deleted_at.is_some() {
            DELETED_PLACEHOLDER
        } else {
            &row.content
        };
        let mut message = Message::new(
            MessageId::from_uuid(row.id),
            stored(Username::parse(row.sender))?,
            target,
            stored(MessageContent::parse(content))?,
            row.created_at,
        );
        message.reply_to = row.reply_to.map(MessageId::from_uuid);
        message.edited_at = row.edited_at;
        message.deleted_at = row.deleted_at;
        Ok(message)
    }
}

/// A new `messages` row. It has no `seq`: the table's trigger assigns it,
/// under the message-ordering lock.
#[derive(Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub(crate) struct NewMessageRow<'a> {
    pub id: Uuid,
    pub sender_id: Uuid,
    pub sender: &'a str,
    pub recipient_id: Option<Uuid>,
    pub recipient: Option<&'a str>,
    pub room_id: Option<Uuid>,
    pub content: &'a str,
    pub client_id: Option<&'a str>,
    pub created_at: OffsetDateTime,
    pub reply_to: Option<Uuid>,
}

impl<'a> NewMessageRow<'a> {
    /// The row for `new`; a direct message also needs its recipient's id,
    /// which the domain's message (holding only the username) lacks.
    pub fn new(new: &'a NewMessage, recipient_id: Option<Uuid>) -> Self {
        let message = &new.message;
        Self {
            id: message.id.as_uuid(),
            sender_id: new.sender_id.as_uuid(),
            sender: message.sender.as_str(),
            recipient_id,
            recipient: message.recipient().map(Username::as_str),
            room_id: message.room_id().map(|room| room.as_uuid()),
            content: message.content.as_str(),
            client_id: new.client_id.as_ref().map(|c| c.as_str()),
            created_at: message.created_at,
            reply_to: message.reply_to.map(|id| id.as_uuid()),
        }
    }
}

/// A stored value that fails the domain's validation: data was written
/// around the application (the CHECK constraints make this unlikely).
fn stored<T>(parsed: DomainResult<T>) -> DomainResult<T> {
    parsed.map_err(|err| DomainError::internal(format!("invalid stored value: {err}")))
}
