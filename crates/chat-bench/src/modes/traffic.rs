//! The sending phase shared by `fanout` and `dm`: readers on every socket,
//! paced senders, a progress bar, a bounded wait for stragglers, then one
//! merged tally.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{
    drain, gather, http_sender, read_frames, show_live, ws_sender, Ctx, Expect, Live, ReadSpec,
    Registry, Schedule, SendPlan, Tally,
};
use crate::latency::LatencySummary;
use crate::net::Ws;

/// Slack after the last due time before a lagging sender gives up.
const SEND_GRACE: Duration = Duration::from_secs(5);
/// Slack after the drain before readers stop whatever happens.
const READ_GRACE: Duration = Duration::from_secs(10);
/// Requests one HTTP sender keeps open at once.
const HTTP_IN_FLIGHT: usize = 64;

/// A sending phase being set up, then run.
pub struct Traffic {
    live: Arc<Live>,
    stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    schedule: Schedule,
    give_up_at: Instant,
    read_deadline: Instant,
    drain_limit: Duration,
    senders: Vec<JoinHandle<Tally>>,
    readers: Vec<JoinHandle<Tally>>,
    /// How many senders share the schedule.
    sharing: u64,
}

/// What a sending phase produced.
#[derive(Debug)]
pub struct Outcome {
    /// Every task's counts, merged.
    pub tally: Tally,
    /// Unix nanos when message 0 was due.
    pub start_nanos: u64,
    /// Seconds from the first due time to the last sender finishing.
    pub sending_s: f64,
    /// Seconds waited for stragglers.
    pub drain_s: f64,
    /// Whether everything was answered and delivered within the drain.
    pub drained: bool,
    /// Due time to stored confirmation.
    pub persist_latency: LatencySummary,
    /// Due time to receipt.
    pub delivery_latency: LatencySummary,
    /// A change's due time to its 2xx.
    pub change_latency: LatencySummary,
    /// A change's due time to its `message_updated` at the receiver.
    pub update_latency: LatencySummary,
}

impl Traffic {
    /// A phase in which `senders` senders share the sending of `rate`
    /// messages per second for `duration`, then waiting at most
    /// `drain_limit` for late ones.
    pub fn new(rate: u64, duration: Duration, drain_limit: Duration, senders: u64) -> Self {
        let (stop_tx, stop) = watch::channel(false);
        // A short lead so every task is spawned before message 0 is due.
        let start = Instant::now() + Duration::from_millis(200);
        let planned = rate.saturating_mul(duration.as_secs());
        let give_up_at = start + duration + SEND_GRACE;
        Self {
            live: Arc::default(),
            stop_tx,
            stop,
            schedule: Schedule {
                start,
                rate,
                planned,
            },
            give_up_at,
            read_deadline: give_up_at + drain_limit + READ_GRACE,
            drain_limit,
            senders: Vec::new(),
            readers: Vec::new(),
            sharing: senders.max(1),
        }
    }

    /// Messages the phase will send.
    pub fn planned(&self) -> u64 {
        self.schedule.planned
    }

    /// What a reader of this phase looks for.
    pub fn read_spec(
        &self,
        ctx: &Ctx,
        delivery_kind: Option<&'static str>,
        expect: Expect,
    ) -> Arc<ReadSpec> {
        Arc::new(self.spec(ctx, delivery_kind, expect))
    }

    /// What a reader looks for when it should also see the changes of
    /// `registry` as `message_updated` frames.
    pub fn update_read_spec(
        &self,
        ctx: &Ctx,
        delivery_kind: Option<&'static str>,
        expect: Expect,
        registry: Arc<Registry>,
    ) -> Arc<ReadSpec> {
        Arc::new(ReadSpec {
            updates: Some(registry),
            ..self.spec(ctx, delivery_kind, expect)
        })
    }

    fn spec(&self, ctx: &Ctx, delivery_kind: Option<&'static str>, expect: Expect) -> ReadSpec {
        ReadSpec {
            run: ctx.run.clone(),
            delivery_kind,
            expect,
            senders: self.sharing,
            clock: ctx.clock,
            live: self.live.clone(),
            deadline: self.read_deadline,
            own_latest: None,
            updates: None,
        }
    }

    /// Reads `socket` for the whole phase.
    pub fn add_reader<S>(&mut self, socket: S, spec: Arc<ReadSpec>)
    where
        S: Stream<Item = Result<Message, WsError>> + Unpin + Send + 'static,
    {
        self.readers
            .push(tokio::spawn(read_frames(socket, spec, self.stop.clone())));
    }

    /// The plan of sender `index` of `senders`.
    pub fn plan(&self, ctx: &Ctx, index: u64, senders: u64, recipient: Option<String>) -> SendPlan {
        SendPlan {
            run: ctx.run.clone(),
            clock: ctx.clock,
            schedule: self.schedule,
            index,
            senders,
            recipient,
            give_up_at: self.give_up_at,
            live: self.live.clone(),
            changes: None,
        }
    }

    /// Sends `plan` as frames on `ws`, whose acks and errors a reader
    /// counts (and, with changes, whose acks name the latest message).
    pub fn add_ws_sender(&mut self, ctx: &Ctx, ws: Ws, plan: SendPlan) {
        let (sink, stream) = ws.split();
        let spec = ReadSpec {
            own_latest: plan.changes.as_ref().map(|c| c.latest.clone()),
            ..self.spec(ctx, None, Expect::NOTHING)
        };
        self.add_reader(stream, Arc::new(spec));
        self.senders.push(tokio::spawn(ws_sender(sink, plan)));
    }

    /// Sends `plan` as HTTP POSTs with `token`.
    pub fn add_http_sender(&mut self, ctx: &Ctx, token: String, plan: SendPlan) {
        let api = ctx.api.clone();
        self.senders
            .push(tokio::spawn(http_sender(api, token, plan, HTTP_IN_FLIGHT)));
    }

    /// Runs the phase: waits for the senders, then for stragglers (each
    /// stored message is due at `per_message` sockets), then stops the
    /// readers and merges everything.
    pub async fn finish(self, ctx: &Ctx, per_message: u64) -> Outcome {
        let bar = ctx.progress.bar("messages", self.schedule.planned);
        let shown = show_live(bar.clone(), self.live.clone());
        let mut tally = gather(self.senders).await;
        let sending_s = self.schedule.start.elapsed().as_secs_f64();
        let (drain_took, drained) = drain(&self.live, per_message, self.drain_limit).await;
        shown.abort();
        bar.finish_and_clear();
        // Ignored error: readers that all ended already need no stop signal.
        let _ = self.stop_tx.send(true);
        tally.absorb(gather(self.readers).await);
        let answered =
            self.live.persisted.load(Ordering::Relaxed) + self.live.refused.load(Ordering::Relaxed);
        let unanswered = tally.sent.saturating_sub(answered);
        if unanswered > 0 {
            *tally.errors.entry("unanswered".to_owned()).or_default() += unanswered;
        }
        Outcome {
            tally,
            start_nanos: ctx.clock.at(self.schedule.start),
            sending_s,
            drain_s: drain_took.as_secs_f64(),
            drained,
            persist_latency: self.live.persist_latency.summary(),
            delivery_latency: self.live.delivery_latency.summary(),
            change_latency: self.live.change_latency.summary(),
            update_latency: self.live.update_latency.summary(),
        }
    }
}
