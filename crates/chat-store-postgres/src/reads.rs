//! [`ReadStore`] on `read_markers` and `conversations` (see the
//! `read_state`, `direct_own_places` and `direct_counts_on_read`
//! migrations). Rooms and the global conversation are counted as messages
//! are stored: the triggers keep each one's latest message and place, and
//! each sender's marker, so their unread count is read from two
//! primary-key rows and the partial index of deleted messages after the
//! marker, never from their history. A direct conversation is counted
//! when read: its row only names the two parties, and its latest message,
//! each party's latest own message and its unread messages are read from
//! its history index, one entry per unread message. Markers start on
//! registration and on joining a room.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::{
    Activity, Conversation, ConversationPage, ConversationRef, DomainError, DomainResult, Message,
    MessageId, ReadMarker, ReadStore, RoomId, StreamItem, UserId, Username,
};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::changes::ReadMove;
use crate::error::db_error;
use crate::messages::{account_id, decorate, select_messages};
use crate::rows::MessageRow;
use crate::schema::messages;
use crate::sink::Write;
use crate::store::PgStore;

/// One conversation of a user's list, as the list query answers it.
#[derive(QueryableByName)]
struct ConversationRow {
    #[diesel(sql_type = SqlUuid)]
    key: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    room_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    peer: Option<Uuid>,
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    last_message_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    last_read_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    peer_last_read_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    room_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    peer_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    unread: i64,
}

/// A user's conversations (`$1`): their direct conversations (each a row
/// of `conversations`, found by either party, with its latest message
/// read from the conversation's history index), their rooms, and the
/// global one, before the cursor `($2, $3)`, at most `$4`. Rooms and the
/// global one are read by primary key, with their latest place
/// (`last_place`, NULL for a direct one: it is counted in the tail).
const LIST_HEAD: &str = "\
    WITH direct AS ( \
        SELECT key, user_b AS peer FROM conversations WHERE user_a = $1 \
        UNION ALL \
        SELECT key, user_a FROM conversations WHERE user_b = $1 AND user_a <> $1 \
    ), mine AS ( \
        SELECT d.key, NULL::uuid AS room_id, d.peer, latest.seq AS last_seq, \
               NULL::bigint AS last_place, latest.id AS last_message_id \
        FROM direct d \
        CROSS JOIN LATERAL ( \
            SELECT h.seq, h.id FROM messages h \
            WHERE h.conv_key = d.key AND h.recipient_id IS NOT NULL \
            ORDER BY h.seq DESC LIMIT 1 \
        ) latest \
        UNION ALL \
        SELECT rm.room_id, rm.room_id, NULL, \
               coalesce(c.last_seq, 0), coalesce(c.last_place, 0), c.last_message_id \
        FROM room_members rm LEFT JOIN conversations c ON c.key = rm.room_id \
        WHERE rm.user_id = $1 \
        UNION ALL \
        SELECT '00000000-0000-0000-0000-000000000000'::uuid, NULL, NULL, \
               coalesce(c.last_seq, 0), coalesce(c.last_place, 0), c.last_message_id \
        FROM (SELECT 1) AS one \
        LEFT JOIN conversations c ON c.key = '00000000-0000-0000-0000-000000000000'::uuid \
    ), listed AS ( \
        SELECT * FROM mine \
        WHERE (last_seq, key) < ($2, $3) \
        ORDER BY last_seq DESC, key DESC \
        LIMIT $4 \
    ) ";

/// One conversation of user `$1`: the other party `$2` of a direct one,
/// or the room `$3`.
const ONE_HEAD: &str = "\
    WITH listed AS ( \
        SELECT one.key, $3::uuid AS room_id, $2::uuid AS peer, \
               coalesce(c.last_seq, latest.seq, 0) AS last_seq, \
               CASE WHEN $2::uuid IS NULL THEN coalesce(c.last_place, 0) END AS last_place, \
               coalesce(c.last_message_id, latest.id) AS last_message_id \
        FROM (SELECT conversation_key($2, $1, $3) AS key) AS one \
        LEFT JOIN conversations c ON c.key = one.key \
        LEFT JOIN LATERAL ( \
            SELECT h.seq, h.id FROM messages h \
            WHERE $2::uuid IS NOT NULL AND h.conv_key = one.key AND h.recipient_id IS NOT NULL \
            ORDER BY h.seq DESC LIMIT 1 \
        ) latest ON true \
    ) ";

/// Each listed conversation with the user's effective marker, the other
/// party's, its name, and the unread count. In a room or the global
/// conversation sending moves the marker itself, and the count is the
/// places after it less the deleted messages of others. In a direct one
/// the effective marker is the further of the marker (moved by reads) and
/// the user's own latest message (found walking back from the latest
/// message, no further than the marker), so no own message lies after it,
/// and the count is the messages after it, one index entry each, less the
/// deleted ones; the other party's for "seen" alike.
const LIST_TAIL: &str = "\
    SELECT l.key, l.room_id, l.peer, l.last_seq, l.last_message_id, \
           coalesce(own.id, m.message_id) AS last_read_id, \
           coalesce(peer_own.id, p.message_id) AS peer_last_read_id, \
           r.name AS room_name, u.username AS peer_name, \
           coalesce(l.last_place - e.place, ( \
               SELECT count(*) FROM messages a \
               WHERE a.conv_key = l.key AND a.recipient_id IS NOT NULL AND a.seq > e.place \
           )) - ( \
               SELECT count(*) FROM messages d \
               WHERE d.conv_key = l.key AND d.place > e.place \
                 AND d.deleted_at IS NOT NULL AND d.sender_id <> $1 \
           ) AS unread \
    FROM listed l \
    LEFT JOIN read_markers m ON m.user_id = $1 AND m.conv_key = l.key \
    LEFT JOIN read_markers p ON l.peer <> $1 AND p.user_id = l.peer AND p.conv_key = l.key \
    LEFT JOIN LATERAL ( \
        SELECT o.place, o.id FROM messages o \
        WHERE l.peer IS NOT NULL AND o.conv_key = l.key AND o.recipient_id IS NOT NULL \
          AND o.seq > coalesce(m.place, 0) AND o.sender_id = $1 \
        ORDER BY o.seq DESC LIMIT 1 \
    ) own ON true \
    LEFT JOIN LATERAL ( \
        SELECT o.id FROM messages o \
        WHERE l.peer <> $1 AND o.conv_key = l.key AND o.recipient_id IS NOT NULL \
          AND o.seq > coalesce(p.place, 0) AND o.sender_id = l.peer \
        ORDER BY o.seq DESC LIMIT 1 \
    ) peer_own ON true \
    CROSS JOIN LATERAL (SELECT greatest(m.place, own.place, 0) AS place) e \
    LEFT JOIN rooms r ON r.id = l.room_id \
    LEFT JOIN users u ON u.id = l.peer \
    ORDER BY l.last_seq DESC, l.key DESC";

/// The place of a message in a conversation (none if it is not in it) and
/// whether a reader's effective marker there is at it or further.
#[derive(QueryableByName)]
struct Places {
    #[diesel(sql_type = Nullable<BigInt>)]
    message: Option<i64>,
    #[diesel(sql_type = Bool)]
    read: bool,
}

/// Where message `$4` lies in the conversation of reader `$1` with other
/// party `$2` or room `$3`, and whether the reader has read it: their
/// marker is there or further, or in a direct conversation they sent a
/// message there or after it (`read_markers_own_reaches`, which walks the
/// messages after it).
const PLACES: &str = "\
    SELECT a.place AS message, \
           coalesce(mk.place >= a.place, false) \
           OR coalesce(read_markers_own_reaches($1, c.key, a.place), false) AS read \
    FROM (SELECT conversation_key($2, $1, $3) AS key) AS c \
    LEFT JOIN messages a ON a.id = $4 AND a.conv_key = c.key \
    LEFT JOIN read_markers mk ON mk.user_id = $1 AND mk.conv_key = c.key";

/// A marker move of a user's stream of changes.
#[derive(QueryableByName)]
struct ReadRow {
    #[diesel(sql_type = BigInt)]
    read_seq: i64,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    room_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    peer_id: Option<Uuid>,
    #[diesel(sql_type = SqlUuid)]
    message_id: Uuid,
    #[diesel(sql_type = Text)]
    reader_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    peer_name: Option<String>,
}

/// The moves by reads after `$2` of `$1`'s own markers and of the other
/// parties' in their direct conversations, at most `$3`, on the two
/// partial indexes of `read_seq`.
const READS_AFTER: &str = "\
    SELECT m.read_seq, m.user_id, m.room_id, m.peer_id, m.message_id, \
           r.username AS reader_name, p.username AS peer_name \
    FROM read_markers m \
    JOIN users r ON r.id = m.user_id \
    LEFT JOIN users p ON p.id = m.peer_id \
    WHERE m.read_seq IS NOT NULL AND m.read_seq > $2 AND (m.user_id = $1 OR m.peer_id = $1) \
    ORDER BY m.read_seq \
    LIMIT $3";

fn stored_name(name: String) -> DomainResult<Username> {
    Username::parse(name)
        .map_err(|err| DomainError::internal(format!("invalid stored username: {err}")))
}

impl PgStore {
    /// The other party (if direct) and the room (if a room) of a
    /// conversation as its reader names it; `UserNotFound` for a direct one
    /// with nobody. The other party is usually in the account cache: the
    /// use case has just looked them up by name.
    async fn parts_of(
        &self,
        conn: &mut AsyncPgConnection,
        conversation: &ConversationRef,
    ) -> DomainResult<(Option<Uuid>, Option<Uuid>)> {
        Ok(match conversation {
            ConversationRef::Global => (None, None),
            ConversationRef::Room(room) => (None, Some(room.as_uuid())),
            ConversationRef::Direct(peer) => {
                let cached = self.accounts().get(&peer.as_str().to_ascii_lowercase());
                let id = match cached {
                    Some(account) => account.id.as_uuid(),
                    None => account_id(conn, peer)
                        .await?
                        .ok_or(DomainError::UserNotFound)?,
                };
                (Some(id), None)
            }
        })
    }
}

/// The rows as conversations of `viewer`, with their last messages
/// (read in one query); rows of a room or user that no longer exists are
/// left out.
async fn to_conversations(
    conn: &mut AsyncPgConnection,
    viewer: UserId,
    rows: Vec<ConversationRow>,
) -> DomainResult<Vec<Conversation>> {
    let ids: Vec<Uuid> = rows.iter().filter_map(|row| row.last_message_id).collect();
    let mut last: HashMap<MessageId, Message> = HashMap::new();
    if !ids.is_empty() {
        let found: Vec<MessageRow> = select_messages()
            .filter(messages::id.eq_any(ids))
            .load(conn)
            .await
            .map_err(db_error)?;
        let found = found
            .into_iter()
            .map(Message::try_from)
            .collect::<DomainResult<Vec<_>>>()?;
        last = decorate(conn, found)
            .await?
            .into_iter()
            .map(|message| (message.id, message))
            .collect();
    }
    let mut conversations = Vec::with_capacity(rows.len());
    for row in rows {
        let (conversation, name) = match (row.room_id, row.peer) {
            (Some(room), _) => match row.room_name {
                Some(name) => (ConversationRef::Room(RoomId::from_uuid(room)), name),
                None => continue,
            },
            (None, Some(_)) => match row.peer_name {
                Some(name) => {
                    let peer = stored_name(name)?;
                    let name = peer.as_str().to_owned();
                    (ConversationRef::Direct(peer), name)
                }
                None => continue,
            },
            (None, None) => (ConversationRef::Global, "Global".to_owned()),
        };
        let peer_is_viewer = row.peer == Some(viewer.as_uuid());
        conversations.push(Conversation {
            conversation,
            name,
            last_message: row
                .last_message_id
                .and_then(|id| last.remove(&MessageId::from_uuid(id))),
            unread_count: u64::try_from(row.unread).unwrap_or(0),
            last_read_id: row.last_read_id.map(MessageId::from_uuid),
            peer_last_read_id: row
                .peer_last_read_id
                .filter(|_| !peer_is_viewer)
                .map(MessageId::from_uuid),
            activity: Activity {
                position: u64::try_from(row.last_seq).unwrap_or(0),
                key: row.key,
            },
        });
    }
    Ok(conversations)
}

/// The moves by reads `viewer` may see after `after`, at most `take`, as
/// the viewer names their conversations: `(position, marker)`.
pub(crate) async fn reads_after(
    conn: &mut AsyncPgConnection,
    viewer: UserId,
    after: i64,
    take: usize,
) -> DomainResult<Vec<StreamItem>> {
    let rows: Vec<ReadRow> = diesel::sql_query(READS_AFTER)
        .bind::<SqlUuid, _>(viewer.as_uuid())
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(i64::try_from(take).unwrap_or(i64::MAX))
        .load(conn)
        .await
        .map_err(db_error)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let reader = stored_name(row.reader_name)?;
        let conversation = match (row.room_id, row.peer_id, row.peer_name) {
            (Some(room), _, _) => ConversationRef::Room(RoomId::from_uuid(room)),
            (None, Some(_), Some(peer)) if row.user_id == viewer.as_uuid() => {
                ConversationRef::Direct(stored_name(peer)?)
            }
            (None, Some(_), _) => ConversationRef::Direct(reader.clone()),
            (None, None, _) => ConversationRef::Global,
        };
        items.push(StreamItem::Read {
            read: ReadMarker {
                conversation,
                reader,
                message_id: MessageId::from_uuid(row.message_id),
            },
            position: u64::try_from(row.read_seq)
                .map_err(|_| DomainError::internal("negative position"))?,
        });
    }
    Ok(items)
}

#[async_trait]
impl ReadStore for PgStore {
    /// Most reads move nothing (the effective marker is there already):
    /// answered from one look-up. A read that moves goes through the group-commit
    /// writer, where `read_markers_move` checks again and moves the marker
    /// forward under the ordering lock, drawing the move's position (see
    /// the `read_state` migration).
    async fn mark_read(
        &self,
        reader: UserId,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Option<u64>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let (peer, room) = self.parts_of(&mut conn, conversation).await?;
            let places: Places = diesel::sql_query(PLACES)
                .bind::<SqlUuid, _>(reader.as_uuid())
                .bind::<Nullable<SqlUuid>, _>(peer)
                .bind::<Nullable<SqlUuid>, _>(room)
                .bind::<SqlUuid, _>(message.as_uuid())
                .get_result(&mut conn)
                .await
                .map_err(db_error)?;
            drop(conn);
            if places.message.is_none() {
                return Err(DomainError::MessageNotFound);
            }
            if places.read {
                return Ok(None);
            }
            let read = ReadMove {
                reader: reader.as_uuid(),
                peer,
                room,
                message: message.as_uuid(),
            };
            match self.writer().write(Write::Read(read)).await?.moved()? {
                None => Ok(None),
                // The function's answer for a message of another
                // conversation (or none).
                Some(-1) => Err(DomainError::MessageNotFound),
                Some(position) => u64::try_from(position)
                    .map(Some)
                    .map_err(|_| DomainError::internal("negative position")),
            }
        })
        .await
    }

    async fn conversation(
        &self,
        viewer: UserId,
        conversation: &ConversationRef,
    ) -> DomainResult<Option<Conversation>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let (peer, room) = match self.parts_of(&mut conn, conversation).await {
                Ok(parts) => parts,
                Err(DomainError::UserNotFound) => return Ok(None),
                Err(err) => return Err(err),
            };
            let rows: Vec<ConversationRow> = diesel::sql_query(format!("{ONE_HEAD}{LIST_TAIL}"))
                .bind::<SqlUuid, _>(viewer.as_uuid())
                .bind::<Nullable<SqlUuid>, _>(peer)
                .bind::<Nullable<SqlUuid>, _>(room)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(to_conversations(&mut conn, viewer, rows).await?.pop())
        })
        .await
    }

    async fn conversations(
        &self,
        viewer: UserId,
        limit: usize,
        before: Option<Activity>,
    ) -> DomainResult<ConversationPage> {
        self.within(async {
            let mut conn = self.conn().await?;
            let (position, key) = match before {
                Some(before) => (
                    i64::try_from(before.position).unwrap_or(i64::MAX),
                    before.key,
                ),
                None => (i64::MAX, Uuid::max()),
            };
            let rows: Vec<ConversationRow> = diesel::sql_query(format!("{LIST_HEAD}{LIST_TAIL}"))
                .bind::<SqlUuid, _>(viewer.as_uuid())
                .bind::<BigInt, _>(position)
                .bind::<SqlUuid, _>(key)
                .bind::<BigInt, _>(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let has_more = rows.len() > limit;
            let mut items = to_conversations(&mut conn, viewer, rows).await?;
            items.truncate(limit);
            Ok(ConversationPage { items, has_more })
        })
        .await
    }
}
