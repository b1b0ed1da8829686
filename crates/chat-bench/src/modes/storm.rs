//! `storm`: every user reconnects at once, as after a restart or a network
//! blip. N users open their sockets with C handshakes in flight, each
//! following K others' presence from the moment it is open; the run counts
//! the sockets the server closed, the frames and bytes each received, how
//! long the wave took, and whether every socket's view of the users it
//! follows ends right (all of them online: nobody leaves during the run).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{per_second, round3, Ctx};
use crate::api::Session;
use crate::cli::StormArgs;
use crate::error::BenchResult;
use crate::net::Ws;
use crate::report::Figures;
use crate::target::Target;

/// Names per `presence_subscribe` frame: well under the server's default
/// frame size limit.
const NAMES_PER_FRAME: usize = 100;

/// What `storm` measured.
#[derive(Debug, Serialize)]
pub struct StormFigures {
    /// Users, one socket each.
    pub users: u64,
    /// Users each one follows.
    pub follow: u64,
    /// Handshakes in flight.
    pub concurrency: u64,
    /// Instances the sockets were spread over.
    pub instances: u64,
    /// Sockets opened.
    pub connected: u64,
    /// Sockets that failed to open, by error.
    pub connect_errors: BTreeMap<String, u64>,
    /// Seconds from the first handshake to the last socket open and
    /// subscribed.
    pub wave_s: f64,
    /// Sockets opened per second during the wave.
    pub connect_rate_per_s: f64,
    /// Seconds after the wave until every view was right; `None` when some
    /// never were.
    pub converged_after_s: Option<f64>,
    /// Sockets whose view of the users they follow was right at the end.
    pub views_right: u64,
    /// Sockets the server closed (or that failed), by close code or error.
    pub closed: BTreeMap<String, u64>,
    /// Error frames received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Presence frames per socket: mean and most.
    pub presence_frames_mean: f64,
    /// The most any one socket received.
    pub presence_frames_max: u64,
    /// The most allowed: 4 a second of the wave, plus 2.
    pub presence_frames_budget: f64,
    /// All frames per socket, mean.
    pub frames_mean: f64,
    /// Bytes of text received per socket, mean.
    pub bytes_mean: f64,
    /// The most bytes any one socket received.
    pub bytes_max: u64,
}

impl Figures for StormFigures {
    const MODE: &'static str = "storm";

    fn ok(&self) -> bool {
        self.connect_errors.is_empty()
            && self.closed.is_empty()
            && self.errors.is_empty()
            && self.views_right == self.connected
            && self.converged_after_s.is_some()
            && (self.presence_frames_max as f64) <= self.presence_frames_budget
    }

    fn human(&self) -> Vec<String> {
        let converged = self
            .converged_after_s
            .map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s"));
        vec![
            format!(
                "wave: {} users on {} instance(s), each following {}, {} handshakes in flight: {} open in {:.2} s ({:.0}/s), failed {:?}",
                self.users,
                self.instances,
                self.follow,
                self.concurrency,
                self.connected,
                self.wave_s,
                self.connect_rate_per_s,
                self.connect_errors
            ),
            format!(
                "views: {} of {} right; converged {converged} after the wave",
                self.views_right, self.connected
            ),
            format!(
                "closed by the server: {:?}; error frames: {:?}",
                self.closed, self.errors
            ),
            format!(
                "per socket: presence frames {:.1} mean, {} max (budget {:.1}); frames {:.1}; bytes {:.0} mean, {} max",
                self.presence_frames_mean,
                self.presence_frames_max,
                self.presence_frames_budget,
                self.frames_mean,
                self.bytes_mean,
                self.bytes_max
            ),
        ]
    }
}

/// What one socket saw.
#[derive(Debug, Default)]
struct SocketTally {
    frames: u64,
    presence_frames: u64,
    bytes: u64,
    /// How it ended before the run did, if it did.
    closed: Option<String>,
    /// The codes of the error frames it received.
    errors: Vec<String>,
    right: bool,
}

/// Counts shared with the run while the sockets read.
#[derive(Debug, Default)]
struct Live {
    /// Sockets whose view is right now.
    right: AtomicU64,
}

/// Runs `storm`.
pub async fn run(ctx: &Ctx, args: &StormArgs) -> BenchResult<StormFigures> {
    let users = usize::try_from(args.users).unwrap_or(usize::MAX);
    let follow = usize::try_from(args.follow)
        .unwrap_or(0)
        .min(users.saturating_sub(1));
    ctx.ensure_files(args.users)?;
    ctx.require_websocket().await?;
    let sessions = Arc::new(ctx.sign_in("s", users).await?);

    // Every other socket to the second instance, when there is one.
    let mut dialers = vec![ctx.dialer.clone()];
    if let Some(url) = &args.also_url {
        dialers.push(ctx.dialer.to(&Target::parse(url)?));
    }
    let dialers = Arc::new(dialers);
    let live = Arc::new(Live::default());
    let (stop_tx, stop) = watch::channel(false);
    let bar = ctx.progress.bar("storm", args.users);
    let started = Instant::now();
    let opened: Vec<Result<JoinHandle<SocketTally>, String>> = stream::iter(0..users)
        .map(|index| {
            let (sessions, dialers, live, stop, bar) = (
                Arc::clone(&sessions),
                Arc::clone(&dialers),
                Arc::clone(&live),
                stop.clone(),
                bar.clone(),
            );
            async move {
                let followed = followed_by(&sessions, index, follow);
                let session = sessions.get(index).ok_or("no such user")?;
                let dialer = dialers.get(index % dialers.len()).ok_or("no dialer")?;
                let socket = dialer
                    .open(&session.token)
                    .await
                    .map_err(|e| e.to_string())?;
                let socket = subscribed(socket, &followed).await?;
                bar.inc(1);
                Ok(tokio::spawn(read(socket, followed, live, stop)))
            }
        })
        .buffer_unordered(ctx.connect_concurrency)
        .collect()
        .await;
    let wave = started.elapsed();
    bar.finish_and_clear();

    let mut readers = Vec::new();
    let mut connect_errors = BTreeMap::new();
    for result in opened {
        match result {
            Ok(reader) => readers.push(reader),
            Err(error) => *connect_errors.entry(error).or_insert(0) += 1,
        }
    }
    let connected = readers.len() as u64;
    let converged_after = converge(&live, connected, Duration::from_secs(args.settle)).await;
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    // Read before the sockets close: each one closing is a user going
    // offline for the others.
    let views_right = live.right.load(Ordering::Acquire);
    // Ignored error: no reader left means there is nothing to stop.
    let _ = stop_tx.send(true);

    let mut tallies = Vec::new();
    for reader in readers {
        tallies.push(reader.await.unwrap_or_default());
    }
    let concurrency = ctx.connect_concurrency as u64;
    let mut figures = figures(
        args,
        concurrency,
        wave,
        converged_after,
        connect_errors,
        &tallies,
    );
    figures.views_right = views_right;
    Ok(figures)
}

/// The users `index` follows: the next `follow` users, round the ring.
fn followed_by(sessions: &[Session], index: usize, follow: usize) -> Vec<String> {
    (1..=follow)
        .filter_map(|step| sessions.get((index + step) % sessions.len()))
        .map(|s| s.username.clone())
        .collect()
}

/// Sends the `presence_subscribe` frames of a socket just opened.
async fn subscribed(mut socket: Ws, followed: &[String]) -> Result<Ws, String> {
    for names in followed.chunks(NAMES_PER_FRAME) {
        let frame = json!({"type": "presence_subscribe", "usernames": names});
        socket
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| format!("subscribing: {e}"))?;
    }
    Ok(socket)
}

/// Waits until every view is right (the seconds that took), or `within`
/// passed (`None`).
async fn converge(live: &Live, sockets: u64, within: Duration) -> Option<f64> {
    let started = Instant::now();
    while live.right.load(Ordering::Acquire) < sockets {
        if started.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(round3(started.elapsed().as_secs_f64()))
}

/// Reads one socket until the run stops it, keeping its view of the
/// users it follows.
async fn read(
    mut socket: Ws,
    followed: Vec<String>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> SocketTally {
    let mut tally = SocketTally::default();
    let mut online: HashSet<String> = HashSet::new();
    let all_right = |online: &HashSet<String>| followed.iter().all(|name| online.contains(name));
    // Nobody to follow: the view is right from the start.
    if all_right(&online) {
        tally.right = true;
        live.right.fetch_add(1, Ordering::AcqRel);
    }
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.changed() => break,
            message = socket.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                tally.closed = Some(frame.map_or_else(
                    || "close".to_owned(),
                    |f| format!("close {}", u16::from(f.code)),
                ));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                tally.closed = Some(format!("error: {error}"));
                break;
            }
            None => {
                tally.closed = Some("ended".to_owned());
                break;
            }
        };
        tally.frames += 1;
        tally.bytes += text.len() as u64;
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] == "error" {
            tally
                .errors
                .push(frame["code"].as_str().unwrap_or("?").to_owned());
        }
        if frame["type"] != "presence" {
            continue;
        }
        tally.presence_frames += 1;
        for user in frame["users"].as_array().into_iter().flatten() {
            let name = user["username"].as_str().unwrap_or_default().to_owned();
            if user["status"] == "online" {
                online.insert(name);
            } else {
                online.remove(&name);
            }
        }
        let right = all_right(&online);
        if right != tally.right {
            tally.right = right;
            if right {
                live.right.fetch_add(1, Ordering::AcqRel);
            } else {
                live.right.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    if tally.closed.is_some() && tally.right {
        live.right.fetch_sub(1, Ordering::AcqRel);
    }
    tally
}

fn figures(
    args: &StormArgs,
    concurrency: u64,
    wave: Duration,
    converged_after_s: Option<f64>,
    connect_errors: BTreeMap<String, u64>,
    tallies: &[SocketTally],
) -> StormFigures {
    let connected = tallies.len() as u64;
    let mean = |value: fn(&SocketTally) -> u64| {
        if tallies.is_empty() {
            0.0
        } else {
            round3(tallies.iter().map(value).sum::<u64>() as f64 / tallies.len() as f64)
        }
    };
    let mut closed = BTreeMap::new();
    for reason in tallies.iter().filter_map(|t| t.closed.clone()) {
        *closed.entry(reason).or_insert(0) += 1;
    }
    let mut errors = BTreeMap::new();
    for code in tallies.iter().flat_map(|t| t.errors.iter()) {
        *errors.entry(code.clone()).or_insert(0) += 1;
    }
    let wave_s = wave.as_secs_f64();
    StormFigures {
        users: args.users,
        follow: args.follow,
        concurrency,
        instances: 1 + u64::from(args.also_url.is_some()),
        connected,
        connect_errors,
        wave_s: round3(wave_s),
        connect_rate_per_s: per_second(connected, wave_s),
        converged_after_s,
        views_right: 0,
        closed,
        errors,
        presence_frames_mean: mean(|t| t.presence_frames),
        presence_frames_max: tallies.iter().map(|t| t.presence_frames).max().unwrap_or(0),
        presence_frames_budget: round3(4.0 * wave_s + 2.0),
        frames_mean: mean(|t| t.frames),
        bytes_mean: mean(|t| t.bytes),
        bytes_max: tallies.iter().map(|t| t.bytes).max().unwrap_or(0),
    }
}
