//! What a cluster hub handed to its connections lately: the positions of
//! the stored changes it delivered (new messages and changes of messages,
//! one order), so that a hole in the cross-instance stream can be filled
//! without sending any of them twice.
//!
//! One per hub (not per connection), behind its own lock, taken under the
//! registry's read lock by `deliver` and under its write lock when a hole
//! is closed, so that a delivery is either wholly before the hole's
//! [`Gap`](chat_domain::Delivery::Gap) (recorded, and queued ahead of it)
//! or wholly after it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chat_domain::{Hole, MessageId};
use tokio::time::Instant;

/// How long a live frame may trail its message's commit before it reaches
/// the hub: the publish order's wait for earlier inserts (at most the
/// store's statement timeout, 5 s by default), the publisher's queue, and
/// the broker's hop. A hole is filled from the highest position delivered
/// this long before the stream's last sign of life, so that a change
/// committed before that one and still on its way when the stream broke
/// is not taken as delivered.
pub const IN_FLIGHT: Duration = Duration::from_secs(10);

/// Changes remembered at most: past it the oldest are forgotten. A hole
/// whose start is older than the newest change forgotten cannot be filled
/// exactly (its connections are told to resync), so this bounds how long
/// a hole can be filled, in proportion to the rate of changes.
const CAPACITY: usize = 65_536;

/// A stored change a hub handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    at: Instant,
    position: u64,
    message: Option<MessageId>,
}

#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// In delivery order, at most [`CAPACITY`].
    entries: VecDeque<Entry>,
    /// The positions of `entries`, with the message each change was of.
    positions: HashMap<u64, Option<MessageId>>,
    /// The highest position forgotten so far, or where the store stood
    /// at start: a hole that starts after it was delivered is filled from
    /// after it at the earliest.
    floor: Option<u64>,
    /// When the newest forgotten entry was delivered.
    forgotten_at: Option<Instant>,
    /// The open hole, if any.
    open: Option<Open>,
}

/// A hole being open.
#[derive(Clone, Copy, Debug)]
struct Open {
    /// It starts then.
    start: Instant,
    /// The highest position delivered before `start` (nothing delivered
    /// later can change it), if known.
    after: Option<u64>,
}

impl Delivered {
    /// Where the store stood when this hub started serving.
    pub(crate) fn resume_from(&mut self, position: u64) {
        self.floor.get_or_insert(position);
    }

    /// Whether this change (of this message, at this position) was
    /// handed out lately: a late or repeated live copy, not to be handed
    /// out again.
    pub(crate) fn contains(&self, position: u64, message: Option<MessageId>) -> bool {
        self.positions.get(&position) == Some(&message)
    }

    /// Records a delivered change.
    pub(crate) fn record(&mut self, position: u64, message: Option<MessageId>) {
        self.entries.push_back(Entry {
            at: Instant::now(),
            position,
            message,
        });
        self.positions.insert(position, message);
        while self.entries.len() > CAPACITY {
            let Some(first) = self.entries.pop_front() else {
                break;
            };
            if self.positions.get(&first.position) == Some(&first.message) {
                self.positions.remove(&first.position);
            }
            self.forgotten_at = Some(first.at);
            self.floor = Some(self.floor.map_or(first.position, |f| f.max(first.position)));
        }
    }

    /// The stream broke; its last sign of life was at `alive`. The hole
    /// starts [`IN_FLIGHT`] earlier, after the highest position delivered
    /// before then. A hole already open keeps the earlier start.
    pub(crate) fn open(&mut self, alive: Instant) {
        let start = alive.checked_sub(IN_FLIGHT).unwrap_or(alive);
        if self.open.is_some_and(|open| open.start <= start) {
            return;
        }
        let after = if self.forgotten_at.is_some_and(|at| at >= start) {
            // What was delivered just before the start is forgotten.
            None
        } else {
            self.entries
                .iter()
                .take_while(|entry| entry.at < start)
                .map(|entry| entry.position)
                .chain(self.floor)
                .max()
        };
        self.open = Some(Open { start, after });
    }

    /// Closes the open hole, if any: where to fill it from, and what was
    /// handed out since it started.
    pub(crate) fn close(&mut self) -> Option<Hole> {
        let Open { start, after } = self.open.take()?;
        // Some of what was handed out during the hole may be forgotten.
        let complete = self.forgotten_at.is_none_or(|at| at < start);
        let delivered = if complete {
            self.entries
                .iter()
                .filter(|entry| entry.at >= start)
                .map(|entry| entry.position)
                .collect()
        } else {
            HashSet::new()
        };
        Some(Hole {
            after,
            delivered,
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hole_fills_from_the_last_change_delivered_in_flight_time_before() {
        let mut delivered = Delivered::default();
        delivered.resume_from(3);
        delivered.record(10, None);
        tokio::time::advance(IN_FLIGHT * 2).await;
        delivered.record(12, None);
        // Out of order across instances: 11 arrives after 12.
        delivered.record(11, None);
        delivered.open(Instant::now());
        tokio::time::advance(Duration::from_secs(3)).await;
        // Local delivery goes on during the hole.
        delivered.record(20, None);
        let hole = delivered.close().expect("a hole was open");
        assert_eq!(hole.after, Some(10), "the last one before the margin");
        assert_eq!(hole.delivered, HashSet::from([11, 12, 20]));
        assert!(hole.complete && hole.fillable());
        assert!(delivered.close().is_none(), "closed once");
        assert!(
            delivered.contains(20, None)
                && delivered.contains(10, None)
                && !delivered.contains(13, None)
                && !delivered.contains(20, Some(MessageId::generate())),
            "a change is known by its position and message"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_nothing_delivered_a_hole_fills_from_where_the_store_stood() {
        let mut delivered = Delivered::default();
        delivered.open(Instant::now());
        let hole = delivered.close().expect("open");
        assert!(!hole.fillable(), "never told where the store stood");
        delivered.resume_from(0);
        delivered.open(Instant::now());
        let hole = delivered.close().expect("open");
        assert!(hole.fillable());
        assert_eq!(hole.after, Some(0), "an empty store: from its first change");
        assert!(hole.delivered.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_start_is_the_highest_position_delivered_before_the_margin() {
        let mut delivered = Delivered::default();
        delivered.resume_from(1);
        delivered.record(7, None);
        delivered.record(5, None);
        tokio::time::advance(IN_FLIGHT * 2).await;
        delivered.record(9, None);
        delivered.open(Instant::now() + IN_FLIGHT);
        let hole = delivered.close().expect("open");
        assert_eq!(hole.after, Some(7), "7, not the later-delivered 5");
        assert_eq!(hole.delivered, HashSet::from([9]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hole_that_outgrows_the_memory_cannot_be_filled() {
        let mut delivered = Delivered::default();
        delivered.resume_from(0);
        delivered.open(Instant::now() + IN_FLIGHT);
        tokio::time::advance(IN_FLIGHT).await;
        let past = u64::try_from(CAPACITY).expect("fits") + 1;
        for position in 1..=past {
            delivered.record(position, None);
        }
        assert!(!delivered.contains(1, None) && delivered.contains(2, None));
        let hole = delivered.close().expect("open");
        assert!(!hole.complete && !hole.fillable());
        assert_eq!(hole.after, Some(0), "resync from where it started");
        // A hole that starts before what is remembered: not even that.
        delivered.open(Instant::now());
        assert_eq!(delivered.close().map(|hole| hole.after), Some(None));
    }
}
