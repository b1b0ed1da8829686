//! What the group-commit writer does with a batch: the new messages in one
//! statement (`insert.rs`), then each change to a stored message and each
//! read-marker move (`changes.rs`), their statements pipelined, all in one
//! transaction and one commit.
//!
//! Why the changes go with the messages: a change takes its position under
//! the same ordering lock as a message, held until its commit, so a change
//! committed on its own would hold up every message behind one more WAL
//! flush. In one batch the lock is taken once and flushed once, and the
//! changes' statements are sent at once: one statement after the other,
//! each waiting for its answer, would hold the lock through a round trip
//! each, and a round trip is long on a busy machine.
//!
//! Messages are written before the batch's changes, whatever their order
//! in the queue: a change names a message whose insert was answered before
//! the change was asked for (its id comes with that answer), so no change
//! depends on a message of its own batch, and writes that cross in the
//! queue have no order a client could have seen. Each kind keeps its queue
//! order.
//!
//! A batch whose transaction fails for any reason but a lost database (a
//! room or user removed meanwhile) is written again one write at a time,
//! so that one bad write fails alone.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{DomainError, DomainResult, NewMessage};
use diesel::QueryResult;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::scoped_futures::ScopedFutureExt as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use futures_util::future::{try_join_all, BoxFuture};

use crate::account_cache::AccountCache;
use crate::changes::{Change, ReadMove};
use crate::direct_pairs::{DirectPairs, NewPairs};
use crate::error::{db_error, pool_error};
use crate::insert::{try_write_batch, write_batch, Placed};
use crate::store::within_deadline;
use crate::writer::BatchSink;

/// One write the writer queues.
#[derive(Debug)]
pub(crate) enum Write {
    Message(NewMessage),
    Change(Change),
    Read(ReadMove),
}

/// What one write did.
#[derive(Clone, Debug)]
pub(crate) enum Written {
    /// A message stored, or found already stored.
    Message(Placed),
    /// The position a change or a read took, or `None` when it changed
    /// nothing.
    Moved(Option<i64>),
}

impl Written {
    /// What storing a message did.
    pub fn placed(self) -> DomainResult<Placed> {
        match self {
            Written::Message(placed) => Ok(placed),
            Written::Moved(_) => Err(mismatch()),
        }
    }

    /// The position a change or a read took, if any.
    pub fn moved(self) -> DomainResult<Option<i64>> {
        match self {
            Written::Moved(position) => Ok(position),
            Written::Message(_) => Err(mismatch()),
        }
    }
}

fn mismatch() -> DomainError {
    DomainError::internal("the writer answered a different kind of write")
}

/// A change or a read: a write that is one statement of its own.
enum Step {
    Change(Change),
    Read(ReadMove),
}

impl Step {
    /// Sends the step's statement; pipelined with the steps started after
    /// it (see [`Change::start`]).
    fn start(&self, conn: &mut AsyncPgConnection) -> BoxFuture<'static, QueryResult<Option<i64>>> {
        match self {
            Step::Change(change) => change.start(conn),
            Step::Read(read) => read.start(conn),
        }
    }

    /// The step in a transaction of its own, its failure its own.
    async fn apply_alone(&self, conn: &mut AsyncPgConnection) -> DomainResult<Option<i64>> {
        self.start(conn).await.map_err(|err| match self {
            Step::Change(_) => Change::error(err),
            Step::Read(_) => db_error(err),
        })
    }
}

/// Why a batch's transaction was rolled back.
struct Aborted(DomainError);

impl From<diesel::result::Error> for Aborted {
    fn from(err: diesel::result::Error) -> Self {
        Self(db_error(err))
    }
}

impl From<DomainError> for Aborted {
    fn from(err: DomainError) -> Self {
        Self(err)
    }
}

/// The writer task's sink: each batch on a pooled connection.
pub(crate) struct PgBatchSink {
    pub pool: Pool<AsyncPgConnection>,
    /// The store's accounts read by name: the recipients of a batch's
    /// direct messages are usually there, and then the batch's messages
    /// are one statement (the insert) instead of two.
    pub accounts: Arc<AccountCache>,
    /// The direct pairs the store has registered: a batch registers only
    /// the others.
    pub pairs: Arc<DirectPairs>,
    /// How long one batch may take, checkout included.
    pub deadline: Duration,
}

impl BatchSink for PgBatchSink {
    type Item = Write;
    type Output = Written;

    /// A batch cut short by the deadline fails every write of it with
    /// `StoreUnavailable`, committed or not (as when the connection
    /// breaks): the writer goes on with the next batch instead of waiting
    /// for a database that does not answer.
    async fn write(&self, batch: Vec<Write>) -> Vec<DomainResult<Written>> {
        let count = batch.len();
        let written = within_deadline(&self.pool, self.deadline, async {
            Ok(self.write_now(batch).await)
        })
        .await;
        written.unwrap_or_else(|err| vec![Err(err); count])
    }
}

impl PgBatchSink {
    async fn write_now(&self, batch: Vec<Write>) -> Vec<DomainResult<Written>> {
        let count = batch.len();
        let mut conn = match self.pool.get().await {
            Ok(conn) => conn,
            Err(err) => return vec![Err(pool_error(err)); count],
        };
        let (messages, steps, kinds) = split(batch);
        let (placed, moved) = if steps.is_empty() {
            (
                write_batch(&mut conn, &self.accounts, &self.pairs, &messages).await,
                Vec::new(),
            )
        } else {
            self.write_together(&mut conn, &messages, &steps).await
        };
        join(kinds, placed, moved)
    }

    /// The messages and the steps in one transaction; if it fails, each
    /// on its own.
    async fn write_together(
        &self,
        conn: &mut AsyncPgConnection,
        messages: &[NewMessage],
        steps: &[Step],
    ) -> (Vec<DomainResult<Placed>>, Vec<DomainResult<Option<i64>>>) {
        let (accounts, pairs) = (&self.accounts, &self.pairs);
        let together = conn
            .transaction::<_, Aborted, _>(|conn| {
                async move {
                    let (placed, registered) = match messages {
                        [] => (Vec::new(), NewPairs::default()),
                        _ => try_write_batch(conn, accounts, pairs, messages).await?,
                    };
                    let started: Vec<_> = steps.iter().map(|step| step.start(conn)).collect();
                    let moved = try_join_all(started).await?.into_iter().map(Ok).collect();
                    Ok((placed, moved, registered))
                }
                .scope_boxed()
            })
            .await;
        match together {
            Ok((placed, moved, registered)) => {
                pairs.remember(&registered);
                (placed, moved)
            }
            Err(Aborted(DomainError::StoreUnavailable)) => {
                pairs.forget();
                (
                    vec![Err(DomainError::StoreUnavailable); messages.len()],
                    vec![Err(DomainError::StoreUnavailable); steps.len()],
                )
            }
            Err(Aborted(err)) => {
                pairs.forget();
                tracing::warn!(error = %err, writes = messages.len() + steps.len(), "batch failed; writing it one write at a time");
                let placed = write_batch(conn, accounts, pairs, messages).await;
                let mut moved = Vec::with_capacity(steps.len());
                for step in steps {
                    moved.push(step.apply_alone(conn).await);
                }
                (placed, moved)
            }
        }
    }
}

/// Which part of a split batch a write went to.
enum Kind {
    Message,
    Step,
}

/// The batch's messages and steps, each in queue order, and the kind of
/// each write to put the answers back in order.
fn split(batch: Vec<Write>) -> (Vec<NewMessage>, Vec<Step>, Vec<Kind>) {
    let mut messages = Vec::new();
    let mut steps = Vec::new();
    let kinds = batch
        .into_iter()
        .map(|write| match write {
            Write::Message(new) => {
                messages.push(new);
                Kind::Message
            }
            Write::Change(change) => {
                steps.push(Step::Change(change));
                Kind::Step
            }
            Write::Read(read) => {
                steps.push(Step::Read(read));
                Kind::Step
            }
        })
        .collect();
    (messages, steps, kinds)
}

/// The answers in queue order.
fn join(
    kinds: Vec<Kind>,
    placed: Vec<DomainResult<Placed>>,
    moved: Vec<DomainResult<Option<i64>>>,
) -> Vec<DomainResult<Written>> {
    let mut placed = placed.into_iter();
    let mut moved = moved.into_iter();
    let missing = || Err(DomainError::internal("the batch returned too few results"));
    kinds
        .into_iter()
        .map(|kind| match kind {
            Kind::Message => placed
                .next()
                .map_or_else(missing, |result| result.map(Written::Message)),
            Kind::Step => moved
                .next()
                .map_or_else(missing, |result| result.map(Written::Moved)),
        })
        .collect()
}
