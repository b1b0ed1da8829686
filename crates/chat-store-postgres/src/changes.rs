//! Changes to stored messages, as the group-commit writer applies them:
//! each one call of a function of the `change_functions` migration that
//! changes the message only if it may (not deleted) and answers the
//! position the change took, or nothing when it changed nothing. Every
//! change of a message is an `UPDATE` of its row, which the
//! `message_changes` migration's trigger gives the next position under the
//! ordering lock; a reaction touches its message for that. Each call is a
//! statement of fixed text, kept prepared on the writer's connection.

use chat_domain::{DomainError, Emoji, MessageContent, MessageId, UserId};
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{db_error, foreign_key_violation};
use crate::sql::{
    conversation_key, message_delete, message_edit, message_react, read_markers_move,
};

/// One change to a stored message.
#[derive(Debug)]
pub(crate) enum Change {
    Edit {
        id: MessageId,
        content: MessageContent,
        at: OffsetDateTime,
    },
    /// The text goes with the deletion (the row keeps `''`), and so do
    /// the reactions.
    Delete { id: MessageId, at: OffsetDateTime },
    AddReaction {
        id: MessageId,
        user: UserId,
        emoji: Emoji,
    },
    RemoveReaction {
        id: MessageId,
        user: UserId,
        emoji: Emoji,
    },
}

/// A read marker moved by a read: `read_markers_move` (see the
/// `read_state` migration) with its conversation's parts.
#[derive(Debug)]
pub(crate) struct ReadMove {
    pub reader: Uuid,
    /// The other party of a direct conversation.
    pub peer: Option<Uuid>,
    pub room: Option<Uuid>,
    pub message: Uuid,
}

impl Change {
    /// The message it changes.
    pub fn message(&self) -> MessageId {
        match self {
            Change::Edit { id, .. }
            | Change::Delete { id, .. }
            | Change::AddReaction { id, .. }
            | Change::RemoveReaction { id, .. } => *id,
        }
    }

    /// Sends the change's statement: the future answers the position it
    /// took, or `None` when it changed nothing (an unknown or deleted
    /// message, a reaction already there or not there). The future does
    /// not hold the connection: the statements of several changes started
    /// one after the other are pipelined (sent at once, run in that order).
    pub fn start(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> BoxFuture<'static, QueryResult<Option<i64>>> {
        match self {
            Change::Edit { id, content, at } => {
                let content = content.as_str().to_owned();
                diesel::select(message_edit(id.as_uuid(), content, *at))
                    .get_result(conn)
                    .boxed()
            }
            Change::Delete { id, at } => diesel::select(message_delete(id.as_uuid(), *at))
                .get_result(conn)
                .boxed(),
            Change::AddReaction { id, user, emoji } => react(conn, *id, *user, emoji, true),
            Change::RemoveReaction { id, user, emoji } => react(conn, *id, *user, emoji, false),
        }
    }

    /// The error a change's failed statement means.
    pub fn error(err: diesel::result::Error) -> DomainError {
        match foreign_key_violation(&err) {
            Some("message_reactions_user_id_fkey") => DomainError::UserNotFound,
            _ => db_error(err),
        }
    }
}

/// A reaction added (`adding`) or taken back.
fn react(
    conn: &mut AsyncPgConnection,
    id: MessageId,
    user: UserId,
    emoji: &Emoji,
    adding: bool,
) -> BoxFuture<'static, QueryResult<Option<i64>>> {
    let reaction = emoji.as_str().to_owned();
    diesel::select(message_react(
        id.as_uuid(),
        user.as_uuid(),
        reaction,
        adding,
    ))
    .get_result(conn)
    .boxed()
}

impl ReadMove {
    /// Sends the move (pipelined, as [`Change::start`]): the marker moves
    /// forward under the ordering lock; the future answers the position
    /// the move took, `None` when the marker is there or further already,
    /// and `-1` when the message is not in the conversation.
    pub fn start(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> BoxFuture<'static, QueryResult<Option<i64>>> {
        let key = conversation_key(self.peer, self.reader, self.room);
        diesel::select(read_markers_move(
            self.reader,
            key,
            self.message,
            self.peer,
            self.room,
        ))
        .get_result(conn)
        .boxed()
    }
}
