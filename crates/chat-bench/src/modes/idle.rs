//! `idle`: open N sockets, hold them, and weigh them in the server's RSS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{gather, per_second, read_frames, round3, round_robin, Ctx, Expect, ReadSpec};
use crate::cli::IdleArgs;
use crate::error::BenchResult;
use crate::latency::LatencySummary;
use crate::procfs;
use crate::report::Figures;

/// What `idle` measured.
#[derive(Debug, Serialize)]
pub struct IdleFigures {
    /// Sockets asked for.
    pub connections: u64,
    /// Users they were shared among.
    pub users: u64,
    /// Sockets opened.
    pub connected: u64,
    /// Sockets that failed to open.
    pub failed: u64,
    /// Why, by message.
    pub connect_errors: BTreeMap<String, u64>,
    /// Seconds the opening took.
    pub connect_s: f64,
    /// Sockets opened per second.
    pub connect_rate_per_s: f64,
    /// Time per open: TCP, upgrade and the server's `connection` frame.
    pub connect_latency: LatencySummary,
    /// Client source addresses used (127.0.0.1, 127.0.0.2, ...).
    pub source_addresses: usize,
    /// Seconds the sockets were held before the second RSS reading.
    pub hold_s: u64,
    /// Sockets the server closed (or that failed) while held.
    pub closed_during_hold: u64,
    /// How they ended.
    pub close_reasons: BTreeMap<String, u64>,
    /// Frames received while held (presence and connection frames).
    pub frames_received: u64,
    /// Error frames and unparsable frames, by kind.
    pub errors: BTreeMap<String, u64>,
    /// The server process weighed.
    pub server_pid: Option<u32>,
    /// Its VmRSS before opening the sockets.
    pub rss_before_bytes: Option<u64>,
    /// Its VmRSS after holding them.
    pub rss_after_bytes: Option<u64>,
    /// (after - before) / connected.
    pub rss_per_socket_bytes: Option<f64>,
    /// The same in KiB.
    pub rss_per_socket_kb: Option<f64>,
}

impl Figures for IdleFigures {
    const MODE: &'static str = "idle";

    fn ok(&self) -> bool {
        self.failed == 0 && self.closed_during_hold == 0 && self.errors.is_empty()
    }

    fn human(&self) -> Vec<String> {
        let kb = self.rss_per_socket_kb.map_or_else(
            || "unknown (no server pid)".to_owned(),
            |v| format!("{v:.2} KiB"),
        );
        let mib = |b: Option<u64>| {
            b.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.1} MiB", b as f64 / 1_048_576.0),
            )
        };
        vec![
            format!(
                "sockets: {} of {} open ({} failed) over {} users, {} source address(es)",
                self.connected, self.connections, self.failed, self.users, self.source_addresses
            ),
            format!(
                "connect: {:.0}/s over {:.2} s; per socket {}",
                self.connect_rate_per_s,
                self.connect_s,
                self.connect_latency.human()
            ),
            format!(
                "server rss: {} -> {} (pid {}); per socket {kb}",
                mib(self.rss_before_bytes),
                mib(self.rss_after_bytes),
                self.server_pid
                    .map_or_else(|| "?".to_owned(), |p| p.to_string())
            ),
            format!(
                "held {} s: {} closed {:?}; errors {:?}",
                self.hold_s, self.closed_during_hold, self.close_reasons, self.errors
            ),
        ]
    }
}

/// Runs `idle`.
pub async fn run(ctx: &Ctx, args: &IdleArgs) -> BenchResult<IdleFigures> {
    let connections = usize::try_from(args.connections).unwrap_or(usize::MAX);
    ctx.ensure_files(args.connections)?;
    ctx.require_websocket().await?;
    let users = args.users.unwrap_or(100).min(args.connections);
    let sessions = ctx
        .sign_in("i", usize::try_from(users).unwrap_or(1))
        .await?;

    let server_pid = args
        .server_pid
        .or_else(|| procfs::find_listener_pid(ctx.target.addr.port()));
    if server_pid.is_none() {
        eprintln!("warning: no --server-pid and no process found listening on port {}: memory not measured", ctx.target.addr.port());
    }
    let rss = || {
        server_pid.and_then(|pid| {
            procfs::rss_bytes(pid)
                .map_err(|e| eprintln!("warning: {e}"))
                .ok()
        })
    };
    let rss_before = rss();

    let owners = round_robin(connections, sessions.len());
    let opened = ctx.open_counted("sockets", &sessions, &owners).await?;
    let connected = opened.sockets.len() as u64;

    let (stop_tx, stop) = watch::channel(false);
    let spec = Arc::new(ReadSpec {
        run: ctx.run.clone(),
        delivery_kind: None,
        expect: Expect::NOTHING,
        senders: 1,
        clock: ctx.clock,
        live: Arc::default(),
        deadline: Instant::now() + Duration::from_secs(args.hold + 60),
        own_latest: None,
        updates: None,
    });
    let readers = opened
        .sockets
        .into_iter()
        .map(|ws| tokio::spawn(read_frames(ws, spec.clone(), stop.clone())))
        .collect();
    eprintln!("holding {connected} sockets for {} s", args.hold);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let rss_after = rss();
    // Ignored error: no reader left means there is nothing to stop.
    let _ = stop_tx.send(true);
    let tally = gather(readers).await;

    let growth = match (rss_before, rss_after) {
        (Some(before), Some(after)) if connected > 0 => {
            Some(after.saturating_sub(before) as f64 / connected as f64)
        }
        _ => None,
    };
    let connect_s = opened.elapsed.as_secs_f64();
    Ok(IdleFigures {
        connections: args.connections,
        users,
        connected,
        failed: opened.failed,
        connect_errors: opened.errors,
        connect_s: round3(connect_s),
        connect_rate_per_s: per_second(connected, connect_s),
        connect_latency: opened.latency.summary(),
        source_addresses: ctx.dialer.source_addresses(),
        hold_s: args.hold,
        closed_during_hold: tally.closed,
        close_reasons: tally.close_reasons,
        frames_received: tally.frames,
        errors: tally.errors,
        server_pid,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_per_socket_bytes: growth.map(|b| b.round()),
        rss_per_socket_kb: growth.map(|b| round3(b / 1024.0)),
    })
}
