//! The log never holds a secret. The real `chat-server` binary runs with
//! `LOG_FORMAT=json LOG_LEVEL=trace` (every dependency at its most verbose),
//! a user registers, logs in, reads the profile with the bearer token and
//! with the cookie, logs out; then the whole log (stdout and stderr) is
//! searched for the password, the token and the JWT secret. Each request's
//! id (`X-Request-Id`) must be on its log line, and every line must be JSON.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chat_test_support::pg::TestDatabase;
use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};

use crate::support::Backend;

per_backend!(no_secret_reaches_the_log);

const PASSWORD: &str = "hunter2-secret-pw";

/// The binary, its log lines as they arrive, and where it listens.
struct LoggingServer {
    child: Child,
    lines: mpsc::Receiver<Line>,
    /// Everything read so far.
    seen: Vec<Line>,
    base_url: String,
}

/// One line of output.
#[derive(Clone, Debug)]
struct Line {
    stderr: bool,
    text: String,
}

impl LoggingServer {
    fn start(vars: &[(&str, &str)]) -> Self {
        let cwd = std::env::temp_dir().join(format!("chat-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&cwd).expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            // No inherited DATABASE_URL or REDIS_URL, and no .env.
            .env_clear()
            .current_dir(&cwd)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat-server starts");
        let (tx, lines) = mpsc::channel();
        forward(child.stdout.take().expect("stdout"), false, tx.clone());
        forward(child.stderr.take().expect("stderr"), true, tx);
        let mut server = Self {
            child,
            lines,
            seen: Vec::new(),
            base_url: String::new(),
        };
        server.base_url = server.wait_until_listening();
        server
    }

    /// Reads lines until "listening on http://0.0.0.0:PORT" and returns the
    /// loopback URL of that port.
    fn wait_until_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            let message = serde_json::from_str::<Value>(&line.text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if let Some(addr) = message.strip_prefix("listening on http://") {
                let port = addr.rsplit(':').next().expect("a port");
                return format!("http://127.0.0.1:{port}");
            }
        }
        panic!("chat-server did not start: {:#?}", self.seen);
    }

    /// SIGTERM, waits for the exit, and returns every line it wrote.
    fn stop(mut self) -> Vec<Line> {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "chat-server ignored SIGTERM");
            thread::sleep(Duration::from_millis(50));
        }
        // Both pipes are closed now, so the channel ends.
        let rest: Vec<Line> = self.lines.iter().collect();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(rest);
        seen
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        // Only matters when a test fails before `stop`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward(pipe: impl Read + Send + 'static, stderr: bool, tx: mpsc::Sender<Line>) {
    thread::spawn(move || {
        for text in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(Line { stderr, text }).is_err() {
                break;
            }
        }
    });
}

/// The request id a response carries.
fn request_id(res: &Response) -> String {
    res.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id on every response")
        .to_owned()
}

/// Runs the whole round against `base`; returns the token it used and the
/// request ids of every response.
async fn login_round(base: &str) -> (String, Vec<String>) {
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{base}{path}");
    let mut ids = Vec::new();
    let res = client
        .post(url("/api/auth/register"))
        .json(&json!({"username": "logwatcher", "email": "logwatcher@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    ids.push(request_id(&res));
    let res = client
        .post(url("/api/auth/login"))
        .json(&json!({"username": "logwatcher", "password": format!("{PASSWORD}-wrong")}))
        .send()
        .await
        .expect("bad login");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    ids.push(request_id(&res));
    let res = client
        .post(url("/api/auth/login"))
        .json(&json!({"username": "logwatcher", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::OK);
    ids.push(request_id(&res));
    let token = res.json::<Value>().await.expect("session")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let calls = [
        ("GET", "/api/auth/profile", true, StatusCode::OK),
        ("GET", "/api/auth/profile", false, StatusCode::OK),
        ("POST", "/api/auth/logout", true, StatusCode::OK),
        // The revoked token, replayed.
        ("GET", "/api/auth/profile", false, StatusCode::UNAUTHORIZED),
    ];
    for (method, path, bearer, status) in calls {
        let request = if method == "GET" {
            client.get(url(path))
        } else {
            client.post(url(path))
        };
        let request = if bearer {
            request.bearer_auth(&token)
        } else {
            request.header(header::COOKIE, format!("jwt_token={token}"))
        };
        let res = request.send().await.expect("request");
        assert_eq!(res.status(), status, "{method} {path}");
        ids.push(request_id(&res));
    }
    (token, ids)
}

async fn no_secret_reaches_the_log(backend: Backend) {
    let jwt_secret = format!("jwt-secret-{}", uuid::Uuid::new_v4().simple());
    let database = match backend {
        Backend::Memory => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut vars = vec![
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("AUTH_RATE_LIMIT", "0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "trace"),
        ("JWT_SECRET", jwt_secret.as_str()),
    ];
    if let Some(db) = &database {
        vars.extend([("DATABASE_URL", db.url.as_str()), ("DB_POOL_SIZE", "2")]);
    }
    let server = LoggingServer::start(&vars);
    let (token, ids) = login_round(&server.base_url).await;
    let lines = server.stop();

    let signature = token.rsplit('.').next().expect("a JWT");
    let secrets = [
        ("the password", PASSWORD),
        ("the token", token.as_str()),
        ("the token's signature", signature),
        ("the JWT secret", jwt_secret.as_str()),
    ];
    for line in &lines {
        for (what, secret) in secrets {
            assert!(
                !line.text.contains(secret),
                "{what} is in the log: {}",
                line.text
            );
        }
    }
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| !l.stderr && !l.text.trim().is_empty())
        .map(|l| {
            serde_json::from_str(&l.text)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {}", l.text))
        })
        .collect();
    assert!(
        events.len() > 20,
        "trace level logs plenty: {}",
        events.len()
    );
    assert_no_statement_parameters(&events);
    for id in &ids {
        assert!(
            events
                .iter()
                .any(|e| e["span"]["request_id"] == id.as_str()
                    && e["message"] == "request completed"),
            "no log line carries request id {id}"
        );
    }
    drop(database);
}

/// tokio-postgres logs each statement with its parameters (password hashes,
/// emails, message text) at DEBUG: that level must never reach the log.
fn assert_no_statement_parameters(events: &[Value]) {
    for event in events {
        let target = event["target"].as_str().unwrap_or_default();
        let level = event["level"].as_str().unwrap_or_default();
        assert!(
            !(target.starts_with("tokio_postgres") && matches!(level, "DEBUG" | "TRACE")),
            "database statements are logged: {event}"
        );
    }
}

/// Any client can break the WebSocket protocol: the server closes the
/// connection with the code that says why and logs it at debug level,
/// never as an error of its own.
#[tokio::test]
async fn a_client_breaking_the_websocket_protocol_is_no_server_error() {
    use crate::support::raw::{client_frame, client_header, RawWs};

    let jwt_secret = format!("jwt-secret-{}", uuid::Uuid::new_v4().simple());
    let server = LoggingServer::start(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("AUTH_RATE_LIMIT", "0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "debug"),
        ("JWT_SECRET", jwt_secret.as_str()),
    ]);
    let token = register_and_login(&server.base_url, "breaker").await;
    let addr = server
        .base_url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("a loopback address");
    let mut huge = client_header(0x82, 2 << 30);
    huge.extend_from_slice(&[0; 1024]);
    let cases: [(&str, Vec<u8>, u16); 6] = [
        ("a 1-byte close payload", client_frame(0x88, &[3]), 1002),
        ("a 2 GiB frame", huge, 1009),
        ("an unknown opcode", client_frame(0x83, b"x"), 1002),
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bits", client_frame(0xc1, b"x"), 1002),
        (
            "text that is not UTF-8",
            client_frame(0x81, &[0xff, 0xfe]),
            1007,
        ),
    ];
    for (case, bytes, code) in cases {
        let mut ws = RawWs::open(addr, &token, 64 * 1024).await;
        ws.send(&bytes).await;
        assert_eq!(ws.close_code().await, Some(code), "{case}");
    }
    // And one that leaves in the middle of a frame.
    let mut ws = RawWs::open(addr, &token, 64 * 1024).await;
    ws.send(&client_header(0x81, 100)).await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let events: Vec<Value> = server
        .stop()
        .iter()
        .filter_map(|l| serde_json::from_str(&l.text).ok())
        .collect();
    let errors: Vec<&Value> = events.iter().filter(|e| e["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "logged as errors: {errors:#?}");
    let noted = events
        .iter()
        .filter(|e| e["level"] == "DEBUG" && e["message"] == "WebSocket client broke the protocol")
        .count();
    assert_eq!(noted, 6, "each protocol error noted at debug level");
}

/// Registers `username` and logs in; the token.
async fn register_and_login(base: &str, username: &str) -> String {
    let client = reqwest::Client::new();
    let email = format!("{username}@example.com");
    let res = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": username, "email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.expect("session")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}
