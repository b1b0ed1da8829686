//! The profile's targets: which run each judges, and the verdict.

use super::*;

/// The verdict on one target for one run.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Met,
    NotMet,
    /// No threshold: the figures are reported.
    Reported,
    /// The run used other parameters than the target's (a quick profile).
    NotComparable(String),
    NotRun,
}

impl Verdict {
    pub(super) fn text(&self) -> String {
        match self {
            Verdict::Met => "**met**".to_owned(),
            Verdict::NotMet => "**not met**".to_owned(),
            Verdict::Reported => "reported (no threshold)".to_owned(),
            Verdict::NotComparable(why) => format!("not comparable ({why})"),
            Verdict::NotRun => "not run".to_owned(),
        }
    }
}

/// A target of the profile and the run that is judged against it.
pub(super) struct Target {
    pub(super) text: &'static str,
    pub(super) run: &'static str,
    /// Key figures in a few words, and the verdict.
    pub(super) judge: fn(&Run) -> (String, Verdict),
}

pub(super) const TARGETS: &[Target] = &[
    Target {
        text: "Memory per idle socket at 19,000 sockets ≤ 8 KiB",
        run: "idle",
        judge: judge_idle,
    },
    Target {
        text: "Global message to 1,000 receivers at 500 msg/s: 0 lost, delivery p99 < 50 ms",
        run: "fanout.memory",
        judge: judge_fanout,
    },
    Target {
        text: "Global message to 1,000 receivers at 500 msg/s: 0 lost, delivery p99 < 50 ms",
        run: "fanout.postgres",
        judge: judge_fanout,
    },
    Target {
        text: "Direct messages persisted in PostgreSQL and delivered ≥ 10,000 msg/s (every message offered at 10,000/s stored and delivered), delivery p99 < 25 ms",
        run: "dm.postgres",
        judge: judge_dm,
    },
    Target {
        text: "The same on the memory store (for comparison)",
        run: "dm.memory",
        judge: judge_dm,
    },
    Target {
        text: "The same 500 pairs and 10,000 operations/s on PostgreSQL with 10 % of them edits and reactions: every message and every change delivered (0 lost), delivery p99 < 25 ms for messages and for updates",
        run: "dm.postgres.changes",
        judge: judge_dm_changes,
    },
    Target {
        text: "The same on the memory store (for comparison)",
        run: "dm.memory.changes",
        judge: judge_dm_changes,
    },
    Target {
        text: "One connection sending 2,000 msg/s on PostgreSQL: all stored and acked in the order sent, ack p99 < 50 ms",
        run: "sender.postgres",
        judge: judge_sender,
    },
    Target {
        text: "Global messages from 4 senders at 500 msg/s in all to 1,000 receivers on PostgreSQL: 0 lost, delivery p99 < 50 ms",
        run: "fanout.postgres.s4",
        judge: judge_fanout,
    },
    Target {
        text: "50 pairs at 10,000 direct msg/s in all (100/s per sender) on PostgreSQL: 0 lost, delivery p99 < 25 ms",
        run: "dm.postgres.p50",
        judge: judge_dm,
    },
    Target {
        text: "POST /api/messages on PostgreSQL, 64 clients: req/s and p99",
        run: "http.postgres.c64",
        judge: judge_http,
    },
    Target {
        text: "GET /api/conversations for a user in 1,000 conversations with 1,000,000 messages on PostgreSQL, 8 clients: req/s and p99",
        run: "reads.postgres.c8",
        judge: judge_conversations,
    },
];

pub(super) fn count(run: &Run, pointer: &str) -> u64 {
    run.result
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

pub(super) fn is_ok(run: &Run) -> bool {
    run.result
        .get("ok")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub(super) fn judge_idle(run: &Run) -> (String, Verdict) {
    let wanted = 19_000;
    let asked = count(run, "/connections");
    let connected = count(run, "/connected");
    let per_socket = run.number("/rss_per_socket_kb");
    let summary = format!(
        "{} KiB per socket, {} of {} sockets open",
        opt(per_socket),
        number(connected as f64),
        number(asked as f64)
    );
    let verdict = if asked != wanted {
        Verdict::NotComparable(format!("ran {} sockets", number(asked as f64)))
    } else if connected == wanted && is_ok(run) && per_socket.is_some_and(|kb| kb <= 8.0) {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (summary, verdict)
}

pub(super) fn judge_fanout(run: &Run) -> (String, Verdict) {
    let (receivers, rate) = (count(run, "/receivers"), count(run, "/rate_target"));
    let lost = count(run, "/lost");
    let unsent = count(run, "/unsent");
    let p99 = run.number("/latency/p99_ms");
    let (planned, persisted) = (count(run, "/planned"), count(run, "/persisted"));
    let summary = format!(
        "{} of {} stored, lost {}, unsent {}, delivery p99 {} ms, {} deliveries/s",
        number(persisted as f64),
        number(planned as f64),
        number(lost as f64),
        number(unsent as f64),
        opt(p99),
        opt(run.number("/deliveries_per_s"))
    );
    let verdict = if (receivers, rate) != (1_000, 500) {
        Verdict::NotComparable(format!(
            "ran {} receivers at {} msg/s",
            number(receivers as f64),
            number(rate as f64)
        ))
    } else if is_ok(run)
        && planned > 0
        && persisted == planned
        && lost == 0
        && unsent == 0
        && p99.is_some_and(|ms| ms < 50.0)
    {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (summary, verdict)
}

/// One fast sender: every message stored and acked, in the order sent
/// (acks, deliveries and the history read back), ack p99 < 50 ms.
pub(super) fn judge_sender(run: &Run) -> (String, Verdict) {
    let (senders, rate) = (count(run, "/senders"), count(run, "/rate_target"));
    let (planned, persisted) = (count(run, "/planned"), count(run, "/persisted"));
    let out_of_order = count(run, "/out_of_order") + count(run, "/acks_out_of_order");
    let stored_late = run.number("/stored_order/out_of_order");
    let found = count(run, "/stored_order/found");
    let p99 = run.number("/persist_latency/p99_ms");
    let summary = format!(
        "{} of {} stored ({} found in the history, {} out of order there), {} acks or deliveries out of order, ack p99 {} ms",
        number(persisted as f64),
        number(planned as f64),
        number(found as f64),
        stored_late.map_or_else(|| "–".to_owned(), number),
        number(out_of_order as f64),
        opt(p99)
    );
    let verdict = if (senders, rate) != (1, 2_000) {
        Verdict::NotComparable(format!(
            "ran {} senders at {} msg/s",
            number(senders as f64),
            number(rate as f64)
        ))
    } else if is_ok(run)
        && planned > 0
        && persisted == planned
        && found == planned
        && out_of_order == 0
        && stored_late == Some(0.0)
        && p99.is_some_and(|ms| ms < 50.0)
    {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (summary, verdict)
}

pub(super) fn judge_dm(run: &Run) -> (String, Verdict) {
    let rate = count(run, "/rate_target");
    let planned = count(run, "/planned");
    let (persisted, delivered) = (count(run, "/persisted"), count(run, "/delivered"));
    let p99 = run.number("/delivery_latency/p99_ms");
    let summary = format!(
        "{} stored/s, {} delivered/s ({} of {} delivered), delivery p99 {} ms",
        opt(run.number("/persisted_per_s")),
        opt(run.number("/delivered_per_s")),
        number(delivered as f64),
        number(planned as f64),
        opt(p99)
    );
    let verdict = if rate < 10_000 {
        Verdict::NotComparable(format!("offered {} msg/s", number(rate as f64)))
    } else if is_ok(run)
        && planned > 0
        && persisted == planned
        && delivered == planned
        && p99.is_some_and(|ms| ms < 25.0)
    {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (summary, verdict)
}

/// Direct messages with a share of changes: the messages as [`judge_dm`]
/// asks, and every change applied and received as an update within the
/// same p99.
pub(super) fn judge_dm_changes(run: &Run) -> (String, Verdict) {
    let (messages, messages_verdict) = judge_dm(run);
    let percent = count(run, "/changes/percent");
    let (planned, stored) = (
        count(run, "/changes/planned"),
        count(run, "/changes/stored"),
    );
    let (delivered, lost) = (
        count(run, "/changes/delivered"),
        count(run, "/changes/lost"),
    );
    let wrong = count(run, "/changes/mismatched") + count(run, "/changes/unexpected");
    let p99 = run.number("/changes/delivery_latency/p99_ms");
    let summary = format!(
        "messages: {messages}; changes: {} of {} applied, {} updates received, lost {}, update p99 {} ms",
        number(stored as f64),
        number(planned as f64),
        number(delivered as f64),
        number(lost as f64),
        opt(p99)
    );
    let verdict = match messages_verdict {
        Verdict::NotComparable(why) => Verdict::NotComparable(why),
        _ if percent != 10 => Verdict::NotComparable(format!("{percent} % changes")),
        Verdict::Met
            if planned > 0
                && stored == planned
                && delivered == planned
                && lost == 0
                && wrong == 0
                && p99.is_some_and(|ms| ms < 25.0) =>
        {
            Verdict::Met
        }
        _ => Verdict::NotMet,
    };
    (summary, verdict)
}

pub(super) fn judge_conversations(run: &Run) -> (String, Verdict) {
    let clients = count(run, "/clients");
    let summary = format!(
        "{} req/s, p99 {} ms, {} conversations on the first page{}",
        opt(run.number("/req_per_s")),
        opt(run.number("/latency/p99_ms")),
        number(count(run, "/first_page") as f64),
        if is_ok(run) { "" } else { ", with errors" }
    );
    let verdict = if clients == 8 {
        Verdict::Reported
    } else {
        Verdict::NotComparable(format!("ran {clients} clients"))
    };
    (summary, verdict)
}

pub(super) fn judge_http(run: &Run) -> (String, Verdict) {
    let summary = format!(
        "{} req/s, p99 {} ms{}",
        opt(run.number("/req_per_s")),
        opt(run.number("/latency/p99_ms")),
        if is_ok(run) { "" } else { ", with errors" }
    );
    let verdict = if count(run, "/clients") == 64 {
        Verdict::Reported
    } else {
        Verdict::NotComparable(format!("ran {} clients", count(run, "/clients")))
    };
    (summary, verdict)
}
