//! The store handle: a deadpool pool of `AsyncPgConnection`s, built after
//! the embedded migrations ran, and the group-commit writer of messages.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{DomainError, DomainResult, NewMessage, Stored};
use deadpool::Runtime;
use diesel::result::ConnectionError;
use diesel::RunQueryDsl as _;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use diesel_async::SimpleAsyncConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt as _;

use crate::account_cache::AccountCache;
use crate::connector::{driver_url, Connector};
use crate::direct_pairs::DirectPairs;
use crate::error::{pool_error, StartupError};
use crate::insert::write_on_pool;
use crate::sink::PgBatchSink;
use crate::sql::{pg_advisory_lock, pg_advisory_unlock};
use crate::writer::{BatchWriter, Limits};

/// The schema migrations (the workspace's `migrations/` directory), compiled
/// into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// How long opening one connection may take, at start and in the pool.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time limit of one store call and of each statement
/// (`DB_STATEMENT_TIMEOUT`): see [`PgStore::connect_with`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Advisory lock key held while migrating, so instances starting together
/// migrate one after the other (the second then finds nothing to do).
/// Arbitrary, but fixed forever: it is the ASCII of "chatmigr".
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6d69_6772;

/// Every store port of `chat-domain`, on PostgreSQL. Cheap to clone (the
/// pool and the message writer are shared); one per process.
///
/// Messages are stored by one writer task per store (clones share it), on
/// a thread of its own started by the first insert and ended when the last
/// clone is dropped: concurrent inserts are grouped into one statement and
/// one commit, and each caller is answered after that commit.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    writer: Arc<BatchWriter<PgBatchSink>>,
    /// Accounts already read by name and id (see `account_cache.rs`).
    accounts: Arc<AccountCache>,
    /// The direct pairs this store has registered (`direct_pairs.rs`).
    pairs: Arc<DirectPairs>,
    /// How long one call of a store port may take, checkout included.
    deadline: Duration,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

impl PgStore {
    /// Applies pending migrations, then opens a pool of at most `pool_size`
    /// connections (at least 1). Fails within about
    /// [`CONNECT_TIMEOUT`] when the database cannot be reached, with a
    /// message naming host, port and database.
    ///
    /// The message writer gets a connection of its own (so at most
    /// `pool_size + 1` connections), opened on its thread.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StartupError> {
        Self::connect_with(url, pool_size, DEFAULT_STATEMENT_TIMEOUT).await
    }

    /// [`PgStore::connect`], with `statement_timeout` as the time limit
    /// of every statement (PostgreSQL's `statement_timeout`, set on each
    /// connection of the pools), of every pool checkout and connection
    /// opening, and, on the client's side, of every call of a store port
    /// as a whole: a database that stops answering, even one frozen with
    /// its connections open, makes calls fail with `StoreUnavailable`
    /// within about that time instead of hanging.
    pub async fn connect_with(
        url: &str,
        pool_size: usize,
        statement_timeout: Duration,
    ) -> Result<Self, StartupError> {
        // One connector (its root certificates read once) for all three.
        let connector = Connector::from_url(url)?;
        migrate(&connector).await?;
        let pool = pool_on(connector.clone(), pool_size, statement_timeout)?;
        let writer_pool = pool_on(connector, 1, statement_timeout)?;
        let store = Self::assemble(pool, writer_pool, statement_timeout);
        tracing::info!(
            database = %database_target(url),
            pool_size = pool_size.max(1),
            "PostgreSQL store ready"
        );
        Ok(store)
    }

    /// Wraps an existing pool; runs no migrations. The pool should have a
    /// runtime and timeouts set, or an unreachable database makes requests
    /// wait instead of failing with `StoreUnavailable`.
    ///
    /// The message writer takes its connections from this pool too. Calls
    /// are bounded by [`DEFAULT_STATEMENT_TIMEOUT`] on the client's side.
    pub fn from_pool(pool: Pool<AsyncPgConnection>) -> Self {
        Self::assemble(pool.clone(), pool, DEFAULT_STATEMENT_TIMEOUT)
    }

    /// A store on `pool` whose message writer uses `writer_pool`, each call
    /// bounded by `deadline`.
    fn assemble(
        pool: Pool<AsyncPgConnection>,
        writer_pool: Pool<AsyncPgConnection>,
        deadline: Duration,
    ) -> Self {
        let accounts = Arc::new(AccountCache::default());
        let pairs = Arc::new(DirectPairs::default());
        let sink = PgBatchSink {
            pool: writer_pool,
            accounts: Arc::clone(&accounts),
            pairs: Arc::clone(&pairs),
            deadline,
        };
        Self {
            pool,
            writer: Arc::new(BatchWriter::new(sink, Limits::DEFAULT)),
            accounts,
            pairs,
            deadline,
        }
    }

    /// Stores `batch` in one statement, now, bypassing the writer's queue;
    /// one result per message, in order, with the position (`seq`) of each
    /// new message, as `insert_message_positioned` answers it. What the writer does with each
    /// batch it takes: a resend of an earlier message of the batch (same
    /// sender and client id) is its `Duplicate`; a message that fails
    /// (unknown recipient or room) fails alone; a lost database fails all
    /// with `StoreUnavailable`. Every `Ok` is committed. Use
    /// [`insert_message`](chat_domain::MessageStore::insert_message) to
    /// store one message; this is for importing and for tests that need a
    /// batch of a known shape.
    pub async fn insert_messages(
        &self,
        batch: &[NewMessage],
    ) -> Vec<DomainResult<(Stored, Option<u64>)>> {
        write_on_pool(&self.pool, &self.accounts, &self.pairs, batch).await
    }

    /// The underlying pool (for metrics or ad-hoc queries in tests).
    pub fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }

    /// Sets the pool's gauges through the `metrics` facade, for an app to
    /// call before rendering its metrics (the pool is read when scraped,
    /// not tracked): `chat_store_pool_connections{state="in_use"|"idle"}`,
    /// `chat_store_pool_max_connections` and `chat_store_pool_waiting`
    /// (requests waiting for a connection). The message writer's own
    /// connection is not included.
    pub fn record_pool_metrics(&self) {
        let status = self.pool.status();
        let gauge = |value: usize| f64::from(u32::try_from(value).unwrap_or(u32::MAX));
        let in_use = status.size.saturating_sub(status.available);
        metrics::gauge!("chat_store_pool_connections", "state" => "in_use").set(gauge(in_use));
        metrics::gauge!("chat_store_pool_connections", "state" => "idle")
            .set(gauge(status.available));
        metrics::gauge!("chat_store_pool_max_connections").set(gauge(status.max_size));
        metrics::gauge!("chat_store_pool_waiting").set(gauge(status.waiting));
    }

    /// Accounts already read by name.
    pub(crate) fn accounts(&self) -> &AccountCache {
        &self.accounts
    }

    /// How long one call of a store port may take.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The group-commit writer of messages.
    pub(crate) fn writer(&self) -> &BatchWriter<PgBatchSink> {
        &self.writer
    }

    /// A pooled connection; `StoreUnavailable` when none comes in time.
    pub(crate) async fn conn(&self) -> DomainResult<Object<AsyncPgConnection>> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one call of a store port within the store's deadline (see
    /// [`within_deadline`]).
    pub(crate) async fn within<T>(
        &self,
        call: impl Future<Output = DomainResult<T>>,
    ) -> DomainResult<T> {
        within_deadline(&self.pool, self.deadline, call).await
    }
}

/// `call`, or `StoreUnavailable` once `deadline` has passed. PostgreSQL's
/// own `statement_timeout` cannot fire when the server does not run at all
/// (frozen, or cut off without the connection breaking); this does.
///
/// A call cut short may leave its connection back in `pool` with its
/// statement still unanswered, and the next request given that connection
/// would wait behind it: so every idle connection is let go, and the next
/// checkouts open fresh ones (themselves time-limited). A database that
/// answers again is then used at once; one that does not fails fast.
pub(crate) async fn within_deadline<T>(
    pool: &Pool<AsyncPgConnection>,
    deadline: Duration,
    call: impl Future<Output = DomainResult<T>>,
) -> DomainResult<T> {
    // A statement of its own, so that the cut-short call (and the pooled
    // connection it held) is dropped before the pool is cleared.
    let outcome = tokio::time::timeout(deadline, call).await;
    match outcome {
        Ok(result) => result,
        Err(_) => {
            let dropped = pool.retain(|_, _| false).removed.len();
            tracing::warn!(
                deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
                idle_connections_dropped = dropped,
                "PostgreSQL did not answer in time"
            );
            Err(DomainError::StoreUnavailable)
        }
    }
}

/// A pool that never blocks a request for long: checking out, opening and
/// recycling a connection all have time limits, so a dead database turns
/// into `StoreUnavailable` promptly, and broken connections are replaced on
/// the next checkout, so the store recovers by itself when the database
/// comes back.
///
/// Connections are opened as `url` says, TLS included (`sslmode`,
/// `sslrootcert`: see the crate docs); an unusable TLS setting fails here.
///
/// Statements, checkouts and connection openings are bounded by
/// [`DEFAULT_STATEMENT_TIMEOUT`].
pub fn build_pool(url: &str, pool_size: usize) -> Result<Pool<AsyncPgConnection>, StartupError> {
    pool_on(
        Connector::from_url(url)?,
        pool_size,
        DEFAULT_STATEMENT_TIMEOUT,
    )
}

/// [`build_pool`] on a connector already made, with this time limit on
/// statements (PostgreSQL's `statement_timeout`, set on every connection
/// when it is opened), checkouts and openings.
fn pool_on(
    connector: Connector,
    pool_size: usize,
    statement_timeout: Duration,
) -> Result<Pool<AsyncPgConnection>, StartupError> {
    let url = connector.driver_url().to_owned();
    let set_timeout = format!(
        "SET statement_timeout = {}",
        statement_timeout.as_millis().max(1)
    );
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |_url| {
        let connector = connector.clone();
        let set_timeout = set_timeout.clone();
        async move {
            let mut conn = connector.open().await?;
            conn.batch_execute(&set_timeout)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    // A connection the server closed (restart, failover) is seen as broken
    // and replaced without a round trip; a ping on every checkout would cost
    // a query per request.
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(statement_timeout))
        .create_timeout(Some(statement_timeout.min(CONNECT_TIMEOUT)))
        .recycle_timeout(Some(statement_timeout.min(CONNECT_TIMEOUT)))
        .build()
        .map_err(|err| StartupError::Pool(err.to_string()))
}

/// Applies every pending migration to the database at `url` and returns the
/// versions it applied (empty when up to date). Safe to run from several
/// processes at once: a PostgreSQL advisory lock makes them take turns.
/// This is what `chat-server migrate` runs.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, StartupError> {
    migrate(&Connector::from_url(url)?).await
}

/// [`run_migrations`] through a connector already made.
async fn migrate(connector: &Connector) -> Result<Vec<String>, StartupError> {
    let (conn, target) = establish(connector).await?;
    let migrate = move || migrate_locked(conn);
    tokio::task::spawn_blocking(migrate)
        .await
        .map_err(|err| StartupError::Migration {
            target: target.clone(),
            reason: format!("migration task failed: {err}"),
        })?
        .map_err(|reason| StartupError::Migration { target, reason })
}

/// Whether a connection to `url` can be opened, within
/// [`CONNECT_TIMEOUT`]; the error says why not (refused, timed out,
/// authentication) and names `host:port/database`.
pub async fn check_reachable(url: &str) -> Result<(), StartupError> {
    establish(&Connector::from_url(url)?).await.map(drop)
}

/// Opens one connection, giving up after [`CONNECT_TIMEOUT`]; answers it
/// with the `host:port/database` it reached.
async fn establish(connector: &Connector) -> Result<(AsyncPgConnection, String), StartupError> {
    let target = target_of(connector.driver_url())?;
    let reason = match tokio::time::timeout(CONNECT_TIMEOUT, connector.open()).await {
        Ok(Ok(conn)) => return Ok((conn, target)),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    // The driver's message is often just "error connecting to server";
    // a plain TCP attempt tells "connection refused" from a timeout.
    let reason = match tcp_failure(connector.driver_url()).await {
        Some(cause) => format!("{reason} ({cause})"),
        None => reason,
    };
    Err(StartupError::Unreachable { target, reason })
}

/// Why a TCP connection to the first host of `url` fails, if it does.
async fn tcp_failure(url: &str) -> Option<String> {
    let config = tokio_postgres::Config::from_str(url).ok()?;
    let tokio_postgres::config::Host::Tcp(host) = config.get_hosts().first()? else {
        return None;
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let connecting = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(2), connecting).await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some("no TCP answer within 2 s".to_owned()),
    }
}

/// Runs the migrations over a blocking wrapper of an async connection
/// (diesel_migrations is synchronous), holding the migration lock. Call on
/// a blocking thread of a tokio runtime.
fn migrate_locked(conn: AsyncPgConnection) -> Result<Vec<String>, String> {
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = conn.into();
    diesel::select(pg_advisory_lock(MIGRATION_LOCK_KEY))
        .execute(&mut conn)
        .map_err(|err| format!("taking the migration lock: {err}"))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|err| err.to_string());
    // Closing the connection releases the lock anyway; unlocking explicitly
    // just lets a waiting instance go on a little sooner.
    let _ = diesel::select(pg_advisory_unlock(MIGRATION_LOCK_KEY)).execute(&mut conn);
    applied
}

/// `host:port/database` of a connection string, for messages and logs.
/// Never includes the password. Unparsable strings give `"<invalid URL>"`.
pub fn database_target(url: &str) -> String {
    database_target_checked(url).unwrap_or_else(|_| "<invalid URL>".to_owned())
}

fn database_target_checked(url: &str) -> Result<String, StartupError> {
    target_of(&driver_url(url)?)
}

/// `host:port/database` of a connection string tokio-postgres reads.
fn target_of(driver_url: &str) -> Result<String, StartupError> {
    let config = tokio_postgres::Config::from_str(driver_url)
        .map_err(|err| StartupError::InvalidUrl(err.to_string()))?;
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    Ok(format!("{host}:{port}/{database}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_host_port_and_database_but_not_the_password() {
        let target = database_target("postgres://chat:s3cret@db.internal:6543/chat_prod");
        assert_eq!(target, "db.internal:6543/chat_prod");
        assert_eq!(
            database_target("host=10.0.0.5 user=chat dbname=chat password=s3cret"),
            "10.0.0.5:5432/chat"
        );
        assert_eq!(database_target("not a url"), "<invalid URL>");
    }
}
