//! A database per test on the local PostgreSQL, as crates.io's
//! `crates_io_test_db` does it: the first use in a process makes sure a
//! template database with every migration applied exists
//! (`chat_test_template_<hash of the migrations>`), then each
//! [`TestDatabase`] is a `CREATE DATABASE … TEMPLATE …` copy of it (tens of
//! milliseconds), dropped `WITH (FORCE)` when the guard is dropped. Tests
//! run in parallel, in one process or many, and leave nothing behind.
//!
//! The server comes from `TEST_DATABASE_URL` (an admin URL: a role allowed
//! to create databases, any existing database), by default
//! [`DEFAULT_ADMIN_URL`]. An unreachable server fails the test with a
//! message saying how to start one; no test is skipped.
//!
//! ```no_run
//! use chat_test_support::pg::TestDatabase;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let db = TestDatabase::create().await;
//! // Hand db.url to whatever needs a database: a PgStore, a server under test.
//! let store = db.store().await;
//! # drop(store);
//! // Dropping `db` drops the database.
//! # }
//! ```
//!
//! For the store contract suite, [`test_store`] is a ready factory:
//!
//! ```no_run
//! chat_test_support::store_contract_tests!(chat_test_support::pg::test_store);
//! # fn main() {}
//! ```

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{
    Activity, Conversation, ConversationPage, ConversationRef, DomainResult, InsertInFlight,
    Message, MessageId, MessageStore, NewMessage, Page, PageRequest, ReadStore, RevocationStore,
    Room, RoomId, RoomStore, StoreHealth, Stored, TokenId, UserAccount, UserId, UserStore,
    Username,
};
use chat_store_postgres::{PgStore, CONNECT_TIMEOUT};
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

/// The admin URL used when `TEST_DATABASE_URL` is not set: what
/// `scripts/test.sh` and `scripts/db-up.sh` provide on a developer machine.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections per test store: enough for the contract's concurrency cases
/// to really overlap, few enough for many tests in parallel.
const TEST_POOL_SIZE: usize = 8;

/// Serializes template builds across test processes (on the admin
/// database). ASCII of "chattmpl".
const TEMPLATE_LOCK_KEY: i64 = 0x6368_6174_746d_706c;

/// The template of this process's migrations, built once per process.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The admin URL the tests use: `TEST_DATABASE_URL`, else
/// [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// A fresh, migrated, empty database, dropped (with any sessions still on
/// it) when this guard is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection URL of this database (the admin URL's server and role).
    pub url: String,
    /// Its name, `chat_test_<uuid>`.
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Copies the migrated template into a new database. Panics, saying
    /// what to do, when the server cannot be reached.
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let template = TEMPLATE
            .get_or_try_init(|| ensure_template(&admin_url))
            .await
            .unwrap_or_else(|err| panic!("{err}"))
            .clone();
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        create_from_template(&admin_url, &name, &template)
            .await
            .unwrap_or_else(|err| panic!("creating test database {name}: {err}"));
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// A new database with no tables at all (a copy of `template0`), for
    /// tests of the migrations themselves.
    pub async fn empty() -> Self {
        let admin_url = admin_url();
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        create_from_template(&admin_url, &name, "template0")
            .await
            .unwrap_or_else(|err| panic!("creating test database {name}: {err}"));
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// A [`PgStore`] on this database (migrations are already applied).
    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.url, TEST_POOL_SIZE)
            .await
            .unwrap_or_else(|err| panic!("opening a store on {}: {err}", self.name))
    }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own: `Drop` cannot await, and
    /// the test's runtime may be single-threaded or shutting down.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(drop_database(&admin_url, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// A [`PgStore`] that owns its [`TestDatabase`]: the database goes when the
/// store does. Implements every store port by delegation.
#[derive(Debug)]
pub struct PgTestStore {
    // Declared first so the pool closes before the database is dropped.
    store: PgStore,
    /// The database under the store.
    pub database: TestDatabase,
}

impl PgTestStore {
    /// A store on a fresh database.
    pub async fn create() -> Self {
        let database = TestDatabase::create().await;
        let store = database.store().await;
        Self { store, database }
    }
}

impl Deref for PgTestStore {
    type Target = PgStore;

    fn deref(&self) -> &PgStore {
        &self.store
    }
}

/// The contract suite's factory: a store on a database of its own.
pub async fn test_store() -> Arc<PgTestStore> {
    Arc::new(PgTestStore::create().await)
}

#[async_trait]
impl UserStore for PgTestStore {
    async fn create_user(&self, account: &UserAccount) -> DomainResult<()> {
        self.store.create_user(account).await
    }
    async fn user_by_id(&self, id: UserId) -> DomainResult<Option<UserAccount>> {
        self.store.user_by_id(id).await
    }
    async fn user_by_username(&self, username: &Username) -> DomainResult<Option<UserAccount>> {
        self.store.user_by_username(username).await
    }
    async fn list_users(&self, page: PageRequest<UserId>) -> DomainResult<Page<UserAccount>> {
        self.store.list_users(page).await
    }
}

#[async_trait]
impl RoomStore for PgTestStore {
    async fn create_room(&self, room: &Room) -> DomainResult<()> {
        self.store.create_room(room).await
    }
    async fn room_by_id(&self, id: RoomId) -> DomainResult<Option<Room>> {
        self.store.room_by_id(id).await
    }
    async fn add_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.store.add_member(room, user).await
    }
    async fn remove_member(&self, room: RoomId, user: UserId) -> DomainResult<bool> {
        self.store.remove_member(room, user).await
    }
    async fn rooms_of_user(
        &self,
        member: UserId,
        viewer: UserId,
        page: PageRequest<RoomId>,
    ) -> DomainResult<Page<Room>> {
        self.store.rooms_of_user(member, viewer, page).await
    }
}

#[async_trait]
impl MessageStore for PgTestStore {
    async fn insert_message(&self, new: &NewMessage) -> DomainResult<Stored> {
        self.store.insert_message(new).await
    }
    async fn insert_message_positioned(
        &self,
        new: &NewMessage,
    ) -> DomainResult<(Stored, Option<u64>)> {
        self.store.insert_message_positioned(new).await
    }
    async fn queue_message(&self, new: &NewMessage) -> DomainResult<InsertInFlight> {
        self.store.queue_message(new).await
    }
    fn reports_positions(&self) -> bool {
        self.store.reports_positions()
    }
    async fn message_by_id(&self, id: MessageId) -> DomainResult<Option<Message>> {
        self.store.message_by_id(id).await
    }
    async fn message_by_id_positioned(
        &self,
        id: MessageId,
    ) -> DomainResult<Option<(Message, Option<u64>)>> {
        self.store.message_by_id_positioned(id).await
    }
    async fn visible_messages(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.store.visible_messages(viewer, viewer_name, page).await
    }
    async fn direct_messages(
        &self,
        a: &Username,
        b: &Username,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.store.direct_messages(a, b, page).await
    }
    async fn room_messages(
        &self,
        room: RoomId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.store.room_messages(room, page).await
    }
    async fn edit_message(
        &self,
        id: MessageId,
        content: &chat_domain::MessageContent,
        at: OffsetDateTime,
    ) -> DomainResult<chat_domain::Changed> {
        self.store.edit_message(id, content, at).await
    }
    async fn delete_message(
        &self,
        id: MessageId,
        at: OffsetDateTime,
    ) -> DomainResult<chat_domain::Changed> {
        self.store.delete_message(id, at).await
    }
    async fn add_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &chat_domain::Emoji,
    ) -> DomainResult<chat_domain::Changed> {
        self.store.add_reaction(id, user, emoji).await
    }
    async fn remove_reaction(
        &self,
        id: MessageId,
        user: UserId,
        emoji: &chat_domain::Emoji,
    ) -> DomainResult<chat_domain::Changed> {
        self.store.remove_reaction(id, user, emoji).await
    }
    async fn replies(
        &self,
        parent: MessageId,
        page: PageRequest<MessageId>,
    ) -> DomainResult<Page<Message>> {
        self.store.replies(parent, page).await
    }
    async fn changes_after(
        &self,
        viewer: UserId,
        viewer_name: &Username,
        after: u64,
        limit: usize,
    ) -> DomainResult<chat_domain::StreamPage> {
        self.store
            .changes_after(viewer, viewer_name, after, limit)
            .await
    }
    async fn latest_position(&self) -> DomainResult<u64> {
        self.store.latest_position().await
    }
}

#[async_trait]
impl RevocationStore for PgTestStore {
    async fn revoke(&self, token: TokenId, expires_at: OffsetDateTime) -> DomainResult<()> {
        self.store.revoke(token, expires_at).await
    }
    async fn is_revoked(&self, token: TokenId) -> DomainResult<bool> {
        self.store.is_revoked(token).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> DomainResult<u64> {
        self.store.purge_expired(now).await
    }
}

#[async_trait]
impl ReadStore for PgTestStore {
    async fn mark_read(
        &self,
        reader: UserId,
        conversation: &ConversationRef,
        message: MessageId,
    ) -> DomainResult<Option<u64>> {
        self.store.mark_read(reader, conversation, message).await
    }
    async fn conversation(
        &self,
        viewer: UserId,
        conversation: &ConversationRef,
    ) -> DomainResult<Option<Conversation>> {
        self.store.conversation(viewer, conversation).await
    }
    async fn conversations(
        &self,
        viewer: UserId,
        limit: usize,
        before: Option<Activity>,
    ) -> DomainResult<ConversationPage> {
        self.store.conversations(viewer, limit, before).await
    }
}

#[async_trait]
impl StoreHealth for PgTestStore {
    async fn check(&self) -> DomainResult<()> {
        self.store.check().await
    }
}

// ------------------------------------------------------------- internals

/// Connects to the admin database, with a message that says what to do.
async fn admin_connection(admin_url: &str) -> Result<AsyncPgConnection, String> {
    let connecting = AsyncPgConnection::establish(admin_url);
    if let Ok(Ok(conn)) = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        return Ok(conn);
    }
    // Ask again through the store's check, whose error says why.
    let reason = match chat_store_postgres::check_reachable(admin_url).await {
        Ok(()) => "it failed once, then answered".to_owned(),
        Err(err) => err.to_string(),
    };
    Err(format!(
        "the PostgreSQL tests need a server: {reason}. Start one with scripts/db-up.sh, \
         or set TEST_DATABASE_URL to an admin URL (a role that may CREATE DATABASE)."
    ))
}

/// Makes sure the migrated template of this build's migrations exists and
/// returns its name. Builds it under an advisory lock, under a temporary
/// name that is renamed when complete, so a concurrent or crashed build is
/// never cloned half-done.
async fn ensure_template(admin_url: &str) -> Result<String, String> {
    let template = format!("chat_test_template_{:016x}", migrations_fingerprint());
    let mut conn = admin_connection(admin_url).await?;
    execute(
        &mut conn,
        &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"),
    )
    .await?;
    let built = build_template_if_missing(&mut conn, admin_url, &template).await;
    let unlocked = execute(
        &mut conn,
        &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"),
    )
    .await;
    built.and(unlocked).map(|()| template)
}

async fn build_template_if_missing(
    conn: &mut AsyncPgConnection,
    admin_url: &str,
    template: &str,
) -> Result<(), String> {
    if database_exists(conn, template).await? {
        return Ok(());
    }
    drop_stale_templates(conn, template).await;
    let building = format!("{template}_building");
    execute(
        conn,
        &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
    )
    .await?;
    execute(conn, &format!("CREATE DATABASE {building}")).await?;
    chat_store_postgres::run_migrations(&with_database(admin_url, &building))
        .await
        .map_err(|err| err.to_string())?;
    // The migration connection closes asynchronously; a database cannot be
    // renamed (or copied) while anyone is connected to it.
    wait_until_unused(conn, &building).await?;
    execute(
        conn,
        &format!("ALTER DATABASE {building} RENAME TO {template}"),
    )
    .await?;
    // Nobody may connect to the template, so copying it never fails with
    // "source database is being accessed by other users".
    execute(
        conn,
        &format!("ALTER DATABASE {template} WITH ALLOW_CONNECTIONS false"),
    )
    .await
}

/// Templates of older migrations are dead weight; drop the ones nobody is
/// using (a failure just leaves one behind).
async fn drop_stale_templates(conn: &mut AsyncPgConnection, current: &str) {
    let Ok(names) = database_names_like(conn, "chat\\_test\\_template\\_%").await else {
        return;
    };
    for name in names.into_iter().filter(|name| name != current) {
        let _ = execute(conn, &format!("DROP DATABASE IF EXISTS {name}")).await;
    }
}

async fn create_from_template(admin_url: &str, name: &str, template: &str) -> Result<(), String> {
    let mut conn = admin_connection(admin_url).await?;
    execute(
        &mut conn,
        &format!("CREATE DATABASE {name} TEMPLATE {template}"),
    )
    .await
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = admin_connection(admin_url).await?;
    execute(
        &mut conn,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

/// Runs one statement. Database names here are generated (lowercase
/// letters, digits, underscores), never user input, so they are spliced
/// into the DDL, which takes no bind parameters.
async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> Result<(), String> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|err| format!("{sql}: {err}"))
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn database_names_like(
    conn: &mut AsyncPgConnection,
    pattern: &str,
) -> Result<Vec<String>, String> {
    let rows: Vec<Name> =
        diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
            .bind::<Text, _>(pattern)
            .load(conn)
            .await
            .map_err(|err| err.to_string())?;
    Ok(rows.into_iter().map(|row| row.datname).collect())
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, String> {
    let rows: Vec<Name> =
        diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .load(conn)
            .await
            .map_err(|err| err.to_string())?;
    Ok(!rows.is_empty())
}

async fn wait_until_unused(conn: &mut AsyncPgConnection, name: &str) -> Result<(), String> {
    for _ in 0..200 {
        let rows: Vec<Count> =
            diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1")
                .bind::<Text, _>(name)
                .load(conn)
                .await
                .map_err(|err| err.to_string())?;
        if rows.iter().map(|row| row.n).sum::<i64>() == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("database {name} still has sessions after 5 s"))
}

/// The admin URL with its database replaced by `database`. Handles both
/// URL (`postgres://…/db?…`) and key=value (`host=… dbname=…`) forms.
fn with_database(admin_url: &str, database: &str) -> String {
    let Some(scheme_end) = admin_url.find("://") else {
        // key=value: a later dbname overrides an earlier one.
        return format!("{admin_url} dbname={database}");
    };
    let after_scheme = scheme_end + 3;
    let rest = &admin_url[after_scheme..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (base, tail) = admin_url.split_at(after_scheme + authority_end);
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{base}/{database}{query}")
}

/// A stable 64-bit FNV-1a hash of the migrations (names and SQL), so a
/// changed migration gets a new template. Reads the workspace's
/// `migrations/` directory; the embedded names alone are used if it is
/// missing.
fn migrations_fingerprint() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    for path in &files {
        let relative = path.strip_prefix(&dir).unwrap_or(path);
        feed(relative.to_string_lossy().as_bytes());
        feed(&std::fs::read(path).unwrap_or_default());
    }
    if files.is_empty() {
        use diesel::migration::MigrationSource;
        let migrations =
            MigrationSource::<diesel::pg::Pg>::migrations(&chat_store_postgres::MIGRATIONS)
                .unwrap_or_default();
        for migration in migrations {
            feed(migration.name().to_string().as_bytes());
        }
    }
    hash
}

/// Every `.sql` file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|ext| ext == "sql") {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_in_either_url_form() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/db?sslmode=disable", "t1"),
            "postgres://u:p@h:1/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("host=h user=u dbname=postgres", "t1"),
            "host=h user=u dbname=postgres dbname=t1"
        );
    }
}
