//! Shared by the integration tests: the test Redis, per-test prefixes,
//! fast options, private `redis-server` processes, and a connection probe.

#![allow(dead_code)] // each test binary uses part of this

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Delivery, Notifier, PresenceStatus, Subscription, TokenId, UserId, UserPresence, Username,
};
use chat_protocol::ServerFrame;
use chat_realtime_redis::{RedisNotifier, RedisOptions};

pub const PATIENCE: Duration = Duration::from_secs(5);

/// The shared test Redis: `TEST_REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fails the test, saying why, when the test Redis does not answer: these
/// tests never skip.
pub async fn require_redis(url: &str) {
    let client = redis::Client::open(url).expect("TEST_REDIS_URL is a valid Redis URL");
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("the test Redis at {url} is unreachable ({e}); start it (scripts/test.sh does) or set TEST_REDIS_URL"),
        Err(_) => panic!("the test Redis at {url} did not answer PING within 3 s"),
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Short heartbeat and lifetime, so expiry tests take a second, and quick
/// reconnection.
pub fn fast_options(prefix: &str) -> RedisOptions {
    RedisOptions {
        heartbeat: Duration::from_millis(200),
        presence_ttl: Duration::from_millis(600),
        io_timeout: Duration::from_millis(500),
        max_backoff: Duration::from_millis(300),
        ..RedisOptions::with_prefix(prefix)
    }
}

/// Logs to the test output when `RUST_LOG` is set (`RUST_LOG=debug`).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Two instances of one cluster on the test Redis.
pub async fn cluster_of_two(options: RedisOptions) -> (RedisNotifier, RedisNotifier) {
    init_logs();
    let url = redis_url();
    require_redis(&url).await;
    let a = RedisNotifier::connect(&url, options.clone())
        .await
        .expect("instance a starts");
    let b = RedisNotifier::connect(&url, options)
        .await
        .expect("instance b starts");
    assert!(
        !a.is_degraded() && !b.is_degraded(),
        "both reach the test Redis"
    );
    (a, b)
}

#[allow(unused_imports)] // not every test binary restarts Redis
pub use chat_test_support::redis_server::{free_port, PrivateRedis};

/// Polls `check` until it holds, or fails after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test user's live connection.
pub struct Probe {
    pub id: UserId,
    pub name: Username,
    pub sub: Box<dyn Subscription>,
}

impl Probe {
    pub async fn connect(notifier: &RedisNotifier, name: &str) -> Self {
        Self::attach(notifier, UserId::generate(), name).await
    }

    pub async fn attach(notifier: &RedisNotifier, id: UserId, name: &str) -> Self {
        let name = Username::parse(name).expect("valid test username");
        let sub = notifier
            .connect(id, name.clone(), TokenId::generate())
            .await
            .expect("connects");
        Self { id, name, sub }
    }

    pub async fn delivery(&mut self) -> Option<Delivery> {
        tokio::time::timeout(PATIENCE, self.sub.next())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing within {PATIENCE:?}", self.name))
    }

    pub async fn text(&mut self) -> Arc<str> {
        match self.delivery().await {
            Some(Delivery::Frame { text, .. }) => text,
            other => panic!("{}: expected a frame, got {other:?}", self.name),
        }
    }

    pub async fn frame(&mut self) -> ServerFrame {
        let text = self.text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a server frame ({e}): {text}"))
    }

    pub async fn expect(&mut self, expected: &ServerFrame) {
        assert_eq!(
            &self.frame().await,
            expected,
            "{}: unexpected frame",
            self.name
        );
    }

    /// Nothing arrives for `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        let next = tokio::time::timeout(quiet, self.sub.next()).await;
        assert!(next.is_err(), "{}: unexpected {next:?}", self.name);
    }
}

impl Probe {
    /// Follows these users' presence.
    pub fn follow(&self, names: &[&str]) {
        let names: Vec<Username> = names
            .iter()
            .map(|n| Username::parse(*n).expect("valid test username"))
            .collect();
        let names: Vec<&Username> = names.iter().collect();
        chat_realtime::contract::follow(&*self.sub, &names);
    }

    /// The next presence delivery, skipping frames.
    pub async fn next_presence(&mut self) -> Vec<UserPresence> {
        loop {
            match self.delivery().await {
                Some(Delivery::Presence(users)) => return users,
                Some(Delivery::Frame { .. }) => {}
                other => panic!("{}: expected presence, got {other:?}", self.name),
            }
        }
    }

    /// The next presence delivery is exactly this one user's status.
    pub async fn expect_presence(&mut self, name: &Username, status: PresenceStatus) {
        let expected = vec![UserPresence {
            username: name.as_str().to_owned(),
            status,
        }];
        assert_eq!(
            self.next_presence().await,
            expected,
            "{}: unexpected presence",
            self.name
        );
    }
}

pub fn global_message(sender: &Username, text: &str) -> chat_domain::Message {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    chat_domain::Message::new(
        chat_domain::MessageId::generate(),
        sender.clone(),
        chat_domain::MessageTarget::Global,
        chat_domain::MessageContent::parse(text).expect("valid content"),
        time::OffsetDateTime::from_unix_timestamp(now).expect("valid time"),
    )
}

/// Sorted names, as `connected_users` answers.
pub async fn names(notifier: &RedisNotifier) -> Vec<String> {
    notifier
        .connected_users()
        .await
        .expect("connected_users")
        .into_iter()
        .map(|n| n.as_str().to_owned())
        .collect()
}
