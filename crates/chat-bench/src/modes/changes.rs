//! Changes to messages inside a sender's traffic (`dm --changes PERCENT`):
//! a share of each sender's scheduled operations are edits and reaction
//! adds and removes on its own latest messages instead of new messages,
//! and the receivers check that each one reaches them as a
//! `message_updated` frame.
//!
//! SPEC offers no WebSocket frame for changing a message, so changes go
//! over HTTP (`PATCH /api/messages/{id}`, `PUT`/`DELETE
//! /api/messages/{id}/reactions/{emoji}`), one request at a time per
//! sender, in schedule order, while the sender's messages keep going out on
//! its socket. The receiver cannot tell from a reaction's frame which
//! change caused it, so each change is registered under its message id
//! before it is sent; the updates of one message arrive in the order its
//! changes were applied, so a receiver matches each `message_updated` with
//! the oldest change registered for that message and checks that the frame
//! shows it (the edit's text, the reaction there or gone).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Live, SendPlan, Tally};
use crate::api::{Api, MessageChange};
use crate::content::{decode, encode};
use crate::frames::Frame;

/// The emoji every reaction of a run uses.
pub const EMOJI: &str = "👍";

/// Whether operation `k` (counting from 0) of one sender is a change when
/// `percent` of them are: spread evenly, exactly `percent` in every 100,
/// and never the first one (there is no message to change yet).
pub fn is_change(k: u64, percent: u64) -> bool {
    let p = percent.min(99);
    (k + 1) * p / 100 > k * p / 100
}

/// How many of `operations` operations of one sender are changes.
pub fn changes_among(operations: u64, percent: u64) -> u64 {
    operations * percent.min(99) / 100
}

/// What a change does; they take turns: edit, react, take the reaction back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// New content for the latest message.
    Edit,
    /// A reaction on the latest message.
    React,
    /// The reaction of the previous change taken back.
    Unreact,
}

impl ChangeKind {
    /// The kind of a sender's change number `j` (counting from 0).
    pub fn nth(j: u64) -> Self {
        match j % 3 {
            0 => ChangeKind::Edit,
            1 => ChangeKind::React,
            _ => ChangeKind::Unreact,
        }
    }

    /// Whether `frame`, an update of the changed message, shows this
    /// change (an edit's text names the change's `seq` of `run`).
    pub fn shown_by(self, frame: &Frame<'_>, run: &str, seq: u64) -> bool {
        match self {
            ChangeKind::Edit => frame
                .content()
                .and_then(|c| decode(c, run))
                .is_some_and(|(s, _)| s == seq),
            ChangeKind::React => frame.has_reaction(EMOJI),
            ChangeKind::Unreact => !frame.has_reaction(EMOJI),
        }
    }
}

/// A change sent and not yet seen by its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The operation's place in the schedule.
    pub seq: u64,
    /// Unix nanos when it was due.
    pub due_nanos: u64,
    /// What it does.
    pub kind: ChangeKind,
}

/// Changes sent, by message id, oldest first.
#[derive(Debug, Default)]
pub struct Registry {
    pending: Mutex<HashMap<String, VecDeque<Pending>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Pending>>> {
        // Every state of the map is valid: keep using it after a panic.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a change of message `id` about to be sent.
    pub fn expect(&self, id: &str, change: Pending) {
        self.lock()
            .entry(id.to_owned())
            .or_default()
            .push_back(change);
    }

    /// Forgets the change `seq` of message `id` (the server refused it).
    pub fn forget(&self, id: &str, seq: u64) {
        let mut pending = self.lock();
        if let Some(queue) = pending.get_mut(id) {
            queue.retain(|p| p.seq != seq);
            if queue.is_empty() {
                pending.remove(id);
            }
        }
    }

    /// The oldest change of message `id` not yet seen, taken out.
    pub fn take(&self, id: &str) -> Option<Pending> {
        let mut pending = self.lock();
        let queue = pending.get_mut(id)?;
        let first = queue.pop_front();
        if queue.is_empty() {
            pending.remove(id);
        }
        first
    }
}

/// What a sender needs to change its own messages.
#[derive(Clone, Debug)]
pub struct Changes {
    /// Share of the sender's operations that are changes, in percent.
    pub percent: u64,
    /// HTTP client.
    pub api: Api,
    /// The sender's token.
    pub token: String,
    /// Where changes are registered for the receivers.
    pub registry: Arc<Registry>,
    /// The id of the sender's latest acknowledged message, set by the
    /// reader of its socket.
    pub latest: Arc<watch::Sender<Option<String>>>,
}

impl Changes {
    /// A sender's changes; `latest` starts empty.
    pub fn new(percent: u64, api: Api, token: String, registry: Arc<Registry>) -> Self {
        Self {
            percent,
            api,
            token,
            registry,
            latest: Arc::new(watch::Sender::new(None)),
        }
    }
}

/// One change, due now.
#[derive(Clone, Copy, Debug)]
pub struct ChangeOp {
    /// Its place in the schedule.
    pub seq: u64,
    /// When it was due.
    pub due: Instant,
    /// Which change of the sender it is (counting from 0).
    pub nth: u64,
}

/// Sends the changes of one sender as they come in `ops`, one request at a
/// time, until `ops` closes; the latency of each is from its due time, so a
/// queue behind a slow request shows.
pub async fn change_worker(
    changes: Changes,
    plan: SendPlan,
    mut ops: mpsc::UnboundedReceiver<ChangeOp>,
) -> Tally {
    let mut tally = Tally::default();
    let mut latency = plan.live.change_latency.buffer();
    let mut reacted: Option<String> = None;
    while let Some(op) = ops.recv().await {
        let kind = ChangeKind::nth(op.nth);
        let target = match kind {
            ChangeKind::Edit | ChangeKind::React => changes.latest.borrow().clone(),
            ChangeKind::Unreact => reacted.take(),
        };
        let Some(id) = target.filter(|_| Instant::now() <= plan.give_up_at) else {
            tally.changes_unsent += 1;
            continue;
        };
        let due_nanos = plan.clock.at(op.due);
        let edited = encode(&plan.run, op.seq, due_nanos);
        let change = match kind {
            ChangeKind::Edit => MessageChange::Edit(&edited),
            ChangeKind::React => MessageChange::React(EMOJI),
            ChangeKind::Unreact => MessageChange::Unreact(EMOJI),
        };
        let pending = Pending {
            seq: op.seq,
            due_nanos,
            kind,
        };
        changes.registry.expect(&id, pending);
        tally.changes_sent += 1;
        Live::bump(&plan.live.changes_sent);
        match changes
            .api
            .change_message(&changes.token, &id, change)
            .await
        {
            Ok(status) if status.is_success() => {
                let now = plan.clock.now_nanos();
                tally.changes_stored += 1;
                tally.last_change_nanos = now;
                latency.record_nanos(now.saturating_sub(due_nanos));
                Live::bump(&plan.live.changes_stored);
                if kind == ChangeKind::React {
                    reacted = Some(id);
                }
            }
            refused => {
                changes.registry.forget(&id, op.seq);
                tally.error(match refused {
                    Ok(status) => format!("change_http_{}", status.as_u16()),
                    Err(_) => "change_transport".to_owned(),
                });
                Live::bump(&plan.live.changes_refused);
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_spread_evenly_and_never_first() {
        let picked: Vec<u64> = (0..40).filter(|k| is_change(*k, 10)).collect();
        assert_eq!(picked, vec![9, 19, 29, 39]);
        for percent in [0, 1, 10, 25, 50] {
            for n in [0, 1, 9, 10, 99, 100, 1_000, 1_234] {
                let counted = (0..n).filter(|k| is_change(*k, percent)).count() as u64;
                assert_eq!(counted, changes_among(n, percent), "{percent}% of {n}");
            }
            assert!(!is_change(0, percent));
        }
    }

    #[test]
    fn kinds_take_turns() {
        let kinds: Vec<ChangeKind> = (0..4).map(ChangeKind::nth).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Edit,
                ChangeKind::React,
                ChangeKind::Unreact,
                ChangeKind::Edit
            ]
        );
    }

    #[test]
    fn an_update_shows_its_change_or_not() {
        let edited = format!(
            r#"{{"type":"message_updated","message":{{"id":"m","content":"{}","reactions":[]}}}}"#,
            encode("r1", 19, 5)
        );
        let edited = Frame::parse(&edited).expect("frame");
        assert!(ChangeKind::Edit.shown_by(&edited, "r1", 19));
        assert!(
            !ChangeKind::Edit.shown_by(&edited, "r1", 29),
            "another edit"
        );
        assert!(!ChangeKind::React.shown_by(&edited, "r1", 19));
        assert!(ChangeKind::Unreact.shown_by(&edited, "r1", 19));
        let reacted = Frame::parse(
            r#"{"type":"message_updated","message":{"id":"m","content":"x","reactions":[{"emoji":"👍","count":1,"users":["a"]}]}}"#,
        )
        .expect("frame");
        assert!(ChangeKind::React.shown_by(&reacted, "r1", 0));
        assert!(!ChangeKind::Unreact.shown_by(&reacted, "r1", 0));
    }

    #[test]
    fn the_registry_hands_out_changes_oldest_first_per_message() {
        let registry = Registry::default();
        let change = |seq| Pending {
            seq,
            due_nanos: seq * 10,
            kind: ChangeKind::nth(seq),
        };
        registry.expect("a", change(1));
        registry.expect("b", change(2));
        registry.expect("a", change(3));
        registry.expect("a", change(4));
        registry.forget("a", 3);
        assert_eq!(registry.take("a"), Some(change(1)));
        assert_eq!(registry.take("a"), Some(change(4)));
        assert_eq!(registry.take("a"), None);
        assert_eq!(registry.take("c"), None);
        assert_eq!(registry.take("b"), Some(change(2)));
        assert!(registry.lock().is_empty(), "nothing left behind");
    }
}
