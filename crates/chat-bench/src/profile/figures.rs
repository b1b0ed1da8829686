//! The figures each section of the report shows, where each is read in
//! a run's JSON line, and which way it improves.

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Better {
    Higher,
    Lower,
    Neither,
}

/// How a figure is read from a run and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
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
pub(super) struct Figure {
    pub(super) label: &'static str,
    pub(super) pointer: &'static str,
    pub(super) unit: Unit,
    pub(super) better: Better,
}

pub(super) const fn fig(label: &'static str, pointer: &'static str, better: Better) -> Figure {
    Figure {
        label,
        pointer,
        unit: Unit::Number,
        better,
    }
}

pub(super) const CLEAN: Figure = Figure {
    label: "clean run (nothing failed or lost)",
    pointer: "/ok",
    unit: Unit::Flag,
    better: Better::Neither,
};

pub(super) const ERRORS: Figure = Figure {
    label: "errors (sends never answered, error frames, HTTP failures)",
    pointer: "/errors",
    unit: Unit::Sum,
    better: Better::Lower,
};

pub(super) const IDLE: &[Figure] = &[
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

pub(super) const FANOUT: &[Figure] = &[
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

pub(super) const DM: &[Figure] = &[
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
    fig(
        "changes (edits, reactions) sent",
        "/changes/sent",
        Better::Higher,
    ),
    fig("changes applied (2xx)", "/changes/stored", Better::Higher),
    fig(
        "changes unsent (sender fell behind)",
        "/changes/unsent",
        Better::Lower,
    ),
    fig(
        "updates received (message_updated)",
        "/changes/delivered",
        Better::Higher,
    ),
    fig("updates lost", "/changes/lost", Better::Lower),
    fig(
        "updates not showing their change",
        "/changes/mismatched",
        Better::Lower,
    ),
    fig(
        "updates with no change pending",
        "/changes/unexpected",
        Better::Lower,
    ),
    fig(
        "messages and changes stored per second",
        "/changes/operations_per_s",
        Better::Higher,
    ),
    fig(
        "change applied p99 (ms)",
        "/changes/persist_latency/p99_ms",
        Better::Lower,
    ),
    fig(
        "update delivery p50 (ms)",
        "/changes/delivery_latency/p50_ms",
        Better::Lower,
    ),
    fig(
        "update delivery p99 (ms)",
        "/changes/delivery_latency/p99_ms",
        Better::Lower,
    ),
];

pub(super) const HTTP: &[Figure] = &[
    CLEAN,
    ERRORS,
    fig("requests per second", "/req_per_s", Better::Higher),
    fig("p50 (ms)", "/latency/p50_ms", Better::Lower),
    fig("p99 (ms)", "/latency/p99_ms", Better::Lower),
    fig("max (ms)", "/latency/max_ms", Better::Lower),
];

pub(super) const PGBENCH: &[Figure] = &[
    fig("rows (transactions) per second", "/tps", Better::Higher),
    fig("latency average (ms)", "/latency_avg_ms", Better::Lower),
    fig("failed transactions", "/failed", Better::Lower),
];

/// The modes in the order their tables appear, with a title and a line on
/// what the runs do.
pub(super) const SECTIONS: &[(&str, &str, &str, &[Figure])] = &[
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
        "Pairs of users exchange direct messages over WebSocket at a fixed total rate; ack is stored (due time to ack), delivery is due time to arrival at the recipient. In the run with edits and reactions, that share of the operations change the sender's own latest messages over HTTP instead (edit, react, take the reaction back, in turn), and the recipient must get each as a `message_updated` frame; update delivery is due time to that frame.",
        DM,
    ),
    (
        "http",
        "POST /api/messages",
        "Clients post global messages back to back, one request at a time each.",
        HTTP,
    ),
    (
        "conversations",
        "GET /api/conversations: a user in 1,000 conversations, 1,000,000 messages",
        "Clients of one user read its conversation list (50 per page, unread counts) back to back, one request at a time each, on a database seeded by scripts/bench/read-state-seed.sql.",
        HTTP,
    ),
    (
        "pgbench",
        "pgbench: one-row INSERT ceiling of the messages table",
        "One row per transaction into the same table of the same scratch database, as the server writes a global message; \"plain\" has the ordering trigger disabled and draws seq in the statement.",
        PGBENCH,
    ),
];
