//! Sending and reading messages. One send path for HTTP and WebSocket:
//! validate, authorize, store, then notify.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::auth::Caller;
use crate::entities::{Message, MessageTarget, NewMessage, Stored};
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, RoomId, UserId};
use crate::pagination::{Cursor, Page, PageRequest};
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
    /// The message this one replies to in a thread: visible to the
    /// caller, not deleted, of the same conversation (else `BadReplyTo`).
    pub reply_to: Option<MessageId>,
}

/// What a send answers: the message as stored (or the original, for a
/// resend of a `client_id`), and its position in the store's order when
/// the store reports positions (what a WebSocket `ack` carries as its
/// `cursor`; for a resend, the original's).
pub type Sent = (Stored, Option<u64>);

/// A message on its way to the store: checked, and given its place in the
/// store's order, behind every message its caller started before it and
/// ahead of any it starts after. Awaiting it answers what
/// [`ChatService::send_message_positioned`] does, once the message is
/// stored and handed to the notifier (a failure of the insert is this
/// message's alone).
///
/// Dropping it does not take the message back: it is still stored, but
/// then may not be published live (receivers get it from the history).
#[must_use = "a send in flight is published only while it is awaited"]
pub struct SendInFlight(Pin<Box<dyn Future<Output = DomainResult<Sent>> + Send>>);

impl SendInFlight {
    fn ready(answer: DomainResult<Sent>) -> Self {
        Self(Box::pin(std::future::ready(answer)))
    }
}

impl Future for SendInFlight {
    type Output = DomainResult<Sent>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for SendInFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendInFlight").finish_non_exhaustive()
    }
}

impl ChatService {
    /// Sends a message: checks it, stores it, then delivers it live. A
    /// resend with a `client_id` the caller already used returns the
    /// original message, stores nothing and delivers nothing. Every
    /// attempt counts against the sender's message rate limit
    /// ([`ChatService::with_message_rate_limit`]).
    ///
    /// Messages sent through one service are published in the order the
    /// store placed them, concurrent sends included, so that every
    /// connection receives them in that order; returns once the message
    /// has been handed to the notifier.
    pub async fn send_message(
        &self,
        caller: &Caller,
        request: SendMessage,
    ) -> DomainResult<Stored> {
        Ok(self.send_message_positioned(caller, request).await?.0)
    }

    /// [`send_message`](Self::send_message), also answering the message's
    /// position in the store's order (see [`Sent`]).
    pub async fn send_message_positioned(
        &self,
        caller: &Caller,
        request: SendMessage,
    ) -> DomainResult<Sent> {
        self.start_send(caller, request).await?.await
    }

    /// [`send_message_positioned`](Self::send_message_positioned) in two
    /// steps, for a caller that sends many messages in a row (a WebSocket
    /// connection): this step counts the send against the rate limit,
    /// checks the message (sender, content, target, membership, thread)
    /// and gives it its place in the store's order; the returned
    /// [`SendInFlight`] completes the send. The next message may be
    /// started as soon as this returns: it is placed after this one, and
    /// neither waits for the other's commit. Errors of the checks come
    /// from here; the store's, from the [`SendInFlight`].
    pub async fn start_send(
        &self,
        caller: &Caller,
        request: SendMessage,
    ) -> DomainResult<SendInFlight> {
        self.message_rate.check(&caller.user_id)?;
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
        let mut message = Message::new(
            MessageId::generate(),
            caller.username.clone(),
            target,
            content,
            self.clock.now(),
        );
        if let Some(parent) = request.reply_to {
            self.check_reply_to(caller, parent, &message).await?;
            message.reply_to = Some(parent);
        }
        let new = NewMessage {
            message,
            sender_id: caller.user_id,
            client_id,
        };
        self.queue_and_publish(new, audience).await
    }

    /// A reply's parent must be a message the caller can read, not
    /// deleted, of the reply's own conversation.
    async fn check_reply_to(
        &self,
        caller: &Caller,
        parent: MessageId,
        reply: &Message,
    ) -> DomainResult<()> {
        let parent = self.stores.messages.message_by_id(parent).await?;
        let ok = match parent {
            Some(parent) => {
                !parent.is_deleted()
                    && parent.same_conversation(reply)
                    && self.can_read(caller, &parent).await?
            }
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(DomainError::BadReplyTo)
        }
    }

    /// Queues a message for the store, then (in the returned future)
    /// publishes it if it is new, in the store's order: a connection must
    /// receive messages in the order the store placed them, or a client
    /// reconnecting with `?since=<cursor>` would miss an earlier one
    /// delivered late, or get a later one delivered early twice (see
    /// `publish_order`). The ticket is taken before the message is queued,
    /// so that every message queued earlier, by anyone, is published
    /// first.
    async fn queue_and_publish(
        &self,
        new: NewMessage,
        audience: Audience,
    ) -> DomainResult<SendInFlight> {
        let messages = Arc::clone(&self.stores.messages);
        if !messages.reports_positions() {
            // Insert and publish now, one send at a time per service.
            let _one_at_a_time = self.publish_order.one_at_a_time().await;
            let stored = match messages.insert_message(&new).await {
                Ok(stored) => stored,
                Err(err) => return Ok(SendInFlight::ready(Err(err))),
            };
            if let Stored::Created(message) = &stored {
                let event = Event::message(message.clone());
                self.notifier.publish(event, audience).await;
            }
            return Ok(SendInFlight::ready(Ok((stored, None))));
        }
        let ticket = self.publish_order.ticket();
        let insert = match messages.queue_message(&new).await {
            Ok(insert) => insert,
            Err(err) => return Ok(SendInFlight::ready(Err(err))),
        };
        let notifier = Arc::clone(&self.notifier);
        Ok(SendInFlight(Box::pin(async move {
            // An error drops the ticket, which releases what it held back.
            let (stored, position) = insert.await?;
            let publish = match (&stored, position) {
                (Stored::Created(message), Some(position)) => {
                    let event = Event::Message {
                        message: message.clone(),
                        position: Some(position),
                    };
                    Some((position, event, audience))
                }
                (Stored::Created(_), None) => {
                    return Err(DomainError::internal(
                        "the message store reports positions but answered none",
                    ))
                }
                (Stored::Duplicate(_), _) => None,
            };
            let order = ticket.order();
            order.answered(ticket, publish, &*notifier).await;
            let position = match &stored {
                Stored::Created(_) => position,
                // A resend's ack names where the original lies.
                Stored::Duplicate(original) => messages
                    .message_by_id_positioned(original.id)
                    .await?
                    .and_then(|(_, position)| position),
            };
            Ok((stored, position))
        })))
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
        self.check_cursor(caller, &page).await?;
        self.stores
            .messages
            .visible_messages(caller.user_id, &caller.username, page)
            .await
    }

    /// Refuses a page whose cursor names a message the caller may not
    /// read, exactly as one that names no message (`MessageNotFound`): a
    /// cursor must not tell whether someone else's message exists.
    pub(super) async fn check_cursor(
        &self,
        caller: &Caller,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<()> {
        let (Cursor::Before(id) | Cursor::After(id)) = page.cursor else {
            return Ok(());
        };
        let message = self
            .stores
            .messages
            .message_by_id(id)
            .await?
            .ok_or(DomainError::MessageNotFound)?;
        if self.can_read(caller, &message).await? {
            Ok(())
        } else {
            Err(DomainError::MessageNotFound)
        }
    }

    /// Whether `message` is among the caller's visible messages now: the
    /// same rule as [`MessageStore::visible_messages`](crate::MessageStore::visible_messages).
    pub(super) async fn can_read(&self, caller: &Caller, message: &Message) -> DomainResult<bool> {
        let me = &caller.username;
        Ok(match &message.target {
            MessageTarget::Global => true,
            MessageTarget::Direct(recipient) => {
                recipient.same_account(me) || message.sender.same_account(me)
            }
            MessageTarget::Room(room) => self
                .stores
                .rooms
                .room_by_id(*room)
                .await?
                .is_some_and(|room| room.has_member(caller.user_id)),
        })
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
        self.check_cursor(caller, &page).await?;
        self.stores
            .messages
            .direct_messages(&a.username, &b.username, page)
            .await
    }

    /// Checks where a message or typing notice may go and who gets it.
    pub(super) async fn resolve_target(
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
