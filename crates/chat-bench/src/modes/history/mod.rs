//! `history`: gap-free history under load (the ordering stress run).
//!
//! `--writers` users each send `--messages` room messages over their own
//! WebSocket (with `client_id`, up to `--window` unacknowledged) into one
//! room, as fast as the server stores them. Meanwhile a forward pager reads
//! the room over HTTP (`GET /api/rooms/{id}/messages?after=<last id>`), and
//! `--reconnectors` clients follow it over WebSocket, each connection
//! lasting a random time (up to `--max-connected-ms`) or number of
//! messages, then reconnecting after a random pause (up to
//! `--max-away-ms`) with `?since=<last message received>`. When the writers
//! are done, an end marker is posted; every reader stops once it has it.
//!
//! Verdict: the room is read once more, forward, from the start marker
//! (the store's order); each reader's list is compared with it. `skipped`
//! (stored, never received) and `repeated` (received twice) must be 0 for
//! every reader, and the pager must also see the store's order
//! (`out_of_order` 0). Reconnecting clients report `out_of_order` too, for
//! information: live frames of concurrent writers reach a socket in the
//! order they were published, which can differ from the store's order.

mod follower;
mod verdict;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{per_second, round3, Ctx};
use crate::api::Session;
use crate::cli::HistoryArgs;
use crate::error::{BenchError, BenchResult};
use crate::latency::{LatencySummary, SharedLatency};
use crate::report::Figures;
use follower::{Course, Followed, Restless};
use verdict::{Check, Truth};
use writer::{WriterPlan, Written};

/// What `history` measured.
#[derive(Debug, Serialize)]
pub struct HistoryFigures {
    /// WebSocket writers.
    pub writers: u64,
    /// Messages per writer.
    pub messages: u64,
    /// Clients reconnecting with `?since=`.
    pub reconnectors: u64,
    /// Unacknowledged messages a writer may have.
    pub window: u64,
    /// The pager's page size.
    pub page_limit: u64,
    /// Messages the server acknowledged.
    pub stored: u64,
    /// Messages of the run found in the store afterwards (more than
    /// `stored` would mean a resend was stored twice).
    pub in_store: u64,
    /// Writers' reconnections after the server closed their socket, by
    /// close code (1013: the writer, a member of the room, read its
    /// deliveries too slowly).
    pub writer_reconnects: BTreeMap<String, u64>,
    /// Unacknowledged messages sent again under the same `client_id`
    /// after a reconnection.
    pub resent: u64,
    /// Seconds from the first send to the last ack.
    pub write_s: f64,
    /// Acknowledged messages per second.
    pub stored_per_s: f64,
    /// Send to `ack`.
    pub ack_latency: LatencySummary,
    /// The forward pager.
    pub pager: PagerFigures,
    /// The reconnecting clients, together.
    pub reconnecting: ReconnectFigures,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

/// The forward pager's figures.
#[derive(Debug, Default, Serialize)]
pub struct PagerFigures {
    /// Pages read.
    pub pages: u64,
    /// Against the store.
    #[serde(flatten)]
    pub check: Check,
}

/// The reconnecting clients' figures, summed.
#[derive(Debug, Default, Serialize)]
pub struct ReconnectFigures {
    /// Connections opened (each with `?since=`).
    pub connections: u64,
    /// `replay_truncated` answers.
    pub truncated: u64,
    /// Close codes sent by the server.
    pub closes: BTreeMap<String, u64>,
    /// Clients that got every message exactly once.
    pub exact_clients: u64,
    /// Most messages one client skipped.
    pub worst_skipped: u64,
    /// Most repeats one client got.
    pub worst_repeated: u64,
    /// Against the store, all clients together (`out_of_order` counts live
    /// frames of concurrent writers arriving in publish order).
    #[serde(flatten)]
    pub check: Check,
}

impl Figures for HistoryFigures {
    const MODE: &'static str = "history";

    fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.stored == self.writers * self.messages
            && self.in_store == self.stored
            && self.pager.check.exact()
            && self.pager.check.out_of_order == 0
            && self.reconnecting.exact_clients == self.reconnectors
    }

    fn human(&self) -> Vec<String> {
        let p = &self.pager;
        let r = &self.reconnecting;
        vec![
            format!(
                "{} writers x {} messages into one room: {} acknowledged, {} in the store, in {:.2} s ({:.0} msg/s)",
                self.writers, self.messages, self.stored, self.in_store, self.write_s, self.stored_per_s
            ),
            format!(
                "writer reconnections {:?}, {} messages sent again with their client_id",
                self.writer_reconnects, self.resent
            ),
            format!("ack latency: {}", self.ack_latency.human()),
            format!(
                "pager (after=, limit {}): {} pages, {} received, skipped {}, repeated {}, out of order {}",
                self.page_limit, p.pages, p.check.received, p.check.skipped, p.check.repeated, p.check.out_of_order
            ),
            format!(
                "{} reconnecting clients: {} connections (since=), {} truncated, closes {:?}",
                self.reconnectors, r.connections, r.truncated, r.closes
            ),
            format!(
                "  {} of {} exact; received {}, skipped {} (worst {}), repeated {} (worst {}), unknown {}, live out of order {}",
                r.exact_clients, self.reconnectors, r.check.received, r.check.skipped, r.worst_skipped,
                r.check.repeated, r.worst_repeated, r.check.unknown, r.check.out_of_order
            ),
            format!("errors: {:?}", self.errors),
        ]
    }
}

/// The run's cast.
struct Cast {
    writers: Vec<Session>,
    reconnectors: Vec<Session>,
    pager: Session,
}

/// Runs `history`.
pub async fn run(ctx: &Ctx, args: &HistoryArgs) -> BenchResult<HistoryFigures> {
    ctx.require_websocket().await?;
    ctx.ensure_files(args.writers + args.reconnectors + 16)?;
    let cast = sign_in(ctx, args).await?;
    let (room, start) = set_up_room(ctx, &cast).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let (end_tx, end) = watch::channel(None);
    let course = Course {
        room: room.clone(),
        start: start.clone(),
        end,
        deadline,
    };
    let pager = tokio::spawn(follower::page(
        ctx.api.clone(),
        cast.pager.token.clone(),
        course.clone(),
        args.page_limit,
    ));
    let reconnectors = spawn_reconnectors(ctx, args, &cast, &course);

    let (written, write_s, latency) = write_all(ctx, args, &cast, &room, deadline).await?;
    let end_body = json!({"content": format!("bench:{}:end", ctx.run), "room_id": room});
    let end_id = ctx
        .api
        .post_message_id(&first(&cast.writers)?.token, &end_body)
        .await?;
    let _ = end_tx.send(Some(end_id));

    let mut errors = written.errors;
    let pager = join(pager, &mut errors).await;
    let mut followers = Vec::new();
    for handle in reconnectors {
        followers.push(join(handle, &mut errors).await);
    }
    let truth = read_truth(ctx, &cast.pager, &room, &start).await?;
    let stored = written.ids.len() as u64;
    let acked: HashSet<&String> = written.ids.iter().collect();
    if acked.len() != written.ids.len() {
        *errors
            .entry("writer_acked_one_message_twice".into())
            .or_default() += 1;
    }
    if written.ids.iter().any(|id| !truth.contains(id)) {
        *errors
            .entry("writer_acked_a_message_not_in_the_store".into())
            .or_default() += 1;
    }
    // Everything after the start marker but the end marker.
    let in_store = truth.len().saturating_sub(1) as u64;
    Ok(HistoryFigures {
        writers: args.writers,
        messages: args.messages,
        reconnectors: args.reconnectors,
        window: args.window,
        page_limit: args.page_limit,
        stored,
        in_store,
        writer_reconnects: written.reconnects,
        resent: written.resent,
        write_s: round3(write_s),
        stored_per_s: per_second(stored, write_s),
        ack_latency: latency.summary(),
        pager: PagerFigures {
            pages: pager.rounds,
            check: truth.check(&pager.ids),
        },
        reconnecting: summarize(&truth, followers, &mut errors),
        errors,
    })
}

async fn sign_in(ctx: &Ctx, args: &HistoryArgs) -> BenchResult<Cast> {
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let writers = ctx.sign_in("w", count(args.writers)).await?;
    let reconnectors = ctx.sign_in("r", count(args.reconnectors)).await?;
    let pager = ctx
        .sign_in("p", 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::new("signing in the pager gave no session"))?;
    Ok(Cast {
        writers,
        reconnectors,
        pager,
    })
}

fn first(sessions: &[Session]) -> BenchResult<&Session> {
    sessions
        .first()
        .ok_or_else(|| BenchError::new("the run needs at least one writer"))
}

/// Creates the room (every user of the run a member) and posts the start
/// marker; returns the room's id and the marker's.
async fn set_up_room(ctx: &Ctx, cast: &Cast) -> BenchResult<(String, String)> {
    let owner = first(&cast.writers)?;
    let members: Vec<String> = cast
        .writers
        .iter()
        .chain(&cast.reconnectors)
        .chain([&cast.pager])
        .map(|s| s.id.clone())
        .filter(|id| *id != owner.id)
        .collect();
    let name = format!("bench {}", ctx.run);
    let room = ctx.api.create_room(&owner.token, &name, &members).await?;
    let body = json!({"content": format!("bench:{}:start", ctx.run), "room_id": room});
    let start = ctx.api.post_message_id(&owner.token, &body).await?;
    Ok((room, start))
}

fn spawn_reconnectors(
    ctx: &Ctx,
    args: &HistoryArgs,
    cast: &Cast,
    course: &Course,
) -> Vec<tokio::task::JoinHandle<Followed>> {
    let salt = ctx.clock.now_nanos();
    cast.reconnectors
        .iter()
        .zip(1u64..)
        .map(|(session, n)| {
            let restless = Restless {
                max_connected: Duration::from_millis(args.max_connected_ms),
                max_away: Duration::from_millis(args.max_away_ms),
                seed: salt.wrapping_mul(n).wrapping_add(n << 32),
            };
            tokio::spawn(follower::reconnect(
                ctx.dialer.clone(),
                session.token.clone(),
                course.clone(),
                restless,
            ))
        })
        .collect()
}

/// Opens the writers' sockets and runs them; everything they stored, the
/// seconds it took, and the ack latency.
async fn write_all(
    ctx: &Ctx,
    args: &HistoryArgs,
    cast: &Cast,
    room: &str,
    deadline: Instant,
) -> BenchResult<(Written, f64, SharedLatency)> {
    let owners: Vec<usize> = (0..cast.writers.len()).collect();
    let sockets = ctx.open_all("writers", &cast.writers, &owners).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let latency = SharedLatency::default();
    let bar = ctx.progress.bar("stored", args.writers * args.messages);
    let ticker = {
        let (bar, acked) = (bar.clone(), acked.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(acked.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    let handles: Vec<_> = sockets
        .into_iter()
        .zip(&cast.writers)
        .zip(0u64..)
        .map(|((ws, Session { token, .. }), index)| {
            let plan = WriterPlan {
                run: ctx.run.clone(),
                clock: ctx.clock,
                room: room.to_owned(),
                index,
                messages: args.messages,
                window: args.window,
                deadline,
                dialer: ctx.dialer.clone(),
                token: token.clone(),
                acked: acked.clone(),
                latency: latency.clone(),
            };
            tokio::spawn(writer::write(ws, plan))
        })
        .collect();
    let mut all = Written::default();
    for handle in handles {
        match handle.await {
            Ok(written) => {
                all.ids.extend(written.ids);
                all.resent += written.resent;
                merge(&mut all.reconnects, written.reconnects);
                merge(&mut all.errors, written.errors);
            }
            Err(e) => *all.errors.entry(format!("task_failed: {e}")).or_default() += 1,
        }
    }
    let write_s = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    Ok((all, write_s, latency))
}

async fn join(
    handle: tokio::task::JoinHandle<Followed>,
    errors: &mut BTreeMap<String, u64>,
) -> Followed {
    match handle.await {
        Ok(mut followed) => {
            merge(errors, std::mem::take(&mut followed.errors));
            followed
        }
        Err(e) => {
            *errors.entry(format!("task_failed: {e}")).or_default() += 1;
            Followed::default()
        }
    }
}

/// The room after the start marker, read forward once everything is
/// written: the store's order.
async fn read_truth(ctx: &Ctx, reader: &Session, room: &str, start: &str) -> BenchResult<Truth> {
    let mut ids: Vec<String> = Vec::new();
    loop {
        let after = ids.last().map_or(start, String::as_str);
        let path = format!("/api/rooms/{room}/messages?after={after}&limit=200");
        let page = ctx.api.message_page(&reader.token, &path).await?;
        let done = !page.has_next || page.ids.is_empty();
        ids.extend(page.ids);
        if done {
            return Ok(Truth::new(&ids));
        }
    }
}

fn summarize(
    truth: &Truth,
    followers: Vec<Followed>,
    errors: &mut BTreeMap<String, u64>,
) -> ReconnectFigures {
    let mut figures = ReconnectFigures::default();
    for followed in followers {
        let check = truth.check(&followed.ids);
        figures.connections += followed.rounds;
        figures.truncated += followed.truncated;
        merge(&mut figures.closes, followed.closes);
        merge(errors, followed.errors);
        figures.exact_clients += u64::from(check.exact());
        figures.worst_skipped = figures.worst_skipped.max(check.skipped);
        figures.worst_repeated = figures.worst_repeated.max(check.repeated);
        figures.check.add(check);
    }
    figures
}

fn merge(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, n) in from {
        *into.entry(key).or_default() += n;
    }
}
