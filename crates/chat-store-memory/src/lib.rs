//! # chat-store-memory
//!
//! [`MemoryStore`] keeps users, rooms, messages and token revocations in
//! process memory and implements every store port of `chat-domain`
//! ([`UserStore`], [`RoomStore`], [`MessageStore`], [`RevocationStore`],
//! [`StoreHealth`]). Nothing survives a restart: it is for development,
//! tests and single-process demos. It passes the same contract suite
//! (`chat-test-support`) as the PostgreSQL adapter.
//!
//! ```
//! use std::sync::Arc;
//!
//! use chat_domain::{PageRequest, Stores, UserStore};
//! use chat_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chat_domain::DomainError> {
//! let store = Arc::new(MemoryStore::new());
//! // One adapter serves every store port of the service.
//! let stores = Stores::single(store.clone());
//! let users = store.list_users(PageRequest::latest()).await?;
//! assert!(users.items.is_empty());
//! # drop(stores);
//! # Ok(())
//! # }
//! ```
//!
//! All state sits behind one `tokio::sync::RwLock`, so each operation is
//! atomic: of two concurrent registrations of one name exactly one wins, and
//! concurrent resends of one `client_id` store one message. Each message
//! gets its position in the history under that same lock, so histories are
//! in the order messages were stored and a reader paging forward with
//! `after=` never skips one stored later (see `docs/decisions.md`, "Ordering
//! and pagination"). Reads of a room, a conversation or a user's visible
//! messages use per-conversation indexes and touch about `limit` messages
//! per source, not the whole history.

mod pages;
mod state;

use async_trait::async_trait;
use chat_domain::{
    DomainResult, Message, MessageId, MessageStore, NewMessage, Page, PageRequest, RevocationStore,
    Room, RoomId, RoomStore, StoreHealth, Stored, TokenId, UserAccount, UserId, UserStore,
    Username,
};
use time::OffsetDateTime;
use tokio::sync::RwLock;

use state::State;

/// Every store port, in memory. Cheap to create; share it with an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, account: &UserAccount) -> DomainResult<()> {
        self.state.write().await.create_user(account)
    }

    async fn user_by_id(&self, id: UserId) -> DomainResult<Option<UserAccount>> {
        Ok(self.state.read().await.users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &Username) -> DomainResult<Option<UserAccount>> {
        Ok(self.state.read().await.user_by_username(username).cloned())
    }

    async fn list_users(&self, page: PageRequest<UserId>) -> DomainResult<Page<UserAccount>> {
        Ok(self.state.read().await.list_users(&page))
    }
}

#[async_trait]
impl RoomStore for MemoryStore {
    async fn create_room(&self, room: &Room) -> DomainResult<()> {
        self.state.write().await.create_room(room)
    }

    async fn room_by_id(&self, id: RoomId) -> DomainResult<Option<Room>> {
        Ok(self.state.read().await.rooms.get(&id).cloned())
    }

    async fn add_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.state.write().await.add_member(room, user)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        Ok(self.state.write().await.remove_member(room, user))
    }

    async fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>> {
        Ok(self.state.read().await.rooms_of_user(member, viewer, &page))
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn insert_message(&self, new: &NewMessage) -> DomainResult<Stored> {
        self.state.write().await.insert_message(new)
    }

    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        let mut state = self.state.write().await;
        let stored = state.insert_message(new)?;
        let position = match &stored {
            Stored::Created(message) => state.position_of(message.id),
            Stored::Duplicate(_) => None,
        };
        Ok((stored, position))
    }

    /// Positions are the `seq` drawn under the write lock.
    fn reports_positions(&self) -> bool {
        true
    }

    async fn message_by_id(&self, id: MessageId) -> DomainResult<Option<Message>> {
        Ok(self.state.read().await.message_by_id(id))
    }

    async fn message_by_id_positioned(
        &self,
        id: MessageId,
    ) -> DomainResult<Option<(Message, Option<u64>)>> {
        let state = self.state.read().await;
        Ok(state
            .message_by_id(id)
            .map(|message| (message, state.position_of(id))))
    }

    async fn visible_messages(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.state
            .read()
            .await
            .visible_messages(viewer, viewer_name, &page)
    }

    async fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.state.read().await.direct_messages(a, b, &page)
    }

    async fn room_messages(
        &self,
        room: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.state.read().await.room_messages(room, &page)
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn revoke(&self, token: TokenId, expires_at: OffsetDateTime) -> DomainResult<()> {
        self.state.write().await.revoke(token, expires_at);
        Ok(())
    }

    async fn is_revoked(&self, token: TokenId) -> DomainResult<bool> {
        Ok(self.state.read().await.revocations.contains_key(&token))
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> DomainResult<u64> {
        Ok(self.state.write().await.purge_expired(now))
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    /// Memory is always there.
    async fn check(&self) -> DomainResult<()> {
        Ok(())
    }
}
