//! The task that reads one socket: counts benchmark messages where they
//! are expected, acks and error frames, and how the socket ended.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::changes::Registry;
use super::{Live, Tally};
use crate::content::{decode, Clock};
use crate::frames::Frame;
use crate::latency::LatencyBuffer;

/// Which sequence numbers a socket should receive: those with
/// `seq % stride == offset`, `capacity` of them at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Every how many messages one is ours.
    pub stride: u64,
    /// Which of each `stride`.
    pub offset: u64,
    /// How many in all.
    pub capacity: u64,
}

impl Expect {
    /// Nothing (senders' and idle sockets).
    pub const NOTHING: Expect = Expect {
        stride: 1,
        offset: 0,
        capacity: 0,
    };

    /// Every one of `planned` messages (a fan-out receiver).
    pub fn all(planned: u64) -> Self {
        Self {
            stride: 1,
            offset: 0,
            capacity: planned,
        }
    }

    /// Where message `seq` goes in the receiver's seen-set, or `None` when
    /// it was never meant for this socket.
    pub fn slot(&self, seq: u64) -> Option<u64> {
        let stride = self.stride.max(1);
        let slot = seq / stride;
        (seq % stride == self.offset && slot < self.capacity).then_some(slot)
    }
}

/// What a reader looks for.
#[derive(Debug)]
pub struct ReadSpec {
    /// The run whose contents count.
    pub run: String,
    /// Frame type of a delivery this socket counts (`message` or
    /// `direct_message`); `None` for sockets that only send or idle.
    pub delivery_kind: Option<&'static str>,
    /// Which deliveries this socket should get.
    pub expect: Expect,
    /// How many senders share the schedule (message `seq` is sender
    /// `seq % senders`'s): each one's messages must arrive in the order it
    /// sent them.
    pub senders: u64,
    /// The run's clock.
    pub clock: Clock,
    /// Shared counters.
    pub live: Arc<Live>,
    /// Stop reading at this instant, whatever happens.
    pub deadline: Instant,
    /// Where a sender's socket puts the id of each message acknowledged,
    /// for the changes to its own latest message.
    pub own_latest: Option<Arc<watch::Sender<Option<String>>>>,
    /// The changes this socket should see as `message_updated` frames.
    pub updates: Option<Arc<Registry>>,
}

/// Reads `socket` until `stop` flips (or its sender goes), the deadline
/// passes, or the socket ends.
pub async fn read_frames<S>(
    mut socket: S,
    spec: Arc<ReadSpec>,
    mut stop: watch::Receiver<bool>,
) -> Tally
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut state = ReaderState::new(&spec);
    let deadline = tokio::time::sleep_until(spec.deadline);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = &mut deadline => break,
            next = socket.next() => match next {
                Some(Ok(Message::Text(text))) => state.on_text(&text, &spec),
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or_else(|| "close".to_owned(), |f| format!("close {}", u16::from(f.code)));
                    state.closed(reason);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    state.closed(format!("error: {e}"));
                    break;
                }
                None => {
                    state.closed("eof".to_owned());
                    break;
                }
            },
        }
    }
    state.tally
}

struct ReaderState {
    tally: Tally,
    /// One bit per expected message: seen yet?
    seen: Vec<u64>,
    /// The last sequence number delivered, by sender.
    last_delivered: BTreeMap<u64, u64>,
    /// The last sequence number acknowledged (a socket acks its own
    /// sender's messages only).
    last_acked: Option<u64>,
    persist_latency: LatencyBuffer,
    delivery_latency: LatencyBuffer,
    update_latency: LatencyBuffer,
}

impl ReaderState {
    fn new(spec: &ReadSpec) -> Self {
        let words = usize::try_from(spec.expect.capacity.div_ceil(64)).unwrap_or(0);
        Self {
            tally: Tally::default(),
            seen: vec![0; words],
            last_delivered: BTreeMap::new(),
            last_acked: None,
            persist_latency: spec.live.persist_latency.buffer(),
            delivery_latency: spec.live.delivery_latency.buffer(),
            update_latency: spec.live.update_latency.buffer(),
        }
    }

    fn closed(&mut self, reason: String) {
        self.tally.closed += 1;
        *self.tally.close_reasons.entry(reason).or_default() += 1;
    }

    fn on_text(&mut self, text: &str, spec: &ReadSpec) {
        self.tally.frames += 1;
        let Some(frame) = Frame::parse(text) else {
            self.tally.error("ws_unparsable_frame".to_owned());
            return;
        };
        match frame.kind.as_ref() {
            "ack" => self.on_ack(&frame, spec),
            "error" => {
                let code = frame.code.as_deref().unwrap_or("unknown");
                self.tally.error(format!("ws_{code}"));
                Live::bump(&spec.live.refused);
            }
            kind if Some(kind) == spec.delivery_kind => self.on_delivery(&frame, spec),
            "message_updated" => self.on_update(&frame, spec),
            _ => {}
        }
    }

    fn on_ack(&mut self, frame: &Frame<'_>, spec: &ReadSpec) {
        self.tally.persisted += 1;
        Live::bump(&spec.live.persisted);
        let now = spec.clock.now_nanos();
        self.tally.last_persist_nanos = now;
        if let (Some(latest), Some(id)) = (&spec.own_latest, frame.message_id()) {
            latest.send_replace(Some(id.to_owned()));
        }
        if let Some((seq, sent)) = frame.content().and_then(|c| decode(c, &spec.run)) {
            self.persist_latency.record_nanos(now.saturating_sub(sent));
            if self.last_acked.is_some_and(|last| seq < last) {
                self.tally.acks_out_of_order += 1;
            }
            self.last_acked = Some(self.last_acked.map_or(seq, |last| last.max(seq)));
        }
    }

    fn on_delivery(&mut self, frame: &Frame<'_>, spec: &ReadSpec) {
        let Some((seq, sent)) = frame.content().and_then(|c| decode(c, &spec.run)) else {
            return;
        };
        let Some(slot) = spec.expect.slot(seq) else {
            self.tally.unexpected += 1;
            return;
        };
        if !self.mark(slot) {
            self.tally.duplicates += 1;
            return;
        }
        let last = self
            .last_delivered
            .entry(seq % spec.senders.max(1))
            .or_insert(seq);
        if seq < *last {
            self.tally.out_of_order += 1;
        }
        *last = (*last).max(seq);
        let now = spec.clock.now_nanos();
        self.tally.delivered += 1;
        self.tally.last_delivery_nanos = now;
        self.delivery_latency.record_nanos(now.saturating_sub(sent));
        Live::bump(&spec.live.delivered);
    }

    /// A `message_updated`: matched with the oldest change pending for its
    /// message, which it must show.
    fn on_update(&mut self, frame: &Frame<'_>, spec: &ReadSpec) {
        let Some(registry) = &spec.updates else {
            return;
        };
        let Some(change) = frame.message_id().and_then(|id| registry.take(id)) else {
            self.tally.updates_unexpected += 1;
            return;
        };
        if !change.kind.shown_by(frame, &spec.run, change.seq) {
            self.tally.updates_mismatched += 1;
        }
        let now = spec.clock.now_nanos();
        self.tally.updates += 1;
        self.tally.last_update_nanos = now;
        self.update_latency
            .record_nanos(now.saturating_sub(change.due_nanos));
        Live::bump(&spec.live.updates);
    }

    /// Marks `slot` seen; false if it already was.
    fn mark(&mut self, slot: u64) -> bool {
        let (word, bit) = (usize::try_from(slot / 64).unwrap_or(usize::MAX), slot % 64);
        match self.seen.get_mut(word) {
            Some(w) if *w & (1 << bit) == 0 => {
                *w |= 1 << bit;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::encode;
    use futures_util::stream;
    use std::time::Duration;

    #[test]
    fn slots_follow_stride_and_offset() {
        let pair = Expect {
            stride: 4,
            offset: 1,
            capacity: 3,
        };
        assert_eq!(pair.slot(1), Some(0));
        assert_eq!(pair.slot(9), Some(2));
        assert_eq!(pair.slot(13), None, "beyond capacity");
        assert_eq!(pair.slot(2), None, "another pair's message");
        assert_eq!(Expect::all(5).slot(4), Some(4));
        assert_eq!(Expect::NOTHING.slot(0), None);
    }

    fn spec(expect: Expect, delivery_kind: Option<&'static str>) -> Arc<ReadSpec> {
        Arc::new(ReadSpec {
            run: "r1".into(),
            delivery_kind,
            expect,
            senders: 1,
            clock: Clock::new(),
            live: Arc::default(),
            deadline: Instant::now() + Duration::from_secs(5),
            own_latest: None,
            updates: None,
        })
    }

    // The item type of a tungstenite stream, which these stand in for.
    #[allow(clippy::result_large_err)]
    fn text(frame: serde_json::Value) -> Result<Message, WsError> {
        Ok(Message::Text(frame.to_string()))
    }

    #[allow(clippy::result_large_err)]
    fn delivery(seq: u64, nanos: u64) -> Result<Message, WsError> {
        text(serde_json::json!({"type":"message","message":{"content": encode("r1", seq, nanos)}}))
    }

    #[tokio::test]
    async fn deliveries_duplicates_and_strays_are_told_apart() {
        let spec = spec(Expect::all(3), Some("message"));
        let now = spec.clock.now_nanos();
        let frames = vec![
            delivery(0, now),
            delivery(2, now),
            delivery(2, now),
            delivery(7, now),
            text(serde_json::json!({"type":"message","message":{"content":"bench:other:0:1"}})),
            text(serde_json::json!({"type":"presence","username":"x","status":"online"})),
            text(serde_json::json!({"type":"error","error":"no","code":"rate_limited"})),
        ];
        let (_stop_tx, stop) = watch::channel(false);
        let tally = read_frames(stream::iter(frames), spec.clone(), stop).await;
        assert_eq!(
            (tally.delivered, tally.duplicates, tally.unexpected),
            (2, 1, 1)
        );
        assert_eq!(spec.live.delivery_latency.summary().count, 2);
        assert_eq!(tally.errors.get("ws_rate_limited"), Some(&1));
        assert_eq!(tally.closed, 1, "the stream ended on its own");
        assert_eq!(
            spec.live
                .delivered
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[tokio::test]
    async fn acks_count_as_persisted_with_latency() {
        let spec = spec(Expect::NOTHING, None);
        let sent = spec.clock.now_nanos();
        let ack = text(
            serde_json::json!({"type":"ack","client_id":"0","message":{"content": encode("r1", 0, sent)}}),
        );
        let (_stop_tx, stop) = watch::channel(false);
        let tally = read_frames(
            stream::iter(vec![ack, delivery(0, sent)]),
            spec.clone(),
            stop,
        )
        .await;
        assert_eq!((tally.persisted, tally.delivered), (1, 0));
        assert_eq!(spec.live.persist_latency.summary().count, 1);
    }

    #[allow(clippy::result_large_err)]
    fn ack(seq: u64, nanos: u64) -> Result<Message, WsError> {
        text(
            serde_json::json!({"type":"ack","client_id": seq.to_string(),"message":{"content": encode("r1", seq, nanos)}}),
        )
    }

    #[tokio::test]
    async fn acks_and_deliveries_out_of_their_senders_order_are_counted() {
        let mut two_senders = Arc::into_inner(spec(Expect::all(6), Some("message"))).expect("one");
        two_senders.senders = 2;
        let spec = Arc::new(two_senders);
        let now = spec.clock.now_nanos();
        // Sender 0 sends 0, 2, 4 and sender 1 sends 1, 3, 5: interleaving
        // the two is fine, 4 before 2 is not.
        let frames = vec![
            delivery(1, now),
            delivery(0, now),
            delivery(4, now),
            delivery(3, now),
            delivery(2, now),
            delivery(5, now),
            ack(0, now),
            ack(2, now),
            ack(1, now),
            ack(4, now),
        ];
        let (_stop_tx, stop) = watch::channel(false);
        let tally = read_frames(stream::iter(frames), spec, stop).await;
        assert_eq!(tally.delivered, 6);
        assert_eq!(tally.out_of_order, 1, "2 after 4");
        assert_eq!(tally.acks_out_of_order, 1, "1 after 2");
    }

    #[tokio::test]
    async fn updates_are_matched_with_their_changes_and_acks_name_the_latest_message() {
        use crate::modes::changes::{ChangeKind, Pending, EMOJI};
        let registry = Arc::new(Registry::default());
        let mut receiver =
            Arc::into_inner(spec(Expect::all(2), Some("direct_message"))).expect("one");
        receiver.updates = Some(registry.clone());
        let receiver = Arc::new(receiver);
        let due = receiver.clock.now_nanos();
        for (id, seq, kind) in [("m1", 9, ChangeKind::Edit), ("m2", 19, ChangeKind::React)] {
            registry.expect(
                id,
                Pending {
                    seq,
                    due_nanos: due,
                    kind,
                },
            );
        }
        // The item type of a tungstenite stream, which these stand in for.
        #[allow(clippy::result_large_err)]
        let updated = |id: &str, content: String, reactions: serde_json::Value| {
            text(serde_json::json!({"type":"message_updated",
                "message":{"id": id, "content": content, "reactions": reactions}}))
        };
        let frames = vec![
            updated("m1", encode("r1", 9, due), serde_json::json!([])),
            // m2's change is a reaction: a frame without it does not show it.
            updated("m2", encode("r1", 1, due), serde_json::json!([])),
            updated(
                "m3",
                encode("r1", 2, due),
                serde_json::json!([{"emoji": EMOJI}]),
            ),
        ];
        let (_stop_tx, stop) = watch::channel(false);
        let tally = read_frames(stream::iter(frames), receiver.clone(), stop).await;
        assert_eq!(
            (
                tally.updates,
                tally.updates_mismatched,
                tally.updates_unexpected
            ),
            (2, 1, 1)
        );
        assert_eq!(receiver.live.update_latency.summary().count, 2);

        let mut sender = Arc::into_inner(spec(Expect::NOTHING, None)).expect("one");
        let latest = Arc::new(watch::Sender::new(None));
        sender.own_latest = Some(latest.clone());
        let sender = Arc::new(sender);
        let acks = vec![
            text(
                serde_json::json!({"type":"ack","client_id":"0","message":{"id":"a0","content": encode("r1", 0, due)}}),
            ),
            text(
                serde_json::json!({"type":"ack","client_id":"1","message":{"id":"a1","content": encode("r1", 1, due)}}),
            ),
            updated("a1", encode("r1", 9, due), serde_json::json!([])),
        ];
        let (_stop_tx, stop) = watch::channel(false);
        let tally = read_frames(stream::iter(acks), sender, stop).await;
        assert_eq!(latest.borrow().as_deref(), Some("a1"));
        assert_eq!(
            (tally.persisted, tally.updates, tally.updates_unexpected),
            (2, 0, 0),
            "a sender's copy of its update is not counted"
        );
    }

    #[tokio::test]
    async fn stopping_ends_a_quiet_socket() {
        let (stop_tx, stop) = watch::channel(false);
        let reader = tokio::spawn(read_frames(
            stream::pending(),
            spec(Expect::all(1), Some("message")),
            stop,
        ));
        stop_tx.send(true).expect("reader listening");
        let tally = reader.await.expect("reader finished");
        assert_eq!(tally.closed, 0, "stopped, not closed");
    }
}
