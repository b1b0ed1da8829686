//! One connection's bounded queue of frames: a deque behind a lock, which
//! holds memory only while frames wait.
//!
//! tokio's bounded channel allocates, when it is made, its cache-padded
//! channel state and a first block of slots, on every connection, idle or
//! not. This queue is one small allocation until frames are queued, and
//! gives its buffer back once it is drained (docs/benchmarks.md, "Memory
//! per idle socket"). Offers
//! come from any thread (under the registry's read lock), so the lock is
//! held only for a push or a pop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::registry::Queued;

/// Slots a drained queue may keep; past it, its buffer is given back.
const KEEP_WHEN_EMPTY: usize = 8;

/// A bounded queue of `capacity` frames (at least 1).
pub(crate) fn bounded(capacity: usize) -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared(Mutex::new(State {
        frames: VecDeque::new(),
        capacity: capacity.max(1),
        sender: true,
        receiver: true,
        waker: None,
    })));
    (QueueSender(Arc::clone(&shared)), QueueReceiver(shared))
}

/// Why an offer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `capacity` frames are waiting.
    Full,
    /// The receiver was closed or dropped.
    Closed,
}

struct Shared(Mutex<State>);

struct State {
    frames: VecDeque<Queued>,
    capacity: usize,
    /// The sender is alive: a receiver finding the queue empty waits.
    sender: bool,
    /// The receiver takes frames: offers are accepted.
    receiver: bool,
    /// The receiver, waiting for a frame.
    waker: Option<Waker>,
}

impl Shared {
    /// The state. A panic while it was held cannot leave it inconsistent
    /// (each update is a push, a pop or a flag), so a poisoned lock is used
    /// as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The hub's end.
pub(crate) struct QueueSender(Arc<Shared>);

impl QueueSender {
    /// Queues `frame` without waiting.
    pub(crate) fn try_send(&self, frame: Queued) -> Result<(), Refused> {
        self.send(frame, true)
    }

    /// Queues `item` even over the capacity: the mark of a hole, which
    /// must not get a connection closed as too slow (it is one per hole,
    /// and the connection catches up from the store after it). Dropped if
    /// the receiver is gone.
    pub(crate) fn force_send(&self, item: Queued) {
        let _ = self.send(item, false);
    }

    fn send(&self, item: Queued, bounded: bool) -> Result<(), Refused> {
        let mut state = self.0.lock();
        if !state.receiver {
            return Err(Refused::Closed);
        }
        if bounded && state.frames.len() >= state.capacity {
            return Err(Refused::Full);
        }
        state.frames.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for QueueSender {
    /// The receiver, once it has taken what is queued, gets `None`.
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.sender = false;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The connection's end.
pub(crate) struct QueueReceiver(Arc<Shared>);

impl QueueReceiver {
    /// The next frame, in order; `None` once the queue is empty and the
    /// sender is gone or the queue was closed. Cancel safe: a frame is
    /// taken only when it is returned.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<Queued> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Queued>> {
        let mut state = self.0.lock();
        if let Some(frame) = state.frames.pop_front() {
            if state.frames.is_empty() && state.frames.capacity() > KEEP_WHEN_EMPTY {
                // Drained after a burst: most connections are idle most of
                // the time.
                state.frames = VecDeque::new();
            }
            return Poll::Ready(Some(frame));
        }
        if !state.sender || !state.receiver {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes the first hole mark still queued, dropping what is ahead of
    /// it (the connection is being closed as too slow: its backlog is
    /// dropped, and so would the mark be).
    pub(crate) fn take_gap(&mut self) -> Option<Arc<chat_domain::Hole>> {
        let mut state = self.0.lock();
        while let Some(item) = state.frames.pop_front() {
            if let crate::registry::Outgoing::Gap(hole) = &*item {
                return Some(Arc::clone(hole));
            }
        }
        None
    }

    /// Refuses further offers; what is queued can still be received.
    pub(crate) fn close(&mut self) {
        self.0.lock().receiver = false;
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver = false;
        // Nobody will read them; the sender may outlive us a little.
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Outgoing;

    fn frame(text: &str) -> Queued {
        Arc::new(Outgoing::plain(Arc::from(text)))
    }

    fn poll(rx: &mut QueueReceiver) -> Poll<Option<String>> {
        let mut cx = Context::from_waker(Waker::noop());
        rx.poll_recv(&mut cx).map(|f| {
            f.map(|f| match &*f {
                Outgoing::Frame { text, .. } => text.to_string(),
                Outgoing::Gap(_) => "gap".to_owned(),
            })
        })
    }

    #[test]
    fn frames_come_out_in_order_up_to_the_capacity() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(poll(&mut rx), Poll::Pending);
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        assert_eq!(tx.try_send(frame("b")), Ok(()));
        assert_eq!(tx.try_send(frame("c")), Err(Refused::Full));
        assert_eq!(poll(&mut rx), Poll::Ready(Some("a".into())));
        assert_eq!(tx.try_send(frame("c")), Ok(()));
        assert_eq!(poll(&mut rx), Poll::Ready(Some("b".into())));
        assert_eq!(poll(&mut rx), Poll::Ready(Some("c".into())));
        assert_eq!(poll(&mut rx), Poll::Pending);
    }

    #[test]
    fn a_dropped_sender_ends_the_queue_after_its_frames() {
        let (tx, mut rx) = bounded(4);
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        drop(tx);
        assert_eq!(poll(&mut rx), Poll::Ready(Some("a".into())));
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn a_closed_or_dropped_receiver_refuses_offers() {
        let (tx, mut rx) = bounded(4);
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        rx.close();
        assert_eq!(tx.try_send(frame("b")), Err(Refused::Closed));
        assert_eq!(poll(&mut rx), Poll::Ready(Some("a".into())));
        assert_eq!(poll(&mut rx), Poll::Ready(None));
        let (tx, rx) = bounded(4);
        drop(rx);
        assert_eq!(tx.try_send(frame("a")), Err(Refused::Closed));
    }

    #[test]
    fn a_drained_queue_gives_its_buffer_back() {
        let (tx, mut rx) = bounded(256);
        // Idle: nothing allocated for frames.
        assert_eq!(rx.0.lock().frames.capacity(), 0);
        for _ in 0..100 {
            assert_eq!(tx.try_send(frame("x")), Ok(()));
        }
        while let Poll::Ready(Some(_)) = poll(&mut rx) {}
        assert_eq!(rx.0.lock().frames.capacity(), 0);
    }

    #[test]
    fn a_hole_mark_is_queued_over_the_capacity_and_found_behind_a_backlog() {
        let (tx, mut rx) = bounded(1);
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        let gap = Arc::new(Outgoing::Gap(Arc::new(chat_domain::Hole::default())));
        tx.force_send(Arc::clone(&gap));
        assert_eq!(tx.try_send(frame("b")), Err(Refused::Full));
        assert!(rx.take_gap().is_some());
        assert_eq!(poll(&mut rx), Poll::Pending, "the backlog went with it");
        assert!(rx.take_gap().is_none());
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_frame() {
        let (tx, mut rx) = bounded(4);
        let waiter = tokio::spawn(async move {
            rx.recv().await.map(|f| match &*f {
                Outgoing::Frame { text, .. } => text.to_string(),
                Outgoing::Gap(_) => "gap".to_owned(),
            })
        });
        tokio::task::yield_now().await;
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert_eq!(got.ok().and_then(Result::ok).flatten(), Some("a".into()));
    }
}
