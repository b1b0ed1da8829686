//! [`RoomStore`] on `rooms` and `room_members`.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::{DomainError, DomainResult, Page, PageRequest, Room, RoomId, RoomStore, UserId};
use diesel::prelude::*;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::{db_error, foreign_key_violation};
use crate::paging::paged;
use crate::rows::RoomRow;
use crate::schema::{room_members, rooms};
use crate::store::PgStore;

#[async_trait]
impl RoomStore for PgStore {
    async fn create_room(&self, room: &Room) -> DomainResult<()> {
        self.within(async {
            let mut conn = self.conn().await?;
            let row = RoomRow::from(room);
            // One multi-row INSERT assigns join_seq in the order of `members`.
            let members: Vec<_> = room
                .members
                .iter()
                .map(|user| {
                    (
                        room_members::room_id.eq(row.id),
                        room_members::user_id.eq(user.as_uuid()),
                    )
                })
                .collect();
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                async move {
                    diesel::insert_into(rooms::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    if !members.is_empty() {
                        diesel::insert_into(room_members::table)
                            .values(&members)
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await
            .map_err(membership_error)
        })
        .await
    }

    async fn room_by_id(&self, id: RoomId) -> DomainResult<Option<Room>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let row: Option<RoomRow> = rooms::table
                .find(id.as_uuid())
                .select(RoomRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let members = room_members::table
                .filter(room_members::room_id.eq(row.id))
                .order(room_members::join_seq.asc())
                .select(room_members::user_id)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            row.into_room(members).map(Some)
        })
        .await
    }

    async fn add_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.within(async {
            let mut conn = self.conn().await?;
            let inserted = diesel::insert_into(room_members::table)
                .values((
                    room_members::room_id.eq(room.as_uuid()),
                    room_members::user_id.eq(user.as_uuid()),
                ))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await
                .map_err(membership_error)?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.within(async {
            let mut conn = self.conn().await?;
            let deleted =
                diesel::delete(room_members::table.find((room.as_uuid(), user.as_uuid())))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let rooms_of = |user: UserId| {
                room_members::table
                    .filter(room_members::user_id.eq(user.as_uuid()))
                    .select(room_members::room_id)
            };
            let query = rooms::table
                .filter(rooms::id.eq_any(rooms_of(member)))
                .filter(rooms::id.eq_any(rooms_of(viewer)))
                .select(RoomRow::as_select())
                .into_boxed();
            let rows: Vec<RoomRow> = paged!(query, rooms::id, &page, |id: RoomId| id.as_uuid())
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let mut members =
                members_of(&mut conn, rows.iter().map(|row| row.id).collect()).await?;
            let rooms = rows
                .into_iter()
                .map(|row| {
                    let ids = members.remove(&row.id).unwrap_or_default();
                    row.into_room(ids)
                })
                .collect::<DomainResult<Vec<_>>>()?;
            Ok(Page::from_probe(rooms, &page))
        })
        .await
    }
}

/// The members of several rooms in one query, each list in join order.
async fn members_of(
    conn: &mut AsyncPgConnection,
    room_ids: Vec<Uuid>,
) -> DomainResult<HashMap<Uuid, Vec<Uuid>>> {
    if room_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(Uuid, Uuid)> = room_members::table
        .filter(room_members::room_id.eq_any(room_ids))
        .order((room_members::room_id, room_members::join_seq))
        .select((room_members::room_id, room_members::user_id))
        .load(conn)
        .await
        .map_err(db_error)?;
    let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (room, user) in pairs {
        members.entry(room).or_default().push(user);
    }
    Ok(members)
}

/// A membership naming a room or user that does not exist.
fn membership_error(err: diesel::result::Error) -> DomainError {
    match foreign_key_violation(&err) {
        Some("room_members_room_id_fkey") => DomainError::RoomNotFound,
        Some("room_members_user_id_fkey" | "rooms_created_by_fkey") => DomainError::UserNotFound,
        _ => db_error(err),
    }
}
