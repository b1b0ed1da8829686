//! Recovery after a disconnect: `GET /api/ws/connect?since=<cursor>` (or,
//! for older clients, a message id, which stands for its position).
//!
//! What is replayed is the user's stream of changes after that position:
//! new messages, the current state of messages changed since (edits,
//! deletions, reactions) as `message_updated`, and the read markers moved
//! since that the user may see as `read`, each at its position and with
//! its `cursor`. Live frames carry the same positions
//! (`Delivery::Frame`'s `position`), so the rules below hold for both.
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
//! "Recovery"); forwarding it would not close that gap (it
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
//! **Filling a hole** ([`missed`], then [`fill`]): when the notifier's
//! live stream had a hole (`Delivery::Gap`: across instances, Redis was
//! lost for a while), the session reads the same stream of changes the
//! same way, after the hole's start, and sends what the notifier did not
//! hand out meanwhile, then drops live copies of what it sent, as after a
//! replay. A hole larger than the replay limit, or one the notifier could
//! not keep exact track of, is not filled: the connection is closed with
//! the resync code, naming the cursor to reconnect after.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chat_domain::{Caller, ChatService, DomainError, Hole, MessageId, PageRequest, StreamItem};
use chat_protocol::ServerFrame;
use tokio::time::Instant;

use super::writer::{WriteError, Writer};

/// How long after a replay live copies of replayed changes (and of
/// changes at or below `since`) are still looked for. A live copy trails
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
    /// A frame's `cursor`, or (older clients) a message id, to replay
    /// after.
    After(chat_domain::Since),
    /// A value that is neither.
    Invalid(DomainError),
}

impl Since {
    /// Reads the `since` query parameter; empty counts as absent, as
    /// everywhere in the API.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim).filter(|raw| !raw.is_empty()) {
            None => Self::Absent,
            Some(raw) => {
                if let Some(position) = chat_protocol::parse_cursor(raw) {
                    return Self::After(chat_domain::Since::Position(position));
                }
                match raw.parse::<MessageId>() {
                    Ok(id) => Self::After(chat_domain::Since::Message(id)),
                    Err(_) => Self::Invalid(DomainError::invalid(
                        "since",
                        "must be the cursor of a frame you received (or a message id)",
                    )),
                }
            }
        }
    }
}

/// How a replay ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every change after `since` was sent.
    Complete,
    /// `limit` changes were sent and more exist after `last`.
    Truncated {
        /// The position of the last change sent (its frame's cursor).
        last: u64,
        /// How many were sent.
        sent: usize,
    },
    /// `since` names no message the caller can read: nothing was sent.
    UnknownSince,
    /// The store failed part-way (or before anything was sent).
    Failed(DomainError),
}

/// What a replay covered: the highest position it sent of each message,
/// and the position of `since`, kept for [`DEDUPE_WINDOW`] to recognise
/// live copies.
#[derive(Debug)]
pub(crate) struct Replayed {
    ids: HashMap<MessageId, u64>,
    /// The positions it sent.
    positions: HashSet<u64>,
    /// The position of `since` in the store's order.
    since_position: Option<u64>,
    until: Instant,
}

impl Replayed {
    fn new() -> Self {
        Self {
            ids: HashMap::new(),
            positions: HashSet::new(),
            since_position: None,
            until: Instant::now() + DEDUPE_WINDOW,
        }
    }

    /// Whether a live frame of message `id`, at `position` in the store's
    /// order if known, is not to be sent: it lies at or below `since`, or
    /// the replay sent that message in a state at least as new (replayed
    /// items carry the message's state when read, so a change at or below
    /// the replayed position is in it; one above it is newer and goes
    /// out). See the module's documentation.
    pub(crate) fn covers(&self, id: MessageId, position: Option<u64>) -> bool {
        let at_or_below_since = match (position, self.since_position) {
            (Some(position), Some(since)) => position <= since,
            _ => false,
        };
        let replayed = match (self.ids.get(&id), position) {
            (Some(&replayed), Some(position)) => position <= replayed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        at_or_below_since || replayed
    }

    /// Whether a live frame that names no message (a read receipt) at
    /// `position` is not to be sent: it lies at or below `since`, or the
    /// replay sent that position.
    pub(crate) fn covers_position(&self, position: u64) -> bool {
        self.since_position.is_some_and(|since| position <= since)
            || self.positions.contains(&position)
    }

    /// Whether live copies are no longer looked for.
    pub(crate) fn expired(&self) -> bool {
        (self.ids.is_empty() && self.since_position.is_none()) || Instant::now() >= self.until
    }

    fn record(&mut self, item: &StreamItem) {
        let seen = self.ids.entry(item.message_id()).or_insert(0);
        *seen = (*seen).max(item.position());
        self.positions.insert(item.position());
    }

    /// How many messages it covers.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Also looks for live copies of what `later` covered, for its whole
    /// window.
    pub(crate) fn merge(mut self, later: Replayed) -> Self {
        if self.expired() {
            return later;
        }
        for (id, position) in later.ids {
            let seen = self.ids.entry(id).or_insert(0);
            *seen = (*seen).max(position);
        }
        self.positions.extend(later.positions);
        self.since_position = self.since_position.or(later.since_position);
        self.until = self.until.max(later.until);
        self
    }
}

/// What a connection missed of a hole, read from the store.
#[derive(Debug)]
pub(crate) enum Missed {
    /// These changes, in the store's order (none, often).
    Changes(Vec<StreamItem>),
    /// Not read: the hole holds more than the limit, or the notifier
    /// could not keep exact track of it. The connection must be told to
    /// resync from its start.
    Resync,
    /// The store failed.
    Failed(DomainError),
}

/// How many times the replay limit a fill reads at most, changes handed
/// out during the hole included.
const READ_CAP: usize = 4;

/// Reads what `caller` missed of `hole`: their stream of changes after
/// the hole's start, less what the notifier handed out meanwhile (by
/// position) and what `covered` already covers (a replay that ran during
/// the hole). More than `limit` of them makes it [`Missed::Resync`], and
/// so does reading more than the limit and what was handed out put
/// together ([`READ_CAP`] times the limit at most): the store is read for
/// a bounded number of changes per connection.
pub(crate) async fn missed(
    service: &ChatService,
    caller: &Caller,
    hole: &Hole,
    covered: Option<&Replayed>,
    limit: usize,
) -> Missed {
    let Some(mut after) = hole.after.filter(|_| hole.fillable()) else {
        return Missed::Resync;
    };
    let limit = limit.max(1);
    let read_cap = limit
        .saturating_add(hole.delivered.len())
        .min(limit.saturating_mul(READ_CAP));
    let mut read = 0;
    let mut missed = Vec::new();
    loop {
        let want = (read_cap + 1 - read).min(PageRequest::<MessageId>::MAX_LIMIT);
        let page = match service.changes_after(caller, after, want).await {
            Ok(page) => page,
            Err(err) => return Missed::Failed(err),
        };
        let has_more = page.has_more && !page.items.is_empty();
        for item in page.items {
            read += 1;
            after = item.position();
            let handed = hole.delivered.contains(&item.position())
                || covered.is_some_and(|covered| {
                    covered.covers(item.message_id(), Some(item.position()))
                });
            if !handed {
                missed.push(item);
            }
        }
        if missed.len() > limit || read > read_cap {
            return Missed::Resync;
        }
        if !has_more {
            return Missed::Changes(missed);
        }
    }
}

/// Sends what a connection missed of a hole, as a replay sends changes;
/// live copies of them are to be dropped.
pub(crate) async fn fill(
    missed: Vec<StreamItem>,
    out: &mut Writer,
) -> Result<Replayed, WriteError> {
    let mut sent = Replayed::new();
    for item in missed {
        sent.record(&item);
        out.text(item_frame(item).to_json()).await?;
    }
    Ok(sent)
}

/// The frame a change of a user's stream goes out as, with its cursor.
fn item_frame(item: StreamItem) -> ServerFrame {
    match item {
        StreamItem::New { message, position } => {
            ServerFrame::for_message_at(message, Some(position))
        }
        StreamItem::Updated { message, position } => {
            ServerFrame::updated_at(message, Some(position))
        }
        StreamItem::Read { read, position } => ServerFrame::read_at(read, Some(position)),
    }
}

/// Sends the caller's stream of changes after `since`, in the store's
/// order, at most `limit` items: new messages as `message` /
/// `direct_message` frames, changed ones as `message_updated`, each with
/// its `cursor`. Fails only when the client cannot be written to.
pub(crate) async fn replay(
    service: &ChatService,
    caller: &Caller,
    since: chat_domain::Since,
    limit: usize,
    out: &mut Writer,
) -> Result<(Outcome, Replayed), WriteError> {
    let mut replayed = Replayed::new();
    let mut last: Option<u64> = None;
    let mut sent = 0;
    let limit = limit.max(1);
    loop {
        let want = (limit - sent).min(PageRequest::<MessageId>::MAX_LIMIT);
        let read = match last {
            None => service
                .replay_since(caller, since, want)
                .await
                .map(|replay| {
                    replayed.since_position = Some(replay.since_position);
                    replay.page
                }),
            Some(after) => service.changes_after(caller, after, want).await,
        };
        let page = match read {
            Ok(page) => page,
            Err(DomainError::MessageNotFound) if last.is_none() => {
                return Ok((Outcome::UnknownSince, replayed))
            }
            Err(err) => return Ok((Outcome::Failed(err), replayed)),
        };
        let has_more = page.has_more && !page.items.is_empty();
        for item in page.items {
            last = Some(item.position());
            replayed.record(&item);
            sent += 1;
            out.text(item_frame(item).to_json()).await?;
        }
        if !has_more {
            return Ok((Outcome::Complete, replayed));
        }
        if sent >= limit {
            let last = last.unwrap_or_default();
            return Ok((Outcome::Truncated { last, sent }, replayed));
        }
        if last.is_none() {
            return Ok((Outcome::Complete, replayed));
        }
    }
}

/// The `error` frame for a replay that did not complete, if any.
pub(crate) fn error_frame(outcome: &Outcome) -> Option<ServerFrame> {
    let (code, error) = match outcome {
        Outcome::Complete => return None,
        Outcome::Truncated { last, sent } => (
            "replay_truncated",
            format!(
                "replayed the first {sent} changes after since (the replay limit); \
                 reconnect with since={} for the rest; live messages follow",
                chat_protocol::cursor(*last)
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

    use chat_domain::{AuthPolicy, MessageStore, MessageTarget, Stores, TokenId, UserStore};
    use chat_store_memory::MemoryStore;
    use chat_test_support::{account, new_message};

    use super::*;

    /// A service on a memory store, its caller, and `count` global
    /// messages stored by them: their positions, in order.
    async fn stored(count: usize) -> (ChatService, Caller, Vec<u64>) {
        let store = Arc::new(MemoryStore::new());
        let alice = account("alice");
        store.create_user(&alice).await.expect("stored");
        let mut positions = Vec::new();
        for i in 0..count {
            let new = new_message(&alice, MessageTarget::Global, &format!("m{i}"));
            let (_, position) = store.insert_message_positioned(&new).await.expect("stored");
            positions.push(position.expect("the memory store reports positions"));
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
        (service, caller, positions)
    }

    /// A global message to send.
    fn global(content: &str) -> chat_domain::SendMessage {
        chat_domain::SendMessage {
            content: content.to_owned(),
            recipient: None,
            room_id: None,
            sender: None,
            client_id: None,
            reply_to: None,
        }
    }

    fn positions(missed: Missed) -> Vec<u64> {
        match missed {
            Missed::Changes(items) => items.iter().map(StreamItem::position).collect(),
            other => panic!("expected changes, got {other:?}"),
        }
    }

    fn hole(after: u64, delivered: &[u64]) -> Hole {
        Hole {
            after: Some(after),
            delivered: delivered.iter().copied().collect::<HashSet<u64>>(),
            complete: true,
        }
    }

    #[tokio::test]
    async fn a_hole_is_filled_with_the_read_markers_moved_in_it_too() {
        let (service, alice, _) = stored(0).await;
        let bob = service
            .register("bob", "bob@example.com", "correct horse")
            .await
            .expect("registers");
        let bob = Caller {
            user_id: bob.id,
            username: bob.username,
            ..alice.clone()
        };
        let first = service
            .send_message(&bob, global("one"))
            .await
            .expect("sends");
        let start = service
            .replay_since(&alice, chat_domain::Since::Message(first.message().id), 1)
            .await
            .expect("reads")
            .since_position;
        let read = service
            .mark_read(
                &alice,
                &chat_domain::ConversationRef::Global,
                first.message().id,
            )
            .await
            .expect("reads");
        assert_eq!(read.unread_count, 0);
        let second = service
            .send_message(&bob, global("two"))
            .await
            .expect("sends");
        let missed = missed(&service, &alice, &hole(start, &[]), None, 10).await;
        let Missed::Changes(items) = missed else {
            panic!("expected changes, got {missed:?}");
        };
        assert!(
            matches!(&items[0], StreamItem::Read { read, .. } if read.message_id == first.message().id),
            "{items:?}"
        );
        assert_eq!(items[1].message_id(), second.message().id);
        // Live copies: the reader's own (with its message) and a receipt
        // (without) are both recognised once sent.
        let mut sent = Replayed::new();
        sent.record(&items[0]);
        assert!(sent.covers(first.message().id, Some(items[0].position())));
        assert!(sent.covers_position(items[0].position()));
        assert!(!sent.covers_position(items[1].position()));
    }

    #[tokio::test]
    async fn a_hole_is_what_comes_after_its_start_less_what_was_handed_out() {
        let (service, caller, at) = stored(6).await;
        let gap = hole(at[1], &[at[2], at[4]]);
        let missed = missed(&service, &caller, &gap, None, 10).await;
        assert_eq!(positions(missed), [at[3], at[5]]);
        // A replay that ran during the hole (since = at[3]) covers what
        // lies at or below its since.
        let mut covered = Replayed::new();
        covered.since_position = Some(at[3]);
        let missed = missed_covered(&service, &caller, &gap, &covered).await;
        assert_eq!(positions(missed), [at[5]]);
        // From the first change of an empty store, over pages.
        let (service, caller, at) = stored(450).await;
        let gap = hole(0, &at[..440]);
        assert_eq!(
            positions(missed_at(&service, &caller, &gap, 200).await),
            at[440..]
        );
    }

    async fn missed_covered(
        service: &ChatService,
        caller: &Caller,
        gap: &Hole,
        covered: &Replayed,
    ) -> Missed {
        missed(service, caller, gap, Some(covered), 10).await
    }

    async fn missed_at(service: &ChatService, caller: &Caller, gap: &Hole, limit: usize) -> Missed {
        missed(service, caller, gap, None, limit).await
    }

    #[tokio::test]
    async fn a_hole_over_the_limit_or_not_known_exactly_is_a_resync() {
        let (service, caller, at) = stored(5).await;
        let mut gap = hole(at[0], &[]);
        assert!(matches!(
            missed_at(&service, &caller, &gap, 3).await,
            Missed::Resync
        ));
        assert_eq!(
            positions(missed_at(&service, &caller, &gap, 4).await),
            at[1..]
        );
        gap.complete = false;
        assert!(matches!(
            missed_at(&service, &caller, &gap, 4).await,
            Missed::Resync
        ));
        // Handed out, but more to read than the limit and all of them
        // (four times the limit at most): not read through.
        let (service, caller, at) = stored(20).await;
        let gap = hole(at[0], &at[1..]);
        assert!(matches!(
            missed_at(&service, &caller, &gap, 3).await,
            Missed::Resync
        ));
        assert!(positions(missed_at(&service, &caller, &gap, 5).await).is_empty());
    }

    #[test]
    fn since_is_parsed_leniently_but_never_guessed() {
        assert_eq!(Since::parse(None), Since::Absent);
        assert_eq!(Since::parse(Some("  ")), Since::Absent);
        let id = MessageId::generate();
        assert_eq!(
            Since::parse(Some(&format!(" {id} "))),
            Since::After(chat_domain::Since::Message(id))
        );
        assert_eq!(
            Since::parse(Some("42")),
            Since::After(chat_domain::Since::Position(42))
        );
        let Since::Invalid(err) = Since::parse(Some("-42")) else {
            panic!("-42 is neither a cursor nor a message id");
        };
        assert_eq!(err.code(), "validation_error");
        assert!(err.to_string().starts_with("since "), "{err}");
    }

    #[test]
    fn only_an_incomplete_replay_says_so() {
        assert_eq!(error_frame(&Outcome::Complete), None);
        let Some(ServerFrame::Error { code, error, .. }) = error_frame(&Outcome::Truncated {
            last: 77,
            sent: 1000,
        }) else {
            panic!("an error frame");
        };
        assert_eq!(code, "replay_truncated");
        assert!(error.contains("since=77"), "{error}");
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
        replayed.ids.insert(id, 1_000);
        assert!(!replayed.expired());
        assert!(replayed.covers(id, None));
        assert!(replayed.covers(id, Some(1_000)), "the replayed state");
        assert!(replayed.covers(id, Some(999)), "an older change of it");
        assert!(
            !replayed.covers(id, Some(1_001)),
            "a change newer than what was replayed goes out"
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
