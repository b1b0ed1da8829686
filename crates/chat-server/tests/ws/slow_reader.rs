//! Back-pressure end to end: a client that stops reading is closed (1013)
//! or dropped, and nobody else waits for it.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Backend, TestApp};

per_backend!(a_client_that_stops_reading_is_closed_and_slows_nobody);

const READERS: usize = 20;
/// Readers that also send, each its share of the messages. Several, so the
/// stores' write latency is paid in parallel (one connection's frames are
/// handled one after the other).
const SENDERS: usize = 4;
const MESSAGES: usize = 2_000;
const PER_SENDER: usize = MESSAGES / SENDERS;
/// Big enough that the messages overflow every buffer on the way to the
/// stalled client (its socket, the server's socket, actix's buffers) and
/// then the hub's queue: ~8 MB in all.
const PADDING: usize = 3_900;
/// Messages a sender may have ahead of the slowest (healthy) reader. The
/// readers share one test thread with the senders; without a window the
/// senders would outrun them and readers would (rightly) be closed as too
/// slow. With it no reader is ever more than `SENDERS * WINDOW` (128)
/// messages behind: well under the hub's queue of 256.
const WINDOW: usize = 32;

/// Per sender, how many of its messages a reader has received.
type Progress = [usize; SENDERS];

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one reader saw.
#[derive(Debug, Default)]
struct Seen {
    /// Per sender, how many of its messages arrived, in order.
    from: [usize; SENDERS],
    slow_one_went_offline: bool,
}

impl Seen {
    fn total(&self) -> usize {
        self.from.iter().sum()
    }
}

/// `(sender, index)` from a content `"S:IIII xxx…"`, found without parsing
/// the JSON (cheap: 8 MB per reader).
fn origin(text: &str) -> Option<(usize, usize)> {
    let (_, rest) = text.split_once(r#""content":""#)?;
    let sender = rest.get(..1)?.parse().ok()?;
    let index = rest.get(2..6)?.parse().ok()?;
    Some((sender, index))
}

fn announces_slowpoke_offline(text: &str) -> bool {
    text.starts_with(r#"{"type":"presence""#)
        && text.contains(r#"{"username":"slowpoke","status":"offline"}"#)
}

/// Reads until all messages arrived, checking each sender's order, and
/// reporting progress (the senders' flow control).
async fn read_all<S>(mut stream: S, progress: watch::Sender<Progress>) -> Seen
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut seen = Seen::default();
    while seen.total() < MESSAGES {
        let frame = match stream.next().await {
            Some(Ok(frame)) => frame,
            other => panic!("a reader's socket ended after {seen:?}: {other:?}"),
        };
        let Message::Text(text) = frame else { continue };
        if text.starts_with(r#"{"type":"presence""#) {
            seen.slow_one_went_offline |= announces_slowpoke_offline(&text);
            continue;
        }
        let (sender, index) =
            origin(&text).unwrap_or_else(|| panic!("not a test message: {:.80}", text));
        assert_eq!(index, seen.from[sender], "sender {sender} out of order");
        seen.from[sender] += 1;
        progress.send_replace(seen.from);
    }
    // The eviction is announced among the messages; wait briefly if it
    // happened at the very end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.slow_one_went_offline {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                seen.slow_one_went_offline |= announces_slowpoke_offline(&text);
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    seen
}

/// Sends `sender`'s share, never more than [`WINDOW`] ahead of any
/// reader.
async fn send_share(
    sender: usize,
    mut sink: SplitSink<Socket, Message>,
    mut readers: Vec<watch::Receiver<Progress>>,
) {
    let padding = "x".repeat(PADDING);
    for i in 0..PER_SENDER {
        if i >= WINDOW {
            for reader in &mut readers {
                // A reader that died fails the test on its own.
                let _ = reader.wait_for(|p| p[sender] > i - WINDOW).await;
            }
        }
        let content = format!("{sender}:{i:04} {padding}");
        let frame = json!({"type": "message", "content": content}).to_string();
        sink.send(Message::text(frame)).await.expect("sent");
    }
}

/// Reads the stalled socket at last: it must have been closed (a 1013
/// close frame after part of the backlog, or the connection gone). Returns
/// how many messages it got and its close code.
async fn drain_stalled(stalled: &mut WebSocketStream<TcpStream>) -> (usize, Option<u16>) {
    let mut delivered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, stalled.next()).await {
            Err(_) => panic!("the stalled socket is still open after {delivered} messages"),
            Ok(Some(Ok(Message::Text(text)))) => {
                delivered += usize::from(text.starts_with(r#"{"type":"message""#));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (delivered, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return (delivered, None),
        }
    }
}

async fn a_client_that_stops_reading_is_closed_and_slows_nobody(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("WEBSOCKET_RATE_LIMIT", "0")]).await;
    let slowpoke = app.user("slowpoke").await;
    let mut stalled = app.stalled_ws(&slowpoke).await;

    let mut readers = Vec::new();
    let mut progress = Vec::new();
    let mut sinks = Vec::new();
    for i in 0..READERS {
        let user = app.user(&format!("reader{i:02}")).await;
        let mut ws = app.ws(&user).await;
        // Each reader follows the stalled client, so sees it go offline.
        let follow = json!({"type": "presence_subscribe", "usernames": ["slowpoke"]});
        ws.send_json(follow).await;
        let now = ws.recv_json().await;
        assert_eq!(now["users"][0]["status"], "online", "{now}");
        let socket = ws.stream;
        let (reports, watched) = watch::channel([0; SENDERS]);
        progress.push(watched);
        if i < SENDERS {
            let (sink, stream) = socket.split();
            readers.push(tokio::spawn(read_all(stream, reports)));
            sinks.push(sink);
        } else {
            readers.push(tokio::spawn(read_all(socket, reports)));
        }
    }

    // Everyone is connected: send.
    let started = std::time::Instant::now();
    let senders: Vec<_> = sinks
        .into_iter()
        .enumerate()
        .map(|(i, sink)| tokio::spawn(send_share(i, sink, progress.clone())))
        .collect();
    for sender in senders {
        sender.await.expect("sender");
    }
    for reader in readers {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("every reader finishes")
            .expect("reader task");
        assert_eq!(seen.from, [PER_SENDER; SENDERS]);
        assert!(seen.slow_one_went_offline, "the stalled client was evicted");
    }
    eprintln!(
        "{READERS} readers received {MESSAGES} messages in {:?}",
        started.elapsed()
    );

    let (delivered, close_code) = drain_stalled(&mut stalled).await;
    assert!(delivered < MESSAGES, "the stalled client got everything");
    if let Some(code) = close_code {
        assert_eq!(code, 1013);
    }
    eprintln!("stalled client: {delivered} messages, then close {close_code:?}");
}
