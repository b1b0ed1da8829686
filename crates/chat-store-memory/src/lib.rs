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
//! All state sits behind one lock, so each operation is atomic: of two concurrent registrations of one name exactly one wins, and
//! concurrent resends of one `client_id` store one message. Each message
//! gets its position in the history under that same lock, so histories are
//! in the order messages were stored and a reader paging forward with
//! `after=` never skips one stored later (see `docs/decisions.md`, "Ordering in
//! the store"). Reads of a room, a conversation or a user's visible
//! messages use per-conversation indexes and touch about `limit` messages
//! per source, not the whole history.
//!
//! The lock is `std::sync::RwLock`, not tokio's: every operation is a few
//! map operations with nothing awaited inside, so a thread that finds it
//! taken waits microseconds; with tokio's, the holder's release handed
//! the lock to a waiting *task*, often on the other worker thread, at the
//! price of waking that thread (docs/benchmarks.md, "Direct messages").

mod pages;
mod state;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chat_domain::{
    Activity, Changed, Conversation, ConversationPage, ConversationRef, DomainResult, Emoji,
    Message, MessageContent, MessageId, MessageStore, NewMessage, Page, PageRequest, ReadStore,
    RevocationStore, Room, RoomId, RoomStore, StoreHealth, Stored, StreamPage, TokenId,
    UserAccount, UserId, UserStore, Username,
};
use time::OffsetDateTime;

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

    /// The state, to read. Every update leaves it whole before it can
    /// panic (validation comes first), so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, to change.
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
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
        self.write().create_user(account)
    }

    async fn user_by_id(&self, id: UserId) -> DomainResult<Option<UserAccount>> {
        Ok(self.read().users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &Username) -> DomainResult<Option<UserAccount>> {
        Ok(self.read().user_by_username(username).cloned())
    }

    async fn list_users(&self, page: PageRequest<UserId>) -> DomainResult<Page<UserAccount>> {
        Ok(self.read().list_users(&page))
    }
}

#[async_trait]
impl RoomStore for MemoryStore {
    async fn create_room(&self, room: &Room) -> DomainResult<()> {
        self.write().create_room(room)
    }

    async fn room_by_id(&self, id: RoomId) -> DomainResult<Option<Room>> {
        Ok(self.read().rooms.get(&id).cloned())
    }

    async fn add_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.write().add_member(room, user)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        Ok(self.write().remove_member(room, user))
    }

    async fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>> {
        Ok(self.read().rooms_of_user(member, viewer, &page))
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn insert_message(&self, new: &NewMessage) -> DomainResult<Stored> {
        self.write().insert_message(new)
    }

    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        let mut state = self.write();
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
        Ok(self.read().message_by_id(id))
    }

    async fn message_by_id_positioned(
        &self,
        id: MessageId,
    ) -> DomainResult<Option<(Message, Option<u64>)>> {
        let state = self.read();
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
        self.read().visible_messages(viewer, viewer_name, &page)
    }

    async fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.read().direct_messages(a, b, &page)
    }

    async fn room_messages(
        &self,
        room: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.read().room_messages(room, &page)
    }

    async fn edit_message(
        &self,
        id: MessageId,
        content: &MessageContent,
        at: OffsetDateTime,
    ) -> DomainResult<Changed> {
        self.write().edit_message(id, content, at)
    }

    async fn delete_message(&self, id: MessageId, at: OffsetDateTime) -> DomainResult<Changed> {
        self.write().delete_message(id, at)
    }

    async fn add_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        self.write().add_reaction(id, user, emoji)
    }

    async fn remove_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        self.write().remove_reaction(id, user, emoji)
    }

    async fn replies(
        &self,
        parent: MessageId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.read().replies(parent, &page)
    }

    async fn changes_after(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        after: u64,
        limit: usize,
    ) -> DomainResult<StreamPage> {
        Ok(self.read().changes_after(viewer, viewer_name, after, limit))
    }

    async fn latest_position(&self) -> DomainResult<u64> {
        Ok(self.read().latest_position())
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    async fn mark_read(
        &self,
        reader: UserId,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Option<u64>> {
        self.write().mark_read(reader, conversation, message)
    }

    async fn conversation(
        &self,
        viewer: UserId,
        conversation: &ConversationRef,
    ) -> DomainResult<Option<Conversation>> {
        Ok(self.read().conversation(viewer, conversation))
    }

    async fn conversations(
        &self,
        viewer: UserId,
        limit: usize,
        before: Option<Activity>,
    ) -> DomainResult<ConversationPage> {
        Ok(self.read().conversations(viewer, limit, before))
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn revoke(&self, token: TokenId, expires_at: OffsetDateTime) -> DomainResult<()> {
        self.write().revoke(token, expires_at);
        Ok(())
    }

    async fn is_revoked(&self, token: TokenId) -> DomainResult<bool> {
        Ok(self.read().revocations.contains_key(&token))
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> DomainResult<u64> {
        Ok(self.write().purge_expired(now))
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    /// Memory is always there.
    async fn check(&self) -> DomainResult<()> {
        Ok(())
    }
}
