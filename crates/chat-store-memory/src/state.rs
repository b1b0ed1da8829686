//! The data behind the lock, with the indexes that keep reads short. Every
//! method runs under the store's lock, so each is atomic; each one checks
//! everything before it changes anything, so a failure leaves no trace.
//!
//! Messages are kept and indexed by their position ([`Seq`]), assigned
//! under the write lock that stores them: positions follow the order in
//! which messages became readable, so a reader paging forward never skips
//! one that was stored after it read (ids, made before the insert, do not
//! have that property).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chat_domain::{
    Changed, ClientId, Cursor, DomainError, DomainResult, Emoji, Message, MessageContent,
    MessageId, MessageTarget, NewMessage, Page, PageRequest, Reaction, Room, RoomId, Stored,
    StreamItem, StreamPage, TokenId, UserAccount, UserId, Username, DELETED_PLACEHOLDER,
};
use time::OffsetDateTime;

use crate::pages::{bounds, page_of, window};

mod reads;

/// Usernames and emails are unique and looked up case-insensitively; both
/// are ASCII by validation, so ASCII lowercase is their canonical key.
fn fold(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// The two parties of a direct conversation, in a fixed order.
fn pair(a: &Username, b: &Username) -> (String, String) {
    let (a, b) = (fold(a.as_str()), fold(b.as_str()));
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// A message's position in the order messages were stored.
pub(crate) type Seq = u64;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) users: BTreeMap<UserId, UserAccount>,
    usernames: HashMap<String, UserId>,
    emails: HashMap<String, UserId>,
    pub(crate) rooms: HashMap<RoomId, Room>,
    /// Rooms of each user, ordered by room id.
    memberships: HashMap<UserId, BTreeSet<RoomId>>,
    /// Every message, by position.
    messages: BTreeMap<Seq, Message>,
    /// The position of each message id.
    positions: HashMap<MessageId, Seq>,
    /// The position of the latest message or change (positions start at
    /// 1, so 0 is before everything).
    next_seq: Seq,
    global: BTreeSet<Seq>,
    by_room: HashMap<RoomId, BTreeSet<Seq>>,
    /// Direct messages per conversation (folded usernames, sorted).
    by_pair: HashMap<(String, String), BTreeSet<Seq>>,
    /// Direct messages per party (folded username), sent or received.
    by_party: HashMap<String, BTreeSet<Seq>>,
    client_ids: HashMap<(UserId, ClientId), Seq>,
    /// Messages changed (edited, deleted, reacted to), by the position of
    /// their latest change: change position -> the message's own position.
    changes: BTreeMap<Seq, Seq>,
    /// The position of each changed message's latest change, by the
    /// message's own position.
    last_change: HashMap<Seq, Seq>,
    /// Reactions per message (its position), in the order they were made.
    reactions: HashMap<Seq, Vec<(Emoji, UserId)>>,
    /// Replies per parent message, by position.
    replies: HashMap<MessageId, BTreeSet<Seq>>,
    /// Read markers and what unread counts are made of.
    reads: reads::Reads,
    pub(crate) revocations: HashMap<TokenId, OffsetDateTime>,
}

impl State {
    pub(crate) fn create_user(&mut self, account: &UserAccount) -> DomainResult<()> {
        if self.users.contains_key(&account.id) {
            return Err(DomainError::internal("a user with this id already exists"));
        }
        let name = fold(account.username.as_str());
        if self.usernames.contains_key(&name) {
            return Err(DomainError::UsernameTaken);
        }
        let email = fold(account.email.as_str());
        if self.emails.contains_key(&email) {
            return Err(DomainError::EmailTaken);
        }
        self.usernames.insert(name, account.id);
        self.emails.insert(email, account.id);
        self.users.insert(account.id, account.clone());
        self.reads_user_created(account.id);
        Ok(())
    }

    pub(crate) fn user_by_username(&self, username: &Username) -> Option<&UserAccount> {
        let id = self.usernames.get(&fold(username.as_str()))?;
        self.users.get(id)
    }

    pub(crate) fn list_users(&self, page: &PageRequest<UserId>) -> Page<UserAccount> {
        let range = self.users.range(bounds(page.cursor)).map(|(id, _)| *id);
        page_of(window(range, page), page, |id| self.users.get(&id).cloned())
    }

    pub(crate) fn create_room(&mut self, room: &Room) -> DomainResult<()> {
        if self.rooms.contains_key(&room.id) {
            return Err(DomainError::internal("a room with this id already exists"));
        }
        if room.members.iter().any(|m| !self.users.contains_key(m)) {
            return Err(DomainError::UserNotFound);
        }
        let mut members: Vec<UserId> = Vec::with_capacity(room.members.len());
        for &member in &room.members {
            if !members.contains(&member) {
                members.push(member);
                self.memberships.entry(member).or_default().insert(room.id);
                self.reads_member_joined(room.id, member);
            }
        }
        self.rooms.insert(
            room.id,
            Room {
                members,
                ..room.clone()
            },
        );
        Ok(())
    }

    pub(crate) fn add_member(&mut self, room_id: RoomId, user: UserId) -> DomainResult<bool> {
        if !self.users.contains_key(&user) {
            return Err(DomainError::UserNotFound);
        }
        let room = self
            .rooms
            .get_mut(&room_id)
            .ok_or(DomainError::RoomNotFound)?;
        if !self.memberships.entry(user).or_default().insert(room_id) {
            return Ok(false);
        }
        room.members.push(user);
        self.reads_member_joined(room_id, user);
        Ok(true)
    }

    pub(crate) fn remove_member(&mut self, room_id: RoomId, user: UserId) -> bool {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return false;
        };
        let was_member = self
            .memberships
            .get_mut(&user)
            .is_some_and(|rooms| rooms.remove(&room_id));
        if was_member {
            room.members.retain(|&m| m != user);
        }
        was_member
    }

    pub(crate) fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: &PageRequest<RoomId>,
    ) -> Page<Room> {
        let Some(rooms) = self.memberships.get(&member) else {
            return Page::slice_sorted(Vec::new(), page);
        };
        let viewer_rooms = self.memberships.get(&viewer);
        let visible =
            |id: &RoomId| member == viewer || viewer_rooms.is_some_and(|mine| mine.contains(id));
        let ids = window(
            rooms.range(bounds(page.cursor)).copied().filter(visible),
            page,
        );
        page_of(ids, page, |id| self.rooms.get(&id).cloned())
    }

    pub(crate) fn insert_message(&mut self, new: &NewMessage) -> DomainResult<Stored> {
        if let Some(original) = self.original_of(new)? {
            return Ok(Stored::Duplicate(original));
        }
        let message = &new.message;
        if self.positions.contains_key(&message.id) {
            return Err(DomainError::internal(
                "a message with this id already exists",
            ));
        }
        if let Some(parent) = message.reply_to {
            let same = self
                .message_by_id(parent)
                .is_some_and(|parent| parent.same_conversation(message));
            if !same {
                return Err(DomainError::BadReplyTo);
            }
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(parent) = message.reply_to {
            self.replies.entry(parent).or_default().insert(seq);
        }
        match &message.target {
            MessageTarget::Global => {
                self.global.insert(seq);
            }
            MessageTarget::Direct(recipient) => {
                let key = pair(&message.sender, recipient);
                self.by_party.entry(key.0.clone()).or_default().insert(seq);
                self.by_party.entry(key.1.clone()).or_default().insert(seq);
                self.by_pair.entry(key).or_default().insert(seq);
            }
            MessageTarget::Room(room) => {
                self.by_room.entry(*room).or_default().insert(seq);
            }
        }
        if let Some(client_id) = &new.client_id {
            self.client_ids
                .insert((new.sender_id, client_id.clone()), seq);
        }
        self.positions.insert(message.id, seq);
        self.messages.insert(seq, message.clone());
        self.reads_message_stored(seq, message, new.sender_id);
        Ok(Stored::Created(message.clone()))
    }

    /// The position (`seq`) of a stored message.
    pub(crate) fn position_of(&self, id: MessageId) -> Option<Seq> {
        self.positions.get(&id).copied()
    }

    /// The message this sender already stored under this client id.
    fn original_of(&self, new: &NewMessage) -> DomainResult<Option<Message>> {
        let Some(client_id) = &new.client_id else {
            return Ok(None);
        };
        let Some(seq) = self.client_ids.get(&(new.sender_id, client_id.clone())) else {
            return Ok(None);
        };
        self.view(*seq)
            .map(Some)
            .ok_or_else(|| DomainError::internal("client id index names a missing message"))
    }

    pub(crate) fn message_by_id(&self, id: MessageId) -> Option<Message> {
        self.view(*self.positions.get(&id)?)
    }

    /// The message at `seq` as clients see it now: with its reactions
    /// (by username) and the count of its replies that are not deleted.
    fn view(&self, seq: Seq) -> Option<Message> {
        let mut message = self.messages.get(&seq)?.clone();
        if message.is_deleted() {
            return Some(message);
        }
        if let Some(reactions) = self.reactions.get(&seq) {
            message.reactions = Reaction::group(reactions.iter().filter_map(|(emoji, user)| {
                let name = self.users.get(user)?.username.clone();
                Some((emoji.clone(), name))
            }));
        }
        let replies = self.replies.get(&message.id).into_iter().flatten();
        let live = replies
            .filter(|reply| self.messages.get(reply).is_some_and(|r| !r.is_deleted()))
            .count();
        message.reply_count = u32::try_from(live).unwrap_or(u32::MAX);
        Some(message)
    }

    /// Gives the message at `seq` a new change position (the next one of
    /// the one order every message and change share).
    fn touch(&mut self, seq: Seq) -> Seq {
        self.next_seq += 1;
        let position = self.next_seq;
        if let Some(previous) = self.last_change.insert(seq, position) {
            self.changes.remove(&previous);
        }
        self.changes.insert(position, seq);
        position
    }

    /// The position of a message that must exist and not be deleted.
    fn live_seq(&self, id: MessageId) -> DomainResult<Seq> {
        let seq = self.position_of(id).ok_or(DomainError::MessageNotFound)?;
        match self.messages.get(&seq) {
            Some(message) if message.is_deleted() => Err(DomainError::MessageDeleted),
            Some(_) => Ok(seq),
            None => Err(DomainError::MessageNotFound),
        }
    }

    fn changed(&self, seq: Seq, position: Option<Seq>) -> DomainResult<Changed> {
        let message = self
            .view(seq)
            .ok_or_else(|| DomainError::internal("a changed message went missing"))?;
        Ok(Changed { message, position })
    }

    pub(crate) fn edit_message(
        &mut self,
        id: MessageId,
        content: &MessageContent,
        at: OffsetDateTime,
    ) -> DomainResult<Changed> {
        let seq = self.live_seq(id)?;
        if let Some(message) = self.messages.get_mut(&seq) {
            message.content = content.clone();
            message.edited_at = Some(at);
        }
        let position = self.touch(seq);
        self.changed(seq, Some(position))
    }

    pub(crate) fn delete_message(
        &mut self,
        id: MessageId,
        at: OffsetDateTime,
    ) -> DomainResult<Changed> {
        let seq = self.position_of(id).ok_or(DomainError::MessageNotFound)?;
        let message = self
            .messages
            .get_mut(&seq)
            .ok_or(DomainError::MessageNotFound)?;
        if message.is_deleted() {
            return self.changed(seq, None);
        }
        message.deleted_at = Some(at);
        message.content = MessageContent::parse(DELETED_PLACEHOLDER)?;
        self.reactions.remove(&seq);
        self.reads_message_deleted(seq);
        let position = self.touch(seq);
        self.changed(seq, Some(position))
    }

    pub(crate) fn add_reaction(
        &mut self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        let seq = self.live_seq(id)?;
        if !self.users.contains_key(&user) {
            return Err(DomainError::UserNotFound);
        }
        let reactions = self.reactions.entry(seq).or_default();
        if reactions.iter().any(|(e, u)| e == emoji && *u == user) {
            return self.changed(seq, None);
        }
        reactions.push((emoji.clone(), user));
        let position = self.touch(seq);
        self.changed(seq, Some(position))
    }

    pub(crate) fn remove_reaction(
        &mut self,
        id: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> DomainResult<Changed> {
        let seq = self.live_seq(id)?;
        let Some(reactions) = self.reactions.get_mut(&seq) else {
            return self.changed(seq, None);
        };
        let before = reactions.len();
        reactions.retain(|(e, u)| !(e == emoji && *u == user));
        if reactions.len() == before {
            return self.changed(seq, None);
        }
        let position = self.touch(seq);
        self.changed(seq, Some(position))
    }

    pub(crate) fn replies(
        &self,
        parent: MessageId,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        if !self.positions.contains_key(&parent) {
            return Err(DomainError::MessageNotFound);
        }
        self.indexed_page(self.replies.get(&parent), page)
    }

    /// Whether `viewer` may read the message at `seq` now.
    fn visible_to(&self, seq: Seq, viewer: UserId, viewer_name: &Username) -> bool {
        let Some(message) = self.messages.get(&seq) else {
            return false;
        };
        match &message.target {
            MessageTarget::Global => true,
            MessageTarget::Direct(recipient) => {
                recipient.same_account(viewer_name) || message.sender.same_account(viewer_name)
            }
            MessageTarget::Room(room) => self
                .memberships
                .get(&viewer)
                .is_some_and(|rooms| rooms.contains(room)),
        }
    }

    pub(crate) fn changes_after(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        after: Seq,
        limit: usize,
    ) -> StreamPage {
        let take = limit.saturating_add(1);
        let request = PageRequest {
            limit,
            cursor: Cursor::After(after),
        };
        let direct = self.by_party.get(&fold(viewer_name.as_str()));
        let rooms = self
            .memberships
            .get(&viewer)
            .into_iter()
            .flatten()
            .filter_map(|room| self.by_room.get(room));
        let sources = std::iter::once(&self.global).chain(direct).chain(rooms);
        let mut new: Vec<Seq> = sources
            .flat_map(|seqs| window(seqs.range(bounds(request.cursor)).copied(), &request))
            .collect();
        new.sort_unstable();
        new.truncate(take);
        let updated = self
            .changes
            .range(bounds(request.cursor))
            .filter(|(_, seq)| self.visible_to(**seq, viewer, viewer_name))
            .take(take);
        let mut items: Vec<StreamItem> = new
            .into_iter()
            .filter_map(|seq| {
                let message = self.view(seq)?;
                Some(StreamItem::New {
                    message,
                    position: seq,
                })
            })
            .chain(updated.filter_map(|(position, seq)| {
                let message = self.view(*seq)?;
                Some(StreamItem::Updated {
                    message,
                    position: *position,
                })
            }))
            .chain(self.read_changes_after(viewer, after, take))
            .collect();
        items.sort_by_key(StreamItem::position);
        let has_more = items.len() > limit;
        items.truncate(limit);
        StreamPage { items, has_more }
    }

    /// The position of the latest message or change.
    pub(crate) fn latest_position(&self) -> Seq {
        self.next_seq
    }

    pub(crate) fn visible_messages(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        let page = self.positioned(page)?;
        let direct = self.by_party.get(&fold(viewer_name.as_str()));
        let rooms = self
            .memberships
            .get(&viewer)
            .into_iter()
            .flatten()
            .filter_map(|room| self.by_room.get(room));
        let sources = std::iter::once(&self.global).chain(direct).chain(rooms);
        let seqs = sources
            .flat_map(|seqs| window(seqs.range(bounds(page.cursor)).copied(), &page))
            .collect();
        Ok(self.message_page(seqs, &page))
    }

    pub(crate) fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.indexed_page(self.by_pair.get(&pair(a, b)), page)
    }

    pub(crate) fn room_messages(
        &self,
        room: RoomId,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.indexed_page(self.by_room.get(&room), page)
    }

    /// The request with its cursor turned from a message id into that
    /// message's position. Any stored message is a valid position, whichever
    /// list it belongs to; an id naming no message is `MessageNotFound`.
    fn positioned(&self, page: &PageRequest<MessageId>) -> DomainResult<PageRequest<Seq>> {
        let seq = |id: MessageId| {
            self.positions
                .get(&id)
                .copied()
                .ok_or(DomainError::MessageNotFound)
        };
        let cursor = match page.cursor {
            Cursor::Latest => Cursor::Latest,
            Cursor::Before(id) => Cursor::Before(seq(id)?),
            Cursor::After(id) => Cursor::After(seq(id)?),
        };
        Ok(PageRequest {
            limit: page.limit,
            cursor,
        })
    }

    fn indexed_page(
        &self,
        seqs: Option<&BTreeSet<Seq>>,
        page: &PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        let page = self.positioned(page)?;
        let seqs = seqs.map_or_else(Vec::new, |seqs| {
            window(seqs.range(bounds(page.cursor)).copied(), &page)
        });
        Ok(self.message_page(seqs, &page))
    }

    fn message_page(&self, seqs: Vec<Seq>, page: &PageRequest<Seq>) -> Page<Message> {
        page_of(seqs, page, |seq| self.view(seq))
    }

    pub(crate) fn revoke(&mut self, token: TokenId, expires_at: OffsetDateTime) {
        let until = self.revocations.entry(token).or_insert(expires_at);
        // Revoked twice: keep it revoked for the longer of the two.
        if *until < expires_at {
            *until = expires_at;
        }
    }

    pub(crate) fn purge_expired(&mut self, now: OffsetDateTime) -> u64 {
        let before = self.revocations.len();
        self.revocations.retain(|_, expires_at| *expires_at >= now);
        (before - self.revocations.len()) as u64
    }
}
