//! Command-line interface: one subcommand per mode, common options global.
//! Every number has a range so that no run is unbounded by accident.

use clap::{value_parser, Args, Parser, Subcommand, ValueEnum};

use crate::net::AuthMode;

/// Load generator for the chat service (loopback targets only).
#[derive(Debug, Parser)]
#[command(
    name = "chat-bench",
    version,
    about,
    long_about = None,
    after_help = "Start the server with AUTH_RATE_LIMIT=0 WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 (and \
                  BCRYPT_COST=4) so that neither sign-ins, sends nor connections are limited.\n\
                  Output: human text on stderr; one JSON line on stdout, starting with {\"mode\":."
)]
pub struct Cli {
    /// Options every mode shares.
    #[command(flatten)]
    pub common: Common,
    /// What to measure.
    #[command(subcommand)]
    pub mode: Mode,
}

/// Options every mode shares.
#[derive(Debug, Args)]
pub struct Common {
    /// Base URL of the server; its host must be loopback (127.0.0.0/8,
    /// localhost or ::1).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How WebSockets authenticate.
    #[arg(long, global = true, value_enum, default_value_t = AuthMode::Bearer)]
    pub auth: AuthMode,
    /// Registrations and logins in flight at once.
    #[arg(long, global = true, default_value_t = 8, value_parser = value_parser!(u64).range(1..=256))]
    pub register_concurrency: u64,
    /// WebSocket handshakes in flight at once.
    #[arg(long, global = true, default_value_t = 64, value_parser = value_parser!(u64).range(1..=4096))]
    pub connect_concurrency: u64,
    /// Connections per client source address before moving to the next one
    /// (127.0.0.2, 127.0.0.3, ...); Linux has ~28,000 ephemeral ports.
    #[arg(long, global = true, default_value_t = 25_000, value_parser = value_parser!(u64).range(1..=28_000))]
    pub per_source: u64,
    /// Seconds allowed for one WebSocket to open.
    #[arg(long, global = true, default_value_t = 10, value_parser = value_parser!(u64).range(1..=300))]
    pub connect_timeout: u64,
    /// Seconds allowed for the whole setup (users and sockets).
    #[arg(long, global = true, default_value_t = 600, value_parser = value_parser!(u64).range(1..=7200))]
    pub setup_timeout: u64,
    /// Run id in usernames and message contents (default: random).
    #[arg(long, global = true, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Hide progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Open N WebSockets and hold them: server memory per socket, connect rate.
    Idle(IdleArgs),
    /// Global messages from S senders at R msg/s to N receivers: deliveries/s,
    /// lost ratio, latency.
    Fanout(FanoutArgs),
    /// Direct messages within P pairs at R msg/s in all: persisted and
    /// delivered per second, latency.
    Dm(DmArgs),
    /// C clients POSTing /api/messages as fast as they can: req/s, latency.
    Http(HttpArgs),
    /// C clients of one existing user GETting its conversation list (with
    /// unread counts) as fast as they can: req/s, latency. The user and its
    /// data come from elsewhere (scripts/bench/read-state-seed.sql).
    Conversations(ConversationsArgs),
    /// W WebSocket writers fill one room while a forward HTTP pager and R
    /// clients reconnecting with `?since=` follow it: skipped and repeated
    /// messages (both must be 0), throughput.
    History(HistoryArgs),
    /// N users reconnect at once (--connect-concurrency handshakes in
    /// flight), each following K others' presence: sockets closed, presence
    /// frames and bytes per socket, the wave's duration, and whether every
    /// view ends right.
    Storm(StormArgs),
    /// Render a results file of scripts/bench.sh (the standard profile) as
    /// the generated section of docs/benchmarks.md, compared with a previous
    /// one; no server is contacted.
    Report(ReportArgs),
}

/// `idle` options.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// WebSockets to open.
    #[arg(long, default_value_t = 1_000, value_parser = value_parser!(u64).range(1..=200_000))]
    pub connections: u64,
    /// Users the sockets are shared among (default min(connections, 100)).
    #[arg(long, value_parser = value_parser!(u64).range(1..=100_000))]
    pub users: Option<u64>,
    /// Server process to read VmRSS from (default: whoever listens on the
    /// port, found through /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds to hold the sockets open before measuring memory again.
    #[arg(long, default_value_t = 2, value_parser = value_parser!(u64).range(0..=3600))]
    pub hold: u64,
}

/// `storm` options.
#[derive(Debug, Args)]
pub struct StormArgs {
    /// Users, one socket each, all connecting at once.
    #[arg(long, default_value_t = 1_000, value_parser = value_parser!(u64).range(1..=100_000))]
    pub users: u64,
    /// Other users each one follows the presence of.
    #[arg(long, default_value_t = 50, value_parser = value_parser!(u64).range(0..=1_000))]
    pub follow: u64,
    /// Seconds allowed after the wave for every view to be right.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=600))]
    pub settle: u64,
    /// Seconds the sockets stay open after that, still counting frames.
    #[arg(long, default_value_t = 1, value_parser = value_parser!(u64).range(0..=600))]
    pub hold: u64,
    /// Another instance of the same deployment (loopback): every other
    /// socket connects there, so presence crosses instances.
    #[arg(long)]
    pub also_url: Option<String>,
}

/// How messages are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// `{"type":"message",...,"client_id"}` frames; stored when acked.
    Ws,
    /// `POST /api/messages`; stored when 201.
    Http,
}

impl Via {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Via::Ws => "ws",
            Via::Http => "http",
        }
    }
}

/// `fanout` options.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Receiving sockets.
    #[arg(long, default_value_t = 100, value_parser = value_parser!(u64).range(1..=100_000))]
    pub receivers: u64,
    /// Sending users, one socket (or HTTP client) each.
    #[arg(long, default_value_t = 1, value_parser = value_parser!(u64).range(1..=1_000))]
    pub senders: u64,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Send over WebSocket frames or HTTP POSTs.
    #[arg(long, value_enum, default_value_t = Via::Ws)]
    pub via: Via,
    /// Users the receiving sockets are shared among (default
    /// min(receivers, 100)).
    #[arg(long, value_parser = value_parser!(u64).range(1..=100_000))]
    pub users: Option<u64>,
    /// Seconds to wait after sending for late deliveries.
    #[arg(long, default_value_t = 5, value_parser = value_parser!(u64).range(0..=300))]
    pub drain: u64,
    /// Open the receiving sockets on this server instead of --url: another
    /// instance of the same deployment (same database and JWT secret,
    /// REDIS_URL set), to measure delivery across instances. Repeat it to
    /// spread the receivers round-robin over several instances. Loopback
    /// only, like --url.
    #[arg(long = "receiver-url", value_name = "URL")]
    pub receiver_urls: Vec<String>,
    /// After the run, read the run's messages back from the history
    /// (`GET /api/messages`, newest page first) and count those stored
    /// after a later message of the same sender (`stored_out_of_order`).
    #[arg(long)]
    pub check_stored_order: bool,
}

/// `dm` options.
#[derive(Debug, Args)]
pub struct DmArgs {
    /// Sender/recipient pairs, one user and one socket each.
    #[arg(long, default_value_t = 100, value_parser = value_parser!(u64).range(1..=50_000))]
    pub pairs: u64,
    /// Messages per second, all pairs together.
    #[arg(long, default_value_t = 1_000, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Send over WebSocket frames or HTTP POSTs.
    #[arg(long, value_enum, default_value_t = Via::Ws)]
    pub via: Via,
    /// Seconds to wait after sending for late acks and deliveries.
    #[arg(long, default_value_t = 5, value_parser = value_parser!(u64).range(0..=300))]
    pub drain: u64,
    /// Percent of each sender's operations that change its own latest
    /// messages instead of sending a new one, over HTTP: edits, reactions
    /// added and reactions taken back, in turn. The recipient must get each
    /// as a `message_updated` frame. WebSocket senders only.
    #[arg(long, default_value_t = 0, value_parser = value_parser!(u64).range(0..=50))]
    pub changes: u64,
}

/// `http` options.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Concurrent clients, each one request at a time.
    #[arg(long, default_value_t = 16, value_parser = value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Users the clients are shared among (default min(clients, 100)).
    #[arg(long, value_parser = value_parser!(u64).range(1..=100_000))]
    pub users: Option<u64>,
}

/// `conversations` options.
#[derive(Debug, Args)]
pub struct ConversationsArgs {
    /// The existing user whose list is read (logged in, not registered).
    #[arg(long)]
    pub user: String,
    /// Its password.
    #[arg(long)]
    pub password: String,
    /// Concurrent clients, each one request at a time, all as that user.
    #[arg(long, default_value_t = 8, value_parser = value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Seconds of requests.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// `?limit=` of each request (SPEC: at most 200).
    #[arg(long, default_value_t = 50, value_parser = value_parser!(u64).range(1..=200))]
    pub limit: u64,
}

/// `history` options.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// WebSocket writers, one user and one socket each, all into one room.
    #[arg(long, default_value_t = 8, value_parser = value_parser!(u64).range(1..=1_000))]
    pub writers: u64,
    /// Messages per writer.
    #[arg(long, default_value_t = 5_000, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub messages: u64,
    /// Clients that follow the room over WebSocket, disconnecting and
    /// reconnecting with `?since=<last message received>` again and again.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(0..=10_000))]
    pub reconnectors: u64,
    /// Messages a writer may have sent and not yet seen acknowledged.
    #[arg(long, default_value_t = 8, value_parser = value_parser!(u64).range(1..=1_000))]
    pub window: u64,
    /// Page size of the forward HTTP pager (`?after=<last id>&limit=`).
    #[arg(long, default_value_t = 50, value_parser = value_parser!(u64).range(1..=200))]
    pub page_limit: u64,
    /// Longest a reconnecting client stays connected, in milliseconds (each
    /// connection lasts a random time up to this, or up to 200 messages).
    #[arg(long, default_value_t = 50, value_parser = value_parser!(u64).range(1..=60_000))]
    pub max_connected_ms: u64,
    /// Longest pause before a reconnect, in milliseconds (random up to
    /// this).
    #[arg(long, default_value_t = 20, value_parser = value_parser!(u64).range(0..=60_000))]
    pub max_away_ms: u64,
    /// Seconds the whole run may take before it is abandoned.
    #[arg(long, default_value_t = 900, value_parser = value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

/// `report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results file of this run (docs/bench/latest.json).
    #[arg(long, value_name = "FILE")]
    pub current: std::path::PathBuf,
    /// The results file to compare with (docs/bench/previous.json).
    #[arg(long, value_name = "FILE")]
    pub previous: Option<std::path::PathBuf>,
    /// Replace the text between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->` in this file instead of printing the section.
    #[arg(long, value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
}

/// A run id: 1-12 lowercase letters or digits, so usernames stay valid.
fn parse_run_id(raw: &str) -> Result<String, String> {
    let ok = (1..=12).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("1 to 12 lowercase letters or digits".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_interface_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_options_go_before_or_after_the_mode() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "fanout",
            "--receivers",
            "20",
            "--url",
            "http://127.0.0.1:18080",
        ])
        .expect("valid");
        assert_eq!(cli.common.url, "http://127.0.0.1:18080");
        let Mode::Fanout(args) = cli.mode else {
            panic!("fanout expected");
        };
        assert_eq!((args.receivers, args.senders, args.via), (20, 1, Via::Ws));
    }

    #[test]
    fn receiver_urls_repeat() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "fanout",
            "--receiver-url",
            "http://127.0.0.1:18082",
            "--receiver-url",
            "http://127.0.0.1:18081",
        ])
        .expect("valid");
        let Mode::Fanout(args) = cli.mode else {
            panic!("fanout expected");
        };
        assert_eq!(
            args.receiver_urls,
            ["http://127.0.0.1:18082", "http://127.0.0.1:18081"]
        );
    }

    #[test]
    fn report_needs_only_files() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "report",
            "--current",
            "latest.json",
            "--write",
            "benchmarks.md",
        ])
        .expect("valid");
        let Mode::Report(args) = cli.mode else {
            panic!("report expected");
        };
        assert_eq!(args.current, std::path::Path::new("latest.json"));
        assert_eq!(args.previous, None);
        assert!(Cli::try_parse_from(["chat-bench", "report"]).is_err());
    }

    #[test]
    fn conversations_name_an_existing_user() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "conversations",
            "--user",
            "user0000",
            "--password",
            "correct horse battery",
        ])
        .expect("valid");
        let Mode::Conversations(args) = cli.mode else {
            panic!("conversations expected");
        };
        assert_eq!(
            (args.user.as_str(), args.clients, args.limit),
            ("user0000", 8, 50)
        );
        assert!(Cli::try_parse_from(["chat-bench", "conversations", "--password", "x"]).is_err());
        assert!(Cli::try_parse_from([
            "chat-bench",
            "conversations",
            "--user",
            "u",
            "--password",
            "p",
            "--limit",
            "201"
        ])
        .is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for argv in [
            &["chat-bench", "idle", "--connections", "0"][..],
            &["chat-bench", "http", "--duration", "100000"],
            &["chat-bench", "--run-id", "Has_Upper", "http"],
            &["chat-bench", "--run-id", "thirteenchars", "http"],
            &["chat-bench", "dm", "--changes", "51"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
