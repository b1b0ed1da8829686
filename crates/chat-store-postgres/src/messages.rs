//! [`MessageStore`] on the `messages` table. Inserts go through the
//! group-commit writer (`writer.rs`, `insert.rs`). Histories are in commit
//! order: the table's trigger gives each new row the next `seq` under a
//! lock held until commit (see the `message_commit_order` migration), so a
//! reader paging forward never skips a row that commits later. Cursors are message
//! ids, resolved to their `seq` first; every read is then a backward (or
//! forward) scan of an index ending in `seq`, stopped after `limit + 1` rows.

use async_trait::async_trait;
use std::collections::HashMap;

use chat_domain::{
    Changed, Cursor, DomainError, DomainResult, Emoji, InsertInFlight, Message, MessageContent,
    MessageId, MessageStore, NewMessage, Page, PageRequest, Reaction, RoomId, Stored, StreamItem,
    StreamPage, UserId, Username,
};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use crate::changes::Change;
use crate::error::db_error;
use crate::merge::MergedPages;
use crate::paging::{paged, probe_limit};
use crate::reads::reads_after;
use crate::rows::MessageRow;
use crate::schema::{message_reactions, messages, read_markers, room_members, users};
use crate::sink::Write;
use crate::sql::{conversation_key, lower};
use crate::store::{within_deadline, PgStore};

/// A boxed `SELECT <message columns> FROM messages`, to add filters to.
pub(crate) type MessageQuery<'a> =
    messages::BoxedQuery<'a, Pg, diesel::dsl::AsSelect<MessageRow, Pg>>;

pub(crate) fn select_messages<'a>() -> MessageQuery<'a> {
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
        self.insert_message_positioned(new)
            .await
            .map(|(stored, _)| stored)
    }

    /// The position of a new message is its `seq`: commit order, the
    /// order every list uses. Messages of one batch commit together, in
    /// `seq` order among themselves.
    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        self.within(async {
            let written = self.writer().write(Write::Message(new.clone())).await?;
            written.placed()
        })
        .await
    }

    /// Queued for the group-commit writer: answered as soon as the message
    /// is in the writer's queue (waiting for a slot when it is full), which
    /// fixes its place: the writer takes its queue in order, batch after
    /// batch, and draws `seq` in queue order. The future answers after the
    /// commit of the batch holding it. A message of a batch that fails
    /// (a room gone meanwhile) fails alone: the batch's messages are then
    /// written one by one, in order (`insert.rs`). The store's deadline
    /// runs from this call to the answer, as for `insert_message`.
    async fn queue_message(&self, new: &NewMessage) -> DomainResult<InsertInFlight> {
        let started = Instant::now();
        let queued = self
            .within(self.writer().queue(Write::Message(new.clone())))
            .await?;
        let (pool, deadline) = (self.pool().clone(), self.deadline());
        Ok(Box::pin(async move {
            let left = deadline.saturating_sub(started.elapsed());
            within_deadline(&pool, left, queued.answer())
                .await?
                .placed()
        }))
    }

    /// Yes: `seq`, which every list orders by. A message's live frame
    /// trails its commit by up to a batch cycle (the publish order waits
    /// for the inserts that started before it), so a client can read a
    /// message by replay on one connection and reconnect before its live
    /// frame went out; the new connection drops that frame because it lies
    /// at or below its resume position (`message_by_id_positioned` of its
    /// `since`), which is what made turning this on safe (see
    /// docs/decisions.md, "Ordering in the store").
    fn reports_positions(&self) -> bool {
        true
    }

    async fn message_by_id(&self, id: MessageId) -> DomainResult<Option<Message>> {
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
            Ok(decorate(&mut conn, vec![Message::try_from(row)?])
                .await?
                .pop())
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
            let message = decorate(&mut conn, vec![Message::try_from(row)?])
                .await?
                .pop();
            Ok(message.map(|message| (message, position)))
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
            to_page(&mut conn, rows, &page).await
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
            // The conversation's key, on the messages_direct_conv_key_seq_idx
            // index: the whole conversation is one index range in seq order.
            let query = select_messages()
                .filter(messages::recipient_id.is_not_null())
                .filter(messages::conv_key.eq(conversation_key(Some(a), b, None::<Uuid>)));
            let rows = paged!(query, messages::seq, &page, position)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            to_page(&mut conn, rows, &page).await
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
            to_page(&mut conn, rows, &page).await
        })
        .await
    }

    /// One `UPDATE … WHERE deleted_at IS NULL`, through the writer: an
    /// edit and a deletion cannot both win.
    async fn edit_message(
        &self,
        id: MessageId,
        content: &MessageContent,
        at: OffsetDateTime,
    ) -> DomainResult<Changed> {
        let edit = Change::Edit {
            id,
            content: content.clone(),
            at,
        };
        self.change(edit, true).await
    }

    async fn delete_message(&self, id: MessageId, at: OffsetDateTime) -> DomainResult<Changed> {
        self.change(Change::Delete { id, at }, false).await
    }

    async fn add_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        let emoji = emoji.clone();
        self.change(Change::AddReaction { id, user, emoji }, true)
            .await
    }

    async fn remove_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        let emoji = emoji.clone();
        self.change(Change::RemoveReaction { id, user, emoji }, true)
            .await
    }

    async fn replies(
        &self,
        parent: MessageId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.within(async {
            let mut conn = self.conn().await?;
            seq_of(&mut conn, parent).await?;
            let page = positions(&mut conn, &page).await?;
            let query = select_messages().filter(messages::reply_to.eq(parent.as_uuid()));
            let rows = paged!(query, messages::seq, &page, position)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            to_page(&mut conn, rows, &page).await
        })
        .await
    }

    /// Two reads merged by position: the visible feed after `after` (the
    /// same merged index scans as `visible_messages`), and the changed
    /// messages after it on the `changed_seq` index, filtered by what the
    /// viewer may read.
    async fn changes_after(
        &self,
        viewer: UserId,
        _viewer_name: &Username,
        after: u64,
        limit: usize,
    ) -> DomainResult<StreamPage> {
        self.within(async {
            let mut conn = self.conn().await?;
            let after = to_seq(after);
            let page = PageRequest {
                limit,
                cursor: Cursor::After(after),
            };
            let rooms: Vec<Uuid> = room_members::table
                .filter(room_members::user_id.eq(viewer.as_uuid()))
                .select(room_members::room_id)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let branches = visible_sources(viewer.as_uuid(), rooms.clone())
                .into_iter()
                .map(|source| paged!(source, messages::seq, &page, position))
                .collect();
            let new = MergedPages::new(branches, false, probe_limit(&page))
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let me = viewer.as_uuid();
            let updated: Vec<(MessageRow, Option<i64>)> = messages::table
                .select((MessageRow::as_select(), messages::changed_seq))
                .filter(messages::changed_seq.gt(after))
                .filter(
                    messages::recipient_id
                        .is_null()
                        .and(messages::room_id.is_null())
                        .or(messages::recipient_id.is_not_null().and(
                            messages::sender_id
                                .eq(me)
                                .or(messages::recipient_id.eq(me).assume_not_null()),
                        ))
                        .or(messages::room_id.assume_not_null().eq_any(rooms)),
                )
                .order(messages::changed_seq.asc())
                .limit(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let mut entries: Vec<(i64, bool, MessageRow)> = new
                .into_iter()
                .map(|row| (row.seq, true, row))
                .chain(
                    updated
                        .into_iter()
                        .filter_map(|(row, position)| Some((position?, false, row))),
                )
                .collect();
            entries.sort_by_key(|(position, _, _)| *position);
            let has_more = entries.len() > limit;
            entries.truncate(limit);
            let mut positions = Vec::with_capacity(entries.len());
            let mut messages = Vec::with_capacity(entries.len());
            for (position, is_new, row) in entries {
                positions.push((to_position(position)?, is_new));
                messages.push(Message::try_from(row)?);
            }
            let messages = decorate(&mut conn, messages).await?;
            let mut items: Vec<StreamItem> = positions
                .into_iter()
                .zip(messages)
                .map(|((position, is_new), message)| {
                    if is_new {
                        StreamItem::New { message, position }
                    } else {
                        StreamItem::Updated { message, position }
                    }
                })
                .collect();
            // Read markers: merged by position. Messages past the first
            // `limit` were not read, but they all lie after every item
            // kept, so cutting the merge at `limit` again is exact.
            let reads = reads_after(&mut conn, viewer, after, limit.saturating_add(1)).await?;
            let more_reads = reads.len() > limit;
            items.extend(reads);
            items.sort_by_key(StreamItem::position);
            let has_more = has_more || more_reads || items.len() > limit;
            items.truncate(limit);
            Ok(StreamPage { items, has_more })
        })
        .await
    }

    /// The sequence's last value: every message and change so far is at
    /// or below it.
    async fn latest_position(&self) -> DomainResult<u64> {
        self.within(async {
            let mut conn = self.conn().await?;
            let latest: Option<i64> = messages::table
                .select(diesel::dsl::max(messages::seq))
                .first(&mut conn)
                .await
                .map_err(db_error)?;
            let changed: Option<i64> = messages::table
                .select(diesel::dsl::max(messages::changed_seq))
                .first(&mut conn)
                .await
                .map_err(db_error)?;
            let read: Option<i64> = read_markers::table
                .select(diesel::dsl::max(read_markers::read_seq))
                .first(&mut conn)
                .await
                .map_err(db_error)?;
            to_position(latest.max(changed).max(read).unwrap_or(0))
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
pub(crate) async fn account_id(
    conn: &mut AsyncPgConnection,
    name: &Username,
) -> DomainResult<Option<Uuid>> {
    users::table
        .filter(lower(users::username).eq(name.as_str().to_ascii_lowercase()))
        .select(users::id)
        .first(conn)
        .await
        .optional()
        .map_err(db_error)
}

async fn to_page(
    conn: &mut AsyncPgConnection,
    rows: Vec<MessageRow>,
    page: &PageRequest<i64>,
) -> DomainResult<Page<Message>> {
    let messages = rows
        .into_iter()
        .map(Message::try_from)
        .collect::<DomainResult<Vec<_>>>()?;
    let messages = decorate(conn, messages).await?;
    Ok(Page::from_probe(messages, page))
}

/// The messages with what other rows say about them: their reactions (by
/// username, in the order made) and how many of their replies are not
/// deleted. Two index look-ups for the whole page, skipped when no
/// message needs them.
pub(crate) async fn decorate(
    conn: &mut AsyncPgConnection,
    mut messages: Vec<Message>,
) -> DomainResult<Vec<Message>> {
    let ids: Vec<Uuid> = messages
        .iter()
        .filter(|m| !m.is_deleted())
        .map(|m| m.id.as_uuid())
        .collect();
    if ids.is_empty() {
        return Ok(messages);
    }
    let reactions: Vec<(Uuid, String, String)> = message_reactions::table
        .inner_join(users::table)
        .filter(message_reactions::message_id.eq_any(&ids))
        .order((message_reactions::message_id, message_reactions::id))
        .select((
            message_reactions::message_id,
            message_reactions::emoji,
            users::username,
        ))
        .load(conn)
        .await
        .map_err(db_error)?;
    let replies: Vec<(Option<Uuid>, i64)> = messages::table
        .filter(messages::reply_to.eq_any(&ids))
        .filter(messages::deleted_at.is_null())
        .group_by(messages::reply_to)
        .select((messages::reply_to, diesel::dsl::count_star()))
        .load(conn)
        .await
        .map_err(db_error)?;
    let mut by_message: HashMap<Uuid, Vec<(Emoji, Username)>> = HashMap::new();
    for (message, emoji, user) in reactions {
        let emoji = Emoji::parse(emoji)
            .map_err(|err| DomainError::internal(format!("invalid stored emoji: {err}")))?;
        let user = Username::parse(user)
            .map_err(|err| DomainError::internal(format!("invalid stored username: {err}")))?;
        by_message.entry(message).or_default().push((emoji, user));
    }
    let counts: HashMap<Uuid, i64> = replies
        .into_iter()
        .filter_map(|(parent, count)| Some((parent?, count)))
        .collect();
    for message in messages.iter_mut().filter(|m| !m.is_deleted()) {
        let id = message.id.as_uuid();
        if let Some(reactions) = by_message.remove(&id) {
            message.reactions = Reaction::group(reactions);
        }
        let count = counts.get(&id).copied().unwrap_or(0);
        message.reply_count = u32::try_from(count).unwrap_or(u32::MAX);
    }
    Ok(messages)
}

/// A position as the table keeps it.
fn to_seq(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn to_position(seq: i64) -> DomainResult<u64> {
    u64::try_from(seq).map_err(|_| DomainError::internal("negative position"))
}

/// The message of `row`, decorated, with the change's position.
async fn changed(
    conn: &mut AsyncPgConnection,
    row: MessageRow,
    position: Option<i64>,
) -> DomainResult<Changed> {
    let message = decorate(conn, vec![Message::try_from(row)?])
        .await?
        .pop()
        .ok_or_else(|| DomainError::internal("a changed message went missing"))?;
    let position = position.map(to_position).transpose()?;
    Ok(Changed { message, position })
}

impl PgStore {
    /// Applies `change` through the group-commit writer, then reads the
    /// message as it is now, with the change's position; a change that
    /// changed nothing answers the message as it is (`MessageNotFound` if
    /// there is none, `MessageDeleted` for a deleted one when
    /// `deleted_is_error`).
    async fn change(&self, change: Change, deleted_is_error: bool) -> DomainResult<Changed> {
        let id = change.message();
        self.within(async {
            let position = self.writer().write(Write::Change(change)).await?.moved()?;
            let mut conn = self.conn().await?;
            let row = select_messages()
                .filter(messages::id.eq(id.as_uuid()))
                .first::<MessageRow>(&mut conn)
                .await
                .optional()
                .map_err(db_error)?
                .ok_or(DomainError::MessageNotFound)?;
            if position.is_none() && deleted_is_error && row.deleted_at.is_some() {
                return Err(DomainError::MessageDeleted);
            }
            changed(&mut conn, row, position).await
        })
        .await
    }
}
