//! Publishing new messages in the store's order.
//!
//! A connection must receive messages in the order the store placed them:
//! a client that reconnects with `?since=<last message received>` resumes
//! from that position, so a message placed before it but delivered after
//! it would be skipped, and one placed after it but delivered before it
//! repeated. Inserts finish in the store's order, but the tasks that made
//! them publish whenever they next run, so two concurrent sends can publish
//! out of order.
//!
//! With a store that reports positions
//! ([`MessageStore::reports_positions`](crate::MessageStore::reports_positions)),
//! inserts run concurrently and [`PublishOrder`] releases their events in
//! position order: every insert takes a ticket before it starts; an
//! answered message waits until every insert that started before it was
//! answered has answered too (those may sit before it in the store), and
//! then goes out, lowest position first. An insert that starts after a
//! message was answered lands after it in the store (the store answers
//! only once the message is readable, and places later inserts after
//! readable ones), so it never holds that message back.
//!
//! With a store that does not, sends go one at a time from the insert to
//! the publish ([`PublishOrder::one_at_a_time`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, Notify};

use crate::ports::{Audience, Event, Notifier};

/// The order in which one process publishes new messages.
///
/// Whoever answers an insert publishes what that makes ready, unless
/// another send is publishing already: then that one publishes it too
/// before it stops (it looks again after each batch). The owner of each
/// message published by someone else is woken once, by its message's own
/// signal, so a message costs at most one wake-up however many sends are
/// in flight (a shared "something changed" notification woke every waiting
/// send on every answer: docs/benchmarks.md, "Direct messages").
#[derive(Default)]
pub(crate) struct PublishOrder {
    state: Mutex<State>,
    /// Woken when an insert is dropped without an answer or a publisher
    /// stops short (cancelled): waiting sends then look for themselves.
    released: Notify,
    /// Held from insert to publish by sends to stores without positions.
    exclusive: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Tickets handed out so far (the next ticket's number).
    issued: u64,
    /// Tickets whose insert has not answered.
    running: BTreeSet<u64>,
    /// New messages answered and not yet published, by position.
    waiting: BTreeMap<u64, Waiting>,
    /// A send is publishing: it takes what is ready until nothing is.
    publishing: bool,
}

struct Waiting {
    /// Tickets issued when the message was answered: only those can sit
    /// before it in the store.
    issued_before: u64,
    /// What goes out at this position: one event, or (a read marker)
    /// the reader's copy and the other party's.
    events: Vec<(Event, Audience)>,
    /// Told once the message went out.
    gone: oneshot::Sender<()>,
}

/// An insert in progress. Dropped without an answer (an error, or a
/// cancelled send), it stops holding back the messages answered meanwhile.
/// It owns a handle on its order, so that a send whose insert is queued
/// can be awaited apart from the call that queued it.
pub(crate) struct Ticket {
    order: Arc<PublishOrder>,
    number: u64,
    answered: bool,
}

impl Ticket {
    /// The order this ticket was taken from.
    pub(crate) fn order(&self) -> Arc<PublishOrder> {
        Arc::clone(&self.order)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.answered {
            self.order.state().running.remove(&self.number);
            self.order.released.notify_waiters();
        }
    }
}

impl PublishOrder {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a few collection operations that cannot leave
        // the state half done: a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// For stores without positions: held from the insert to the publish.
    pub(crate) async fn one_at_a_time(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.exclusive.lock().await
    }

    /// Takes a ticket for an insert about to start.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let mut state = self.state();
        let number = state.issued;
        state.issued += 1;
        state.running.insert(number);
        Ticket {
            order: Arc::clone(self),
            number,
            answered: false,
        }
    }

    /// Records the answer of `ticket`'s insert (a new message's position,
    /// event and audience, or nothing to publish), publishes whatever may
    /// go out now, and returns once the new message has gone out.
    pub(crate) async fn answered(
        &self,
        ticket: Ticket,
        new: Option<(u64, Event, Audience)>,
        notifier: &dyn Notifier,
    ) {
        let new = new.map(|(position, event, audience)| (position, vec![(event, audience)]));
        self.answered_with(ticket, new, notifier).await;
    }

    /// [`answered`](Self::answered) with several events at one position,
    /// published one after the other.
    pub(crate) async fn answered_with(
        &self,
        mut ticket: Ticket,
        new: Option<(u64, Vec<(Event, Audience)>)>,
        notifier: &dyn Notifier,
    ) {
        let mut gone = {
            let mut state = self.state();
            state.running.remove(&ticket.number);
            ticket.answered = true;
            new.map(|(position, events)| {
                let (gone, went) = oneshot::channel();
                let issued_before = state.issued;
                let waiting = Waiting {
                    issued_before,
                    events,
                    gone,
                };
                state.waiting.insert(position, waiting);
                went
            })
        };
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so no release is missed between
            // the look and the wait.
            released.as_mut().enable();
            self.publish_ready(notifier).await;
            let Some(went) = gone.as_mut() else {
                return;
            };
            tokio::select! {
                // Gone out (or dropped by a publisher cancelled while
                // publishing it: it went to the notifier or nowhere).
                _ = went => return,
                () = released => {}
            }
        }
    }

    /// Unless another send is publishing: publishes, in position order,
    /// the waiting messages that nothing running can precede any more,
    /// until none is left or [`TURN_ROUNDS`] batches went out; then hands
    /// the turn to a waiting send, so that a send under steady load is not
    /// kept publishing everyone else's messages.
    async fn publish_ready(&self, notifier: &dyn Notifier) {
        {
            let mut state = self.state();
            if state.publishing {
                return;
            }
            state.publishing = true;
        }
        let mut turn = Turn {
            order: self,
            taken: VecDeque::new(),
            finished: false,
        };
        for _ in 0..TURN_ROUNDS {
            {
                let mut state = self.state();
                turn.taken = take_ready(&mut state);
                if turn.taken.is_empty() {
                    state.publishing = false;
                    turn.finished = true;
                    return;
                }
            }
            while let Some((_, waiting)) = turn.taken.pop_front() {
                for (event, audience) in waiting.events {
                    notifier.publish(event, audience).await;
                }
                let _ = waiting.gone.send(());
            }
        }
        self.state().publishing = false;
        turn.finished = true;
        // Whoever wakes publishes the rest (a permit is kept if nobody
        // waits yet).
        self.released.notify_one();
    }
}

/// Batches one turn at publishing takes at most (see
/// [`PublishOrder::publish_ready`]).
const TURN_ROUNDS: usize = 4;

/// Removes the waiting messages that may go out now, lowest position
/// first, stopping at the first that an insert still running may precede.
fn take_ready(state: &mut State) -> VecDeque<(u64, Waiting)> {
    let oldest_running = state.running.first().copied().unwrap_or(u64::MAX);
    let mut ready = VecDeque::new();
    while let Some(entry) = state.waiting.first_entry() {
        if oldest_running < entry.get().issued_before {
            break;
        }
        ready.push_back(entry.remove_entry());
    }
    ready
}

/// A send's turn at publishing. Cancelled before it finished, it puts back
/// what it had taken and not published, gives up the turn and wakes the
/// waiting sends, one of which takes over.
struct Turn<'a> {
    order: &'a PublishOrder,
    taken: VecDeque<(u64, Waiting)>,
    finished: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = self.order.state();
        for (position, waiting) in self.taken.drain(..) {
            state.waiting.insert(position, waiting);
        }
        state.publishing = false;
        drop(state);
        self.order.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{Message, MessageTarget};
    use crate::ids::MessageId;
    use crate::ports::MockNotifier;
    use crate::values::{MessageContent, Username};

    fn event(n: u64) -> Event {
        Event::message(Message::new(
            MessageId::generate(),
            Username::parse("alice").expect("valid"),
            MessageTarget::Global,
            MessageContent::parse(format!("m{n}")).expect("valid"),
            time::OffsetDateTime::UNIX_EPOCH,
        ))
    }

    fn content(event: &Event) -> String {
        match event {
            Event::Message { message: m, .. } | Event::MessageUpdated { message: m, .. } => {
                m.content.as_str().to_owned()
            }
            Event::Read { .. } | Event::Typing { .. } => String::new(),
        }
    }

    /// A notifier recording the contents it was asked to publish.
    fn recorder() -> (MockNotifier, Arc<Mutex<Vec<String>>>) {
        let published = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&published);
        let mut notifier = MockNotifier::new();
        notifier.expect_publish().returning(move |event, _| {
            sink.lock().expect("not poisoned").push(content(&event));
        });
        (notifier, published)
    }

    fn seen(published: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        published.lock().expect("not poisoned").clone()
    }

    #[tokio::test]
    async fn an_answer_waits_for_inserts_that_started_before_it() {
        let order = Arc::new(PublishOrder::default());
        let (notifier, published) = recorder();
        let first = order.ticket();
        let second = order.ticket();
        // The second insert answers first, placed after the first one's
        // message: it must wait.
        let second_done =
            order.answered(second, Some((2, event(2), Audience::Everyone)), &notifier);
        tokio::pin!(second_done);
        assert!(
            futures_poll(second_done.as_mut()).await.is_none(),
            "held back by the first insert"
        );
        assert!(seen(&published).is_empty());
        order
            .answered(first, Some((1, event(1), Audience::Everyone)), &notifier)
            .await;
        second_done.await;
        assert_eq!(seen(&published), ["m1", "m2"]);
    }

    #[tokio::test]
    async fn a_later_insert_never_holds_back_an_answered_message() {
        let order = Arc::new(PublishOrder::default());
        let (notifier, published) = recorder();
        let earlier = order.ticket();
        let answered = order.ticket();
        let done = order.answered(answered, Some((7, event(7), Audience::Everyone)), &notifier);
        tokio::pin!(done);
        assert!(
            futures_poll(done.as_mut()).await.is_none(),
            "earlier may precede it"
        );
        // Started once 7 is answered: it lands after 7, so 7 need not wait
        // for it.
        let _later = order.ticket();
        order.answered(earlier, None, &notifier).await;
        done.await;
        assert_eq!(seen(&published), ["m7"]);
    }

    #[tokio::test]
    async fn a_failed_or_dropped_insert_releases_what_it_held_back() {
        let order = Arc::new(PublishOrder::default());
        let (notifier, published) = recorder();
        let failing = order.ticket();
        let duplicate = order.ticket();
        let fine = order.ticket();
        let fine_done = order.answered(fine, Some((5, event(5), Audience::Everyone)), &notifier);
        tokio::pin!(fine_done);
        assert!(futures_poll(fine_done.as_mut()).await.is_none());
        order.answered(duplicate, None, &notifier).await;
        assert!(futures_poll(fine_done.as_mut()).await.is_none());
        drop(failing);
        fine_done.await;
        assert_eq!(seen(&published), ["m5"]);
    }

    #[tokio::test]
    async fn answers_go_out_by_position_not_by_answer_order() {
        let order = Arc::new(PublishOrder::default());
        let (notifier, published) = recorder();
        let (a, b, c) = (order.ticket(), order.ticket(), order.ticket());
        let answer = |ticket, position| {
            order.answered(
                ticket,
                Some((position, event(position), Audience::Everyone)),
                &notifier,
            )
        };
        tokio::join!(answer(a, 30), answer(b, 10), answer(c, 20));
        assert_eq!(seen(&published), ["m10", "m20", "m30"]);
    }

    /// Polls a future once: its output if it was ready.
    async fn futures_poll<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
