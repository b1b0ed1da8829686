//! The test harness: the real server (`chat_server::build`) on a random
//! loopback port, talked to over real HTTP with reqwest and over real
//! WebSockets with tokio-tungstenite (see [`ws`]).
//!
//! Write a test body once, as `async fn name(app: TestApp)`, and list it in
//! [`backend_tests!`]: it then runs as one `#[tokio::test]` per backend
//! (the in-memory store, and PostgreSQL on a database of its own).
//! A new backend is one more `Backend` variant, its setup in
//! [`TestApp::spawn_with`], and one line in `backend_tests!`.

#![allow(dead_code)]

pub mod raw;
pub mod ws;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_server::config::Vars;
use chat_server::{Config, ShutdownHandle};
use chat_test_support::pg::TestDatabase;
use reqwest::{header, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// The password every test user registers with.
pub const PASSWORD: &str = "correct horse battery";

/// Which store the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `chat-store-memory`.
    Memory,
    /// `chat-store-postgres`, on a fresh database per test
    /// (`TEST_DATABASE_URL`, see `chat_test_support::pg`).
    Postgres,
}

/// Generates, for each listed `async fn name(app: TestApp)`, one
/// `#[tokio::test]` per backend (`memory::name`, ...).
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        backend_module!(memory, Memory, $($test),+);
        backend_module!(postgres, Postgres, $($test),+);
    };
}

/// One module of tests for one backend; used by [`backend_tests!`].
macro_rules! backend_module {
    ($module:ident, $backend:ident, $($test:ident),+) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    let app = $crate::support::TestApp::spawn(
                        $crate::support::Backend::$backend,
                    )
                    .await;
                    super::$test(app).await;
                }
            )+
        }
    };
}

/// For tests that configure their own server: generates, for each listed
/// `async fn name(backend: Backend)`, one `#[tokio::test]` per backend
/// (`on_memory::name`, `on_postgres::name`); the body calls
/// [`TestApp::spawn_with`].
#[allow(unused_macros)]
macro_rules! per_backend {
    ($($test:ident),+ $(,)?) => {
        per_backend_module!(on_memory, Memory, $($test),+);
        per_backend_module!(on_postgres, Postgres, $($test),+);
    };
}

/// One module of [`per_backend!`] tests for one backend.
#[allow(unused_macros)]
macro_rules! per_backend_module {
    ($module:ident, $backend:ident, $($test:ident),+) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::Backend::$backend).await;
                }
            )+
        }
    };
}

/// A running server and a client for it. Dropping it stops the server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// A client without a cookie store (send tokens explicitly).
    pub client: reqwest::Client,
    /// The JWT secret the server signs with, to forge tokens in tests.
    pub jwt_secret: String,
    /// Which store it runs on.
    pub backend: Backend,
    /// The variables the server was configured with, to restart it alike.
    env: Vars,
    /// Its HTTP worker threads.
    workers: usize,
    stop: ShutdownHandle,
    /// The PostgreSQL database, dropped after the server stops.
    database: Option<TestDatabase>,
}

/// A fresh JWT secret, long enough for production's rules.
fn random_secret() -> String {
    format!(
        "test-{}-{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The test defaults: a random port, `BCRYPT_COST=4`, no auth or message
/// rate limit (tests send faster than people; the tests of those limits
/// set them), `jwt_secret`.
fn test_env(jwt_secret: &str) -> Vars {
    let mut env = Vars::new();
    for (key, value) in [
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("AUTH_RATE_LIMIT", "0"),
        ("MESSAGE_RATE_LIMIT", "0"),
        ("JWT_SECRET", jwt_secret),
    ] {
        env.insert(key.to_owned(), value.to_owned());
    }
    env
}

fn override_with(env: &mut Vars, vars: &[(&str, &str)]) {
    for (key, value) in vars {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
}

/// The configuration `env` gives, on loopback, with `workers` HTTP workers.
fn test_config(env: &Vars, workers: usize) -> Config {
    let mut config = Config::from_vars(env).expect("test configuration is valid");
    config.bind_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.workers = Some(workers);
    config
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// The user's id.
    pub id: String,
    /// The user's name.
    pub username: String,
    /// A valid bearer token.
    pub token: String,
}

impl TestApp {
    /// A server with the test defaults: `BCRYPT_COST=4`, a random JWT
    /// secret, no auth rate limit.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// A server with the test defaults overridden by `vars` (environment
    /// variable names and values, as `Config::from_vars` reads them).
    pub async fn spawn_with(backend: Backend, vars: &[(&str, &str)]) -> Self {
        Self::spawn_with_workers(backend, vars, 1).await
    }

    /// [`TestApp::spawn_with`] with `workers` HTTP worker threads instead
    /// of one, for races between requests served on different threads.
    pub async fn spawn_with_workers(
        backend: Backend,
        vars: &[(&str, &str)],
        workers: usize,
    ) -> Self {
        let jwt_secret = random_secret();
        let mut env = test_env(&jwt_secret);
        let database = match backend {
            Backend::Memory => None,
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                env.insert("DATABASE_URL".to_owned(), database.url.clone());
                env.insert("DB_POOL_SIZE".to_owned(), "4".to_owned());
                Some(database)
            }
        };
        override_with(&mut env, vars);
        Self::launch(backend, env, jwt_secret, database, workers).await
    }

    /// Why a server with the test defaults overridden by `vars` fails to
    /// start; panics if it starts.
    pub async fn start_error(vars: &[(&str, &str)]) -> String {
        let mut env = test_env(&random_secret());
        override_with(&mut env, vars);
        match chat_server::build(test_config(&env, 1)).await {
            Ok(_) => panic!("the server started with {vars:?}"),
            Err(err) => err.to_string(),
        }
    }

    /// A server on the PostgreSQL database at `database_url`, which the
    /// test owns and may stop or kill (e.g. a
    /// `chat_test_support::pg_server::PgServer`), with the test defaults
    /// overridden by `vars`. The harness does not drop that database.
    pub async fn spawn_on_database(database_url: &str, vars: &[(&str, &str)]) -> Self {
        let mut all = vec![("DATABASE_URL", database_url)];
        all.extend_from_slice(vars);
        Self::spawn_on_postgres_configured_by(&all).await
    }

    /// A server on the PostgreSQL database that `vars` name (`DATABASE_URL`
    /// or the `DB_*` parts), which the test owns, with a pool of 4.
    pub async fn spawn_on_postgres_configured_by(vars: &[(&str, &str)]) -> Self {
        let mut all = vec![("DB_POOL_SIZE", "4")];
        all.extend_from_slice(vars);
        Self::spawn_with_workers(Backend::Memory, &all, 1)
            .await
            .on_postgres()
    }

    /// Marks a server that `DATABASE_URL` put on PostgreSQL as such.
    fn on_postgres(mut self) -> Self {
        self.backend = Backend::Postgres;
        self
    }

    /// Stops this server and starts a new one with the same configuration
    /// on the same store: for PostgreSQL, what a deploy or a crash does
    /// (tokens stay valid: same JWT secret, same revocations); the memory
    /// store starts empty.
    pub async fn restart(mut self) -> Self {
        self.stop.shutdown().await;
        let database = self.database.take();
        let (backend, env, jwt_secret) = (self.backend, self.env.clone(), self.jwt_secret.clone());
        let workers = self.workers;
        drop(self);
        Self::launch(backend, env, jwt_secret, database, workers).await
    }

    /// Builds and starts the server on a random loopback port.
    async fn launch(
        backend: Backend,
        env: Vars,
        jwt_secret: String,
        database: Option<TestDatabase>,
        workers: usize,
    ) -> Self {
        let app = chat_server::build(test_config(&env, workers))
            .await
            .expect("server starts");
        let addr = app.local_addr();
        let stop = app.shutdown_handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            base_url: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            jwt_secret,
            backend,
            env,
            workers,
            stop,
            database,
        }
    }

    /// The absolute URL of a path (`/api/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The URL of the server's PostgreSQL database (`None` on the memory
    /// store), for tests that reach into the database itself.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|db| db.url.as_str())
    }

    /// A client that keeps cookies, as a browser would.
    pub fn client_with_cookies(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client builds")
    }

    /// `GET path` with a bearer token.
    pub fn get(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    /// `POST path` with a bearer token.
    pub fn post(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    /// `DELETE path` with a bearer token.
    pub fn delete(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }

    /// Registers `username` (email `username@example.com`, password
    /// [`PASSWORD`]); the response.
    pub async fn try_register(&self, username: &str) -> Response {
        self.client
            .post(self.url("/api/auth/register"))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            }))
            .send()
            .await
            .expect("register request")
    }

    /// Registers `username`; the created user.
    pub async fn register(&self, username: &str) -> Value {
        let res = self.try_register(username).await;
        assert_eq!(res.status(), StatusCode::CREATED, "registering {username}");
        res.json().await.expect("user JSON")
    }

    /// Logs in with `password`; the response.
    pub async fn try_login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// Logs `username` in; its token.
    pub async fn login(&self, username: &str) -> String {
        let res = self.try_login(username, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK, "logging in {username}");
        let body: Value = res.json().await.expect("session JSON");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Registers and logs in `username`.
    pub async fn user(&self, username: &str) -> TestUser {
        let user = self.register(username).await;
        TestUser {
            id: user["id"].as_str().expect("id").to_owned(),
            username: username.to_owned(),
            token: self.login(username).await,
        }
    }

    /// Sends a message as `user`; the response.
    pub async fn send(&self, user: &TestUser, body: Value) -> Response {
        self.post("/api/messages", &user.token)
            .json(&body)
            .send()
            .await
            .expect("send request")
    }

    /// Sends a message as `user` and expects 201; the message.
    pub async fn send_ok(&self, user: &TestUser, body: Value) -> Value {
        let res = self.send(user, body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.expect("message JSON")
    }

    /// Creates a room owned by `user` with these extra members; the room.
    pub async fn room(&self, user: &TestUser, name: &str, members: &[&TestUser]) -> Value {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let res = self
            .post("/api/rooms", &user.token)
            .json(&json!({"name": name, "members": ids}))
            .send()
            .await
            .expect("create room request");
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.expect("room JSON")
    }

    /// Claims for a token of `user`, expiring `expires_in` seconds from now
    /// (negative: already expired).
    pub fn claims(&self, user: &TestUser, expires_in: i64) -> Value {
        let now = unix_now();
        json!({
            "sub": user.id,
            "user_id": user.id,
            "username": user.username,
            "iat": now - 60,
            "exp": now + expires_in,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Signs claims with `secret` and `alg`, as an attacker or a clock
    /// would.
    pub fn sign(&self, claims: &Value, alg: jsonwebtoken::Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("token signs")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.stop_now();
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit")
}

/// Reads an error response: asserts its status, JSON content type and
/// shape, and returns its body.
pub async fn expect_error(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status, "status for {code}");
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{code}: content type {content_type:?}"
    );
    let body: Value = res.json().await.expect("error JSON");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

/// The `Link` header's targets by relation (`prev`, `next`).
pub fn links(res: &Response) -> Vec<(String, String)> {
    let Some(header) = res.headers().get(header::LINK) else {
        return Vec::new();
    };
    header
        .to_str()
        .expect("Link is text")
        .split(',')
        .map(|part| {
            let part = part.trim();
            let url = part
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(url, _)| url.to_owned())
                .expect("<url>");
            let rel = part
                .split_once("rel=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(rel, _)| rel.to_owned())
                .expect("rel");
            (rel, url)
        })
        .collect()
}

/// The `Link` target for `rel`, if any.
pub fn link(res: &Response, rel: &str) -> Option<String> {
    links(res)
        .into_iter()
        .find(|(r, _)| r == rel)
        .map(|(_, url)| url)
}

/// Waits (up to 10 s) until an INSERT waits on the `messages` lock.
pub const WAIT_FOR_A_BLOCKED_INSERT: &str = "
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        IF EXISTS (SELECT 1 FROM pg_locks
                   WHERE NOT granted AND relation = 'messages'::regclass) THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'no message insert is waiting on the lock';
END $$";
