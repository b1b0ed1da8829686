//! Read state in memory: each conversation's count of messages and latest
//! one, each message's place in its conversation, the deleted messages of
//! each conversation by place, and one marker per user per conversation.
//! An unread count is then a subtraction and a walk over the deleted
//! messages after the marker, not over the history.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chat_domain::{
    Activity, Conversation, ConversationPage, ConversationRef, DomainError, DomainResult, Message,
    MessageId, MessageTarget, ReadMarker, RoomId, StreamItem, UserId, Username,
};
use uuid::Uuid;

use super::{fold, pair, Seq, State};

/// A conversation's key: the global one, a room, or a pair of users
/// (folded names, sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ConvKey {
    Global,
    Room(RoomId),
    Pair(String, String),
}

impl ConvKey {
    /// The conversation of a message.
    pub(crate) fn of(message: &Message) -> Self {
        match &message.target {
            MessageTarget::Global => Self::Global,
            MessageTarget::Room(room) => Self::Room(*room),
            MessageTarget::Direct(recipient) => {
                let (a, b) = pair(&message.sender, recipient);
                Self::Pair(a, b)
            }
        }
    }
}

/// What a conversation holds, kept as messages come.
#[derive(Debug, Default)]
pub(crate) struct ConvState {
    /// How many messages it has: the place of the latest.
    last_place: u64,
    /// The position (store order) of the latest message.
    last_seq: Seq,
    /// Deleted messages by place, with their sender.
    deleted: BTreeMap<u64, UserId>,
}

/// One user's marker in one conversation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Marker {
    /// The place of the last message read.
    place: u64,
    /// That message.
    message: Option<MessageId>,
    /// The position of the marker's latest move by a read, if any.
    moved_at: Option<Seq>,
}

/// Every conversation's read state.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    conversations: HashMap<ConvKey, ConvState>,
    /// Each message's place in its conversation, by position.
    places: HashMap<Seq, u64>,
    markers: HashMap<(UserId, ConvKey), Marker>,
    /// Moves by reads, by position: the latest one of each marker.
    moves: BTreeMap<Seq, (UserId, ConvKey)>,
    /// The direct conversations of each user (folded name).
    pairs_of: HashMap<String, BTreeSet<ConvKey>>,
}

impl Reads {
    /// Moves a marker forward to `place`/`message`; whether it moved.
    fn advance(
        &mut self,
        user: UserId,
        key: ConvKey,
        place: u64,
        message: Option<MessageId>,
    ) -> bool {
        let marker = self.markers.entry((user, key)).or_default();
        if marker.message.is_some() && marker.place >= place {
            return false;
        }
        marker.place = place;
        marker.message = message;
        true
    }

    /// Starts a marker at the conversation's latest message (or moves it
    /// there): registration, joining a room.
    fn start_at_latest(&mut self, user: UserId, key: ConvKey, latest: Option<MessageId>) {
        let place = self.conversations.get(&key).map_or(0, |c| c.last_place);
        if latest.is_some() {
            self.advance(user, key, place, latest);
        } else {
            self.markers.entry((user, key)).or_default();
        }
    }
}

impl State {
    /// The latest message of a conversation.
    fn latest_of(&self, key: &ConvKey) -> Option<MessageId> {
        let conv = self.reads.conversations.get(key)?;
        self.messages.get(&conv.last_seq).map(|m| m.id)
    }

    /// A new user's global marker starts at the latest global message.
    pub(crate) fn reads_user_created(&mut self, user: UserId) {
        let latest = self.latest_of(&ConvKey::Global);
        self.reads.start_at_latest(user, ConvKey::Global, latest);
    }

    /// A new member's marker starts at the room's latest message.
    pub(crate) fn reads_member_joined(&mut self, room: RoomId, user: UserId) {
        let key = ConvKey::Room(room);
        let latest = self.latest_of(&key);
        self.reads.start_at_latest(user, key, latest);
    }

    /// A message was stored at `seq`: its conversation grows, and its
    /// sender has read up to it.
    pub(crate) fn reads_message_stored(&mut self, seq: Seq, message: &Message, sender: UserId) {
        let key = ConvKey::of(message);
        let conv = self.reads.conversations.entry(key.clone()).or_default();
        conv.last_place += 1;
        conv.last_seq = seq;
        let place = conv.last_place;
        self.reads.places.insert(seq, place);
        if let ConvKey::Pair(a, b) = &key {
            for party in [a, b] {
                let of = self.reads.pairs_of.entry(party.clone()).or_default();
                of.insert(key.clone());
            }
        }
        self.reads.advance(sender, key, place, Some(message.id));
    }

    /// The message at `seq` was deleted.
    pub(crate) fn reads_message_deleted(&mut self, seq: Seq) {
        let Some(message) = self.messages.get(&seq) else {
            return;
        };
        let key = ConvKey::of(message);
        let sender = self
            .user_by_username(&message.sender)
            .map(|account| account.id);
        let (Some(&place), Some(sender)) = (self.reads.places.get(&seq), sender) else {
            return;
        };
        if let Some(conv) = self.reads.conversations.get_mut(&key) {
            conv.deleted.insert(place, sender);
        }
    }

    /// The key of a conversation as `viewer` names it; `UserNotFound` for
    /// a direct one with nobody.
    fn key_of(&self, viewer: UserId, conversation: &ConversationRef) -> DomainResult<ConvKey> {
        Ok(match conversation {
            ConversationRef::Global => ConvKey::Global,
            ConversationRef::Room(room) => ConvKey::Room(*room),
            ConversationRef::Direct(peer) => {
                let me = self.users.get(&viewer).ok_or(DomainError::UserNotFound)?;
                let peer = self
                    .user_by_username(peer)
                    .ok_or(DomainError::UserNotFound)?;
                let (a, b) = pair(&me.username, &peer.username);
                ConvKey::Pair(a, b)
            }
        })
    }

    pub(crate) fn mark_read(
        &mut self,
        reader: UserId,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Option<u64>> {
        let key = self.key_of(reader, conversation)?;
        let seq = self
            .position_of(message)
            .ok_or(DomainError::MessageNotFound)?;
        let in_it = self
            .messages
            .get(&seq)
            .is_some_and(|found| ConvKey::of(found) == key);
        let place = match self.reads.places.get(&seq) {
            Some(&place) if in_it => place,
            _ => return Err(DomainError::MessageNotFound),
        };
        if !self
            .reads
            .advance(reader, key.clone(), place, Some(message))
        {
            return Ok(None);
        }
        self.next_seq += 1;
        let position = self.next_seq;
        let marker = self.reads.markers.entry((reader, key.clone())).or_default();
        if let Some(previous) = marker.moved_at.replace(position) {
            self.reads.moves.remove(&previous);
        }
        self.reads.moves.insert(position, (reader, key));
        Ok(Some(position))
    }

    /// The user named by a folded name.
    fn account_folded(&self, folded: &str) -> Option<(UserId, &Username)> {
        let id = self.usernames.get(folded)?;
        self.users
            .get(id)
            .map(|account| (account.id, &account.username))
    }

    /// The conversation at `key` as `viewer` sees it, if it exists.
    fn conversation_at(&self, viewer: UserId, key: &ConvKey) -> Option<Conversation> {
        let viewer_name = fold(self.users.get(&viewer)?.username.as_str());
        let (conversation, name, peer, key_uuid) = match key {
            ConvKey::Global => (
                ConversationRef::Global,
                "Global".to_owned(),
                None,
                Uuid::nil(),
            ),
            ConvKey::Room(room) => {
                let name = self.rooms.get(room)?.name.as_str().to_owned();
                (ConversationRef::Room(*room), name, None, room.as_uuid())
            }
            ConvKey::Pair(a, b) => {
                let other = if *a == viewer_name { b } else { a };
                let (peer, peer_name) = self.account_folded(other)?;
                let (first, _) = self.account_folded(a)?;
                let (second, _) = self.account_folded(b)?;
                let key = Uuid::from_u128(first.as_uuid().as_u128() ^ second.as_uuid().as_u128());
                let peer = (peer != viewer).then_some(peer);
                (
                    ConversationRef::Direct(peer_name.clone()),
                    peer_name.as_str().to_owned(),
                    peer,
                    key,
                )
            }
        };
        let conv = self.reads.conversations.get(key);
        let marker = self
            .reads
            .markers
            .get(&(viewer, key.clone()))
            .copied()
            .unwrap_or_default();
        let unread = conv.map_or(0, |conv| {
            let deleted = conv
                .deleted
                .range(marker.place + 1..)
                .filter(|(_, sender)| **sender != viewer)
                .count() as u64;
            conv.last_place
                .saturating_sub(marker.place)
                .saturating_sub(deleted)
        });
        let last_seq = conv.map_or(0, |conv| conv.last_seq);
        let peer_last_read_id = peer.and_then(|peer| {
            self.reads
                .markers
                .get(&(peer, key.clone()))
                .and_then(|marker| marker.message)
        });
        Some(Conversation {
            conversation,
            name,
            last_message: conv.and_then(|conv| self.view(conv.last_seq)),
            unread_count: unread,
            last_read_id: marker.message,
            peer_last_read_id,
            activity: Activity {
                position: last_seq,
                key: key_uuid,
            },
        })
    }

    pub(crate) fn conversation(
        &self,
        viewer: UserId,
        conversation: &ConversationRef,
    ) -> Option<Conversation> {
        let key = self.key_of(viewer, conversation).ok()?;
        self.conversation_at(viewer, &key)
    }

    pub(crate) fn conversations(
        &self,
        viewer: UserId,
        limit: usize,
        before: Option<Activity>,
    ) -> ConversationPage {
        let Some(me) = self.users.get(&viewer) else {
            return ConversationPage::default();
        };
        let rooms = self
            .memberships
            .get(&viewer)
            .into_iter()
            .flatten()
            .map(|room| ConvKey::Room(*room));
        let pairs = self
            .reads
            .pairs_of
            .get(&fold(me.username.as_str()))
            .into_iter()
            .flatten()
            .cloned();
        let mut all: Vec<Conversation> = std::iter::once(ConvKey::Global)
            .chain(rooms)
            .chain(pairs)
            .filter_map(|key| self.conversation_at(viewer, &key))
            .filter(|c| before.is_none_or(|before| c.activity < before))
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.activity));
        let has_more = all.len() > limit;
        all.truncate(limit);
        ConversationPage {
            items: all,
            has_more,
        }
    }

    /// The read moves after `after` that `viewer` may see (their own, and
    /// the other party's in their direct conversations), at most `take`.
    pub(crate) fn read_changes_after(
        &self,
        viewer: UserId,
        after: Seq,
        take: usize,
    ) -> Vec<StreamItem> {
        let Some(me) = self.users.get(&viewer) else {
            return Vec::new();
        };
        let my_name = fold(me.username.as_str());
        self.reads
            .moves
            .range(after + 1..)
            .filter(|(_, (reader, key))| {
                *reader == viewer
                    || matches!(key, ConvKey::Pair(a, b) if *a == my_name || *b == my_name)
            })
            .filter_map(|(&position, (reader, key))| {
                let marker = self.reads.markers.get(&(*reader, key.clone()))?;
                let reader_name = self.users.get(reader)?.username.clone();
                let conversation = match key {
                    ConvKey::Global => ConversationRef::Global,
                    ConvKey::Room(room) => ConversationRef::Room(*room),
                    ConvKey::Pair(a, b) if *reader == viewer => {
                        let other = if *a == my_name { b } else { a };
                        ConversationRef::Direct(self.account_folded(other)?.1.clone())
                    }
                    ConvKey::Pair(..) => ConversationRef::Direct(reader_name.clone()),
                };
                Some(StreamItem::Read {
                    read: ReadMarker {
                        conversation,
                        reader: reader_name,
                        message_id: marker.message?,
                    },
                    position,
                })
            })
            .take(take)
            .collect()
    }
}
