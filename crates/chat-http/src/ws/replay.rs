//! Recovery after a disconnect: `GET /api/ws/connect?since=<message id>`.
//!
//! No gap: the connection is registered with the notifier (`connect`, in
//! `upgrade.rs`) before the store is read, so every message published
//! from then on waits in the connection's queue while the replay reads
//! the store; a message stored before that moment is in the store when
//! the replay reads it.
//!
//! No duplicate: the session drops a live frame ([`Replayed::covers`])
//! - whose message the replay sent (its id, `Delivery::Frame`'s
//!   `message`): a message stored around the moment of `connect` can be
//!   both read by the replay and queued;
//! - or whose position in the store's order (`Delivery::Frame`'s
//!   `position`) is at or below the position of `since` itself. Such a
//!   message is not "after since": the client had it already, or chose to
//!   resume past it. It can still come live because a live frame trails
//!   its commit (by the publisher's hop to the notifier, and with a store
//!   that reports positions by the publish order's wait for earlier
//!   inserts, up to a group-commit batch cycle): a client reads `m5` on
//!   one connection (by replay, or live), drops, and reconnects with
//!   `since=m5` before `m5`'s live frame went out; the new connection,
//!   registered by then, gets that frame, and never replayed `m5` itself.
//!
//! Both rules hold for [`DEDUPE_WINDOW`] after the replay; frames without
//! a position (stores that report none, instances of an older version)
//! are judged by id only.
//!
//! **Why a fixed bound and not "the highest position delivered so far"**:
//! positions order the store, not the arrival of live frames across
//! instances. Each instance publishes in its own store order, but frames
//! of two instances reach a third over Redis in either order (instance A
//! stores `m6`, B stores `m7`; this instance can get `m7` from B before
//! `m6` from A). Dropping frames below the highest one delivered would
//! drop `m6` there, a message the client never got and that no replay
//! will send it: a permanent gap for a client that never disconnected.
//! The bound used here is fixed before any live frame is written (the
//! position of `since`, read with it from the store), and every message
//! at or below it was committed before `since` was (positions follow
//! commit order, across instances too, since they share one store), so
//! whatever arrives, in any order, is dropped only if it is not after
//! `since`: exactly what the replay would not have sent. Across
//! instances this can drop a frame the client's old connection never got
//! (`m4` from another instance still on its way when the client took
//! `m5` from this one and dropped): that client had already resumed past
//! `m4`, the documented cross-instance limit (docs/decisions.md,
//! "Reconnect recovery"); forwarding it would not close that gap (it
//! arrives only if it happens to trail past the new registration) and
//! would repeat a message for every client that did get it.
//!
//! The queue keeps its bound while it waits: if the replay takes so long
//! that more live frames arrive than the queue holds, the notifier closes
//! the connection as too slow (1013), and the client reconnects with a
//! later `since` (the last message it got).
//!
//! The replay is capped (`WsSettings::replay_limit`): past the cap the
//! client is told `replay_truncated` and pages the rest over HTTP.
//!
//! **Filling a hole** ([`fill`]): when the notifier's live stream had a
//! hole (`Delivery::Gap`: across instances, Redis was lost for a while),
//! the session reads the same feed the same way, from the hole's start,
//! and sends what the notifier did not hand out meanwhile, then drops
//! live copies of what it sent, as after a replay. A hole larger than the
//! replay limit, or one the notifier could not keep exact track of, is
//! not filled: the connection is closed with the resync code, naming the
//! message to reconnect after (`?since=`).

use std::collections::HashSet;
use std::time::Duration;

use chat_domain::{
    Caller, ChatService, DomainError, DomainResult, Hole, Message, MessageId, Page, PageRequest,
};
use chat_protocol::ServerFrame;
use tokio::time::Instant;

use super::writer::{WriteError, Writer};

/// How long after a replay live copies of replayed messages (and of
/// messages at or below `since`) are still looked for. A live copy trails
/// its store commit by the publisher's hop to the notifier (microseconds
/// in process, one Redis round trip across instances) and the publish
/// order's wait (up to a group-commit batch cycle); a minute covers any
/// publisher that is not stalled, and bounds how long a connection keeps
/// the replayed ids.
const DEDUPE_WINDOW: Duration = Duration::from_secs(60);

/// What the client asked for with `?since=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Since {
    /// No `since`: live frames only.
    Absent,
    /// A message id to replay after.
    After(MessageId),
    /// A value that is not a message id.
    Invalid(DomainError),
}

impl Since {
    /// Reads the `since` query parameter; empty counts as absent, as
    /// everywhere in the API.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim).filter(|raw| !raw.is_empty()) {
            None => Self::Absent,
            Some(raw) => match raw.parse::<MessageId>() {
                Ok(id) => Self::After(id),
                Err(_) => Self::Invalid(DomainError::invalid(
                    "since",
                    "must be the id (a UUID) of a message you received",
                )),
            },
        }
    }
}

/// How a replay ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every message after `since` was sent.
    Complete,
    /// `limit` messages were sent and more exist after `last`.
    Truncated {
        /// The last message sent.
        last: MessageId,
        /// How many were sent.
        sent: usize,
    },
    /// `since` names no message the caller can read: nothing was sent.
    UnknownSince,
    /// The store failed part-way (or before anything was sent).
    Failed(DomainError),
}

/// What a replay covered: the ids it sent and the position of `since`,
/// kept for [`DEDUPE_WINDOW`] to recognise live copies.
#[derive(Debug)]
pub(crate) struct Replayed {
    ids: HashSet<MessageId>,
    /// The position of `since` in the store's order, when the store
    /// reports positions.
    since_position: Option<u64>,
    until: Instant,
}

impl Replayed {
    fn new() -> Self {
        Self {
            ids: HashSet::new(),
            since_position: None,
            until: Instant::now() + DEDUPE_WINDOW,
        }
    }

    /// Whether a live frame of message `id`, at `position` in the store's
    /// order if known, is not to be sent: the replay sent that message, or
    /// it lies at or below `since` (see the module's documentation).
    pub(crate) fn covers(&self, id: MessageId, position: Option<u64>) -> bool {
        let at_or_below_since = match (position, self.since_position) {
            (Some(position), Some(since)) => position <= since,
            _ => false,
        };
        at_or_below_since || self.ids.contains(&id)
    }

    /// Whether live copies are no longer looked for.
    pub(crate) fn expired(&self) -> bool {
        (self.ids.is_empty() && self.since_position.is_none()) || Instant::now() >= self.until
    }

    /// How many messages it covers by id.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Also looks for live copies of what `later` covered, for its whole
    /// window.
    pub(crate) fn merge(mut self, later: Replayed) -> Self {
        if self.expired() {
            return later;
        }
        self.ids.extend(later.ids);
        self.since_position = self.since_position.or(later.since_position);
        self.until = self.until.max(later.until);
        self
    }
}

/// What a connection missed of a hole, read from the store.
#[derive(Debug)]
pub(crate) enum Missed {
    /// These messages, in the store's order (none, often).
    Messages(Vec<Message>),
    /// Not read: the hole holds more than the limit, its start is
    /// unknown, or the notifier lost track of it. The connection must be
    /// told to resync from its start.
    Resync,
    /// The store failed.
    Failed(DomainError),
}

/// Reads what `caller` missed of `hole`: the messages visible to them
/// after the hole's start, in the store's order, that the notifier did
/// not hand out meanwhile and that `covered` does not already cover (a
/// replay that ran during the hole). More than `limit` of them makes it
/// [`Missed::Resync`], and so does reading more than the limit and what
/// was handed out put together ([`READ_CAP`] times the limit at most):
/// the store is read for a bounded number of messages per connection.
pub(crate) async fn missed(
    service: &ChatService,
    caller: &Caller,
    hole: &Hole,
    covered: Option<&Replayed>,
    limit: usize,
) -> Missed {
    if !hole.fillable() {
        return Missed::Resync;
    }
    let limit = limit.max(1);
    let mut reading = Reading {
        hole,
        covered,
        limit,
        read_cap: limit
            .saturating_add(hole.delivered.len())
            .min(limit.saturating_mul(READ_CAP)),
        read: 0,
        messages: Vec::new(),
    };
    let read = match hole.after {
        Some(after) => reading.after(service, caller, after).await,
        None => reading.all(service, caller).await,
    };
    match read {
        Ok(true) => Missed::Messages(reading.messages),
        Ok(false) => Missed::Resync,
        Err(err) => Missed::Failed(err),
    }
}

/// Sends what a connection missed of a hole; live copies of them are to
/// be dropped.
pub(crate) async fn fill(messages: Vec<Message>, out: &mut Writer) -> Result<Replayed, WriteError> {
    let mut sent = Replayed::new();
    for message in messages {
        sent.ids.insert(message.id);
        out.text(ServerFrame::for_message(message).to_json())
            .await?;
    }
    Ok(sent)
}

/// How many times the replay limit a fill reads at most, messages handed
/// out during the hole included.
const READ_CAP: usize = 4;

/// The messages of a hole a connection missed, as they are read.
struct Reading<'a> {
    hole: &'a Hole,
    covered: Option<&'a Replayed>,
    limit: usize,
    read_cap: usize,
    /// Messages read so far.
    read: usize,
    /// The missed ones, oldest first (newest first while read backwards).
    messages: Vec<Message>,
}

impl Reading<'_> {
    /// Takes in a page (in the order given); `false` once over a bound.
    fn take(&mut self, page: impl Iterator<Item = Message>) -> bool {
        for message in page {
            self.read += 1;
            let handed = self.hole.delivered.contains(&message.id)
                || self
                    .covered
                    .is_some_and(|covered| covered.ids.contains(&message.id));
            if !handed {
                self.messages.push(message);
            }
        }
        self.messages.len() <= self.limit && self.read <= self.read_cap
    }

    fn want(&self) -> usize {
        (self.read_cap + 1 - self.read.min(self.read_cap)).min(PageRequest::<MessageId>::MAX_LIMIT)
    }

    /// Reads what is visible after `after`; `false` if over a bound.
    async fn after(
        &mut self,
        service: &ChatService,
        caller: &Caller,
        after: MessageId,
    ) -> DomainResult<bool> {
        let mut last = after;
        loop {
            let request = PageRequest::new(Some(self.want()), None, Some(last))?;
            let page = service.hole_page(caller, request).await?;
            let has_newer = page.has_newer && !page.items.is_empty();
            if let Some(message) = page.items.last() {
                last = message.id;
            }
            if !self.take(page.items.into_iter()) {
                return Ok(false);
            }
            if !has_newer {
                return Ok(true);
            }
        }
    }

    /// Reads everything visible (the store was empty when the hole's
    /// notifier started), from the newest page back; `false` if over a
    /// bound.
    async fn all(&mut self, service: &ChatService, caller: &Caller) -> DomainResult<bool> {
        let mut first = None;
        loop {
            let request = PageRequest::new(Some(self.want()), first, None)?;
            let page = service.hole_page(caller, request).await?;
            let has_older = page.has_older && !page.items.is_empty();
            first = page.items.first().map(|message| message.id);
            if !self.take(page.items.into_iter().rev()) {
                return Ok(false);
            }
            if !has_older {
                self.messages.reverse();
                return Ok(true);
            }
        }
    }
}

/// Sends, as `message` / `direct_message` frames in the store's order, the
/// messages visible to `caller` stored after `since`, at most `limit`.
/// Fails only when the client cannot be written to.
pub(crate) async fn replay(
    service: &ChatService,
    caller: &Caller,
    since: MessageId,
    limit: usize,
    out: &mut Writer,
) -> Result<(Outcome, Replayed), WriteError> {
    let mut replayed = Replayed::new();
    let mut last = since;
    let limit = limit.max(1);
    loop {
        let sent = replayed.ids.len();
        let want = (limit - sent).min(PageRequest::<MessageId>::MAX_LIMIT);
        let page = match read_page(service, caller, since, last, want).await {
            Ok((page, since_position)) => {
                if last == since {
                    replayed.since_position = since_position;
                }
                page
            }
            Err(DomainError::MessageNotFound) if sent == 0 => {
                return Ok((Outcome::UnknownSince, replayed))
            }
            Err(err) => return Ok((Outcome::Failed(err), replayed)),
        };
        let has_newer = page.has_newer && !page.items.is_empty();
        for message in page.items {
            last = message.id;
            replayed.ids.insert(message.id);
            out.text(ServerFrame::for_message(message).to_json())
                .await?;
        }
        let sent = replayed.ids.len();
        if !has_newer {
            return Ok((Outcome::Complete, replayed));
        }
        if sent >= limit {
            return Ok((Outcome::Truncated { last, sent }, replayed));
        }
    }
}

/// The page after `last`. The first one goes through `replay_since`,
/// which checks that `since` is the caller's to name and answers its
/// position; later ones continue the caller's visible feed from the last
/// message sent, which stays a valid position even if the caller
/// meanwhile left its room (and answer no position).
async fn read_page(
    service: &ChatService,
    caller: &Caller,
    since: MessageId,
    last: MessageId,
    want: usize,
) -> DomainResult<(Page<Message>, Option<u64>)> {
    if last == since {
        let replay = service.replay_since(caller, since, want).await?;
        return Ok((replay.page, replay.since_position));
    }
    let page = PageRequest::new(Some(want), None, Some(last))?;
    Ok((service.visible_messages(caller, page).await?, None))
}

/// The `error` frame for a replay that did not complete, if any.
pub(crate) fn error_frame(outcome: &Outcome) -> Option<ServerFrame> {
    let (code, error) = match outcome {
        Outcome::Complete => return None,
        Outcome::Truncated { last, sent } => (
            "replay_truncated",
            format!(
                "replayed the first {sent} messages after since (the replay limit); \
                 fetch the rest with GET /api/messages?after={last} (repeat with the \
                 last id of each page while rel=\"next\" is given); live messages follow"
            ),
        ),
        Outcome::UnknownSince => (
            "message_not_found",
            "since names no message you can read (unknown, or not visible to you): \
             nothing was replayed; reload the newest page with GET /api/messages; \
             live messages follow"
                .to_owned(),
        ),
        Outcome::Failed(err) => return Some(ServerFrame::from_error(err, None)),
    };
    Some(ServerFrame::Error {
        error,
        code: code.to_owned(),
        client_id: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chat_domain::{
        AuthPolicy, MessageStore, MessageTarget, Stores, TokenId, UserAccount, UserStore,
    };
    use chat_store_memory::MemoryStore;
    use chat_test_support::{account, new_message};

    use super::*;

    /// A service on a memory store, its caller, and `count` global
    /// messages stored by them (their ids, in order).
    async fn stored(count: usize) -> (ChatService, Caller, Vec<MessageId>) {
        let store = Arc::new(MemoryStore::new());
        let alice: UserAccount = account("alice");
        store.create_user(&alice).await.expect("stored");
        let mut ids = Vec::new();
        for i in 0..count {
            let new = new_message(&alice, MessageTarget::Global, &format!("m{i}"));
            ids.push(new.message.id);
            store.insert_message(&new).await.expect("stored");
        }
        let service = ChatService::new(
            Stores::single(store),
            Arc::new(chat_realtime::Hub::default()),
            Arc::new(chat_auth::BcryptHasher::new(4).expect("cost")),
            Arc::new(chat_auth::JwtCodec::new(
                b"a secret of at least thirty-two bytes!",
            )),
            AuthPolicy::default(),
        );
        let caller = Caller {
            user_id: alice.id,
            username: alice.username,
            token_id: TokenId::generate(),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        (service, caller, ids)
    }

    fn ids_of(missed: Missed) -> Vec<MessageId> {
        match missed {
            Missed::Messages(messages) => messages.iter().map(|m| m.id).collect(),
            other => panic!("expected messages, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hole_is_what_comes_after_its_start_less_what_was_handed_out() {
        let (service, caller, ids) = stored(6).await;
        let hole = Hole {
            after: Some(ids[1]),
            delivered: HashSet::from([ids[2], ids[4]]),
            complete: true,
        };
        let missed = missed(&service, &caller, &hole, None, 10).await;
        assert_eq!(ids_of(missed), [ids[3], ids[5]]);
        // A replay that already sent one covers it.
        let mut covered = Replayed::new();
        covered.ids.insert(ids[5]);
        let missed = missed_with(&service, &caller, &hole, &covered).await;
        assert_eq!(ids_of(missed), [ids[3]]);
    }

    async fn missed_with(
        service: &ChatService,
        caller: &Caller,
        hole: &Hole,
        covered: &Replayed,
    ) -> Missed {
        missed(service, caller, hole, Some(covered), 10).await
    }

    #[tokio::test]
    async fn a_hole_from_an_empty_store_runs_from_the_first_message_over_pages() {
        let (service, caller, ids) = stored(450).await;
        let delivered: HashSet<MessageId> = ids[..440].iter().copied().collect();
        let hole = Hole {
            after: None,
            delivered,
            complete: true,
        };
        // 450 read from the newest page back (three pages), 10 missed.
        let missed = missed(&service, &caller, &hole, None, 200).await;
        assert_eq!(ids_of(missed), ids[440..]);
    }

    #[tokio::test]
    async fn a_hole_over_the_limit_or_not_known_exactly_is_a_resync() {
        let (service, caller, ids) = stored(5).await;
        let mut hole = Hole {
            after: Some(ids[0]),
            delivered: HashSet::new(),
            complete: true,
        };
        assert!(matches!(
            missed(&service, &caller, &hole, None, 3).await,
            Missed::Resync
        ));
        assert_eq!(
            ids_of(missed(&service, &caller, &hole, None, 4).await),
            ids[1..]
        );
        hole.complete = false;
        assert!(matches!(
            missed(&service, &caller, &hole, None, 4).await,
            Missed::Resync
        ));
        // Handed out, but more than the limit and all of them can hold
        // (four times the limit) to read: not read through.
        let (service, caller, ids) = stored(20).await;
        let hole = Hole {
            after: Some(ids[0]),
            delivered: ids[1..].iter().copied().collect(),
            complete: true,
        };
        assert!(matches!(
            missed(&service, &caller, &hole, None, 3).await,
            Missed::Resync
        ));
        assert_eq!(ids_of(missed(&service, &caller, &hole, None, 5).await), []);
    }

    #[test]
    fn since_is_parsed_leniently_but_never_guessed() {
        assert_eq!(Since::parse(None), Since::Absent);
        assert_eq!(Since::parse(Some("  ")), Since::Absent);
        let id = MessageId::generate();
        assert_eq!(Since::parse(Some(&format!(" {id} "))), Since::After(id));
        let Since::Invalid(err) = Since::parse(Some("42")) else {
            panic!("42 is not a message id");
        };
        assert_eq!(err.code(), "validation_error");
        assert!(err.to_string().starts_with("since "), "{err}");
    }

    #[test]
    fn only_an_incomplete_replay_says_so() {
        assert_eq!(error_frame(&Outcome::Complete), None);
        let last = MessageId::generate();
        let Some(ServerFrame::Error { code, error, .. }) =
            error_frame(&Outcome::Truncated { last, sent: 1000 })
        else {
            panic!("an error frame");
        };
        assert_eq!(code, "replay_truncated");
        assert!(error.contains(&format!("after={last}")), "{error}");
        let Some(ServerFrame::Error { code, .. }) = error_frame(&Outcome::UnknownSince) else {
            panic!("an error frame");
        };
        assert_eq!(code, "message_not_found");
        let failed = Outcome::Failed(DomainError::StoreUnavailable);
        let Some(ServerFrame::Error { code, .. }) = error_frame(&failed) else {
            panic!("an error frame");
        };
        assert_eq!(code, "store_unavailable");
    }

    #[test]
    fn replayed_ids_are_forgotten_after_the_window() {
        let mut replayed = Replayed::new();
        assert!(replayed.expired(), "nothing replayed, nothing to look for");
        let id = MessageId::generate();
        replayed.ids.insert(id);
        assert!(!replayed.expired());
        assert!(replayed.covers(id, None));
        assert!(
            replayed.covers(id, Some(1_000)),
            "by id whatever its position"
        );
        assert!(!replayed.covers(MessageId::generate(), None));
        replayed.until = Instant::now();
        assert!(replayed.expired());
    }

    /// The repeat that kept positions off: `since` is the newest message,
    /// so the replay sends nothing, and its own live frame (or any at or
    /// below it) arrives afterwards on the new connection.
    #[test]
    fn live_frames_at_or_below_since_are_covered_even_with_nothing_replayed() {
        let mut replayed = Replayed::new();
        replayed.since_position = Some(5);
        assert!(!replayed.expired(), "a position to compare with is kept");
        let late = MessageId::generate();
        assert!(replayed.covers(late, Some(5)), "since's own live frame");
        assert!(replayed.covers(late, Some(4)), "an older one, late");
        assert!(!replayed.covers(late, Some(6)), "after since: sent");
        // Out of order across instances: 7 then 6 both go out; only the
        // fixed bound counts, never what was delivered before.
        assert!(!replayed.covers(MessageId::generate(), Some(7)));
        assert!(!replayed.covers(MessageId::generate(), Some(6)));
        // No position (an older instance, a store without positions): by
        // id only.
        assert!(!replayed.covers(late, None));
        replayed.until = Instant::now();
        assert!(replayed.expired());
    }
}
