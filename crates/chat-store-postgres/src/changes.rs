//! Changes to stored messages, as the group-commit writer applies them:
//! each one statement that changes the message only if it may (not
//! deleted) and answers the position the change took, or nothing when it
//! changed nothing. Every change of a message is an `UPDATE` of its row,
//! which the `message_changes` migration's trigger gives the next position
//! under the ordering lock; a reaction touches its message in the same
//! statement for that.

use chat_domain::{DomainError, Emoji, MessageContent, MessageId, UserId};
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryResult, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{db_error, foreign_key_violation};

/// One change to a stored message.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub(crate) struct ReadMove {
    pub reader: Uuid,
    /// The other party of a direct conversation.
    pub peer: Option<Uuid>,
    pub room: Option<Uuid>,
    pub message: Uuid,
}

#[derive(QueryableByName)]
struct Touched {
    #[diesel(sql_type = BigInt)]
    changed_seq: i64,
}

#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    moved: Option<i64>,
}

const EDIT: &str = "\
    UPDATE messages SET content = $2, edited_at = $3 \
    WHERE id = $1 AND deleted_at IS NULL \
    RETURNING changed_seq";

const DELETE: &str = "\
    WITH deleted AS ( \
        UPDATE messages SET content = '', deleted_at = $2 \
        WHERE id = $1 AND deleted_at IS NULL \
        RETURNING id, changed_seq), \
    reactions AS ( \
        DELETE FROM message_reactions WHERE message_id IN (SELECT id FROM deleted)) \
    SELECT changed_seq FROM deleted";

const ADD_REACTION: &str = "\
    WITH added AS ( \
        INSERT INTO message_reactions (message_id, user_id, emoji) \
        SELECT id, $2, $3 FROM messages WHERE id = $1 AND deleted_at IS NULL \
        ON CONFLICT DO NOTHING RETURNING message_id) \
    UPDATE messages SET changed_seq = NULL WHERE id IN (SELECT message_id FROM added) \
    RETURNING changed_seq";

const REMOVE_REACTION: &str = "\
    WITH removed AS ( \
        DELETE FROM message_reactions r USING messages m \
        WHERE r.message_id = $1 AND r.user_id = $2 AND r.emoji = $3 \
          AND m.id = r.message_id AND m.deleted_at IS NULL \
        RETURNING r.message_id) \
    UPDATE messages SET changed_seq = NULL WHERE id IN (SELECT message_id FROM removed) \
    RETURNING changed_seq";

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
    pub fn start<'a>(
        &'a self,
        conn: &mut AsyncPgConnection,
    ) -> BoxFuture<'a, QueryResult<Option<i64>>> {
        let touched = match self {
            Change::Edit { id, content, at } => diesel::sql_query(EDIT)
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Text, _>(content.as_str())
                .bind::<Timestamptz, _>(at)
                .get_result::<Touched>(conn)
                .boxed(),
            Change::Delete { id, at } => diesel::sql_query(DELETE)
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Timestamptz, _>(at)
                .get_result::<Touched>(conn)
                .boxed(),
            Change::AddReaction { id, user, emoji } => react(conn, ADD_REACTION, *id, *user, emoji),
            Change::RemoveReaction { id, user, emoji } => {
                react(conn, REMOVE_REACTION, *id, *user, emoji)
            }
        };
        async move { Ok(touched.await.optional()?.map(|touched| touched.changed_seq)) }.boxed()
    }

    /// The error a change's failed statement means.
    pub fn error(err: diesel::result::Error) -> DomainError {
        match foreign_key_violation(&err) {
            Some("message_reactions_user_id_fkey") => DomainError::UserNotFound,
            _ => db_error(err),
        }
    }
}

fn react<'a>(
    conn: &mut AsyncPgConnection,
    statement: &'static str,
    id: MessageId,
    user: UserId,
    emoji: &'a Emoji,
) -> BoxFuture<'a, QueryResult<Touched>> {
    diesel::sql_query(statement)
        .bind::<SqlUuid, _>(id.as_uuid())
        .bind::<SqlUuid, _>(user.as_uuid())
        .bind::<Text, _>(emoji.as_str())
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
        let moved = diesel::sql_query(
            "SELECT read_markers_move($1, conversation_key($2, $1, $3), $4, $2, $3) AS moved",
        )
        .bind::<SqlUuid, _>(self.reader)
        .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(self.peer)
        .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(self.room)
        .bind::<SqlUuid, _>(self.message)
        .get_result::<Moved>(conn);
        async move { Ok(moved.await?.moved) }.boxed()
    }
}
