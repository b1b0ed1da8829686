//! Read state: the caller's conversation list with unread counts, and
//! moving their read markers. A move is stored first, then published as
//! `Event::Read` to the reader's connections and, in a direct
//! conversation, to the other party (a read receipt), in the store's
//! order with new messages and changes (a read carries a cursor, and is
//! replayed by `?since=` like them).

use crate::auth::Caller;
use crate::error::{DomainError, DomainResult};
use crate::ids::{MessageId, UserId};
use crate::pagination::PageRequest;
use crate::ports::{Audience, Event};
use crate::read_state::{Activity, Conversation, ConversationPage, ConversationRef, ReadMarker};

use super::ChatService;

/// A conversation the caller may read, with what a read marker move needs.
struct Reachable {
    /// The conversation, the other party named as registered.
    conversation: ConversationRef,
    /// The other party of a direct conversation (not the caller).
    peer: Option<UserId>,
}

impl ChatService {
    /// The caller's conversations (global, their rooms, their direct
    /// conversations), most recent activity first: `limit` (default and
    /// maximum as every list) after the `before` cursor, if given.
    pub async fn conversations(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        before: Option<Activity>,
    ) -> DomainResult<ConversationPage> {
        let limit = PageRequest::<MessageId>::new(limit, None, None)?.limit;
        self.stores
            .reads
            .conversations(caller.user_id, limit, before)
            .await
    }

    /// One of the caller's conversations. An unknown user or room is
    /// `UserNotFound` / `RoomNotFound`; a room the caller is not in,
    /// `NotAMember`.
    pub async fn conversation(
        &self,
        caller: &Caller,
        conversation: &ConversationRef,
    ) -> DomainResult<Conversation> {
        let reachable = self.reachable(caller, conversation).await?;
        self.current(caller, &reachable.conversation).await
    }

    /// The caller has read `conversation` up to `message` (which must be
    /// one of its messages, else `MessageNotFound`): their marker moves
    /// there, unless it is there or further already (then nothing
    /// changes and nothing is published). Answers the conversation as it
    /// now is.
    pub async fn mark_read(
        &self,
        caller: &Caller,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Conversation> {
        let reachable = self.reachable(caller, conversation).await?;
        let found = self
            .stores
            .messages
            .message_by_id(message)
            .await?
            .ok_or(DomainError::MessageNotFound)?;
        if !reachable.conversation.holds(&found, &caller.username) {
            return Err(DomainError::MessageNotFound);
        }
        let ticket = self.publish_order.ticket();
        let moved = self
            .stores
            .reads
            .mark_read(caller.user_id, &reachable.conversation, message)
            .await?;
        let publish =
            moved.map(|position| (position, read_events(caller, &reachable, message, position)));
        self.publish_order
            .answered_with(ticket, publish, &*self.notifier)
            .await;
        self.current(caller, &reachable.conversation).await
    }

    /// The conversation as the caller sees it now.
    async fn current(
        &self,
        caller: &Caller,
        conversation: &ConversationRef,
    ) -> DomainResult<Conversation> {
        self.stores
            .reads
            .conversation(caller.user_id, conversation)
            .await?
            .ok_or_else(|| DomainError::internal("a conversation went missing"))
    }

    /// Checks that the caller may read `conversation`.
    async fn reachable(
        &self,
        caller: &Caller,
        conversation: &ConversationRef,
    ) -> DomainResult<Reachable> {
        match conversation {
            ConversationRef::Global => Ok(Reachable {
                conversation: ConversationRef::Global,
                peer: None,
            }),
            ConversationRef::Direct(name) => {
                let peer = self
                    .stores
                    .users
                    .user_by_username(name)
                    .await?
                    .ok_or(DomainError::UserNotFound)?;
                Ok(Reachable {
                    peer: (peer.id != caller.user_id).then_some(peer.id),
                    conversation: ConversationRef::Direct(peer.username),
                })
            }
            ConversationRef::Room(id) => {
                let room = self
                    .stores
                    .rooms
                    .room_by_id(*id)
                    .await?
                    .ok_or(DomainError::RoomNotFound)?;
                if !room.has_member(caller.user_id) {
                    return Err(DomainError::NotAMember);
                }
                Ok(Reachable {
                    conversation: ConversationRef::Room(*id),
                    peer: None,
                })
            }
        }
    }
}

/// What a marker move publishes: the reader's copy to the reader, and in
/// a direct conversation the other party's copy (naming the conversation
/// by the reader) to them.
fn read_events(
    caller: &Caller,
    reachable: &Reachable,
    message: MessageId,
    position: u64,
) -> Vec<(Event, Audience)> {
    let own = Event::Read {
        read: ReadMarker {
            conversation: reachable.conversation.clone(),
            reader: caller.username.clone(),
            message_id: message,
        },
        position: Some(position),
        receipt: false,
    };
    let mut events = vec![(own, Audience::Users(vec![caller.user_id]))];
    if let Some(peer) = reachable.peer {
        let receipt = Event::Read {
            read: ReadMarker {
                conversation: ConversationRef::Direct(caller.username.clone()),
                reader: caller.username.clone(),
                message_id: message,
            },
            position: Some(position),
            receipt: true,
        };
        events.push((receipt, Audience::Users(vec![peer])));
    }
    events
}
