//! `fanout`: S senders post global messages at R msg/s for T s; N receiver
//! sockets each should get every one of them. With `--receiver-url`, the
//! receivers sit on other instances than the senders, so every delivery
//! crosses instances (through Redis).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{per_second, round3, round_robin, window_s, Ctx, Expect, Outcome, Traffic};
use crate::api::Session;
use crate::cli::{FanoutArgs, Via};
use crate::content::decode;
use crate::error::{BenchError, BenchResult};
use crate::latency::LatencySummary;
use crate::net::Ws;
use crate::report::Figures;
use crate::target::Target;

/// Most memory the receivers' seen-sets may take (one bit per message per
/// receiver).
const MAX_SEEN_BYTES: u64 = 2 << 30;

/// What `fanout` measured.
#[derive(Debug, Serialize)]
pub struct FanoutFigures {
    /// Receiving sockets.
    pub receivers: u64,
    /// Where the receivers are connected (the senders are on the run's
    /// `target`); several: spread round-robin.
    pub receiver_instances: Vec<String>,
    /// Sending users.
    pub senders: u64,
    /// `ws` or `http`.
    pub via: &'static str,
    /// Messages per second asked for.
    pub rate_target: u64,
    /// Seconds of sending asked for.
    pub duration_s: u64,
    /// rate × duration.
    pub planned: u64,
    /// Messages sent.
    pub sent: u64,
    /// Planned but not sent (senders fell too far behind).
    pub unsent: u64,
    /// Messages the server confirmed stored (ack or 2xx).
    pub persisted: u64,
    /// Messages sent per second while sending.
    pub send_rate_per_s: f64,
    /// persisted × receivers.
    pub expected_deliveries: u64,
    /// Distinct deliveries to receivers.
    pub delivered: u64,
    /// Expected but never delivered.
    pub lost: u64,
    /// lost / expected.
    pub lost_ratio: f64,
    /// Deliveries of a message a socket already had.
    pub duplicates: u64,
    /// Benchmark messages nobody sent.
    pub unexpected: u64,
    /// Deliveries per second, first due time to last delivery.
    pub deliveries_per_s: f64,
    /// Deliveries that came after a later message of the same sender.
    pub out_of_order: u64,
    /// Acks that came after the ack of a later message of the same socket.
    pub acks_out_of_order: u64,
    /// With `--check-stored-order`: the run's messages found in the
    /// history, and those stored after a later message of the same sender.
    pub stored_order: Option<StoredOrder>,
    /// Sockets that closed before the end.
    pub sockets_closed: u64,
    /// How they closed.
    pub close_reasons: BTreeMap<String, u64>,
    /// Refusals and failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Seconds waited for stragglers.
    pub drain_s: f64,
    /// Whether everything arrived within the drain.
    pub drained: bool,
    /// Due time to delivery at a receiver.
    pub latency: LatencySummary,
    /// Due time to ack (ws) or response (http).
    pub persist_latency: LatencySummary,
}

impl Figures for FanoutFigures {
    const MODE: &'static str = "fanout";

    fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.unsent == 0
            && self.lost == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.out_of_order == 0
            && self.acks_out_of_order == 0
            && self
                .stored_order
                .as_ref()
                .is_none_or(|s| s.out_of_order == 0 && s.found == self.persisted)
            && self.sockets_closed == 0
    }

    fn human(&self) -> Vec<String> {
        vec![
            format!(
                "{} senders via {} -> {} receivers on {}: sent {} of {} ({:.1}/s), stored {}, {} unsent",
                self.senders,
                self.via,
                self.receivers,
                self.receiver_instances.join(" + "),
                self.sent,
                self.planned,
                self.send_rate_per_s,
                self.persisted,
                self.unsent
            ),
            format!(
                "deliveries: {} of {} ({:.0}/s), lost {} ({:.4}%), duplicates {}, unexpected {}",
                self.delivered,
                self.expected_deliveries,
                self.deliveries_per_s,
                self.lost,
                self.lost_ratio * 100.0,
                self.duplicates,
                self.unexpected
            ),
            format!("delivery latency: {}", self.latency.human()),
            format!("stored latency:   {}", self.persist_latency.human()),
            format!(
                "order: {} deliveries and {} acks out of their sender's order{}",
                self.out_of_order,
                self.acks_out_of_order,
                self.stored_order.as_ref().map_or(String::new(), |s| format!(
                    "; in the history {} of {} stored found, {} out of order",
                    s.found, self.persisted, s.out_of_order
                ))
            ),
            format!(
                "drain {:.2} s ({}); sockets closed {} {:?}; errors {:?}",
                self.drain_s,
                if self.drained {
                    "complete"
                } else {
                    "timed out"
                },
                self.sockets_closed,
                self.close_reasons,
                self.errors
            ),
        ]
    }
}

/// Runs `fanout`.
pub async fn run(ctx: &Ctx, args: &FanoutArgs) -> BenchResult<FanoutFigures> {
    let planned = args.rate.saturating_mul(args.duration);
    if planned.div_ceil(8).saturating_mul(args.receivers) > MAX_SEEN_BYTES {
        return Err(BenchError::new(
            "rate × duration × receivers is too large to track; shorten the run",
        ));
    }
    let sender_sockets = if args.via == Via::Ws { args.senders } else { 0 };
    ctx.ensure_files(args.receivers + sender_sockets)?;
    ctx.require_websocket().await?;

    let receivers = usize::try_from(args.receivers).unwrap_or(usize::MAX);
    let users = usize::try_from(args.users.unwrap_or(100).min(args.receivers)).unwrap_or(1);
    let receiver_sessions = ctx.sign_in("r", users).await?;
    let sender_sessions = ctx
        .sign_in("s", usize::try_from(args.senders).unwrap_or(1))
        .await?;
    let receiver_ctxs = receiver_contexts(ctx, &args.receiver_urls)?;
    let receiver_sockets =
        open_receivers(&receiver_ctxs, &receiver_sessions, receivers, users).await?;
    let sender_sockets = if args.via == Via::Ws {
        let owners: Vec<usize> = (0..sender_sessions.len()).collect();
        ctx.open_all("senders", &sender_sessions, &owners).await?
    } else {
        Vec::new()
    };
    // Let the presence frames of all those opens go by before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut traffic = Traffic::new(
        args.rate,
        Duration::from_secs(args.duration),
        Duration::from_secs(args.drain),
        args.senders,
    );
    let spec = traffic.read_spec(ctx, Some("message"), Expect::all(traffic.planned()));
    for ws in receiver_sockets {
        traffic.add_reader(ws, spec.clone());
    }
    for (index, ws) in sender_sockets.into_iter().enumerate() {
        let plan = traffic.plan(ctx, index as u64, args.senders, None);
        traffic.add_ws_sender(ctx, ws, plan);
    }
    if args.via == Via::Http {
        for (index, session) in sender_sessions.iter().enumerate() {
            let plan = traffic.plan(ctx, index as u64, args.senders, None);
            traffic.add_http_sender(ctx, session.token.clone(), plan);
        }
    }
    let outcome = traffic.finish(ctx, args.receivers).await;
    let stored_order = match (args.check_stored_order, sender_sessions.first()) {
        (true, Some(reader)) => {
            Some(stored_order(ctx, &reader.token, args.senders, outcome.tally.persisted).await?)
        }
        _ => None,
    };
    let instances = receiver_ctxs.iter().map(|c| c.target.base.clone());
    Ok(figures(
        args,
        instances.collect(),
        planned,
        outcome,
        stored_order,
    ))
}

/// The run's messages as the history has them.
#[derive(Debug, Default, Serialize)]
pub struct StoredOrder {
    /// The run's messages found.
    pub found: u64,
    /// Those stored after a later message of the same sender.
    pub out_of_order: u64,
    /// Pages read.
    pub pages: u64,
}

/// Messages per page of the read-back (the API's largest page).
const PAGE: u64 = 200;

/// Reads the run's global messages back from `GET /api/messages` (as the
/// holder of `token`), newest page first (`before=`), until a page holds
/// none of them after some were found (the run's messages are the newest
/// global ones) or there is no older page; then checks, in the store's
/// order, that each sender's messages (sender `seq % senders`) have
/// growing sequence numbers.
async fn stored_order(
    ctx: &Ctx,
    token: &str,
    senders: u64,
    persisted: u64,
) -> BenchResult<StoredOrder> {
    let mut pages: Vec<Vec<u64>> = Vec::new();
    let mut before: Option<String> = None;
    let mut found = 0;
    let most_pages = persisted / PAGE + 20;
    while (pages.len() as u64) < most_pages {
        let path = match &before {
            Some(id) => format!("/api/messages?limit={PAGE}&before={id}"),
            None => format!("/api/messages?limit={PAGE}"),
        };
        let page = ctx.api.message_page(token, &path).await?;
        let ours: Vec<u64> = page
            .contents
            .iter()
            .filter_map(|content| decode(content, &ctx.run).map(|(seq, _)| seq))
            .collect();
        let past_the_run = ours.is_empty() && found > 0;
        found += ours.len() as u64;
        pages.push(ours);
        before = page.ids.first().cloned();
        if past_the_run || !page.has_prev || before.is_none() {
            break;
        }
    }
    let read = pages.len() as u64;
    Ok(StoredOrder {
        found,
        out_of_order: out_of_order(pages.into_iter().rev().flatten(), senders),
        pages: read,
    })
}

/// How many of `seqs` (in the store's order) come after a larger one of the
/// same sender.
fn out_of_order(seqs: impl Iterator<Item = u64>, senders: u64) -> u64 {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let mut late = 0;
    for seq in seqs {
        let last = last.entry(seq % senders.max(1)).or_insert(seq);
        if seq < *last {
            late += 1;
        }
        *last = (*last).max(seq);
    }
    late
}

/// One context per receiver instance: the run's own, or one per
/// `--receiver-url` (same users, tokens and settings, another server).
fn receiver_contexts(ctx: &Ctx, urls: &[String]) -> BenchResult<Vec<Ctx>> {
    if urls.is_empty() {
        return Ok(vec![ctx.clone()]);
    }
    urls.iter()
        .map(|url| {
            let target =
                Target::parse(url).map_err(|e| BenchError::new(format!("--receiver-url: {e}")))?;
            let mut on = ctx.clone();
            on.dialer = ctx.dialer.to(&target);
            on.target = target;
            Ok(on)
        })
        .collect()
}

/// Opens `count` receiving sockets over `users` sessions, socket `i` on
/// instance `i % instances`.
async fn open_receivers(
    instances: &[Ctx],
    sessions: &[Session],
    count: usize,
    users: usize,
) -> BenchResult<Vec<Ws>> {
    let owners = round_robin(count, users);
    let mut sockets = Vec::with_capacity(count);
    for (nth, on) in instances.iter().enumerate() {
        let mine: Vec<usize> = owners
            .iter()
            .skip(nth)
            .step_by(instances.len())
            .copied()
            .collect();
        let label = format!("receivers on {}", on.target.base);
        sockets.extend(on.open_all(&label, sessions, &mine).await?);
    }
    Ok(sockets)
}

fn figures(
    args: &FanoutArgs,
    receiver_instances: Vec<String>,
    planned: u64,
    outcome: Outcome,
    stored_order: Option<StoredOrder>,
) -> FanoutFigures {
    let t = outcome.tally;
    let expected = t.persisted.saturating_mul(args.receivers);
    let lost = expected.saturating_sub(t.delivered);
    FanoutFigures {
        receivers: args.receivers,
        receiver_instances,
        senders: args.senders,
        via: args.via.name(),
        rate_target: args.rate,
        duration_s: args.duration,
        planned,
        sent: t.sent,
        unsent: t.unsent,
        persisted: t.persisted,
        send_rate_per_s: per_second(t.sent, outcome.sending_s),
        expected_deliveries: expected,
        delivered: t.delivered,
        lost,
        lost_ratio: if expected > 0 {
            lost as f64 / expected as f64
        } else {
            0.0
        },
        duplicates: t.duplicates,
        unexpected: t.unexpected,
        deliveries_per_s: per_second(
            t.delivered,
            window_s(outcome.start_nanos, t.last_delivery_nanos),
        ),
        out_of_order: t.out_of_order,
        acks_out_of_order: t.acks_out_of_order,
        stored_order,
        sockets_closed: t.closed,
        close_reasons: t.close_reasons,
        errors: t.errors,
        drain_s: round3(outcome.drain_s),
        drained: outcome.drained,
        latency: outcome.delivery_latency,
        persist_latency: outcome.persist_latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_senders_messages_must_grow_in_the_store() {
        // Two senders (even and odd): interleaved is fine.
        assert_eq!(out_of_order([0, 1, 3, 2, 4, 5].into_iter(), 2), 0);
        // 4 stored before 2, both of sender 0.
        assert_eq!(out_of_order([0, 4, 1, 2, 3].into_iter(), 2), 1);
        assert_eq!(out_of_order([2, 1, 0].into_iter(), 1), 2);
    }
}
