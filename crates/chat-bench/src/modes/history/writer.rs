//! One writer: a WebSocket sending room messages with a `client_id` each,
//! keeping up to `window` unacknowledged, and collecting the ids the acks
//! name. If the server closes the socket (a writer is also a member of
//! the room, and one that reads too slowly is closed with 1013), it
//! reconnects and sends the unacknowledged messages again under the same
//! `client_id`s, as a real client would: the server must store none of
//! them twice.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::content::{encode, Clock};
use crate::frames::{room_frame, Frame};
use crate::latency::{LatencyBuffer, SharedLatency};
use crate::modes::nanos;
use crate::net::{Dialer, Ws};

/// Most reconnections of one writer.
const MAX_RECONNECTS: u64 = 1_000;

/// What one writer is to send.
#[derive(Clone, Debug)]
pub struct WriterPlan {
    /// The run id, in the contents.
    pub run: String,
    /// The run's clock.
    pub clock: Clock,
    /// The room.
    pub room: String,
    /// This writer's index: its messages are `index * messages + i`.
    pub index: u64,
    /// Messages to send.
    pub messages: u64,
    /// Most messages sent and not yet acknowledged.
    pub window: u64,
    /// When to give up.
    pub deadline: Instant,
    /// Opens a new socket after a close.
    pub dialer: Dialer,
    /// The writer's token.
    pub token: String,
    /// Acknowledged messages, all writers (for the progress bar).
    pub acked: Arc<AtomicU64>,
    /// Send to acknowledgement, all writers.
    pub latency: SharedLatency,
}

/// What one writer did.
#[derive(Debug, Default)]
pub struct Written {
    /// Ids of the messages the server acknowledged, in ack order.
    pub ids: Vec<String>,
    /// Reconnections after the server closed the socket, by close code.
    pub reconnects: BTreeMap<String, u64>,
    /// Messages sent again after a reconnection.
    pub resent: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Written {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

/// One writer's progress: what is sent and not yet acknowledged, in send
/// order, and the next message to send.
struct Progress {
    in_flight: VecDeque<(u64, Instant)>,
    next: u64,
}

/// How a connection ended.
enum Ended {
    /// Every message is acknowledged.
    Done,
    /// The server closed it (with this code): reconnect.
    Closed(String),
    /// Give up (counted in `errors`).
    Failed,
}

/// Sends the plan's messages on `ws` (then on new sockets, if the server
/// closes it) and reads their acks.
pub async fn write(ws: Ws, plan: WriterPlan) -> Written {
    let mut written = Written::default();
    let mut latency = plan.latency.buffer();
    let mut progress = Progress {
        in_flight: VecDeque::new(),
        next: 0,
    };
    let mut ws = Some(ws);
    for _ in 0..=MAX_RECONNECTS {
        let Some(socket) = ws.take() else { break };
        match connection(socket, &plan, &mut progress, &mut written, &mut latency).await {
            Ended::Done | Ended::Failed => break,
            Ended::Closed(code) => {
                *written.reconnects.entry(code).or_default() += 1;
                written.resent += progress.in_flight.len() as u64;
                ws = reopen(&plan, &mut written).await;
            }
        }
    }
    let unanswered = progress.in_flight.len() as u64 + (plan.messages - progress.next);
    if unanswered > 0 {
        *written
            .errors
            .entry("writer_unanswered".into())
            .or_default() += unanswered;
    }
    written
}

async fn reopen(plan: &WriterPlan, written: &mut Written) -> Option<Ws> {
    while Instant::now() < plan.deadline {
        match plan.dialer.open(&plan.token).await {
            Ok(ws) => return Some(ws),
            Err(_) => {
                written.error("writer_reopen_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    None
}

/// One socket's life: first the unacknowledged messages again (after a
/// reconnection), then new ones, keeping up to `window` unacknowledged.
async fn connection(
    ws: Ws,
    plan: &WriterPlan,
    progress: &mut Progress,
    written: &mut Written,
    latency: &mut LatencyBuffer,
) -> Ended {
    let (mut sink, mut stream) = ws.split();
    let resend: Vec<u64> = progress.in_flight.iter().map(|(seq, _)| *seq).collect();
    for seq in resend {
        if send(&mut sink, plan, seq).await.is_err() {
            return Ended::Closed("send_failed".into());
        }
    }
    let window = usize::try_from(plan.window).unwrap_or(1).max(1);
    let ended = loop {
        if progress.next >= plan.messages && progress.in_flight.is_empty() {
            break Ended::Done;
        }
        let can_send = progress.next < plan.messages && progress.in_flight.len() < window;
        tokio::select! {
            biased;
            ended = read(&mut stream, plan, progress, written, latency) => {
                if let Some(ended) = ended {
                    break ended;
                }
            }
            () = std::future::ready(()), if can_send => {
                let seq = plan.index * plan.messages + progress.next;
                if send(&mut sink, plan, seq).await.is_err() {
                    break Ended::Closed("send_failed".into());
                }
                progress.in_flight.push_back((seq, Instant::now()));
                progress.next += 1;
            }
        }
    };
    let _ = sink.close().await;
    ended
}

async fn send(
    sink: &mut SplitSink<Ws, Message>,
    plan: &WriterPlan,
    seq: u64,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let content = encode(&plan.run, seq, plan.clock.now_nanos());
    let frame = room_frame(&content, &plan.room, &seq.to_string());
    sink.send(Message::Text(frame)).await
}

/// Reads one frame; `Some` when the connection is over.
async fn read(
    stream: &mut SplitStream<Ws>,
    plan: &WriterPlan,
    progress: &mut Progress,
    written: &mut Written,
    latency: &mut LatencyBuffer,
) -> Option<Ended> {
    let message = match tokio::time::timeout_at(plan.deadline, stream.next()).await {
        Err(_elapsed) => {
            written.error("writer_timed_out");
            return Some(Ended::Failed);
        }
        Ok(None) | Ok(Some(Err(_))) => return Some(Ended::Closed("socket_ended".into())),
        Ok(Some(Ok(message))) => message,
    };
    let text = match &message {
        Message::Text(text) => text,
        Message::Close(frame) => {
            let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
            return Some(Ended::Closed(code.to_string()));
        }
        _ => return None,
    };
    let Some(frame) = Frame::parse(text) else {
        written.error("writer_unparsable_frame");
        return None;
    };
    match frame.kind.as_ref() {
        "ack" => match (frame.message_id(), progress.in_flight.pop_front()) {
            (Some(id), Some((_, sent))) => {
                written.ids.push(id.to_owned());
                latency.record_nanos(nanos(sent.elapsed()));
                plan.acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => written.error("writer_unexpected_ack"),
        },
        "error" => {
            progress.in_flight.pop_front();
            let code = frame.code.as_deref().unwrap_or("unknown");
            written.error(format!("writer_refused_{code}"));
        }
        // Deliveries of the room's messages, presence: not the writer's
        // business.
        _ => {}
    }
    None
}
