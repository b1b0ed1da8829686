//! `http`: C clients POST global messages back to back for T s; and
//! `conversations`: C clients of one existing user GET its conversation list
//! back to back, the same way.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::{gather, nanos, per_second, round3, Ctx, Tally};
use crate::api::{Api, Session};
use crate::cli::{ConversationsArgs, HttpArgs};
use crate::content::{encode, Clock};
use crate::error::BenchResult;
use crate::latency::{LatencySummary, SharedLatency};
use crate::report::Figures;

/// Requests one client may make, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: u64 = 10_000_000;

/// What `http` measured.
#[derive(Debug, Serialize)]
pub struct HttpFigures {
    /// Concurrent clients.
    pub clients: u64,
    /// Users they posted as.
    pub users: u64,
    /// Seconds asked for.
    pub duration_s: u64,
    /// Seconds it took.
    pub elapsed_run_s: f64,
    /// Requests completed (any status, or timed out).
    pub requests: u64,
    /// Of which 2xx.
    pub succeeded: u64,
    /// Requests per second.
    pub req_per_s: f64,
    /// 2xx per second.
    pub ok_per_s: f64,
    /// Failures by kind (`http_<status>`, `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Request latency (any status).
    pub latency: LatencySummary,
}

impl Figures for HttpFigures {
    const MODE: &'static str = "http";

    fn ok(&self) -> bool {
        self.errors.is_empty() && self.succeeded > 0
    }

    fn human(&self) -> Vec<String> {
        vec![
            format!(
                "{} clients as {} users for {:.2} s: {} requests, {} ok",
                self.clients, self.users, self.elapsed_run_s, self.requests, self.succeeded
            ),
            format!(
                "throughput: {:.0} req/s ({:.0} ok/s)",
                self.req_per_s, self.ok_per_s
            ),
            format!("latency: {}", self.latency.human()),
            format!("errors: {:?}", self.errors),
        ]
    }
}

/// What `conversations` measured.
#[derive(Debug, Serialize)]
pub struct ConversationsFigures {
    /// The user whose list is read.
    pub user: String,
    /// `?limit=` of every request.
    pub limit: u64,
    /// Entries of the first page, read once before the run.
    pub first_page: u64,
    /// The requests, as `http` counts them.
    #[serde(flatten)]
    pub load: HttpFigures,
}

impl Figures for ConversationsFigures {
    const MODE: &'static str = "conversations";

    fn ok(&self) -> bool {
        self.load.ok() && self.first_page > 0
    }

    fn human(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "GET /api/conversations?limit={} as {} (first page: {} entries)",
            self.limit, self.user, self.first_page
        )];
        lines.extend(self.load.human());
        lines
    }
}

/// What each client asks, one request at a time.
#[derive(Clone, Debug)]
enum Request {
    /// `POST /api/messages`, a new global message each time.
    PostMessage,
    /// `GET` this path.
    Get(String),
}

/// Runs `http`.
pub async fn run(ctx: &Ctx, args: &HttpArgs) -> BenchResult<HttpFigures> {
    ctx.ensure_files(args.clients)?;
    let users = args.users.unwrap_or(100).min(args.clients);
    let sessions = ctx
        .sign_in("h", usize::try_from(users).unwrap_or(1))
        .await?;
    Ok(drive(
        ctx,
        &sessions,
        args.clients,
        args.duration,
        Request::PostMessage,
    )
    .await)
}

/// Runs `conversations`.
pub async fn run_conversations(
    ctx: &Ctx,
    args: &ConversationsArgs,
) -> BenchResult<ConversationsFigures> {
    ctx.ensure_files(args.clients)?;
    let session = ctx.api.log_in(&args.user, &args.password).await?;
    let path = format!("/api/conversations?limit={}", args.limit);
    let first_page = ctx.api.list_len(&session.token, &path).await? as u64;
    let load = drive(
        ctx,
        &[session],
        args.clients,
        args.duration,
        Request::Get(path),
    )
    .await;
    Ok(ConversationsFigures {
        user: args.user.clone(),
        limit: args.limit,
        first_page,
        load,
    })
}

/// `clients` clients shared round-robin among `sessions`, each making
/// `request` back to back for `duration_s` seconds.
async fn drive(
    ctx: &Ctx,
    sessions: &[Session],
    clients_n: u64,
    duration_s: u64,
    request: Request,
) -> HttpFigures {
    let duration = Duration::from_secs(duration_s);
    let started = Instant::now();
    let deadline = started + duration;
    let requests = Arc::new(AtomicU64::new(0));
    let latency = SharedLatency::default();

    let bar = ctx.progress.bar("seconds", duration_s);
    let ticker = tick(bar.clone(), started, requests.clone());
    let clients = (0..clients_n)
        .filter_map(|c| {
            sessions
                .get(usize::try_from(c).ok()? % sessions.len().max(1))
                .cloned()
        })
        .map(|session| {
            let client = Client {
                api: ctx.api.clone(),
                session,
                run: ctx.run.clone(),
                clock: ctx.clock,
                deadline,
                requests: requests.clone(),
                latency: latency.clone(),
                request: request.clone(),
            };
            tokio::spawn(client.run())
        })
        .collect();
    let tally = gather(clients).await;
    ticker.abort();
    bar.finish_and_clear();

    let elapsed = started.elapsed().as_secs_f64();
    let requests = tally.sent;
    HttpFigures {
        clients: clients_n,
        users: sessions.len() as u64,
        duration_s,
        elapsed_run_s: round3(elapsed),
        requests,
        succeeded: tally.persisted,
        req_per_s: per_second(requests, elapsed),
        ok_per_s: per_second(tally.persisted, elapsed),
        errors: tally.errors,
        latency: latency.summary(),
    }
}

fn tick(
    bar: indicatif::ProgressBar,
    started: Instant,
    requests: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{} requests", requests.load(Ordering::Relaxed)));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// One client: one request at a time until the deadline.
struct Client {
    api: Api,
    session: Session,
    run: String,
    clock: Clock,
    deadline: Instant,
    /// Requests started by all clients: the next content's sequence number.
    requests: Arc<AtomicU64>,
    /// Request latency, all clients.
    latency: SharedLatency,
    /// What to ask.
    request: Request,
}

impl Client {
    async fn run(self) -> Tally {
        let mut tally = Tally::default();
        let mut latency = self.latency.buffer();
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if Instant::now() >= self.deadline {
                break;
            }
            // One counter for all clients keeps every content distinct.
            let seq = self.requests.fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            let request = async {
                match &self.request {
                    Request::PostMessage => {
                        let content = encode(&self.run, seq, self.clock.now_nanos());
                        let body = json!({ "content": content });
                        self.api.post_message(&self.session.token, &body).await
                    }
                    Request::Get(path) => self.api.get_status(&self.session.token, path).await,
                }
            };
            let result =
                tokio::time::timeout_at(self.deadline + Duration::from_secs(30), request).await;
            latency.record_nanos(nanos(began.elapsed()));
            tally.sent += 1;
            match result {
                Ok(Ok(status)) if status.is_success() => tally.persisted += 1,
                Ok(Ok(status)) => tally.error(format!("http_{}", status.as_u16())),
                Ok(Err(_)) => tally.error("transport".to_owned()),
                Err(_) => tally.error("timeout".to_owned()),
            }
        }
        tally
    }
}
