//! The readers of the room while it fills: a forward HTTP pager
//! (`?after=<last id>`), and clients that keep dropping their WebSocket
//! and reconnecting with `?since=<last message received>`. Each records the
//! message ids it got, in order, until it has the end marker.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::frames::Frame;
use crate::net::{Dialer, Ws};

/// Longest a reconnecting client reads after it has the end marker, to
/// catch a late repeat.
const LINGER: Duration = Duration::from_millis(300);
/// Most messages per connection before a client drops it.
const MAX_MESSAGES_PER_CONNECTION: u64 = 200;
/// Pause of the pager once it has caught up.
const POLL: Duration = Duration::from_millis(5);

/// What a reader got.
#[derive(Debug, Default)]
pub struct Followed {
    /// Message ids of the room, in the order received.
    pub ids: Vec<String>,
    /// Pages read (pager) or connections opened (reconnecting client).
    pub rounds: u64,
    /// `replay_truncated` answers.
    pub truncated: u64,
    /// Close codes the server sent, by code.
    pub closes: BTreeMap<String, u64>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    seen: HashSet<String>,
}

impl Followed {
    fn take(&mut self, id: &str) {
        self.ids.push(id.to_owned());
        self.seen.insert(id.to_owned());
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Whether the end marker is known and received.
    fn finished(&self, end: &watch::Receiver<Option<String>>) -> bool {
        end.borrow()
            .as_ref()
            .is_some_and(|end| self.seen.contains(end))
    }

    fn last_or<'a>(&'a self, start: &'a str) -> &'a str {
        self.ids.last().map_or(start, String::as_str)
    }
}

/// Where and how long to follow.
#[derive(Clone, Debug)]
pub struct Course {
    /// The room.
    pub room: String,
    /// The message before the run: where every reader starts.
    pub start: String,
    /// The end marker's id, once the writers are done.
    pub end: watch::Receiver<Option<String>>,
    /// When to give up.
    pub deadline: Instant,
}

/// Pages the room forward with `?after=` until it has the end marker.
pub async fn page(api: Api, token: String, course: Course, limit: u64) -> Followed {
    let mut got = Followed::default();
    while !got.finished(&course.end) {
        if Instant::now() >= course.deadline {
            got.error("pager_timed_out");
            break;
        }
        let after = got.last_or(&course.start).to_owned();
        let path = format!(
            "/api/rooms/{}/messages?after={after}&limit={limit}",
            course.room
        );
        match api.message_page(&token, &path).await {
            Ok(page) => {
                got.rounds += 1;
                for id in &page.ids {
                    got.take(id);
                }
                if !page.has_next {
                    tokio::time::sleep(POLL).await;
                }
            }
            Err(_) => {
                got.error("pager_request_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    got
}

/// How a reconnecting client behaves.
#[derive(Clone, Copy, Debug)]
pub struct Restless {
    /// Longest stay connected.
    pub max_connected: Duration,
    /// Longest pause before reconnecting.
    pub max_away: Duration,
    /// Seed of its random choices.
    pub seed: u64,
}

/// Follows the room over WebSocket, dropping the connection after a
/// random time or number of messages and reconnecting with `?since=` the
/// last message received, until it has the end marker.
pub async fn reconnect(
    dialer: Dialer,
    token: String,
    course: Course,
    restless: Restless,
) -> Followed {
    let mut got = Followed::default();
    let mut rng = Rng::new(restless.seed);
    while !got.finished(&course.end) {
        if Instant::now() >= course.deadline {
            got.error("reconnector_timed_out");
            break;
        }
        let since = got.last_or(&course.start).to_owned();
        let ws = match dialer.open_since(&token, Some(&since)).await {
            Ok(ws) => ws,
            Err(_) => {
                got.error("reconnector_open_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        got.rounds += 1;
        let stay = Duration::from_millis(rng.below(millis(restless.max_connected)) + 1);
        let quota = rng.below(MAX_MESSAGES_PER_CONNECTION) + 1;
        let ws = connected(ws, &mut got, &course, Instant::now() + stay, quota).await;
        if let Some(mut ws) = ws {
            // Dropped without waiting for the server: frames in flight are
            // lost, as when a phone loses its network.
            let _ = tokio::time::timeout(Duration::from_millis(100), ws.close(None)).await;
        }
        let away = rng.below(millis(restless.max_away) + 1);
        tokio::time::sleep(Duration::from_millis(away)).await;
    }
    got
}

/// Reads one connection until `until`, `quota` messages, the end marker
/// (then [`LINGER`] more), or the server closing it. Returns the socket if
/// it is still open.
async fn connected(
    mut ws: Ws,
    got: &mut Followed,
    course: &Course,
    until: Instant,
    mut quota: u64,
) -> Option<Ws> {
    let mut until = until.min(course.deadline);
    let mut lingering = false;
    loop {
        let next = match tokio::time::timeout_at(until, ws.next()).await {
            Err(_elapsed) => return Some(ws),
            Ok(next) => next,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                *got.closes.entry(code.to_string()).or_default() += 1;
                return None;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                got.error("reconnector_socket_error");
                return None;
            }
        };
        match on_text(&text, got, &course.room) {
            Step::Message => quota = quota.saturating_sub(1),
            Step::Other => {}
            Step::Reconnect => return Some(ws),
        }
        if !lingering && got.finished(&course.end) {
            lingering = true;
            until = Instant::now() + LINGER;
        }
        if quota == 0 && !lingering {
            return Some(ws);
        }
    }
}

/// What a frame means for the connection.
enum Step {
    /// A message of the room was taken.
    Message,
    /// Anything else.
    Other,
    /// The replay stopped at its limit: reconnecting from the last message
    /// received continues it.
    Reconnect,
}

fn on_text(text: &str, got: &mut Followed, room: &str) -> Step {
    let Some(frame) = Frame::parse(text) else {
        got.error("reconnector_unparsable_frame");
        return Step::Other;
    };
    match frame.kind.as_ref() {
        "message" if frame.room_id() == Some(room) => match frame.message_id() {
            Some(id) => {
                got.take(id);
                Step::Message
            }
            None => {
                got.error("reconnector_message_without_id");
                Step::Other
            }
        },
        "error" if frame.code.as_deref() == Some("replay_truncated") => {
            got.truncated += 1;
            Step::Reconnect
        }
        "error" => {
            let code = frame.code.as_deref().unwrap_or("unknown");
            got.error(format!("reconnector_error_{code}"));
            Step::Other
        }
        _ => Step::Other,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A small xorshift generator: the choices only need to vary, and the
/// tool keeps its dependencies few.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.checked_rem(bound).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_choices_stay_in_range_and_vary() {
        let mut rng = Rng::new(42);
        let draws: Vec<u64> = (0..100).map(|_| rng.below(10)).collect();
        assert!(draws.iter().all(|d| *d < 10));
        assert!(draws.iter().collect::<HashSet<_>>().len() > 5);
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn frames_of_the_room_are_taken_and_truncation_reconnects() {
        let mut got = Followed::default();
        let room = r#"{"type":"message","message":{"id":"m1","room_id":"r","content":"x"}}"#;
        assert!(matches!(on_text(room, &mut got, "r"), Step::Message));
        let other = r#"{"type":"message","message":{"id":"m2","room_id":"q","content":"x"}}"#;
        assert!(matches!(on_text(other, &mut got, "r"), Step::Other));
        let cut = r#"{"type":"error","code":"replay_truncated","error":"..."}"#;
        assert!(matches!(on_text(cut, &mut got, "r"), Step::Reconnect));
        assert_eq!(got.ids, ["m1"]);
        assert_eq!(got.truncated, 1);
        let (_tx, end) = watch::channel(Some("m1".to_owned()));
        assert!(got.finished(&end));
    }
}
