//! Recovery after a disconnect: `GET /api/ws/connect?since=<message id>`.
//!
//! No gap: the connection is registered with the notifier (`connect`, in
//! `upgrade.rs`) before the store is read, so every message published
//! from then on waits in the connection's queue while the replay reads
//! the store; a message stored before that moment is in the store when
//! the replay reads it. No duplicate: the replay remembers the ids it
//! sent ([`Replayed`]), and the session drops a queued live frame whose
//! message id is among them (`Delivery::Frame`'s `message`).
//!
//! The queue keeps its bound while it waits: if the replay takes so long
//! that more live frames arrive than the queue holds, the notifier closes
//! the connection as too slow (1013), and the client reconnects with a
//! later `since` (the last message it got).
//!
//! The replay is capped (`WsSettings::replay_limit`): past the cap the
//! client is told `replay_truncated` and pages the rest over HTTP.

use std::collections::HashSet;
use std::time::Duration;

use chat_domain::{
    Caller, ChatService, DomainError, DomainResult, Message, MessageId, Page, PageRequest,
    ServerFrame,
};
use tokio::time::Instant;

use super::outbound::{Outbound, WriteError};

/// How long after a replay live copies of replayed messages are still
/// looked for. A live copy trails its store commit by the publisher's hop
/// to the notifier (microseconds in process, one Redis round trip across
/// instances); a minute covers any publisher that is not stalled, and
/// bounds how long a connection keeps the replayed ids.
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

/// The ids a replay sent, kept for [`DEDUPE_WINDOW`] to recognise live
/// copies of them.
#[derive(Debug)]
pub(crate) struct Replayed {
    ids: HashSet<MessageId>,
    until: Instant,
}

impl Replayed {
    fn new() -> Self {
        Self {
            ids: HashSet::new(),
            until: Instant::now() + DEDUPE_WINDOW,
        }
    }

    /// Whether a live frame of message `id` repeats a replayed one.
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.ids.contains(&id)
    }

    /// Whether live copies are no longer looked for.
    pub(crate) fn expired(&self) -> bool {
        self.ids.is_empty() || Instant::now() >= self.until
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
    out: &mut Outbound,
) -> Result<(Outcome, Replayed), WriteError> {
    let mut replayed = Replayed::new();
    let mut last = since;
    let limit = limit.max(1);
    loop {
        let sent = replayed.ids.len();
        let want = (limit - sent).min(PageRequest::<MessageId>::MAX_LIMIT);
        let page = match read_page(service, caller, since, last, want).await {
            Ok(page) => page,
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
/// which checks that `since` is the caller's to name; later ones continue
/// the caller's visible feed from the last message sent, which stays a
/// valid position even if the caller meanwhile left its room.
async fn read_page(
    service: &ChatService,
    caller: &Caller,
    since: MessageId,
    last: MessageId,
    want: usize,
) -> DomainResult<Page<Message>> {
    if last == since {
        return service.replay_since(caller, since, want).await;
    }
    let page = PageRequest::new(Some(want), None, Some(last))?;
    service.visible_messages(caller, page).await
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
    use super::*;

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
        assert!(replayed.contains(id));
        assert!(!replayed.contains(MessageId::generate()));
        replayed.until = Instant::now();
        assert!(replayed.expired());
    }
}
