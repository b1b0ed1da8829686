//! Sending and reading messages. One send path for HTTP and WebSocket:
//! validate, authorize, store, then notify.

use crate::auth::Caller;
use crate::entities::{Message, MessageTarget, NewMessage, Stored};
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, RoomId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::ports::{Audience, Event, TypingTarget};
use crate::values::{ClientId, MessageContent, Username};

use super::ChatService;

/// A request to send a message, as a client gave it (unvalidated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendMessage {
    /// The text.
    pub content: String,
    /// A username, for a direct message.
    pub recipient: Option<String>,
    /// A room, for a room message.
    pub room_id: Option<RoomId>,
    /// The sender the client claims; must be the caller when given.
    pub sender: Option<String>,
    /// An idempotency key.
    pub client_id: Option<String>,
}

impl ChatService {
    /// Sends a message: checks it, stores it, then delivers it live. A
    /// resend with a `client_id` the caller already used returns the
    /// original message, stores nothing and delivers nothing.
    pub async fn send_message(
        &self,
        caller: &Caller,
        request: SendMessage,
    ) -> DomainResult<Stored> {
        if let Some(claimed) = &request.sender {
            let same = Username::parse(claimed.as_str())
                .map(|name| name.same_account(&caller.username))
                .unwrap_or(false);
            if !same {
                return Err(DomainError::SenderMismatch);
            }
        }
        let content = MessageContent::parse(&request.content)?;
        let client_id = request.client_id.map(ClientId::parse).transpose()?;
        let (target, audience) = self
            .resolve_target(caller, request.recipient.as_deref(), request.room_id)
            .await?;
        let new = NewMessage {
            message: Message {
                id: MessageId::generate(),
                sender: caller.username.clone(),
                target,
                content,
                created_at: self.clock.now(),
            },
            sender_id: caller.user_id,
            client_id,
        };
        let stored = self.stores.messages.insert_message(&new).await?;
        if let Stored::Created(message) = &stored {
            self.notifier
                .publish(Event::Message(message.clone()), audience)
                .await;
        }
        Ok(stored)
    }

    /// Tells the DM partner, or the room's other members, that the caller
    /// is typing. Nothing is stored.
    pub async fn typing(
        &self,
        caller: &Caller,
        recipient: Option<&str>,
        room_id: Option<RoomId>,
    ) -> DomainResult<()> {
        let (target, audience) = self.resolve_target(caller, recipient, room_id).await?;
        let (target, audience) = match (target, audience) {
            (MessageTarget::Direct(user), Audience::Users(users)) => (
                TypingTarget::Direct(user),
                Audience::Users(users.into_iter().filter(|&u| u != caller.user_id).collect()),
            ),
            (MessageTarget::Room(room), Audience::Users(users)) => (
                TypingTarget::Room(room),
                Audience::Users(users.into_iter().filter(|&u| u != caller.user_id).collect()),
            ),
            _ => {
                return Err(DomainError::invalid(
                    "recipient",
                    "or room_id is required for typing",
                ))
            }
        };
        let from = caller.username.clone();
        self.notifier
            .publish(Event::Typing { from, target }, audience)
            .await;
        Ok(())
    }

    /// What the caller may read: global messages, their direct messages and
    /// the messages of rooms they belong to.
    pub async fn visible_messages(
        &self,
        caller: &Caller,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.stores
            .messages
            .visible_messages(caller.user_id, &caller.username, page)
            .await
    }

    /// Direct messages between two users; only those two may read them.
    pub async fn messages_between(
        &self,
        caller: &Caller,
        user1: &str,
        user2: &str,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        let is_party = |name: &str| {
            Username::parse(name)
                .map(|n| n.same_account(&caller.username))
                .unwrap_or(false)
        };
        if !is_party(user1) && !is_party(user2) {
            return Err(DomainError::Forbidden(
                "you can only read direct messages you are part of",
            ));
        }
        let a = self.account_named(user1).await?;
        let b = self.account_named(user2).await?;
        self.stores
            .messages
            .direct_messages(&a.username, &b.username, page)
            .await
    }

    /// Checks where a message or typing notice may go and who gets it.
    async fn resolve_target(
        &self,
        caller: &Caller,
        recipient: Option<&str>,
        room_id: Option<RoomId>,
    ) -> DomainResult<(MessageTarget, Audience)> {
        match (recipient, room_id) {
            (None, None) => Ok((MessageTarget::Global, Audience::Everyone)),
            (Some(name), None) => {
                let account = self.account_named(name).await?;
                let mut users: Vec<UserId> = vec![caller.user_id];
                if account.id != caller.user_id {
                    users.push(account.id);
                }
                Ok((
                    MessageTarget::Direct(account.username),
                    Audience::Users(users),
                ))
            }
            (None, Some(room)) => {
                let room = self.room(caller, room).await?;
                Ok((MessageTarget::Room(room.id), Audience::Users(room.members)))
            }
            (Some(_), Some(_)) => Err(DomainError::invalid(
                "recipient",
                "and room_id cannot both be set",
            )),
        }
    }
}
