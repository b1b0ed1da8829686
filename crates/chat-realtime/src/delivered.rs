//! What a cluster hub handed to its connections lately: the stored
//! messages it delivered, by id and position, so that a hole in the
//! cross-instance stream can be filled without sending any of them twice.
//!
//! One per hub (not per connection), behind its own lock, taken under the
//! registry's read lock by `deliver` and under its write lock when a hole
//! is closed, so that a delivery is either wholly before the hole's
//! [`Gap`](chat_domain::Delivery::Gap) (recorded, and queued ahead of it)
//! or wholly after it.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chat_domain::{Hole, MessageId};
use tokio::time::Instant;

/// How long a live frame may trail its message's commit before it reaches
/// the hub: the publish order's wait for earlier inserts (at most the
/// store's statement timeout, 5 s by default), the publisher's queue, and
/// the broker's hop. A hole is filled from the last message delivered
/// this long before the stream's last sign of life, so that a message
/// committed before that one and still on its way when the stream broke
/// is not taken as delivered.
pub const IN_FLIGHT: Duration = Duration::from_secs(10);

/// Messages remembered at most (about 80 bytes each with their index):
/// past it the oldest are forgotten. A hole whose start is older than the
/// newest message forgotten cannot be filled exactly (its connections
/// are told to reload), so this bounds how long a hole can be filled:
/// over an hour at 10 messages a second, half a minute at 2,000.
const CAPACITY: usize = 65_536;

/// A stored message a hub handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    at: Instant,
    position: Option<u64>,
    message: MessageId,
}

/// A place in the store's order to fill from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    /// `None` for the starting point the store named (older than any
    /// message delivered since).
    position: Option<u64>,
    message: MessageId,
}

impl Mark {
    /// The later of two marks in the store's order. A frame without a
    /// position (from an instance of an older version) counts as later
    /// than the store's starting point, and not later than a positioned
    /// one.
    fn later(a: Option<Self>, b: Self) -> Self {
        match a {
            Some(a) if a.position.is_some() && a.position >= b.position => a,
            Some(a) if b.position.is_none() && a.position.is_some() => a,
            _ => b,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// In delivery order, at most [`CAPACITY`].
    entries: VecDeque<Entry>,
    /// The ids of `entries`.
    ids: HashSet<MessageId>,
    /// The latest entry forgotten so far (or the store's newest message
    /// at start): a hole that starts after it was delivered is filled
    /// from after it at the earliest.
    floor: Option<Mark>,
    /// When the newest forgotten entry was delivered.
    forgotten_at: Option<Instant>,
    /// A hole is open since then.
    open: Option<Instant>,
    /// Told where the store stood at start (`floor` is `None` then only
    /// if the store was empty).
    started: bool,
}

impl Delivered {
    /// Where the store stood when this hub started serving (`None`: it
    /// was empty).
    pub(crate) fn resume_from(&mut self, newest: Option<MessageId>) {
        if self.started {
            return;
        }
        self.started = true;
        if let (None, Some(message)) = (self.floor, newest) {
            self.floor = Some(Mark {
                position: None,
                message,
            });
        }
    }

    /// Whether this message was handed out lately (a late or repeated
    /// live copy, not to be handed out again).
    pub(crate) fn contains(&self, message: MessageId) -> bool {
        self.ids.contains(&message)
    }

    /// Records a delivered message.
    pub(crate) fn record(&mut self, message: MessageId, position: Option<u64>) {
        self.entries.push_back(Entry {
            at: Instant::now(),
            position,
            message,
        });
        self.ids.insert(message);
        while self.entries.len() > CAPACITY {
            let Some(first) = self.entries.pop_front() else {
                break;
            };
            self.ids.remove(&first.message);
            self.forgotten_at = Some(first.at);
            self.floor = Some(Mark::later(
                self.floor,
                Mark {
                    position: first.position,
                    message: first.message,
                },
            ));
        }
    }

    /// The stream broke; its last sign of life was at `alive`. The hole
    /// starts [`IN_FLIGHT`] earlier. A hole already open keeps the
    /// earlier start.
    pub(crate) fn open(&mut self, alive: Instant) {
        let start = alive.checked_sub(IN_FLIGHT).unwrap_or(alive);
        self.open = Some(self.open.map_or(start, |open| open.min(start)));
    }

    /// Closes the open hole, if any: where to fill it from (the latest
    /// message delivered before it started), and what was handed out
    /// since.
    pub(crate) fn close(&mut self) -> Option<Hole> {
        let start = self.open.take()?;
        if self.forgotten_at.is_some_and(|at| at >= start) {
            // Some of what was handed out during the hole is forgotten.
            return Some(Hole::default());
        }
        let mut after = self.floor;
        let mut delivered = HashSet::new();
        for entry in &self.entries {
            if entry.at < start {
                let mark = Mark {
                    position: entry.position,
                    message: entry.message,
                };
                after = Some(Mark::later(after, mark));
            } else {
                delivered.insert(entry.message);
            }
        }
        Some(Hole {
            // Nothing delivered before the hole, and the store was empty
            // at start: from its first message.
            complete: self.started || after.is_some(),
            after: after.map(|mark| mark.message),
            delivered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<MessageId> {
        (0..n).map(|_| MessageId::generate()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hole_fills_from_the_last_message_delivered_in_flight_time_before() {
        let mut delivered = Delivered::default();
        let start = MessageId::generate();
        delivered.resume_from(Some(start));
        let m = ids(4);
        delivered.record(m[0], Some(10));
        tokio::time::advance(IN_FLIGHT * 2).await;
        delivered.record(m[1], Some(12));
        // Out of order across instances: 11 arrives after 12.
        delivered.record(m[2], Some(11));
        let alive = Instant::now();
        delivered.open(alive);
        tokio::time::advance(Duration::from_secs(3)).await;
        // Local delivery goes on during the hole.
        delivered.record(m[3], Some(20));
        let hole = delivered.close().expect("a hole was open");
        assert_eq!(hole.after, Some(m[0]), "the last one before the margin");
        assert_eq!(hole.delivered, HashSet::from([m[1], m[2], m[3]]));
        assert!(hole.complete && hole.fillable());
        assert!(delivered.close().is_none(), "closed once");
        assert!(delivered.contains(m[3]) && delivered.contains(m[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn with_nothing_delivered_a_hole_fills_from_where_the_store_stood() {
        let mut delivered = Delivered::default();
        delivered.open(Instant::now());
        let hole = delivered.close().expect("open");
        assert!(!hole.fillable(), "never told where the store stood");
        delivered.resume_from(None);
        delivered.open(Instant::now());
        let hole = delivered.close().expect("open");
        assert!(
            hole.fillable() && hole.after.is_none(),
            "from the first message"
        );
        let mut delivered = Delivered::default();
        let start = MessageId::generate();
        delivered.resume_from(Some(start));
        delivered.open(Instant::now());
        let hole = delivered.close().expect("open");
        assert_eq!(hole.after, Some(start));
        assert!(hole.delivered.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_start_is_the_highest_position_delivered_before_the_margin() {
        let mut delivered = Delivered::default();
        delivered.resume_from(Some(MessageId::generate()));
        let m = ids(3);
        delivered.record(m[0], Some(7));
        delivered.record(m[1], Some(5));
        tokio::time::advance(IN_FLIGHT * 2).await;
        delivered.record(m[2], Some(9));
        delivered.open(Instant::now() + IN_FLIGHT);
        let hole = delivered.close().expect("open");
        assert_eq!(hole.after, Some(m[0]), "7, not the later-delivered 5");
        assert_eq!(hole.delivered, HashSet::from([m[2]]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hole_older_than_the_memory_cannot_be_filled() {
        let mut delivered = Delivered::default();
        delivered.resume_from(Some(MessageId::generate()));
        let alive = Instant::now() + IN_FLIGHT;
        tokio::time::advance(IN_FLIGHT).await;
        let m = ids(CAPACITY + 1);
        for id in &m {
            delivered.record(*id, None);
        }
        assert!(!delivered.contains(m[0]) && delivered.contains(m[1]));
        delivered.open(alive);
        let hole = delivered.close().expect("open");
        assert!(!hole.complete && !hole.fillable());
        assert_eq!(hole.after, None);
    }
}
