//! One writer: a WebSocket sending room messages with a `client_id` each,
//! keeping up to `window` unacknowledged, and collecting the ids the acks
//! name.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::content::{encode, Clock};
use crate::frames::{room_frame, Frame};
use crate::latency::SharedLatency;
use crate::modes::nanos;
use crate::net::Ws;

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
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Written {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

/// Sends the plan's messages on `ws` and reads their acks. The server
/// answers one connection's frames in order, so acks (and refusals) come
/// back in send order.
pub async fn write(ws: Ws, plan: WriterPlan) -> Written {
    let (mut sink, mut stream) = ws.split();
    let mut written = Written::default();
    let mut latency = plan.latency.buffer();
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut next = 0;
    let window = usize::try_from(plan.window).unwrap_or(1).max(1);
    while next < plan.messages || !in_flight.is_empty() {
        let can_send = next < plan.messages && in_flight.len() < window;
        tokio::select! {
            biased;
            read = tokio::time::timeout_at(plan.deadline, stream.next()) => {
                let Ok(Some(Ok(message))) = read else {
                    written.error(match read {
                        Err(_) => "writer_timed_out",
                        Ok(None) => "writer_socket_ended",
                        Ok(Some(Err(_))) => "writer_socket_error",
                        Ok(Some(Ok(_))) => "unreachable",
                    });
                    break;
                };
                if !on_frame(&message, &mut in_flight, &mut written, &mut latency, &plan) {
                    break;
                }
            }
            () = std::future::ready(()), if can_send => {
                let seq = plan.index * plan.messages + next;
                let content = encode(&plan.run, seq, plan.clock.now_nanos());
                let frame = room_frame(&content, &plan.room, &seq.to_string());
                if sink.send(Message::Text(frame)).await.is_err() {
                    written.error("writer_send_failed");
                    break;
                }
                in_flight.push_back((seq, Instant::now()));
                next += 1;
            }
        }
    }
    let _ = sink.close().await;
    let unanswered = in_flight.len() as u64 + (plan.messages - next);
    if unanswered > 0 {
        *written
            .errors
            .entry("writer_unanswered".into())
            .or_default() += unanswered;
    }
    written
}

/// Handles one frame from the server; `false` when the socket is closing.
fn on_frame(
    message: &Message,
    in_flight: &mut VecDeque<(u64, Instant)>,
    written: &mut Written,
    latency: &mut crate::latency::LatencyBuffer,
    plan: &WriterPlan,
) -> bool {
    let text = match message {
        Message::Text(text) => text,
        Message::Close(frame) => {
            let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
            written.error(format!("writer_closed_{code}"));
            return false;
        }
        _ => return true,
    };
    let Some(frame) = Frame::parse(text) else {
        written.error("writer_unparsable_frame");
        return true;
    };
    match frame.kind.as_ref() {
        "ack" => match (frame.message_id(), in_flight.pop_front()) {
            (Some(id), Some((_, sent))) => {
                written.ids.push(id.to_owned());
                latency.record_nanos(nanos(sent.elapsed()));
                plan.acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => written.error("writer_unexpected_ack"),
        },
        "error" => {
            in_flight.pop_front();
            let code = frame.code.as_deref().unwrap_or("unknown");
            written.error(format!("writer_refused_{code}"));
        }
        // Deliveries of the room's messages, presence: not the writer's business.
        _ => {}
    }
    true
}
