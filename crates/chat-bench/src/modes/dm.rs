//! `dm`: P pairs of users; each pair's sender sends direct messages to its
//! partner at R/P msg/s. Measures stored and delivered per second and both
//! latencies, and catches a direct message reaching the wrong user. With
//! `--changes N`, N % of each sender's operations are changes to its own
//! latest messages (edits, reactions added and taken back) instead of new
//! messages, and the partner must get each as a `message_updated` frame.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use std::sync::Arc;

use super::{
    changes_among, per_second, round3, window_s, Changes, Ctx, Expect, Outcome, Registry, Traffic,
};
use crate::cli::{DmArgs, Via};
use crate::error::{BenchError, BenchResult};
use crate::latency::LatencySummary;
use crate::report::Figures;

/// What `dm` measured.
#[derive(Debug, Serialize)]
pub struct DmFigures {
    /// Sender/recipient pairs.
    pub pairs: u64,
    /// `ws` or `http`.
    pub via: &'static str,
    /// Messages per second asked for, all pairs together.
    pub rate_target: u64,
    /// Seconds of sending asked for.
    pub duration_s: u64,
    /// Messages planned: rate × duration, less the changes planned.
    pub planned: u64,
    /// Messages sent.
    pub sent: u64,
    /// Planned but not sent (senders fell too far behind).
    pub unsent: u64,
    /// Messages the server confirmed stored (ack or 2xx).
    pub persisted: u64,
    /// Stored per second, first due time to last confirmation.
    pub persisted_per_s: f64,
    /// Distinct messages delivered to their recipient.
    pub delivered: u64,
    /// Delivered per second, first due time to last delivery.
    pub delivered_per_s: f64,
    /// Stored but never delivered to the recipient.
    pub lost: u64,
    /// lost / persisted.
    pub lost_ratio: f64,
    /// Deliveries of a message the recipient already had.
    pub duplicates: u64,
    /// Direct messages that reached a user they were not addressed to.
    pub misdelivered: u64,
    /// Deliveries that came after a later message of the same sender.
    pub out_of_order: u64,
    /// Acks that came after the ack of a later message of the same socket.
    pub acks_out_of_order: u64,
    /// Sockets that closed before the end.
    pub sockets_closed: u64,
    /// How they closed.
    pub close_reasons: BTreeMap<String, u64>,
    /// Refusals and failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Seconds waited for stragglers.
    pub drain_s: f64,
    /// Whether everything was answered and delivered within the drain.
    pub drained: bool,
    /// Due time to ack (ws) or response (http).
    pub persist_latency: LatencySummary,
    /// Due time to delivery at the recipient.
    pub delivery_latency: LatencySummary,
    /// With `--changes`: the changes to messages and their updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangeFigures>,
}

/// What `dm --changes` measured of the changes.
#[derive(Debug, Serialize)]
pub struct ChangeFigures {
    /// Share of the operations that are changes, in percent.
    pub percent: u64,
    /// Changes planned (the rest of rate × duration are messages).
    pub planned: u64,
    /// Changes sent.
    pub sent: u64,
    /// Planned but not sent (sender behind, or no message to change yet).
    pub unsent: u64,
    /// Changes the server applied (2xx).
    pub stored: u64,
    /// Applied per second, first due time to the last 2xx.
    pub stored_per_s: f64,
    /// `message_updated` frames received for them by the recipients.
    pub delivered: u64,
    /// Applied but never received as `message_updated`.
    pub lost: u64,
    /// `message_updated` frames with no change pending for their message.
    pub unexpected: u64,
    /// `message_updated` frames not showing the change they answer.
    pub mismatched: u64,
    /// Messages and changes stored per second, first due time to the last
    /// confirmation of either.
    pub operations_per_s: f64,
    /// Due time to the 2xx.
    pub persist_latency: LatencySummary,
    /// Due time to the `message_updated` at the recipient.
    pub delivery_latency: LatencySummary,
}

impl ChangeFigures {
    fn ok(&self) -> bool {
        self.unsent == 0 && self.lost == 0 && self.unexpected == 0 && self.mismatched == 0
    }
}

impl Figures for DmFigures {
    const MODE: &'static str = "dm";

    fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.unsent == 0
            && self.lost == 0
            && self.duplicates == 0
            && self.misdelivered == 0
            && self.out_of_order == 0
            && self.acks_out_of_order == 0
            && self.sockets_closed == 0
            && self.changes.as_ref().is_none_or(ChangeFigures::ok)
    }

    fn human(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "{} pairs via {}: sent {} of {}, {} unsent",
                self.pairs, self.via, self.sent, self.planned, self.unsent
            ),
            format!(
                "stored {} ({:.0}/s), delivered {} ({:.0}/s), lost {} ({:.4}%), duplicates {}, misdelivered {}",
                self.persisted,
                self.persisted_per_s,
                self.delivered,
                self.delivered_per_s,
                self.lost,
                self.lost_ratio * 100.0,
                self.duplicates,
                self.misdelivered
            ),
            format!("stored latency:   {}", self.persist_latency.human()),
            format!("delivery latency: {}", self.delivery_latency.human()),
            format!(
                "order: {} deliveries and {} acks out of their sender's order",
                self.out_of_order, self.acks_out_of_order
            ),
            format!(
                "drain {:.2} s ({}); sockets closed {} {:?}; errors {:?}",
                self.drain_s,
                if self.drained { "complete" } else { "timed out" },
                self.sockets_closed,
                self.close_reasons,
                self.errors
            ),
        ];
        if let Some(c) = &self.changes {
            lines.extend([
                format!(
                    "changes ({} %): sent {} of {}, {} unsent, applied {} ({:.0}/s); {:.0} operations/s in all",
                    c.percent, c.sent, c.planned, c.unsent, c.stored, c.stored_per_s, c.operations_per_s
                ),
                format!(
                    "updates received {}, lost {}, unexpected {}, not showing their change {}",
                    c.delivered, c.lost, c.unexpected, c.mismatched
                ),
                format!("change applied latency: {}", c.persist_latency.human()),
                format!("update delivery latency: {}", c.delivery_latency.human()),
            ]);
        }
        lines
    }
}

/// Runs `dm`.
pub async fn run(ctx: &Ctx, args: &DmArgs) -> BenchResult<DmFigures> {
    if args.changes > 0 && args.via != Via::Ws {
        return Err(BenchError::new("--changes needs --via ws"));
    }
    ctx.ensure_files(args.pairs * 2)?;
    ctx.require_websocket().await?;
    let pairs = usize::try_from(args.pairs).unwrap_or(usize::MAX);
    let senders = ctx.sign_in("a", pairs).await?;
    let recipients = ctx.sign_in("b", pairs).await?;
    let owners: Vec<usize> = (0..pairs).collect();
    let sender_sockets = ctx.open_all("senders", &senders, &owners).await?;
    let recipient_sockets = ctx.open_all("recipients", &recipients, &owners).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut traffic = Traffic::new(
        args.rate,
        Duration::from_secs(args.duration),
        Duration::from_secs(args.drain),
        args.pairs,
    );
    let planned = traffic.planned();
    let registry = Arc::new(Registry::default());
    for (pair, ws) in (0u64..).zip(recipient_sockets) {
        let expect = Expect {
            stride: args.pairs,
            offset: pair,
            capacity: planned.saturating_sub(pair).div_ceil(args.pairs),
        };
        let spec = if args.changes > 0 {
            traffic.update_read_spec(ctx, Some("direct_message"), expect, registry.clone())
        } else {
            traffic.read_spec(ctx, Some("direct_message"), expect)
        };
        traffic.add_reader(ws, spec);
    }
    let sides = senders.iter().zip(&recipients);
    for ((pair, ws), (sender, recipient)) in (0u64..).zip(sender_sockets).zip(sides) {
        let mut plan = traffic.plan(ctx, pair, args.pairs, Some(recipient.username.clone()));
        if args.changes > 0 {
            plan.changes = Some(Changes::new(
                args.changes,
                ctx.api.clone(),
                sender.token.clone(),
                registry.clone(),
            ));
        }
        match args.via {
            Via::Ws => traffic.add_ws_sender(ctx, ws, plan),
            Via::Http => {
                // The sender's own socket gets a copy of each message: read
                // it so that it is not closed as a slow reader.
                let spec = traffic.read_spec(ctx, None, Expect::NOTHING);
                traffic.add_reader(ws, spec);
                traffic.add_http_sender(ctx, sender.token.clone(), plan);
            }
        }
    }
    let outcome = traffic.finish(ctx, 1).await;
    Ok(figures(args, planned, outcome))
}

/// Changes among `planned` operations shared by `senders` senders, each
/// sender's share counted on its own.
fn planned_changes(planned: u64, senders: u64, percent: u64) -> u64 {
    let senders = senders.max(1);
    (0..senders.min(planned))
        .map(|i| changes_among((planned - i).div_ceil(senders), percent))
        .sum()
}

fn figures(args: &DmArgs, planned_ops: u64, outcome: Outcome) -> DmFigures {
    let t = outcome.tally;
    let lost = t.persisted.saturating_sub(t.delivered);
    let planned_changes = planned_changes(planned_ops, args.pairs, args.changes);
    let planned = planned_ops - planned_changes;
    let changes = (args.changes > 0).then(|| ChangeFigures {
        percent: args.changes,
        planned: planned_changes,
        sent: t.changes_sent,
        unsent: t.changes_unsent,
        stored: t.changes_stored,
        stored_per_s: per_second(
            t.changes_stored,
            window_s(outcome.start_nanos, t.last_change_nanos),
        ),
        delivered: t.updates,
        lost: t.changes_stored.saturating_sub(t.updates),
        unexpected: t.updates_unexpected,
        mismatched: t.updates_mismatched,
        operations_per_s: per_second(
            t.persisted + t.changes_stored,
            window_s(
                outcome.start_nanos,
                t.last_persist_nanos.max(t.last_change_nanos),
            ),
        ),
        persist_latency: outcome.change_latency.clone(),
        delivery_latency: outcome.update_latency.clone(),
    });
    DmFigures {
        pairs: args.pairs,
        via: args.via.name(),
        rate_target: args.rate,
        duration_s: args.duration,
        planned,
        sent: t.sent,
        unsent: t.unsent,
        persisted: t.persisted,
        persisted_per_s: per_second(
            t.persisted,
            window_s(outcome.start_nanos, t.last_persist_nanos),
        ),
        delivered: t.delivered,
        delivered_per_s: per_second(
            t.delivered,
            window_s(outcome.start_nanos, t.last_delivery_nanos),
        ),
        lost,
        lost_ratio: if t.persisted > 0 {
            lost as f64 / t.persisted as f64
        } else {
            0.0
        },
        duplicates: t.duplicates,
        misdelivered: t.unexpected,
        out_of_order: t.out_of_order,
        acks_out_of_order: t.acks_out_of_order,
        sockets_closed: t.closed,
        close_reasons: t.close_reasons,
        errors: t.errors,
        drain_s: round3(outcome.drain_s),
        drained: outcome.drained,
        persist_latency: outcome.persist_latency,
        delivery_latency: outcome.delivery_latency,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_changes_add_up_over_senders() {
        assert_eq!(planned_changes(100_000, 500, 10), 10_000);
        assert_eq!(planned_changes(100_000, 500, 0), 0);
        // 3 senders share 25 operations as 9, 8 and 8: none reaches its
        // 10th operation, so none changes anything.
        assert_eq!(planned_changes(25, 3, 10), 0);
        assert_eq!(planned_changes(31, 3, 10), 3);
        assert_eq!(planned_changes(2, 5, 10), 0);
    }
}
