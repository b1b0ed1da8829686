//! Messages that change after they are stored: edits, deletions,
//! reactions, threads, and the stream of changes a reconnecting client
//! replays. Every change is stored first, then published as
//! `Event::MessageUpdated` to exactly the users who may read the message,
//! in the same order as new messages (one order of positions per store).

use crate::auth::Caller;
use crate::entities::{Message, MessageTarget};
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::ports::{Audience, Changed, Event, StreamPage};
use crate::values::{Emoji, MessageContent};

use super::ChatService;

/// Where a replay starts (`/api/ws/connect?since=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// After this message (what older clients remember).
    Message(MessageId),
    /// After this position in the store's order (a frame's `cursor`).
    Position(u64),
}

/// What [`ChatService::replay_since`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The first page of the caller's stream of changes after `since`.
    pub page: StreamPage,
    /// The position of `since` in the store's order: live frames at or
    /// below it are not "after since".
    pub since_position: u64,
}

impl ChatService {
    /// Replaces the text of one of the caller's own messages. Not readable
    /// by the caller (or unknown): `MessageNotFound`; someone else's:
    /// `NotSender`; deleted: `MessageDeleted`. Delivered live as
    /// `message_updated`.
    pub async fn edit_message(
        &self,
        caller: &Caller,
        id: MessageId,
        content: &str,
    ) -> DomainResult<Message> {
        self.message_rate.check(&caller.user_id)?;
        let content = MessageContent::parse(content)?;
        let message = self.readable_message(caller, id).await?;
        if !message.sender.same_account(&caller.username) {
            return Err(DomainError::NotSender);
        }
        if message.is_deleted() {
            return Err(DomainError::MessageDeleted);
        }
        let now = self.clock.now();
        self.change_and_publish(&message, || {
            self.stores.messages.edit_message(id, &content, now)
        })
        .await
    }

    /// Deletes a message: its sender may, and so may the creator of its
    /// room while still a member. Idempotent: deleting a deleted message
    /// succeeds and delivers nothing.
    pub async fn delete_message(&self, caller: &Caller, id: MessageId) -> DomainResult<Message> {
        let message = self.readable_message(caller, id).await?;
        let allowed = message.sender.same_account(&caller.username)
            || match message.target {
                MessageTarget::Room(room) => {
                    self.stores
                        .rooms
                        .room_by_id(room)
                        .await?
                        .is_some_and(|room| {
                            room.created_by == caller.user_id && room.has_member(caller.user_id)
                        })
                }
                _ => false,
            };
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the sender of a message, or the creator of its room, may delete it",
            ));
        }
        if message.is_deleted() {
            return Ok(message);
        }
        let now = self.clock.now();
        self.change_and_publish(&message, || self.stores.messages.delete_message(id, now))
            .await
    }

    /// The caller reacts to a message they can read with `emoji`
    /// (idempotent). Deleted: `MessageDeleted`.
    pub async fn add_reaction(
        &self,
        caller: &Caller,
        id: MessageId,
        emoji: &str,
    ) -> DomainResult<Message> {
        self.react(caller, id, emoji, true).await
    }

    /// Takes back the caller's own reaction (idempotent). Deleted:
    /// `MessageDeleted`.
    pub async fn remove_reaction(
        &self,
        caller: &Caller,
        id: MessageId,
        emoji: &str,
    ) -> DomainResult<Message> {
        self.react(caller, id, emoji, false).await
    }

    /// Adds (`add`) or takes back the caller's reaction: the rules of both.
    async fn react(
        &self,
        caller: &Caller,
        id: MessageId,
        emoji: &str,
        add: bool,
    ) -> DomainResult<Message> {
        self.message_rate.check(&caller.user_id)?;
        let emoji = Emoji::parse(emoji)?;
        let message = self.reactable_message(caller, id).await?;
        let (messages, user) = (&self.stores.messages, caller.user_id);
        self.change_and_publish(&message, || async {
            if add {
                messages.add_reaction(id, user, &emoji).await
            } else {
                messages.remove_reaction(id, user, &emoji).await
            }
        })
        .await
    }

    /// The thread of a message the caller can read: its replies, paged
    /// like every list.
    pub async fn replies(
        &self,
        caller: &Caller,
        id: MessageId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.readable_message(caller, id).await?;
        self.check_cursor(caller, &page).await?;
        self.stores.messages.replies(id, page).await
    }

    /// Recovery after a disconnect (`/api/ws/connect?since=`): the first
    /// page (at most `limit` items, 1 to [`PageRequest::MAX_LIMIT`]) of
    /// the caller's stream of changes after `since`: new messages, and
    /// the latest state of messages changed since. Continue with
    /// [`changes_after`](Self::changes_after) from the last item's
    /// position while `has_more`.
    ///
    /// A message id as `since` must name a message the caller can read
    /// now; otherwise, unknown or someone else's, `MessageNotFound` and
    /// nothing is replayed. A position is any number: past the end of the
    /// store, the replay is empty.
    pub async fn replay_since(
        &self,
        caller: &Caller,
        since: Since,
        limit: usize,
    ) -> DomainResult<Replay> {
        if limit == 0 {
            return Err(DomainError::invalid("limit", "must be at least 1"));
        }
        let since_position = match since {
            Since::Position(position) => position,
            Since::Message(id) => {
                let (message, position) = self
                    .stores
                    .messages
                    .message_by_id_positioned(id)
                    .await?
                    .ok_or(DomainError::MessageNotFound)?;
                if !self.can_read(caller, &message).await? {
                    return Err(DomainError::MessageNotFound);
                }
                position.ok_or_else(|| {
                    DomainError::internal("the message store reports no positions")
                })?
            }
        };
        let page = self.changes_after(caller, since_position, limit).await?;
        Ok(Replay {
            page,
            since_position,
        })
    }

    /// The caller's stream of changes after `position` (see
    /// [`replay_since`](Self::replay_since)).
    pub async fn changes_after(
        &self,
        caller: &Caller,
        position: u64,
        limit: usize,
    ) -> DomainResult<StreamPage> {
        if limit == 0 {
            return Err(DomainError::invalid("limit", "must be at least 1"));
        }
        let limit = limit.min(PageRequest::<MessageId>::MAX_LIMIT);
        self.stores
            .messages
            .changes_after(caller.user_id, &caller.username, position, limit)
            .await
    }

    /// The message, if the caller can read it now; else `MessageNotFound`
    /// (whether it exists is not told).
    async fn readable_message(&self, caller: &Caller, id: MessageId) -> DomainResult<Message> {
        let message = self
            .stores
            .messages
            .message_by_id(id)
            .await?
            .ok_or(DomainError::MessageNotFound)?;
        if self.can_read(caller, &message).await? {
            Ok(message)
        } else {
            Err(DomainError::MessageNotFound)
        }
    }

    async fn reactable_message(&self, caller: &Caller, id: MessageId) -> DomainResult<Message> {
        let message = self.readable_message(caller, id).await?;
        if message.is_deleted() {
            return Err(DomainError::MessageDeleted);
        }
        Ok(message)
    }

    /// Runs a change in the store and, if it changed something, publishes
    /// the message's new state to whoever may read it, in the store's
    /// order with new messages (a client resuming from a frame's cursor
    /// must not skip a change published late).
    async fn change_and_publish<F, Fut>(&self, before: &Message, change: F) -> DomainResult<Message>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = DomainResult<Changed>>,
    {
        let audience = self.audience_of(before).await?;
        let ticket = self.publish_order.ticket();
        let changed = change().await?;
        let publish = changed.position.map(|position| {
            let event = Event::MessageUpdated {
                message: changed.message.clone(),
                position: Some(position),
            };
            (position, event, audience)
        });
        self.publish_order
            .answered(ticket, publish, &*self.notifier)
            .await;
        Ok(changed.message)
    }

    /// Who may read a message now: everyone, a direct message's two
    /// parties, or a room's current members.
    async fn audience_of(&self, message: &Message) -> DomainResult<Audience> {
        Ok(match &message.target {
            MessageTarget::Global => Audience::Everyone,
            MessageTarget::Direct(recipient) => {
                let mut users: Vec<UserId> = Vec::with_capacity(2);
                for name in [&message.sender, recipient] {
                    if let Some(account) = self.stores.users.user_by_username(name).await? {
                        if !users.contains(&account.id) {
                            users.push(account.id);
                        }
                    }
                }
                Audience::Users(users)
            }
            MessageTarget::Room(room) => match self.stores.rooms.room_by_id(*room).await? {
                Some(room) => Audience::Users(room.members),
                None => Audience::Users(Vec::new()),
            },
        })
    }
}
