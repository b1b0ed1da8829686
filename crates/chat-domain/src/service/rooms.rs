//! Rooms and membership. Only members see a room, its messages and its
//! member list; any member may add someone; members leave themselves or are
//! removed by the room's creator.

use crate::auth::Caller;
use crate::entities::{Message, Room};
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, RoomId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::values::{RoomDescription, RoomName};

use super::ChatService;

impl ChatService {
    /// Creates a room with the caller and the named users as members.
    pub async fn create_room(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
        members: &[UserId],
    ) -> DomainResult<Room> {
        let name = RoomName::parse(name)?;
        let description = RoomDescription::parse(description.unwrap_or_default())?;
        let mut member_ids = vec![caller.user_id];
        for &id in members {
            if !member_ids.contains(&id) {
                self.account(id).await?;
                member_ids.push(id);
            }
        }
        let room = Room {
            id: RoomId::generate(),
            name,
            description,
            members: member_ids,
            created_by: caller.user_id,
            created_at: self.clock.now(),
        };
        self.stores.rooms.create_room(&room).await?;
        Ok(room)
    }

    /// A room the caller belongs to.
    pub async fn room(&self, caller: &Caller, id: RoomId) -> DomainResult<Room> {
        let room = self.existing_room(id).await?;
        if !room.has_member(caller.user_id) {
            return Err(DomainError::NotAMember);
        }
        Ok(room)
    }

    /// A page of a room's history, for members.
    pub async fn room_messages(
        &self,
        caller: &Caller,
        id: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.room(caller, id).await?;
        self.check_cursor(caller, &page).await?;
        self.stores.messages.room_messages(id, page).await
    }

    /// Adds a user to a room the caller belongs to. Adding a member again
    /// changes nothing and succeeds.
    pub async fn add_member(
        &self,
        caller: &Caller,
        room: RoomId,
        user: UserId,
    ) -> DomainResult<()> {
        self.room(caller, room).await?;
        self.account(user).await?;
        self.stores.rooms.add_member(room, user).await?;
        Ok(())
    }

    /// Removes a user from a room: the user themself, or the room's creator
    /// while still a member (a creator who left has no say in the room any
    /// more). Removing a non-member changes nothing and succeeds, so
    /// leaving twice is not an error.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        room: RoomId,
        user: UserId,
    ) -> DomainResult<()> {
        let found = self.existing_room(room).await?;
        if caller.user_id != user {
            if !found.has_member(caller.user_id) {
                return Err(DomainError::NotAMember);
            }
            if caller.user_id != found.created_by {
                return Err(DomainError::Forbidden(
                    "only the member themself or the room's creator can remove a member",
                ));
            }
        }
        self.stores.rooms.remove_member(room, user).await?;
        Ok(())
    }

    /// The rooms of a user that the caller can see: all of the caller's own,
    /// and of another user's only those the caller shares.
    pub async fn user_rooms(
        &self,
        caller: &Caller,
        user: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>> {
        self.account(user).await?;
        self.stores
            .rooms
            .rooms_of_user(user, caller.user_id, page)
            .await
    }

    pub(super) async fn existing_room(&self, id: RoomId) -> DomainResult<Room> {
        self.stores
            .rooms
            .room_by_id(id)
            .await?
            .ok_or(DomainError::RoomNotFound)
    }
}
