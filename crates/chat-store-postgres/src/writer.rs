//! Group commit: concurrent writes (new messages, and changes to stored
//! ones: edits, deletions, reactions, read-marker moves) are queued and
//! written by one task, whatever is queued at once in one transaction (one
//! commit, one WAL flush), and each caller is answered only after that
//! commit. A caller may also queue a write and take its answer later
//! ([`BatchWriter::queue`]): the queue is first in, first out, so one
//! caller's successive messages are written in the order it queued them,
//! and share commits instead of waiting one commit each.
//!
//! Why one task: every write that takes a position commits one at a time
//! anyway (the ordering lock is held across each commit), so the write
//! path's capacity is commits per second times writes per commit. The task
//! does not wait to fill a batch: when it is idle a write goes at once (a
//! batch of one, the same round trips as before), and while a commit is in
//! flight the next callers queue up and become the next batch.
//!
//! The queue is bounded, so under overload callers wait for a slot instead
//! of piling up memory. The task runs on a thread of its own (see
//! [`start`]), started with the first write, and ends when the last
//! handle is dropped; it survives failed and even panicking batches, and is
//! started again if it is gone when the next write comes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};

use chat_domain::{DomainError, DomainResult};
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

/// Writes one batch. The writer task's only dependency, so that the
/// queueing can be tested without a database.
pub(crate) trait BatchSink: Send + Sync + 'static {
    /// One write.
    type Item: Send + 'static;
    /// What one write did.
    type Output: Send + 'static;

    /// Stores `batch` and returns one result per write, in order. Every
    /// `Ok` must be durable (committed) when the future completes.
    fn write(
        &self,
        batch: Vec<Self::Item>,
    ) -> impl Future<Output = Vec<DomainResult<Self::Output>>> + Send;
}

/// How many writes may wait and how many go in one batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most writes in one batch.
    pub max_batch: usize,
    /// Most writes waiting for the writer; more callers wait for a slot.
    pub queue: usize,
}

impl Limits {
    /// 256 rows of 9 columns are 2,304 bind parameters, far below
    /// PostgreSQL's 65,535; a 256-row commit takes a few milliseconds, so
    /// a caller at the back of a full queue waits a few batches.
    pub const DEFAULT: Self = Self {
        max_batch: 256,
        queue: 1024,
    };
}

/// A write in the writer's queue: its answer comes once the batch holding
/// it has committed (or failed).
#[derive(Debug)]
pub(crate) struct Queued<T>(oneshot::Receiver<DomainResult<T>>);

impl<T> Queued<T> {
    /// What the write did.
    pub async fn answer(self) -> DomainResult<T> {
        self.0.await.unwrap_or_else(|_| {
            Err(DomainError::internal(
                "the message writer stopped before answering",
            ))
        })
    }
}

/// One queued write and where its answer goes.
struct Job<S: BatchSink> {
    item: S::Item,
    reply: oneshot::Sender<DomainResult<S::Output>>,
}

/// The handle callers go through; owns the queue's sending side, so
/// dropping it ends the task.
pub(crate) struct BatchWriter<S: BatchSink> {
    sink: std::sync::Arc<S>,
    limits: Limits,
    queue: Mutex<Option<mpsc::Sender<Job<S>>>>,
}

impl<S: BatchSink> std::fmt::Debug for BatchWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<S: BatchSink> BatchWriter<S> {
    /// A writer; its task starts with the first write.
    pub fn new(sink: S, limits: Limits) -> Self {
        Self {
            sink: std::sync::Arc::new(sink),
            limits: Limits {
                max_batch: limits.max_batch.max(1),
                queue: limits.queue.max(1),
            },
            queue: Mutex::new(None),
        }
    }

    /// Queues `item` (waiting for a slot when the queue is full) and
    /// returns its result once the batch holding it has committed.
    pub async fn write(&self, item: S::Item) -> DomainResult<S::Output> {
        self.queue(item).await?.answer().await
    }

    /// Queues `item`, waiting for a slot when the queue is full, and
    /// returns once it is in the queue: writes queued one after the other
    /// are taken in that order (the queue is first in, first out, and the
    /// task writes its batches one after the other). The answer comes
    /// later, from [`Queued::answer`].
    pub async fn queue(&self, item: S::Item) -> DomainResult<Queued<S::Output>> {
        let (reply, answer) = oneshot::channel();
        let mut job = Job { item, reply };
        // A second try only if the task vanished between taking the sender
        // and sending: the retry starts a new one.
        for _ in 0..2 {
            let queue = self.sender()?;
            match queue.send(job).await {
                Ok(()) => return Ok(Queued(answer)),
                Err(mpsc::error::SendError(returned)) => job = returned,
            }
        }
        Err(DomainError::internal(
            "the message writer cannot be started",
        ))
    }

    /// The queue of the running task, starting one if there is none.
    fn sender(&self) -> DomainResult<mpsc::Sender<Job<S>>> {
        let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = slot.as_ref().filter(|queue| !queue.is_closed()) {
            return Ok(queue.clone());
        }
        let (queue, jobs) = mpsc::channel(self.limits.queue);
        start(self.sink.clone(), jobs, self.limits.max_batch).map_err(|err| {
            tracing::error!(error = %err, "cannot start the message writer");
            DomainError::internal(format!("starting the message writer: {err}"))
        })?;
        *slot = Some(queue.clone());
        Ok(queue)
    }
}

/// Runs the writer task on a thread of its own, on a single-threaded
/// runtime. Every write waits for this one task, so it must not queue
/// behind the request handlers of a busy executor (an actix worker runs
/// hundreds of connection tasks in turn): on its own thread it resumes as
/// soon as the database answers, and so does the driver of a connection
/// it opens. The thread ends with the task.
fn start<S: BatchSink>(
    sink: std::sync::Arc<S>,
    jobs: mpsc::Receiver<Job<S>>,
    max_batch: usize,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("message-writer".to_owned())
        .spawn(move || runtime.block_on(run(sink, jobs, max_batch)))
        .map(drop)
}

/// The writer task: takes whatever is queued (at least one write, at most
/// `max_batch`), writes it, answers, and goes on until every sender is
/// gone and the queue is empty.
async fn run<S: BatchSink>(
    sink: std::sync::Arc<S>,
    mut jobs: mpsc::Receiver<Job<S>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while jobs.recv_many(&mut batch, max_batch).await > 0 {
        let (items, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|job| (job.item, job.reply)).unzip();
        let count = items.len();
        let started = std::time::Instant::now();
        let results = AssertUnwindSafe(sink.write(items))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(count, "writing a batch panicked");
                (0..count)
                    .map(|_| Err(DomainError::internal("writing the batch panicked")))
                    .collect()
            });
        tracing::trace!(
            writes = count,
            micros = started.elapsed().as_micros(),
            "batch written"
        );
        answer(replies, results);
    }
}

/// Sends each caller its result; a caller that went away (its request was
/// cancelled) just misses it.
fn answer<T>(replies: Vec<oneshot::Sender<DomainResult<T>>>, results: Vec<DomainResult<T>>) {
    let mut results = results.into_iter();
    for reply in replies {
        let result = results
            .next()
            .unwrap_or_else(|| Err(DomainError::internal("the batch returned too few results")));
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use chat_domain::{
        Message, MessageContent, MessageId, MessageTarget, NewMessage, Stored, UserId, Username,
    };
    use time::OffsetDateTime;

    use super::*;

    /// Records batch sizes; each batch takes `delay`; a message whose
    /// content is "panic" makes the batch panic.
    #[derive(Default)]
    struct FakeSink {
        batches: Mutex<Vec<usize>>,
        delay: Duration,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        /// Contents in the order they were written.
        order: Mutex<Vec<String>>,
    }

    /// What the fake stores: a message, answered as created at position 1.
    type Placed = (Stored, Option<u64>);

    impl BatchSink for Arc<FakeSink> {
        type Item = NewMessage;
        type Output = Placed;

        async fn write(&self, batch: Vec<NewMessage>) -> Vec<DomainResult<Placed>> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            self.batches.lock().expect("not poisoned").push(batch.len());
            self.order.lock().expect("not poisoned").extend(
                batch
                    .iter()
                    .map(|new| new.message.content.as_str().to_owned()),
            );
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if batch
                .iter()
                .any(|new| new.message.content.as_str() == "panic")
            {
                panic!("the fake sink was told to panic");
            }
            batch
                .into_iter()
                .map(|new| Ok((Stored::Created(new.message), Some(1))))
                .collect()
        }
    }

    fn message(content: &str) -> NewMessage {
        NewMessage {
            message: Message::new(
                MessageId::generate(),
                Username::parse("alice").expect("valid name"),
                MessageTarget::Global,
                MessageContent::parse(content).expect("valid content"),
                OffsetDateTime::now_utc(),
            ),
            sender_id: UserId::generate(),
            client_id: None,
        }
    }

    fn writer(delay: Duration, limits: Limits) -> (Arc<BatchWriter<Arc<FakeSink>>>, Arc<FakeSink>) {
        let sink = Arc::new(FakeSink {
            delay,
            ..FakeSink::default()
        });
        (Arc::new(BatchWriter::new(sink.clone(), limits)), sink)
    }

    #[tokio::test]
    async fn an_idle_writer_writes_a_single_message_at_once() {
        let (writer, sink) = writer(Duration::ZERO, Limits::DEFAULT);
        for n in 0..3 {
            let new = message(&format!("m{n}"));
            let stored = tokio::time::timeout(Duration::from_secs(1), writer.write(new.clone()))
                .await
                .expect("no waiting for company")
                .expect("stored");
            assert_eq!(stored, (Stored::Created(new.message), Some(1)));
        }
        assert_eq!(*sink.batches.lock().expect("not poisoned"), vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn callers_arriving_during_a_write_form_the_next_batch() {
        let limits = Limits {
            max_batch: 50,
            queue: 500,
        };
        let (writer, sink) = writer(Duration::from_millis(20), limits);
        let mut calls = tokio::task::JoinSet::new();
        let mut sent = Vec::new();
        for n in 0..200 {
            let new = message(&format!("m{n}"));
            sent.push(new.message.id);
            let writer = writer.clone();
            calls.spawn(async move { (new.message.id, writer.write(new).await) });
        }
        let mut answered = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let (id, stored) = joined.expect("caller ran");
            assert_eq!(stored.expect("stored").0.message().id, id, "its own reply");
            answered.push(id);
        }
        answered.sort();
        sent.sort();
        assert_eq!(answered, sent);
        let batches = sink.batches.lock().expect("not poisoned").clone();
        assert_eq!(batches.iter().sum::<usize>(), 200);
        assert!(batches.iter().all(|&size| size <= 50), "{batches:?}");
        assert!(batches.len() <= 8, "batches formed: {batches:?}");
        assert_eq!(sink.most_in_flight.load(Ordering::SeqCst), 1, "one writer");
    }

    #[tokio::test]
    async fn one_callers_queued_messages_share_commits_and_keep_their_order() {
        let limits = Limits {
            max_batch: 50,
            queue: 500,
        };
        let (writer, sink) = writer(Duration::from_millis(20), limits);
        // One caller, one message after the other, never waiting for a
        // commit before queueing the next.
        let mut queued = Vec::new();
        let mut sent = Vec::new();
        for n in 0..200 {
            let new = message(&format!("m{n}"));
            sent.push(new.message.id);
            queued.push(writer.queue(new).await.expect("queued"));
        }
        let mut answered = Vec::new();
        for queued in queued {
            answered.push(queued.answer().await.expect("stored").0.message().id);
        }
        assert_eq!(answered, sent, "each answer is its own, in order");
        let batches = sink.batches.lock().expect("not poisoned").clone();
        assert_eq!(batches.iter().sum::<usize>(), 200);
        assert!(
            batches.len() <= 10,
            "one commit per message instead of shared ones: {batches:?}"
        );
        assert_eq!(
            *sink.order.lock().expect("not poisoned"),
            (0..200).map(|n| format!("m{n}")).collect::<Vec<_>>(),
            "written in the order queued"
        );
    }

    #[tokio::test]
    async fn a_full_queue_makes_callers_wait_not_fail() {
        let limits = Limits {
            max_batch: 2,
            queue: 2,
        };
        let (writer, sink) = writer(Duration::from_millis(5), limits);
        let calls: Vec<_> = (0..20)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(message(&format!("m{n}"))).await })
            })
            .collect();
        for call in calls {
            call.await.expect("caller ran").expect("stored");
        }
        let batches = sink.batches.lock().expect("not poisoned").clone();
        assert!(batches.iter().all(|&size| size <= 2), "{batches:?}");
        assert_eq!(batches.iter().sum::<usize>(), 20);
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_callers_and_the_writer_goes_on() {
        let (writer, _sink) = writer(Duration::ZERO, Limits::DEFAULT);
        let failed = writer.write(message("panic")).await;
        assert!(
            matches!(failed, Err(DomainError::Internal(_))),
            "{failed:?}"
        );
        let new = message("after the panic");
        assert_eq!(
            writer.write(new.clone()).await,
            Ok((Stored::Created(new.message), Some(1)))
        );
    }

    #[tokio::test]
    async fn the_task_ends_when_the_writer_is_dropped() {
        let (writer, sink) = writer(Duration::ZERO, Limits::DEFAULT);
        writer.write(message("hello")).await.expect("stored");
        // Besides the test, only the sink shared by the writer and its task
        // holds it.
        assert_eq!(Arc::strong_count(&sink), 2);
        drop(writer);
        tokio::time::timeout(Duration::from_secs(2), async {
            while Arc::strong_count(&sink) > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the task ended and dropped its sink");
    }
}
