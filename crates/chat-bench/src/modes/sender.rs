//! Paced senders. Message `seq` of a run is due at `start + seq / rate`;
//! sender `j` of `S` sends the messages with `seq % S == j`. The content
//! carries the due time, not the moment the task got round to it, so a
//! sender that falls behind shows up as latency instead of hiding it
//! (coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::changes::{change_worker, is_change, ChangeOp, Changes};
use super::{Live, Tally};
use crate::api::Api;
use crate::content::{encode, Clock};
use crate::frames::send_frame;
use crate::latency::LatencyBuffer;
use crate::net::Ws;

/// When each message is due.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Due time of message 0.
    pub start: Instant,
    /// Messages per second, all senders together.
    pub rate: u64,
    /// Messages in the run.
    pub planned: u64,
}

impl Schedule {
    /// Due time of message `seq`.
    pub fn due(&self, seq: u64) -> Instant {
        let nanos = u128::from(seq) * 1_000_000_000 / u128::from(self.rate.max(1));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The sequence numbers of sender `index` of `senders`.
    pub fn share(&self, index: u64, senders: u64) -> impl Iterator<Item = u64> {
        let step = usize::try_from(senders.max(1)).unwrap_or(usize::MAX);
        (index..self.planned).step_by(step)
    }
}

/// One sender's part of a run.
#[derive(Clone, Debug)]
pub struct SendPlan {
    /// The run id.
    pub run: String,
    /// The run's clock.
    pub clock: Clock,
    /// The schedule.
    pub schedule: Schedule,
    /// This sender's index among `senders`.
    pub index: u64,
    /// How many senders share the schedule.
    pub senders: u64,
    /// Username of the recipient (direct messages) or `None` (global).
    pub recipient: Option<String>,
    /// Past this instant nothing more is sent (the rest counts `unsent`):
    /// a sender that cannot keep up must not stretch the run forever.
    pub give_up_at: Instant,
    /// Shared counters.
    pub live: Arc<Live>,
    /// Changes to the sender's own messages mixed into its operations
    /// (WebSocket senders only).
    pub changes: Option<Changes>,
}

impl SendPlan {
    fn content(&self, seq: u64, due: Instant) -> String {
        encode(&self.run, seq, self.clock.at(due))
    }
}

/// Sends `plan`'s messages as WebSocket frames with `client_id = seq`, so
/// that the socket's reader sees one ack (or error) per message. With
/// `plan.changes`, that share of the operations are changes instead, handed
/// at their due time to a task of their own that sends them over HTTP.
pub async fn ws_sender(mut sink: SplitSink<Ws, Message>, plan: SendPlan) -> Tally {
    let mut tally = Tally::default();
    let (change_tx, worker) = match plan.changes.clone() {
        Some(changes) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let worker = tokio::spawn(change_worker(changes, plan.clone(), rx));
            (Some(tx), Some(worker))
        }
        None => (None, None),
    };
    let percent = plan.changes.as_ref().map_or(0, |c| c.percent);
    let changes_seq = |seq: u64| is_change(seq / plan.senders.max(1), percent);
    let mut nth_change = 0;
    let mut seqs = plan.schedule.share(plan.index, plan.senders);
    while let Some(seq) = seqs.next() {
        if Instant::now() > plan.give_up_at {
            tally.count_unsent(std::iter::once(seq).chain(seqs.by_ref()), changes_seq);
            break;
        }
        let due = plan.schedule.due(seq);
        tokio::time::sleep_until(due).await;
        if let Some(tx) = change_tx.as_ref().filter(|_| changes_seq(seq)) {
            let op = ChangeOp {
                seq,
                due,
                nth: nth_change,
            };
            nth_change += 1;
            if tx.send(op).is_err() {
                tally.changes_unsent += 1;
            }
            continue;
        }
        let frame = send_frame(
            &plan.content(seq, due),
            plan.recipient.as_deref(),
            Some(&seq.to_string()),
        );
        if let Err(e) = sink.send(Message::Text(frame)).await {
            tally.error(format!("ws_send: {e}"));
            tally.count_unsent(std::iter::once(seq).chain(seqs.by_ref()), changes_seq);
            break;
        }
        tally.sent += 1;
        Live::bump(&plan.live.sent);
    }
    drop(change_tx);
    if let Some(worker) = worker {
        match worker.await {
            Ok(changes) => tally.absorb(changes),
            Err(e) => tally.error(format!("task_failed: {e}")),
        }
    }
    tally
}

/// Sends `plan`'s messages as `POST /api/messages`, keeping up to
/// `max_in_flight` requests open so that a slow response does not slow the
/// schedule.
pub async fn http_sender(api: Api, token: String, plan: SendPlan, max_in_flight: usize) -> Tally {
    let mut tally = Tally::default();
    let mut latency = plan.live.persist_latency.buffer();
    let mut seqs = plan.schedule.share(plan.index, plan.senders).peekable();
    let mut in_flight = FuturesUnordered::new();
    loop {
        if Instant::now() > plan.give_up_at {
            break;
        }
        let next_due = seqs.peek().map(|seq| plan.schedule.due(*seq));
        let can_send = next_due.is_some() && in_flight.len() < max_in_flight;
        tokio::select! {
            biased;
            Some((due, result)) = in_flight.next(), if !in_flight.is_empty() => {
                record_response(&mut tally, &mut latency, &plan, due, result);
            }
            () = sleep_until_opt(next_due), if can_send => {
                let Some(seq) = seqs.next() else { continue };
                let due = plan.schedule.due(seq);
                let body = message_body(&plan, seq, due);
                let (api, token) = (api.clone(), token.clone());
                in_flight.push(async move { (due, api.post_message(&token, &body).await) });
                tally.sent += 1;
                Live::bump(&plan.live.sent);
            }
            else => break,
        }
    }
    while let Some((due, result)) = in_flight.next().await {
        record_response(&mut tally, &mut latency, &plan, due, result);
    }
    tally.unsent += seqs.count() as u64;
    tally
}

async fn sleep_until_opt(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

fn message_body(plan: &SendPlan, seq: u64, due: Instant) -> serde_json::Value {
    let mut body = json!({ "content": plan.content(seq, due), "client_id": seq.to_string() });
    if let Some(recipient) = &plan.recipient {
        body["recipient"] = json!(recipient);
    }
    body
}

fn record_response(
    tally: &mut Tally,
    latency: &mut LatencyBuffer,
    plan: &SendPlan,
    due: Instant,
    result: Result<reqwest::StatusCode, reqwest::Error>,
) {
    match result {
        Ok(status) if status.is_success() => {
            let now = plan.clock.now_nanos();
            tally.persisted += 1;
            tally.last_persist_nanos = now;
            latency.record_nanos(now.saturating_sub(plan.clock.at(due)));
            Live::bump(&plan.live.persisted);
        }
        Ok(status) => {
            tally.error(format!("http_{}", status.as_u16()));
            Live::bump(&plan.live.refused);
        }
        Err(_) => {
            tally.error("transport".to_owned());
            Live::bump(&plan.live.refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: u64, planned: u64) -> Schedule {
        Schedule {
            start: Instant::now(),
            rate,
            planned,
        }
    }

    #[test]
    fn messages_are_due_at_even_intervals() {
        let s = schedule(4, 8);
        assert_eq!(s.due(0), s.start);
        assert_eq!(s.due(1) - s.start, Duration::from_millis(250));
        assert_eq!(s.due(6) - s.start, Duration::from_millis(1_500));
    }

    #[test]
    fn senders_split_the_schedule_without_overlap() {
        let s = schedule(10, 10);
        let shares: Vec<Vec<u64>> = (0..3).map(|j| s.share(j, 3).collect()).collect();
        assert_eq!(shares, vec![vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
        assert_eq!(s.share(0, 1).count(), 10);
    }
}
