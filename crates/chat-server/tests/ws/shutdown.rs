//! SIGTERM with live sockets: the real binary closes every WebSocket with
//! 1001 and exits 0 within 10 s.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::ws::{set, WsClient};
use crate::support::{TestUser, PASSWORD};

/// The binary, killed if a failing test leaves it running.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary on a free port, in a clean environment.
fn spawn_server() -> ServerProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env_clear()
        .current_dir(std::env::temp_dir())
        .envs([
            ("PORT", "0"),
            ("BCRYPT_COST", "4"),
            ("AUTH_RATE_LIMIT", "0"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    ServerProcess(child)
}

/// Where the server listens, from its log, and a channel of its remaining
/// log lines (drained so that it never blocks on a full pipe).
fn listening_address(server: &mut ServerProcess) -> (String, mpsc::Receiver<String>) {
    let stdout = server.0.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the server says where it listens");
        if let Some((_, rest)) = line.split_once("listening on http://") {
            let authority = rest.split_whitespace().next().unwrap_or_default();
            let port = authority.rsplit(':').next().unwrap_or_default();
            return (format!("127.0.0.1:{port}"), lines);
        }
    }
}

async fn user(client: &reqwest::Client, base: &str, name: &str) -> TestUser {
    let res = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    let created: Value = res.json().await.expect("user");
    let res = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let session: Value = res.json().await.expect("session");
    TestUser {
        id: created["id"].as_str().expect("id").to_owned(),
        username: name.to_owned(),
        token: session["token"].as_str().expect("token").to_owned(),
    }
}

async fn open(addr: &str, user: &TestUser) -> WsClient {
    let mut request = format!("ws://{addr}/api/ws/connect")
        .into_client_request()
        .expect("url");
    set(&mut request, "cookie", &format!("jwt_token={}", user.token));
    let (stream, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("opens");
    let mut socket = WsClient {
        stream,
        username: user.username.clone(),
    };
    assert_eq!(socket.recv_json().await["type"], "connection");
    socket
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits_0() {
    let mut server = spawn_server();
    let (addr, _lines) = listening_address(&mut server);
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let mut sockets = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let user = user(&client, &base, name).await;
        sockets.push(open(&addr, &user).await);
        // A second tab for one of them.
        if name == "bob" {
            sockets.push(open(&addr, &user).await);
        }
    }
    for socket in &mut sockets {
        socket.assert_usable().await;
    }

    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let signalled = Instant::now();
    for socket in &mut sockets {
        assert_eq!(socket.expect_close().await, 1001, "{}", socket.username);
    }
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.0.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("waiter");
    let status = status.expect("the server exits within 10 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(10));
    // New connections are refused once it is gone.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}
