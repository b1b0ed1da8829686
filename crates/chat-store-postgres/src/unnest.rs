//! A batch of message rows as ONE prepared statement, whatever its size.
//!
//! Diesel's multi-row insert writes a `VALUES` list whose text depends on
//! the number of rows, so it cannot be kept prepared: every batch of the
//! group-commit writer would pay a round trip to prepare it and
//! PostgreSQL's parsing of up to 256 × 9 parameters, while the writer is
//! the one path every message waits for. This statement passes each column
//! as one array instead, so its text never changes and Diesel keeps it
//! prepared per connection:
//!
//! ```sql
//! SELECT id, sender, recipient, room_id, content, created_at, seq, …
//! FROM messages_insert_batch($1, $2, …)
//! ```
//!
//! `messages_insert_batch` (the `batch_insert` and `direct_counts_on_read`
//! migrations) registers the direct pairs it is given, stores the rows in
//! the order given, under the ordering lock, and returns those it stored:
//! a row whose sender already stored its client id is left out.
//! Like `merge.rs`, a small [`QueryFragment`]; the returned columns are
//! [`MessageRow`]'s.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryResult;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::direct_pairs::NewPairs;
use crate::rows::NewMessageRow;

/// The rows of a batch, column by column.
pub(crate) struct MessageBatch<'a> {
    id: Vec<Uuid>,
    sender_id: Vec<Uuid>,
    sender: Vec<&'a str>,
    recipient_id: Vec<Option<Uuid>>,
    recipient: Vec<Option<&'a str>>,
    room_id: Vec<Option<Uuid>>,
    content: Vec<&'a str>,
    client_id: Vec<Option<&'a str>>,
    created_at: Vec<OffsetDateTime>,
    reply_to: Vec<Option<Uuid>>,
    /// The direct pairs to register.
    pairs: &'a NewPairs,
}

impl<'a> MessageBatch<'a> {
    /// The batch of `rows`, in that order, registering `pairs`.
    pub fn new(rows: &[NewMessageRow<'a>], pairs: &'a NewPairs) -> Self {
        let n = rows.len();
        let mut batch = Self {
            id: Vec::with_capacity(n),
            sender_id: Vec::with_capacity(n),
            sender: Vec::with_capacity(n),
            recipient_id: Vec::with_capacity(n),
            recipient: Vec::with_capacity(n),
            room_id: Vec::with_capacity(n),
            content: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            reply_to: Vec::with_capacity(n),
            pairs,
        };
        for row in rows {
            batch.id.push(row.id);
            batch.sender_id.push(row.sender_id);
            batch.sender.push(row.sender);
            batch.recipient_id.push(row.recipient_id);
            batch.recipient.push(row.recipient);
            batch.room_id.push(row.room_id);
            batch.content.push(row.content);
            batch.client_id.push(row.client_id);
            batch.created_at.push(row.created_at);
            batch.reply_to.push(row.reply_to);
        }
        batch
    }
}

/// The columns `RETURNING` gives back: [`MessageRow`]'s, in its order.
type Returned = (
    SqlUuid,
    Text,
    Nullable<Text>,
    Nullable<SqlUuid>,
    Text,
    Timestamptz,
    BigInt,
    Nullable<SqlUuid>,
    Nullable<Timestamptz>,
    Nullable<Timestamptz>,
);

impl Query for MessageBatch<'_> {
    type SqlType = Returned;
}

/// The statement's text never changes, so it is cached by this type.
pub(crate) struct MessageBatchId;

impl QueryId for MessageBatch<'_> {
    type QueryId = MessageBatchId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for MessageBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT id, sender, recipient, room_id, content, created_at, seq, reply_to, \
             edited_at, deleted_at FROM messages_insert_batch(",
        );
        out.push_bind_param::<Array<SqlUuid>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.sender_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.sender)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.recipient_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.recipient)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.room_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.content)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.reply_to)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.pairs.a)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.pairs.b)?;
        out.push_sql(")");
        Ok(())
    }
}
