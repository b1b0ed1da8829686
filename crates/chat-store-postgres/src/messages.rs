//! [`MessageStore`] on the `messages` table. Inserts go through the
//! group-commit writer (`writer.rs`, `insert.rs`). Histories are in commit
//! order: the table's trigger gives each new row the next `seq` under a
//! lock held until commit (see the `message_commit_order` migration), so a
//! reader paging forward never skips a row that commits later. Cursors are message
//! ids, resolved to their `seq` first; every read is then a backward (or
//! forward) scan of an index ending in `seq`, stopped after `limit + 1` rows.

use async_trait::async_trait;
use chat_domain::{
    Cursor, DomainError, DomainResult, Message, MessageId, MessageStore, NewMessage, Page,
    PageRequest, RoomId, Stored, UserId, Username,
};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::db_error;
use crate::merge::MergedPages;
use crate::paging::{paged, probe_limit};
use crate::rows::MessageRow;
use crate::schema::{messages, room_members, users};
use crate::sql::{greatest, least, lower};
use crate::store::PgStore;

/// A boxed `SELECT <message columns> FROM messages`, to add filters to.
type MessageQuery<'a> = messages::BoxedQuery<'a, Pg, diesel::dsl::AsSelect<MessageRow, Pg>>;

fn select_messages<'a>() -> MessageQuery<'a> {
    messages::table.select(MessageRow::as_select()).into_boxed()
}

/// Positions are used as they are; `paged!` wants a conversion.
fn position(seq: i64) -> i64 {
    seq
}

#[async_trait]
impl MessageStore for PgStore {
    /// Queued for the group-commit writer, which stores it with whatever
    /// else is waiting in one statement; answered after that commit.
    async fn insert_message(&self, new: &NewMessage) -> DomainResult<Stored> {
        self.within(async {
            self.writer()
                .write(new.clone())
                .await
                .map(|(stored, _)| stored)
        })
        .await
    }

    /// The position of a new message is its `seq`: commit order, the
    /// order every list uses. Messages of one batch commit together, in
    /// `seq` order among themselves.
    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        self.within(async { self.writer().write(new.clone()).await })
            .await
    }

    /// Yes: `seq`, which every list orders by. A message's live frame
    /// trails its commit by up to a batch cycle (the publish order waits
    /// for the inserts that started before it), so a client can read a
    /// message by replay on one connection and reconnect before its live
    /// frame went out; the new connection drops that frame because it lies
    /// at or below its resume position (`message_by_id_positioned` of its
    /// `since`), which is what made turning this on safe (see
    /// docs/decisions.md, "Group commit of messages").
    fn reports_positions(&self) -> bool {
        true
    }

    async fn message_by_id(&self, id: MessageId) -> DomainResult<Option<Message>> {
        self.within(async {
            let mut conn = self.conn().await?;
            select_messages()
                .filter(messages::id.eq(id.as_uuid()))
                .first::<MessageRow>(&mut conn)
                .await
                .optional()
                .map_err(db_error)?
                .map(Message::try_from)
                .transpose()
        })
        .await
    }

    /// The row's `seq`, read in the same statement.
    async fn message_by_id_positioned(
        &self,
        id: MessageId,
    ) -> DomainResult<Option<(Message, Option<u64>)>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let Some(row) = select_messages()
                .filter(messages::id.eq(id.as_uuid()))
                .first::<MessageRow>(&mut conn)
                .await
                .optional()
                .map_err(db_error)?
            else {
                return Ok(None);
            };
            let position = u64::try_from(row.seq).ok();
            Ok(Some((Message::try_from(row)?, position)))
        })
        .await
    }

    /// The row with the highest `seq` (a backward scan of its unique
    /// index, one row).
    async fn newest_message(&self) -> DomainResult<Option<MessageId>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let id: Option<Uuid> = messages::table
                .select(messages::id)
                .order(messages::seq.desc())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?;
            Ok(id.map(MessageId::from_uuid))
        })
        .await
    }

    /// Direct messages are matched by the viewer's id (the name is for
    /// stores that key on names).
    async fn visible_messages(
        &self,
        viewer: UserId,
        _viewer_name: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let page = positions(&mut conn, &page).await?;
            // The rooms first, so that each gets its own branch on the
            // (room_id, seq) index: a single `room_id IN (...)` branch cannot be
            // read in seq order and makes PostgreSQL scan far more rows.
            let rooms: Vec<Uuid> = room_members::table
                .filter(room_members::user_id.eq(viewer.as_uuid()))
                .select(room_members::room_id)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let branches = visible_sources(viewer.as_uuid(), rooms)
                .into_iter()
                .map(|source| paged!(source, messages::seq, &page, position))
                .collect();
            let newest_first = !matches!(page.cursor, Cursor::After(_));
            let rows = MergedPages::new(branches, newest_first, probe_limit(&page))
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            to_page(rows, &page)
        })
        .await
    }

    async fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let page = positions(&mut conn, &page).await?;
            let (Some(a), Some(b)) = (
                account_id(&mut conn, a).await?,
                account_id(&mut conn, b).await?,
            ) else {
                return Ok(Page::from_probe(Vec::new(), &page));
            };
            // Same expressions as the messages_direct_pair_seq_idx index, so the
            // whole conversation is one index range in seq order. Rust and
            // PostgreSQL both order UUIDs by their bytes.
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let query = select_messages()
                .filter(messages::recipient_id.is_not_null())
                .filter(least(messages::sender_id.nullable(), messages::recipient_id).eq(low))
                .filter(greatest(messages::sender_id.nullable(), messages::recipient_id).eq(high));
            let rows = paged!(query, messages::seq, &page, position)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            to_page(rows, &page)
        })
        .await
    }

    async fn room_messages(
        &self,
        room: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let page = positions(&mut conn, &page).await?;
            let query = select_messages().filter(messages::room_id.eq(room.as_uuid()));
            let rows = paged!(query, messages::seq, &page, position)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            to_page(rows, &page)
        })
        .await
    }
}

/// What `viewer` may read, as disjoint sources (so merging them needs no
/// de-duplication), each matching one partial index: global messages,
/// direct messages sent, direct messages received from others, and each
/// room in `rooms`.
fn visible_sources<'a>(viewer: Uuid, rooms: Vec<Uuid>) -> Vec<MessageQuery<'a>> {
    let mut sources = vec![
        select_messages()
            .filter(messages::recipient_id.is_null())
            .filter(messages::room_id.is_null()),
        select_messages()
            .filter(messages::recipient_id.is_not_null())
            .filter(messages::sender_id.eq(viewer)),
        select_messages()
            .filter(messages::recipient_id.eq(viewer))
            .filter(messages::sender_id.ne(viewer)),
    ];
    sources.extend(
        rooms
            .into_iter()
            .map(|room| select_messages().filter(messages::room_id.eq(room))),
    );
    sources
}

/// The page request with its cursor resolved from a message id to that
/// message's position. Any stored message is a valid position, whichever
/// list it belongs to; an id naming no message is `MessageNotFound`.
async fn positions(
    conn: &mut AsyncPgConnection,
    page: &PageRequest<MessageId>,
) -> DomainResult<PageRequest<i64>> {
    let cursor = match page.cursor {
        Cursor::Latest => Cursor::Latest,
        Cursor::Before(id) => Cursor::Before(seq_of(conn, id).await?),
        Cursor::After(id) => Cursor::After(seq_of(conn, id).await?),
    };
    Ok(PageRequest {
        limit: page.limit,
        cursor,
    })
}

/// The position of a stored message (a primary-key look-up).
async fn seq_of(conn: &mut AsyncPgConnection, id: MessageId) -> DomainResult<i64> {
    messages::table
        .find(id.as_uuid())
        .select(messages::seq)
        .first(conn)
        .await
        .optional()
        .map_err(db_error)?
        .ok_or(DomainError::MessageNotFound)
}

/// The id of the account named `name`, if any.
async fn account_id(conn: &mut AsyncPgConnection, name: &Username) -> DomainResult<Option<Uuid>> {
    users::table
        .filter(lower(users::username).eq(name.as_str().to_ascii_lowercase()))
        .select(users::id)
        .first(conn)
        .await
        .optional()
        .map_err(db_error)
}

fn to_page(rows: Vec<MessageRow>, page: &PageRequest<i64>) -> DomainResult<Page<Message>> {
    let messages = rows
        .into_iter()
        .map(Message::try_from)
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(Page::from_probe(messages, page))
}
