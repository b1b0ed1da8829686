//! `chat-bench report`: turns the results file of the standard benchmark
//! profile (`scripts/bench.sh`, `just bench`) into the generated section at
//! the top of docs/benchmarks.md.
//!
//! The results file is one JSON object: when and where the profile ran
//! (date, commit, machine), how each server was started, and one record per
//! run holding the exact command, the 1-minute load average before and
//! after it, and the run's own JSON line (a chat-bench line, or the figures
//! scripts/bench.sh parsed out of pgbench's output). The rendering compares
//! every figure with the same run of a previous results file, and gives a
//! verdict for each target of the profile.
//!
//! Runs are matched by their `id` (`idle`, `fanout.memory`,
//! `http.postgres.c64`, `pgbench.trigger.c8`, ...); the targets name the
//! ids they judge. Unknown fields are ignored and missing ones render as
//! "–", so older results files still compare.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{BenchError, BenchResult, Context};

/// First line of the generated section.
pub const BEGIN: &str = "<!-- bench:begin -->";
/// Last line of the generated section.
pub const END: &str = "<!-- bench:end -->";

/// A results file of scripts/bench.sh.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Results {
    /// `standard`, `quick` or `smoke`.
    pub profile: String,
    /// When the profile started, UTC, ISO 8601.
    pub date: String,
    /// `git rev-parse HEAD` of the tree measured.
    pub commit: String,
    /// Whether that tree had uncommitted changes.
    pub dirty: bool,
    /// The command that produced the file.
    pub command: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// How the server was started, by store (`memory`, `postgres`).
    pub servers: BTreeMap<String, String>,
    /// Commands run before the measured ones (database setup for pgbench).
    pub setup: Vec<String>,
    /// One record per measured run, in the order they ran.
    pub runs: Vec<Run>,
}

/// Facts about the machine a profile ran on.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// `nproc`.
    pub nproc: Option<u64>,
    /// CPU model name.
    pub cpu: String,
    /// Total memory, human readable.
    pub memory: String,
    /// `uname -sr`.
    pub kernel: String,
    /// PostgreSQL server version.
    pub postgres: String,
}

/// One measured run.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Stable name that matches the same run across results files.
    pub id: String,
    /// Words for a reader ("PostgreSQL, 64 clients").
    pub label: String,
    /// The store of the server it ran against (none for pgbench).
    pub store: String,
    /// The exact command.
    pub command: String,
    /// 1-minute load average just before the run.
    pub load_before: Option<f64>,
    /// 1-minute load average just after it.
    pub load_after: Option<f64>,
    /// The run's JSON line: `mode`, `ok` and every figure.
    pub result: Value,
}

impl Run {
    fn mode(&self) -> &str {
        self.result
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn number(&self, pointer: &str) -> Option<f64> {
        self.result.pointer(pointer).and_then(Value::as_f64)
    }

    /// The sum of the numbers in the object at `pointer`.
    fn sum(&self, pointer: &str) -> Option<u64> {
        let map = self.result.pointer(pointer)?.as_object()?;
        Some(map.values().filter_map(Value::as_u64).sum())
    }

    /// A figure of this run as a number, whatever its unit.
    fn figure(&self, figure: &Figure) -> Option<f64> {
        match figure.unit {
            Unit::Number | Unit::Mib => self.number(figure.pointer),
            Unit::Sum => self.sum(figure.pointer).map(|n| n as f64),
            Unit::Flag => None,
        }
    }

    fn label(&self) -> &str {
        if self.label.is_empty() {
            &self.id
        } else {
            &self.label
        }
    }
}

impl Results {
    /// Parses a results file's text.
    pub fn parse(text: &str) -> BenchResult<Self> {
        serde_json::from_str(text).context("reading the results file")
    }

    fn run(&self, id: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }
}

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

/// How a figure is read from a run and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// A plain number (count, rate, milliseconds).
    Number,
    /// Bytes, printed in MiB.
    Mib,
    /// A boolean, printed yes/no.
    Flag,
    /// The sum of an object's numbers (an `errors` map by kind).
    Sum,
}

/// One row of a mode's table.
struct Figure {
    label: &'static str,
    pointer: &'static str,
    unit: Unit,
    better: Better,
}

const fn fig(label: &'static str, pointer: &'static str, better: Better) -> Figure {
    Figure {
        label,
        pointer,
        unit: Unit::Number,
        better,
    }
}

const CLEAN: Figure = Figure {
    label: "clean run (nothing failed or lost)",
    pointer: "/ok",
    unit: Unit::Flag,
    better: Better::Neither,
};

const ERRORS: Figure = Figure {
    label: "errors (sends never answered, error frames, HTTP failures)",
    pointer: "/errors",
    unit: Unit::Sum,
    better: Better::Lower,
};

const IDLE: &[Figure] = &[
    CLEAN,
    ERRORS,
    fig("sockets open", "/connected", Better::Higher),
    fig(
        "sockets opened per second",
        "/connect_rate_per_s",
        Better::Higher,
    ),
    fig("connect p99 (ms)", "/connect_latency/p99_ms", Better::Lower),
    Figure {
        label: "server RSS before (MiB)",
        pointer: "/rss_before_bytes",
        unit: Unit::Mib,
        better: Better::Lower,
    },
    Figure {
        label: "server RSS with the sockets open (MiB)",
        pointer: "/rss_after_bytes",
        unit: Unit::Mib,
        better: Better::Lower,
    },
    fig("RSS per socket (KiB)", "/rss_per_socket_kb", Better::Lower),
];

const FANOUT: &[Figure] = &[
    CLEAN,
    fig("messages sent", "/sent", Better::Higher),
    fig("messages stored (acked)", "/persisted", Better::Higher),
    ERRORS,
    fig("deliveries", "/delivered", Better::Higher),
    fig("deliveries per second", "/deliveries_per_s", Better::Higher),
    fig("lost", "/lost", Better::Lower),
    fig("unsent (sender fell behind)", "/unsent", Better::Lower),
    fig("sockets closed", "/sockets_closed", Better::Lower),
    fig(
        "deliveries out of their sender's order",
        "/out_of_order",
        Better::Lower,
    ),
    fig(
        "acks out of their socket's order",
        "/acks_out_of_order",
        Better::Lower,
    ),
    fig(
        "stored out of their sender's order (history read back)",
        "/stored_order/out_of_order",
        Better::Lower,
    ),
    fig("ack p50 (ms)", "/persist_latency/p50_ms", Better::Lower),
    fig("ack p99 (ms)", "/persist_latency/p99_ms", Better::Lower),
    fig("delivery p50 (ms)", "/latency/p50_ms", Better::Lower),
    fig("delivery p99 (ms)", "/latency/p99_ms", Better::Lower),
    fig("delivery max (ms)", "/latency/max_ms", Better::Lower),
];

const DM: &[Figure] = &[
    CLEAN,
    fig("messages sent", "/sent", Better::Higher),
    fig("messages stored (acked)", "/persisted", Better::Higher),
    fig("messages delivered", "/delivered", Better::Higher),
    ERRORS,
    fig("stored per second", "/persisted_per_s", Better::Higher),
    fig("delivered per second", "/delivered_per_s", Better::Higher),
    fig("lost", "/lost", Better::Lower),
    fig("unsent (sender fell behind)", "/unsent", Better::Lower),
    fig("sockets closed", "/sockets_closed", Better::Lower),
    fig(
        "deliveries out of their sender's order",
        "/out_of_order",
        Better::Lower,
    ),
    fig(
        "acks out of their socket's order",
        "/acks_out_of_order",
        Better::Lower,
    ),
    fig("ack p50 (ms)", "/persist_latency/p50_ms", Better::Lower),
    fig("ack p99 (ms)", "/persist_latency/p99_ms", Better::Lower),
    fig(
        "delivery p50 (ms)",
        "/delivery_latency/p50_ms",
        Better::Lower,
    ),
    fig(
        "delivery p99 (ms)",
        "/delivery_latency/p99_ms",
        Better::Lower,
    ),
    fig(
        "delivery max (ms)",
        "/delivery_latency/max_ms",
        Better::Lower,
    ),
];

const HTTP: &[Figure] = &[
    CLEAN,
    ERRORS,
    fig("requests per second", "/req_per_s", Better::Higher),
    fig("p50 (ms)", "/latency/p50_ms", Better::Lower),
    fig("p99 (ms)", "/latency/p99_ms", Better::Lower),
    fig("max (ms)", "/latency/max_ms", Better::Lower),
];

const PGBENCH: &[Figure] = &[
    fig("rows (transactions) per second", "/tps", Better::Higher),
    fig("latency average (ms)", "/latency_avg_ms", Better::Lower),
    fig("failed transactions", "/failed", Better::Lower),
];

/// The modes in the order their tables appear, with a title and a line on
/// what the runs do.
const SECTIONS: &[(&str, &str, &str, &[Figure])] = &[
    (
        "idle",
        "Idle sockets",
        "WebSockets opened and held; the server's VmRSS is read before they open and after the hold.",
        IDLE,
    ),
    (
        "fanout",
        "Global messages to many receivers",
        "Senders post global messages over WebSocket at a fixed rate; latency is from the time each message was due to its arrival at each receiver, ack from due time to the sender's ack.",
        FANOUT,
    ),
    (
        "dm",
        "Direct messages",
        "Pairs of users exchange direct messages over WebSocket at a fixed total rate; ack is stored (due time to ack), delivery is due time to arrival at the recipient.",
        DM,
    ),
    (
        "http",
        "POST /api/messages",
        "Clients post global messages back to back, one request at a time each.",
        HTTP,
    ),
    (
        "pgbench",
        "pgbench: one-row INSERT ceiling of the messages table",
        "One row per transaction into the same table of the same scratch database, as the server writes a global message; \"plain\" has the ordering trigger disabled and draws seq in the statement.",
        PGBENCH,
    ),
];

/// The verdict on one target for one run.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Met,
    NotMet,
    /// No threshold: the figures are reported.
    Reported,
    /// The run used other parameters than the target's (a quick profile).
    NotComparable(String),
    NotRun,
}

impl Verdict {
    fn text(&self) -> String {
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
struct Target {
    text: &'static str,
    run: &'static str,
    /// Key figures in a few words, and the verdict.
    judge: fn(&Run) -> (String, Verdict),
}

const TARGETS: &[Target] = &[
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
        text: "Issue 18: one connection sending 2,000 msg/s on PostgreSQL: all stored and acked in the order sent, ack p99 < 50 ms",
        run: "sender.postgres",
        judge: judge_sender,
    },
    Target {
        text: "Issue 18: global messages from 4 senders at 500 msg/s in all to 1,000 receivers on PostgreSQL: 0 lost, delivery p99 < 50 ms",
        run: "fanout.postgres.s4",
        judge: judge_fanout,
    },
    Target {
        text: "Issue 18: 50 pairs at 10,000 direct msg/s in all (100/s per sender) on PostgreSQL: 0 lost, delivery p99 < 25 ms",
        run: "dm.postgres.p50",
        judge: judge_dm,
    },
    Target {
        text: "POST /api/messages on PostgreSQL, 64 clients: req/s and p99",
        run: "http.postgres.c64",
        judge: judge_http,
    },
];

fn count(run: &Run, pointer: &str) -> u64 {
    run.result
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn is_ok(run: &Run) -> bool {
    run.result
        .get("ok")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn judge_idle(run: &Run) -> (String, Verdict) {
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

fn judge_fanout(run: &Run) -> (String, Verdict) {
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
fn judge_sender(run: &Run) -> (String, Verdict) {
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

fn judge_dm(run: &Run) -> (String, Verdict) {
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

fn judge_http(run: &Run) -> (String, Verdict) {
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

/// A count: thousands separators; fractions (there should be none) as for
/// [`decimal`].
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format_number(v, 0)
    } else {
        decimal(v)
    }
}

/// A measured figure: thousands separators, and fewer decimals the larger
/// it is (three significant digits are all these runs support).
fn decimal(v: f64) -> String {
    let abs = v.abs();
    let decimals = if abs >= 100.0 {
        0
    } else if abs >= 10.0 {
        1
    } else {
        2
    };
    format_number(v, decimals)
}

fn format_number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    // No "-0.00": a sign only when a digit shows it.
    let sign = if v < 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), decimal)
}

fn value(run: &Run, figure: &Figure) -> Option<String> {
    match figure.unit {
        // Integers in the JSON are counts; anything else was measured.
        Unit::Number => run.result.pointer(figure.pointer).and_then(|v| {
            if v.is_u64() || v.is_i64() {
                v.as_f64().map(number)
            } else {
                v.as_f64().map(decimal)
            }
        }),
        Unit::Mib => run.number(figure.pointer).map(|b| decimal(b / 1_048_576.0)),
        Unit::Flag => run
            .result
            .pointer(figure.pointer)
            .and_then(Value::as_bool)
            .map(|b| if b { "yes" } else { "**no**" }.to_owned()),
        Unit::Sum => run.sum(figure.pointer).map(|n| number(n as f64)),
    }
}

/// "+6.5 % (better)", "=", "–" when there is nothing to compare.
fn change(now: Option<f64>, before: Option<f64>, better: Better) -> String {
    let (Some(now), Some(before)) = (now, before) else {
        return "–".to_owned();
    };
    if now == before {
        return "=".to_owned();
    }
    let direction = match better {
        Better::Neither => "",
        Better::Higher if now > before => " (better)",
        Better::Lower if now < before => " (better)",
        _ => " (worse)",
    };
    if before == 0.0 {
        return format!("from 0{direction}");
    }
    let pct = (now - before) / before.abs() * 100.0;
    let sign = if pct >= 0.0 { "+" } else { "-" };
    format!("{sign}{:.1} %{direction}", pct.abs())
}

fn load(run: &Run) -> String {
    match (run.load_before, run.load_after) {
        (None, None) => "–".to_owned(),
        (before, after) => format!("{} → {}", load_one(before), load_one(after)),
    }
}

fn load_one(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"))
}

/// Markdown table cells must not contain a bare `|`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn describe(results: &Results) -> String {
    let mut out = format!(
        "{} from commit `{}`",
        if results.date.is_empty() {
            "an unknown date"
        } else {
            &results.date
        },
        if results.commit.is_empty() {
            "unknown"
        } else {
            short(&results.commit)
        }
    );
    if results.dirty {
        out.push_str(" (working tree with uncommitted changes)");
    }
    out
}

/// The generated section, markers excluded.
pub fn render(current: &Results, previous: Option<&Results>) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; the results are ignored below.
    let _ = writeln!(md, "## Standard profile (generated)\n");
    let _ = writeln!(
        md,
        "Rewritten by every full run of `just bench` (`scripts/bench.sh`), from \
         `docs/bench/latest.json` compared with `docs/bench/previous.json`; \
         edit the script or `chat-bench report`, not this section."
    );
    let _ = writeln!(md);
    let profile = if current.profile.is_empty() {
        "standard"
    } else {
        &current.profile
    };
    let _ = writeln!(
        md,
        "- This run (`{profile}` profile): {}.",
        describe(current)
    );
    match previous {
        Some(p) => {
            let _ = writeln!(md, "- Previous run: {}.", describe(p));
        }
        None => {
            let _ = writeln!(md, "- Previous run: none (nothing to compare with).");
        }
    }
    let m = &current.machine;
    let _ = writeln!(
        md,
        "- Machine: {} CPUs ({}), {} memory, {}, PostgreSQL {}; the server, \
         the load generator and PostgreSQL share it, so the 1-minute load \
         average before → after each run is given with its figures.",
        m.nproc.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        or_unknown(&m.cpu),
        or_unknown(&m.memory),
        or_unknown(&m.kernel),
        or_unknown(&m.postgres)
    );
    let _ = writeln!(md);

    render_targets(&mut md, current, previous);
    for (mode, title, what, figures) in SECTIONS {
        render_mode(&mut md, current, previous, mode, title, what, figures);
    }
    render_commands(&mut md, current);
    md
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

fn render_targets(md: &mut String, current: &Results, previous: Option<&Results>) {
    let _ = writeln!(md, "### Targets\n");
    let _ = writeln!(
        md,
        "| target | run | this run | verdict | previous run | previous verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for target in TARGETS {
        let judged = |results: Option<&Results>| match results.and_then(|r| r.run(target.run)) {
            Some(run) => {
                let (summary, verdict) = (target.judge)(run);
                (summary, verdict.text())
            }
            None => ("–".to_owned(), Verdict::NotRun.text()),
        };
        let label = current
            .run(target.run)
            .or_else(|| previous.and_then(|p| p.run(target.run)))
            .map_or(target.run, Run::label);
        let (now, now_verdict) = judged(Some(current));
        let (before, before_verdict) = if previous.is_some() {
            judged(previous)
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            cell(target.text),
            cell(label),
            cell(&now),
            now_verdict,
            cell(&before),
            before_verdict
        );
    }
    let _ = writeln!(md);
}

fn render_mode(
    md: &mut String,
    current: &Results,
    previous: Option<&Results>,
    mode: &str,
    title: &str,
    what: &str,
    figures: &[Figure],
) {
    let runs: Vec<&Run> = current.runs.iter().filter(|r| r.mode() == mode).collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(md, "### {title}\n");
    let _ = writeln!(md, "{what}\n");
    let _ = writeln!(md, "| run | figure | this run | previous | change |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for run in runs {
        let before = previous.and_then(|p| p.run(&run.id));
        let mut first = true;
        let mut row = |figure: &str, now: String, was: String, delta: String| {
            let name = if first {
                cell(run.label())
            } else {
                String::new()
            };
            first = false;
            let _ = writeln!(md, "| {name} | {figure} | {now} | {was} | {delta} |");
        };
        for figure in figures {
            let now = value(run, figure);
            let was = before.and_then(|b| value(b, figure));
            if now.is_none() && was.is_none() {
                continue;
            }
            let delta = match figure.unit {
                Unit::Flag => "–".to_owned(),
                Unit::Number | Unit::Mib | Unit::Sum => change(
                    run.figure(figure),
                    before.and_then(|b| b.figure(figure)),
                    figure.better,
                ),
            };
            row(
                figure.label,
                now.unwrap_or_else(|| "–".to_owned()),
                was.unwrap_or_else(|| "–".to_owned()),
                delta,
            );
        }
        row(
            "load average, 1 min (before → after)",
            load(run),
            before.map_or_else(|| "–".to_owned(), load),
            "–".to_owned(),
        );
    }
    let _ = writeln!(md);
}

fn render_commands(md: &mut String, current: &Results) {
    let _ = writeln!(md, "### Commands\n");
    let _ = writeln!(
        md,
        "As `{}` ran them, each chat-bench run against a fresh server; \
         each run's JSON line is kept whole in the results file \
         (`docs/bench/latest.json`).\n",
        if current.command.is_empty() {
            "scripts/bench.sh"
        } else {
            &current.command
        }
    );
    let _ = writeln!(md, "```sh");
    for (store, server) in &current.servers {
        let _ = writeln!(md, "# server, {store} store\n{server}");
    }
    if !current.setup.is_empty() {
        let _ = writeln!(md, "# setup");
        for line in &current.setup {
            let _ = writeln!(md, "{line}");
        }
    }
    let _ = writeln!(md, "# runs, in order");
    for run in &current.runs {
        let _ = writeln!(md, "{}", run.command);
    }
    let _ = writeln!(md, "```");
}

/// Replaces what lies between [`BEGIN`] and [`END`] in `doc` with
/// `section`, leaving everything else as it was.
pub fn splice(doc: &str, section: &str) -> BenchResult<String> {
    let start = doc
        .find(BEGIN)
        .ok_or_else(|| BenchError::new(format!("no {BEGIN} line in the document")))?;
    let end = doc
        .find(END)
        .ok_or_else(|| BenchError::new(format!("no {END} line in the document")))?;
    if end < start {
        return Err(BenchError::new(format!("{END} comes before {BEGIN}")));
    }
    let mut out = String::with_capacity(doc.len() + section.len());
    out.push_str(&doc[..start]);
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(section);
    if !section.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&doc[end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn results(date: &str, idle_kb: f64, fanout_p99: f64, dm_p99: f64, req_per_s: f64) -> Results {
        let value = json!({
            "profile": "standard",
            "date": date,
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "dirty": true,
            "command": "scripts/bench.sh",
            "machine": {"nproc": 2, "cpu": "AMD EPYC", "memory": "23 GiB",
                        "kernel": "Linux 6.18", "postgres": "15.20"},
            "servers": {"memory": "PORT=1 chat-server"},
            "setup": ["psql -c 'CREATE DATABASE x'"],
            "runs": [
                {"id": "idle", "label": "19,000 sockets", "store": "memory",
                 "command": "chat-bench idle --connections 19000",
                 "load_before": 1.5, "load_after": 2.25,
                 "result": {"mode": "idle", "ok": true, "connections": 19000,
                            "connected": 19000, "connect_rate_per_s": 7512.3,
                            "connect_latency": {"p99_ms": 12.5},
                            "rss_before_bytes": 9_437_184u64,
                            "rss_after_bytes": 200_000_000u64,
                            "rss_per_socket_kb": idle_kb}},
                {"id": "fanout.memory", "label": "memory store",
                 "command": "chat-bench fanout --receivers 1000 --rate 500",
                 "result": {"mode": "fanout", "ok": true, "receivers": 1000,
                            "rate_target": 500, "lost": 0, "unsent": 0, "planned": 5000,
                            "persisted": 5000, "delivered": 5_000_000u64,
                            "deliveries_per_s": 499_000.0,
                            "latency": {"p50_ms": 3.0, "p99_ms": fanout_p99, "max_ms": 80.0}}},
                {"id": "dm.postgres", "label": "PostgreSQL",
                 "command": "chat-bench dm --rate 10000",
                 "result": {"mode": "dm", "ok": true, "rate_target": 10000,
                            "planned": 100_000, "persisted": 100_000, "delivered": 100_000,
                            "persisted_per_s": 9_990.1, "delivered_per_s": 9_985.0,
                            "delivery_latency": {"p99_ms": dm_p99}}},
                {"id": "http.postgres.c64", "label": "PostgreSQL, 64 clients",
                 "command": "chat-bench http --clients 64",
                 "result": {"mode": "http", "ok": true, "clients": 64,
                            "req_per_s": req_per_s, "latency": {"p50_ms": 5.5, "p99_ms": 10.7}}},
                {"id": "pgbench.trigger.c1", "label": "ordering trigger, 1 client",
                 "command": "pgbench -c 1 -T 10 -f insert.sql db",
                 "result": {"mode": "pgbench", "ok": true, "tps": 1937.4,
                            "latency_avg_ms": 0.516, "failed": 0}}
            ]
        });
        serde_json::from_value(value).expect("a valid results file")
    }

    #[test]
    fn numbers_are_grouped_and_rounded_by_size() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(19_000.0), "19,000");
        assert_eq!(number(1_234_567.8), "1,234,568");
        assert_eq!(number(7.9123), "7.91");
        assert_eq!(decimal(40.0), "40.0");
        assert_eq!(decimal(8.0), "8.00");
        assert_eq!(decimal(12.34), "12.3");
        assert_eq!(decimal(499_000.0), "499,000");
        assert_eq!(number(-1_500.0), "-1,500");
        assert_eq!(decimal(-0.001), "0.00");
        assert_eq!(decimal(f64::NAN), "–");
    }

    #[test]
    fn changes_say_which_way_is_better() {
        assert_eq!(
            change(Some(110.0), Some(100.0), Better::Higher),
            "+10.0 % (better)"
        );
        assert_eq!(
            change(Some(110.0), Some(100.0), Better::Lower),
            "+10.0 % (worse)"
        );
        assert_eq!(
            change(Some(90.0), Some(100.0), Better::Lower),
            "-10.0 % (better)"
        );
        assert_eq!(change(Some(5.0), Some(5.0), Better::Lower), "=");
        assert_eq!(
            change(Some(3.0), Some(0.0), Better::Lower),
            "from 0 (worse)"
        );
        assert_eq!(change(Some(3.0), None, Better::Lower), "–");
    }

    #[test]
    fn targets_are_judged_on_the_runs_figures() {
        let good = results("2026-11-25T10:00:00Z", 7.5, 40.0, 20.0, 11_000.0);
        let md = render(&good, None);
        assert!(
            md.contains("| Memory per idle socket at 19,000 sockets ≤ 8 KiB | 19,000 sockets | 7.50 KiB per socket, 19,000 of 19,000 sockets open | **met** | – | – |"),
            "{md}"
        );
        assert!(md.contains("| memory store | 5,000 of 5,000 stored, lost 0, unsent 0, delivery p99 40.0 ms, 499,000 deliveries/s | **met** |"), "{md}");
        assert!(
            md.contains("100,000 of 100,000 delivered), delivery p99 20.0 ms | **met** |"),
            "{md}"
        );
        assert!(
            md.contains("| 11,000 req/s, p99 10.7 ms | reported (no threshold) |"),
            "{md}"
        );
        // Runs the results file does not hold.
        assert!(md.contains("| fanout.postgres | – | not run |"), "{md}");

        let bad = results("2026-11-26T10:00:00Z", 19.3, 60.0, 30.0, 9_000.0);
        let md = render(&bad, Some(&good));
        assert!(md.contains("19.3 KiB per socket, 19,000 of 19,000 sockets open | **not met** | 7.50 KiB per socket, 19,000 of 19,000 sockets open | **met** |"), "{md}");
        assert!(
            md.contains("delivery p99 60.0 ms, 499,000 deliveries/s | **not met** |"),
            "{md}"
        );
        assert!(md.contains("delivery p99 30.0 ms | **not met** |"), "{md}");
    }

    #[test]
    fn a_run_with_other_parameters_is_not_comparable() {
        let mut quick = results("2026-11-25T10:00:00Z", 7.5, 40.0, 20.0, 11_000.0);
        quick.runs[0].result["connections"] = json!(2000);
        quick.runs[0].result["connected"] = json!(2000);
        quick.runs[1].result["receivers"] = json!(200);
        quick.runs[2].result["rate_target"] = json!(1000);
        let md = render(&quick, None);
        assert!(
            md.contains("| not comparable (ran 2,000 sockets) |"),
            "{md}"
        );
        assert!(
            md.contains("| not comparable (ran 200 receivers at 500 msg/s) |"),
            "{md}"
        );
        assert!(
            md.contains("| not comparable (offered 1,000 msg/s) |"),
            "{md}"
        );
    }

    #[test]
    fn the_fast_sender_target_needs_every_message_in_order_and_acks_in_time() {
        let run = |result: Value| Run {
            id: "sender.postgres".into(),
            result,
            ..Run::default()
        };
        let good = json!({"mode": "fanout", "ok": true, "senders": 1, "rate_target": 2000,
                          "planned": 20_000, "persisted": 20_000, "out_of_order": 0,
                          "acks_out_of_order": 0,
                          "stored_order": {"found": 20_000, "out_of_order": 0},
                          "persist_latency": {"p99_ms": 12.5}});
        let (summary, verdict) = judge_sender(&run(good.clone()));
        assert_eq!(verdict, Verdict::Met, "{summary}");
        assert_eq!(
            summary,
            "20,000 of 20,000 stored (20,000 found in the history, 0 out of order there), \
             0 acks or deliveries out of order, ack p99 12.5 ms"
        );
        for (pointer, bad) in [
            ("/acks_out_of_order", json!(1)),
            ("/stored_order/out_of_order", json!(2)),
            ("/stored_order/found", json!(19_999)),
            ("/persisted", json!(19_000)),
            ("/persist_latency/p99_ms", json!(50.0)),
        ] {
            let mut result = good.clone();
            *result.pointer_mut(pointer).expect("a field") = bad;
            assert_eq!(judge_sender(&run(result)).1, Verdict::NotMet, "{pointer}");
        }
        let mut unchecked = good.clone();
        unchecked["stored_order"] = Value::Null;
        assert_eq!(judge_sender(&run(unchecked)).1, Verdict::NotMet);
        let mut slower = good;
        slower["rate_target"] = json!(500);
        assert!(matches!(
            judge_sender(&run(slower)).1,
            Verdict::NotComparable(_)
        ));
    }

    #[test]
    fn a_lost_message_fails_the_fanout_target_whatever_the_latency() {
        let mut r = results("d", 7.5, 10.0, 20.0, 1.0);
        r.runs[1].result["lost"] = json!(3);
        r.runs[1].result["ok"] = json!(false);
        let run = r.run("fanout.memory").expect("in the file");
        assert_eq!(judge_fanout(run).1, Verdict::NotMet);
    }

    #[test]
    fn unanswered_sends_fail_the_target_and_show_as_errors() {
        let before = results("d", 7.5, 10.0, 20.0, 1.0);
        let mut now = results("d", 7.5, 10.0, 20.0, 1.0);
        let fanout = &mut now.runs[1].result;
        fanout["ok"] = json!(false);
        fanout["persisted"] = json!(4_307);
        fanout["errors"] = json!({"unanswered": 693, "ws_error_frame": 2});
        let run = now.run("fanout.memory").expect("in the file");
        assert_eq!(judge_fanout(run).1, Verdict::NotMet);
        now.runs[3].result["errors"] = json!({"http_500": 2, "transport": 1});
        let md = render(&now, Some(&before));
        assert!(
            md.contains(
                "|  | errors (sends never answered, error frames, HTTP failures) | 695 | – | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "|  | errors (sends never answered, error frames, HTTP failures) | 3 | – | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| memory store | clean run (nothing failed or lost) | **no** | yes | – |"),
            "{md}"
        );
    }

    #[test]
    fn every_figure_is_compared_with_the_previous_run() {
        let before = results("2026-11-25T10:00:00Z", 8.0, 40.0, 20.0, 10_000.0);
        let now = results("2026-11-26T10:00:00Z", 7.0, 40.0, 20.0, 11_000.0);
        let md = render(&now, Some(&before));
        assert!(md.contains("- This run (`standard` profile): 2026-11-26T10:00:00Z from commit `0123456789` (working tree with uncommitted changes)."), "{md}");
        assert!(
            md.contains("- Previous run: 2026-11-25T10:00:00Z from commit `0123456789`"),
            "{md}"
        );
        assert!(
            md.contains(
                "- Machine: 2 CPUs (AMD EPYC), 23 GiB memory, Linux 6.18, PostgreSQL 15.20;"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 19,000 sockets | clean run (nothing failed or lost) | yes | yes | – |"),
            "{md}"
        );
        assert!(
            md.contains("|  | RSS per socket (KiB) | 7.00 | 8.00 | -12.5 % (better) |"),
            "{md}"
        );
        assert!(
            md.contains("|  | server RSS before (MiB) | 9.00 | 9.00 | = |"),
            "{md}"
        );
        assert!(
            md.contains(
                "|  | load average, 1 min (before → after) | 1.50 → 2.25 | 1.50 → 2.25 | – |"
            ),
            "{md}"
        );
        assert!(md.contains("| PostgreSQL, 64 clients | clean run (nothing failed or lost) | yes | yes | – |\n|  | requests per second | 11,000 | 10,000 | +10.0 % (better) |"), "{md}");
        assert!(md.contains("| ordering trigger, 1 client | rows (transactions) per second | 1,937 | 1,937 | = |"), "{md}");
        assert!(md.contains("### Commands"), "{md}");
        assert!(md.contains("# server, memory store\nPORT=1 chat-server\n# setup\npsql -c 'CREATE DATABASE x'\n# runs, in order\nchat-bench idle --connections 19000\n"), "{md}");
        // Sections of modes the file has no run of are left out.
        let sparse =
            Results::parse(r#"{"runs":[{"id":"h","result":{"mode":"http"}}]}"#).expect("parses");
        let md = render(&sparse, None);
        assert!(
            md.contains("### POST /api/messages") && !md.contains("### Idle sockets"),
            "{md}"
        );
    }

    #[test]
    fn older_files_with_missing_fields_still_render() {
        let sparse =
            Results::parse(r#"{"runs":[{"id":"idle","result":{"mode":"idle"}}]}"#).expect("parses");
        let md = render(&sparse, Some(&Results::default()));
        assert!(
            md.contains("- This run (`standard` profile): an unknown date from commit `unknown`."),
            "{md}"
        );
        assert!(
            md.contains("| idle | load average, 1 min (before → after) | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| – KiB per socket, 0 of 0 sockets open | not comparable (ran 0 sockets) |"
            ),
            "{md}"
        );
    }

    #[test]
    fn only_the_text_between_the_markers_is_replaced() {
        let doc =
            format!("# Benchmarks\n\nintro\n\n{BEGIN}\nold\ntable\n{END}\n\n## Analysis\nkept\n");
        let new = splice(&doc, "new section\n").expect("markers present");
        assert_eq!(
            new,
            format!("# Benchmarks\n\nintro\n\n{BEGIN}\nnew section\n{END}\n\n## Analysis\nkept\n")
        );
        // Splicing again with the same text changes nothing.
        assert_eq!(splice(&new, "new section\n").expect("markers present"), new);
        assert!(splice("# no markers\n", "x").is_err());
        assert!(splice(&format!("{END}\n{BEGIN}\n"), "x").is_err());
    }
}
