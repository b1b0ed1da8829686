//! `chat-bench`: a load generator for the chat service.
//!
//! It is a pure client of the wire API in SPEC.md (HTTP + WebSocket), so it
//! measures any server that speaks it. It only talks to loopback
//! (127.0.0.0/8, `localhost`, `[::1]`); every loop is bounded in count and
//! in time. Human text and progress bars go to stderr; stdout gets exactly
//! one line, a JSON object starting with `{"mode":` that holds every figure
//! (`chat-bench ... | grep '^{"mode":'`); `report` alone prints markdown
//! instead (it renders results, it measures nothing). The exit code is 0
//! when the run finished (check the JSON's `"ok"`: true when nothing failed
//! or was lost), 1 when it could not be run, 2 for bad arguments.
//!
//! # Running the server for a benchmark
//!
//! Registration is rate limited per client address (AUTH_RATE_LIMIT,
//! default 20/min) and every benchmark user is registered from 127.0.0.1;
//! WebSocket frames are rate limited per connection (WEBSOCKET_RATE_LIMIT,
//! default 10/s), messages per user (MESSAGE_RATE_LIMIT, 10/s) and
//! connections per user (WEBSOCKET_MAX_CONNECTIONS_PER_USER, 16). Start
//! the server with these limits off and a cheap bcrypt cost, and build
//! both sides with `--release` for real figures:
//!
//! ```text
//! PORT=8080 BCRYPT_COST=4 AUTH_RATE_LIMIT=0 WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 \
//!     cargo run --release -p chat-server
//! cargo run --release -p chat-bench -- fanout --receivers 1000 --rate 500
//! ```
//!
//! chat-bench still waits out 429 answers to sign-ins (honouring
//! `Retry-After`, at most 30 times per request) if the limit is on, but
//! setup then takes minutes; WebSocket sends refused as `rate_limited` are
//! counted as errors, and the summary says which variable to set.
//!
//! # Modes
//!
//! ```text
//! # 10,000 idle sockets over 100 users: server RSS per socket, connect rate.
//! chat-bench idle --connections 10000
//! chat-bench idle --connections 19000 --users 100 --server-pid 4242 --hold 5
//!
//! # 1,000 receivers, 2 senders, 500 global msg/s for 10 s over WebSocket
//! # (or --via http): deliveries/s, lost ratio, latency p50..max.
//! chat-bench fanout --receivers 1000 --senders 2 --rate 500 --duration 10
//! # The same across instances (REDIS_URL set on both): senders on --url,
//! # receivers on another instance (repeat the flag to spread them).
//! chat-bench --url http://127.0.0.1:18461 fanout --receiver-url http://127.0.0.1:18462
//!
//! # 500 pairs exchanging 10,000 direct msg/s in all: stored/s, delivered/s,
//! # latency of the ack (or 201) and of the delivery.
//! chat-bench dm --pairs 500 --rate 10000 --duration 10 --via ws
//! # The same with 10 % of the operations edits and reactions on the
//! # senders' own latest messages (over HTTP): each must reach the recipient
//! # as message_updated; update latency and losses beside the messages'.
//! chat-bench dm --pairs 500 --rate 10000 --duration 10 --changes 10
//!
//! # 64 clients POSTing /api/messages back to back for 10 s.
//! chat-bench http --clients 64 --duration 10
//!
//! # 8 clients of one seeded user reading its conversation list (unread
//! # counts) back to back for 10 s (scripts/bench.sh reads seeds the data).
//! chat-bench conversations --user user0000 --password '...' --clients 8
//!
//! # Gap-free history: 8 WebSocket writers x 5,000 messages into one room,
//! # a forward HTTP pager (?after=) and 10 clients reconnecting with
//! # ?since= all the while; counts skipped and repeated messages.
//! chat-bench history --writers 8 --messages 5000 --reconnectors 10
//!
//! # The generated section of docs/benchmarks.md from scripts/bench.sh's
//! # results files (no server involved).
//! chat-bench report --current docs/bench/latest.json \
//!     --previous docs/bench/previous.json --write docs/benchmarks.md
//!
//! # Common options go before or after the mode:
//! chat-bench --url http://127.0.0.1:18080 --auth cookie --no-progress fanout
//! ```
//!
//! # What is measured, and how
//!
//! * Users are `b<run>_<role><n>` with a random run id (`--run-id` to fix
//!   it), registered `--register-concurrency` at a time; many sockets may
//!   share a user (SPEC lets a user hold many connections).
//! * A socket counts as open once the server's `{"type":"connection"}`
//!   frame has arrived.
//! * Message contents are `bench:<run>:<seq>:<unix_nanos>`, where the time
//!   is when the message was *due* by the schedule (`seq / rate` after the
//!   start), not when the sender got round to it: a sender that falls
//!   behind shows as latency rather than hiding it (coordinated omission).
//! * WebSocket sends carry `client_id = seq`; the ack is "stored". Over HTTP
//!   a 2xx is "stored". Expected deliveries are stored messages × the
//!   sockets meant to get them; each receiver keeps a bitset of what it saw,
//!   so losses, duplicates and misdirected messages are told apart.
//! * After sending, the run waits up to `--drain` seconds for acks and
//!   deliveries still in flight. `lost` counts *stored* messages that did
//!   not arrive; a message the server never answered (no ack, no error)
//!   is counted in `errors.unanswered`, and one the schedule could not send
//!   in time (the run gives up 5 s after its last due time) in `unsent`.
//!   Either makes `ok` false.
//! * Latencies go to HDR histograms (1 µs to 1 h, 3 significant digits),
//!   reported in milliseconds as p50/p90/p99/p99.9/max.
//! * `idle` reads the server's VmRSS from `/proc/<pid>/status` before opening
//!   the sockets and after holding them; without `--server-pid` it finds the
//!   process listening on the port through /proc/net/tcp and /proc/*/fd.
//!
//! # Many sockets
//!
//! The open-file limit is raised to the hard limit at start (and printed);
//! a run needing more sockets than that is refused: split it over several
//! chat-bench processes. One source address has about 28,000 ephemeral
//! ports towards one server address, so after `--per-source` (25,000)
//! sockets the client binds to 127.0.0.2, then 127.0.0.3, and so on.

mod api;
mod cli;
mod content;
mod error;
mod frames;
mod latency;
mod modes;
mod net;
mod procfs;
mod profile;
mod progress;
mod report;
mod target;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::api::Api;
use crate::cli::{Cli, Common, Mode, ReportArgs};
use crate::content::Clock;
use crate::error::{BenchResult, Context};
use crate::modes::Ctx;
use crate::net::Dialer;
use crate::progress::Progress;
use crate::report::emit;
use crate::target::Target;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> BenchResult<bool> {
    if let Mode::Report(args) = &cli.mode {
        return report(args).map(|()| true);
    }
    let started = Instant::now();
    let ctx = context(&cli.common)?;
    eprintln!(
        "chat-bench run {} against {} (open-file limit {})",
        ctx.run, ctx.target.base, ctx.nofile
    );
    let elapsed = || started.elapsed().as_secs_f64();
    match &cli.mode {
        Mode::Idle(args) => {
            let figures = modes::idle::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Fanout(args) => {
            let figures = modes::fanout::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Storm(args) => {
            let figures = modes::storm::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Dm(args) => {
            let figures = modes::dm::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Http(args) => {
            let figures = modes::http::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Conversations(args) => {
            let figures = modes::http::run_conversations(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::History(args) => {
            let figures = modes::history::run(&ctx, args).await?;
            emit(&ctx, elapsed(), &figures)
        }
        Mode::Report(_) => Err(error::BenchError::new("report needs no server")),
    }
}

/// `chat-bench report`: reads the results files, prints the section or
/// writes it between the markers of `--write`.
fn report(args: &ReportArgs) -> BenchResult<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).context(&format!("reading {}", path.display()))
    };
    let parse = |path: &std::path::Path| {
        profile::Results::parse(&read(path)?)
            .map_err(|e| error::BenchError::new(format!("{}: {e}", path.display())))
    };
    let current = parse(&args.current)?;
    let previous = args.previous.as_deref().map(parse).transpose()?;
    let section = profile::render(&current, previous.as_ref());
    match &args.write {
        None => print!("{section}"),
        Some(path) => {
            let doc = read(path)?;
            let updated = profile::splice(&doc, &section)
                .map_err(|e| error::BenchError::new(format!("{}: {e}", path.display())))?;
            std::fs::write(path, updated).context(&format!("writing {}", path.display()))?;
            eprintln!(
                "chat-bench report: rewrote the generated section of {}",
                path.display()
            );
        }
    }
    Ok(())
}

fn context(common: &Common) -> BenchResult<Ctx> {
    let target = Target::parse(&common.url)?;
    let nofile = procfs::raise_nofile_limit()?;
    let connect_timeout = Duration::from_secs(common.connect_timeout);
    let per_source = usize::try_from(common.per_source).unwrap_or(25_000);
    Ok(Ctx {
        run: common.run_id.clone().unwrap_or_else(random_run_id),
        api: Api::new(&target, 1_024)?,
        dialer: Dialer::new(&target, common.auth, per_source, connect_timeout),
        target,
        progress: Progress::new(!common.no_progress),
        register_concurrency: usize::try_from(common.register_concurrency).unwrap_or(8),
        connect_concurrency: usize::try_from(common.connect_concurrency).unwrap_or(64),
        setup_timeout: Duration::from_secs(common.setup_timeout),
        nofile,
        clock: Clock::new(),
    })
}

/// Eight base-36 characters from the clock and the pid: distinct across
/// runs and across processes started together.
fn random_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = (nanos ^ (u128::from(std::process::id()) << 40)) % 36u128.pow(8);
    let mut id = String::with_capacity(8);
    for _ in 0..8 {
        let digit = u32::try_from(n % 36).unwrap_or(0);
        id.push(char::from_digit(digit, 36).unwrap_or('0'));
        n /= 36;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_lowercase_base36() {
        let id = random_run_id();
        assert_eq!(id.len(), 8);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{id}"
        );
    }
}
