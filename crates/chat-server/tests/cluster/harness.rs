//! Two real `chat-server` processes sharing one PostgreSQL database (a
//! fresh one per test) and one Redis (a key prefix per test), on loopback,
//! and clients for them.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chat_test_support::pg::TestDatabase;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::ws::{set, WsClient, CONNECT_PATH};
use crate::support::{TestUser, PASSWORD};

/// How often each instance refreshes its presence in Redis during tests.
pub const HEARTBEAT: Duration = Duration::from_millis(300);
/// How long a registration outlives its last refresh during tests.
pub const PRESENCE_TTL: Duration = Duration::from_millis(1200);

/// The longest wait for a started process to say where it listens.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// The test Redis: `TEST_REDIS_URL`, else the local default (what
/// `scripts/test.sh` provides).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("bound address").port()
}

/// Lines a child process printed, collected by a thread per stream so its
/// pipes never fill up.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    /// Collects `stream` line by line until it ends.
    pub fn collect(&self, stream: impl Read + Send + 'static) {
        let lines = Arc::clone(&self.0);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
    }

    /// Everything so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One `chat-server` process (the binary built with these tests), on
/// `127.0.0.1:<random port>`. Dropping it kills it.
pub struct Instance {
    /// `a` or `b`, in messages.
    pub name: &'static str,
    /// Where it listens (on loopback).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// A plain client (tokens sent explicitly).
    pub client: reqwest::Client,
    child: Child,
    output: Output,
}

impl Instance {
    /// Starts the binary with exactly these variables (no inherited
    /// `DATABASE_URL` or `.env`: it runs in the temporary directory) and
    /// waits until it listens.
    pub async fn spawn(name: &'static str, vars: &[(String, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        command
            .env_clear()
            .current_dir(std::env::temp_dir())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !vars.iter().any(|(k, _)| k == "LOG_LEVEL") {
            command.env("LOG_LEVEL", "info");
        }
        let mut child = command.spawn().expect("chat-server starts");
        let output = Output::default();
        output.collect(child.stdout.take().expect("piped stdout"));
        output.collect(child.stderr.take().expect("piped stderr"));
        let mut instance = Self {
            name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            base_url: String::new(),
            client: reqwest::Client::new(),
            child,
            output,
        };
        let port = instance.wait_for_port().await;
        instance.addr.set_port(port);
        instance.base_url = format!("http://{}", instance.addr);
        instance
    }

    /// Reads the port from the `listening on http://...:PORT` log line.
    async fn wait_for_port(&mut self) -> u16 {
        let started = Instant::now();
        loop {
            let port = self.output.lines().iter().find_map(|line| {
                let log: Value = serde_json::from_str(line).ok()?;
                let message = log["message"].as_str()?;
                let url = message.strip_prefix("listening on http://")?;
                url.rsplit_once(':')?.1.parse::<u16>().ok()
            });
            if let Some(port) = port {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "instance {} exited ({status}) before listening:\n{}",
                    self.name,
                    self.output.lines().join("\n")
                );
            }
            assert!(
                started.elapsed() < START_PATIENCE,
                "instance {} did not listen within {START_PATIENCE:?}:\n{}",
                self.name,
                self.output.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process at once (SIGKILL): no WebSocket is closed, the
    /// cluster is not told, as when a machine dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM, as an orchestrator does) and
    /// waits until it has exited; its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(
                started.elapsed() < START_PATIENCE,
                "instance {} still running {START_PATIENCE:?} after SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
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

    /// `PATCH path` with a bearer token.
    pub fn patch(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(token)
    }

    /// `PUT path` with a bearer token.
    pub fn put(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(token)
    }

    /// Registers and logs in `username` on this instance.
    pub async fn user(&self, username: &str) -> TestUser {
        Api::new(&self.base_url, self.client.clone())
            .user(username)
            .await
    }

    /// `/health`: status code and body.
    pub async fn health(&self) -> (StatusCode, Value) {
        let res = self
            .client
            .get(self.url("/health"))
            .send()
            .await
            .expect("health");
        (res.status(), res.json().await.expect("health JSON"))
    }

    /// `/api/ws/users` as `viewer`: the usernames.
    pub async fn connected_users(&self, viewer: &TestUser) -> Value {
        let body: Value = self
            .get("/api/ws/users", &viewer.token)
            .send()
            .await
            .expect("ws users")
            .json()
            .await
            .expect("ws users JSON");
        assert_eq!(
            body["count"],
            body["connected_users"].as_array().map_or(0, Vec::len)
        );
        body["connected_users"].clone()
    }

    /// `is_online` of `user` as this instance reports it.
    pub async fn is_online(&self, viewer: &TestUser, user: &TestUser) -> Value {
        let body: Value = self
            .get(&format!("/api/users/{}", user.id), &viewer.token)
            .send()
            .await
            .expect("user")
            .json()
            .await
            .expect("user JSON");
        body["is_online"].clone()
    }

    /// Sends a message over HTTP and expects 201; the message.
    pub async fn send_ok(&self, user: &TestUser, body: Value) -> Value {
        let res = self
            .post("/api/messages", &user.token)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "sending on {}",
            self.name
        );
        res.json().await.expect("message JSON")
    }

    /// Creates a room owned by `owner` with these other members; its id.
    pub async fn room(&self, owner: &TestUser, name: &str, members: &[&TestUser]) -> String {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let res = self
            .post("/api/rooms", &owner.token)
            .json(&json!({"name": name, "members": ids}))
            .send()
            .await
            .expect("create room");
        assert_eq!(res.status(), StatusCode::CREATED);
        let room: Value = res.json().await.expect("room JSON");
        room["id"].as_str().expect("room id").to_owned()
    }

    /// Opens a WebSocket on this instance as `user`.
    pub async fn ws(&self, user: &TestUser) -> WsClient {
        open_ws(self.addr, user).await
    }

    /// Opens a WebSocket on this instance as `user`, resuming after
    /// `since` (a cursor or a message id).
    pub async fn ws_since(&self, user: &TestUser, since: &str) -> WsClient {
        open_ws_at(self.addr, user, Some(since)).await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- instance {} log ---\n{}",
                self.name,
                self.output.lines().join("\n")
            );
        }
    }
}

/// Registration and login against any base URL (an instance or nginx).
pub struct Api {
    base_url: String,
    client: reqwest::Client,
}

impl Api {
    /// A client of `base_url` (`http://host:port`).
    pub fn new(base_url: &str, client: reqwest::Client) -> Self {
        Self {
            base_url: base_url.to_owned(),
            client,
        }
    }

    /// Registers and logs in `username` (password [`PASSWORD`]).
    pub async fn user(&self, username: &str) -> TestUser {
        let res = self
            .client
            .post(format!("{}/api/auth/register", self.base_url))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            }))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), StatusCode::CREATED, "registering {username}");
        let user: Value = res.json().await.expect("user JSON");
        let res = self
            .client
            .post(format!("{}/api/auth/login", self.base_url))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), StatusCode::OK, "logging in {username}");
        let session: Value = res.json().await.expect("session JSON");
        TestUser {
            id: user["id"].as_str().expect("id").to_owned(),
            username: username.to_owned(),
            token: session["token"].as_str().expect("token").to_owned(),
        }
    }
}

/// Opens a WebSocket to `addr` as `user` (bearer token) and reads its
/// `connection` frame.
pub async fn open_ws(addr: SocketAddr, user: &TestUser) -> WsClient {
    open_ws_at(addr, user, None).await
}

/// [`open_ws`] with `?since=` when given.
pub async fn open_ws_at(addr: SocketAddr, user: &TestUser, since: Option<&str>) -> WsClient {
    let query = since
        .map(|since| format!("?since={since}"))
        .unwrap_or_default();
    let mut request = format!("ws://{addr}{CONNECT_PATH}{query}")
        .into_client_request()
        .expect("a valid WebSocket URL");
    set(
        &mut request,
        "authorization",
        &format!("Bearer {}", user.token),
    );
    let (stream, response) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|err| panic!("{}: the WebSocket to {addr} opens: {err}", user.username));
    assert_eq!(response.status().as_u16(), 101);
    let mut client = WsClient {
        stream,
        username: user.username.clone(),
    };
    let hello = client.recv_json().await;
    assert_eq!(hello["type"], "connection", "first frame: {hello}");
    assert_eq!(hello["username"], user.username.as_str());
    client
}

/// Two instances of one deployment: same database, same Redis prefix, same
/// JWT secret (a token from one is good on the other).
pub struct Cluster {
    /// The first instance.
    pub a: Instance,
    /// The second instance.
    pub b: Instance,
    /// Dropped after the instances (fields drop in order).
    _database: TestDatabase,
}

impl Cluster {
    /// Two instances with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Two instances with the test defaults overridden by `extra`.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let database = TestDatabase::create().await;
        let vars = cluster_vars(&database.url, extra);
        let (a, b) = tokio::join!(Instance::spawn("a", &vars), Instance::spawn("b", &vars));
        Self {
            a,
            b,
            _database: database,
        }
    }
}

/// The variables of a test cluster: a shared database, Redis under a
/// prefix of its own, a shared secret, fast presence expiry, no rate limits
/// unless `extra` sets them.
pub fn cluster_vars(database_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let prefix = format!("test-cluster-{}", uuid::Uuid::new_v4().simple());
    let secret = format!(
        "cluster-{}-{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let heartbeat = format!("{}ms", HEARTBEAT.as_millis());
    let ttl = format!("{}ms", PRESENCE_TTL.as_millis());
    let mut vars: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("DB_POOL_SIZE", "4"),
        ("REDIS_URL", redis_url().as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("REDIS_PRESENCE_HEARTBEAT", heartbeat.as_str()),
        ("REDIS_PRESENCE_TTL", ttl.as_str()),
        ("JWT_SECRET", secret.as_str()),
        ("BCRYPT_COST", "4"),
        ("AUTH_RATE_LIMIT", "0"),
        ("WEBSOCKET_RATE_LIMIT", "0"),
        ("MESSAGE_RATE_LIMIT", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (key, value) in extra {
        vars.retain(|(k, _)| k != key);
        vars.push(((*key).to_owned(), (*value).to_owned()));
    }
    vars
}

/// A `presence` frame.
/// Makes `ws` follow these users' presence; the answer with their status
/// now.
pub async fn follow(ws: &mut WsClient, users: &[&str]) -> Value {
    ws.send_json(json!({"type": "presence_subscribe", "usernames": users}))
        .await;
    let now = ws.recv_json().await;
    assert_eq!(now["type"], "presence", "{}: {now}", ws.username);
    now
}

/// Reads frames until a `presence` frame that tells `user`'s `status`,
/// skipping other presence frames; panics on any other frame. Returns how
pub async fn await_presence(ws: &mut WsClient, user: &str, status: &str) -> Duration {
    let started = Instant::now();
    loop {
        let frame = ws.recv_json().await;
        let told = json!({"username": user, "status": status});
        let users = frame["users"].as_array();
        if users.is_some_and(|users| users.contains(&told)) {
            return started.elapsed();
        }
        assert_eq!(
            frame["type"], "presence",
            "{}: expected presence of {user} {status}, got {frame}",
            ws.username
        );
    }
}
