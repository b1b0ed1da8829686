//! The same through a real nginx (Debian's package) running the
//! repository's `docker/nginx.conf`, adapted only in its listen port and
//! upstream addresses by `scripts/nginx-test-config.sh`.
//!
//! nginx must be installed (`scripts/test.sh` installs it with apt-get when
//! missing); `NGINX_BIN` names another binary. Without one these tests
//! fail, saying so: they are never skipped.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{await_presence, follow, free_port, open_ws, Api, Cluster, Output};
use crate::support::ws::QUIET;
use crate::support::PASSWORD;

/// nginx's binary: `NGINX_BIN`, else the first of the usual places.
fn nginx_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: these tests run the real nginx. Install Debian's \
                 package (apt-get install -y nginx; scripts/test.sh does it) or set NGINX_BIN"
            )
        })
}

/// The repository root (this crate is `crates/chat-server`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A private nginx: its own prefix directory, config, pid file and logs;
/// stopped (SIGTERM, then waited for) and cleaned up on drop.
pub struct Nginx {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    child: Child,
    /// nginx's stdout: the access log (`access_log /dev/stdout`).
    access: Output,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in front of these two instances and waits until a
    /// request through it is answered.
    pub async fn start(upstreams: [SocketAddr; 2]) -> Self {
        let bin = nginx_binary();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(&bin, upstreams).await {
                Ok(nginx) => return nginx,
                // Another process may take the port between probe and bind.
                Err(why) if attempts < 3 => eprintln!("nginx did not start ({why}); retrying"),
                Err(why) => panic!("nginx did not start: {why}"),
            }
        }
    }

    async fn try_start(bin: &Path, upstreams: [SocketAddr; 2]) -> Result<Self, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let dir =
            std::env::temp_dir().join(format!("chat-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let config = generate_config(upstreams, addr);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, config).map_err(|e| format!("writing the config: {e}"))?;
        let globals = format!(
            "daemon off; pid {}; error_log {} info;",
            dir.join("nginx.pid").display(),
            dir.join("error.log").display()
        );
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(globals)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        let access = Output::default();
        access.collect(child.stdout.take().expect("piped stdout"));
        access.collect(child.stderr.take().expect("piped stderr"));
        let mut nginx = Self {
            addr,
            base_url: format!("http://{addr}"),
            child,
            access,
            dir,
        };
        nginx.wait_until_it_proxies().await?;
        Ok(nginx)
    }

    async fn wait_until_it_proxies(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(res) = client.get(format!("{}/health", self.base_url)).send().await {
                if res.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited ({status}):\n{}", self.error_log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "no answer through nginx within 15 s:\n{}",
            self.error_log()
        ))
    }

    /// nginx's error log and anything it printed.
    pub fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        format!("{log}{}", self.access.lines().join("\n"))
    }

    /// Access-log lines of finished WebSocket sessions: the upstream each
    /// was proxied to (`upstream=HOST:PORT`).
    pub fn websocket_upstreams(&self) -> Vec<String> {
        self.access
            .lines()
            .iter()
            .filter(|line| line.contains("\"GET /api/ws/connect") && line.contains(" 101 "))
            .filter_map(|line| {
                let upstream = line.split_once("upstream=")?.1;
                Some(upstream.split_whitespace().next()?.to_owned())
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nginx logs ---\n{}", self.error_log());
        }
        // SIGTERM: the master stops its workers and exits ("fast
        // shutdown"); SIGKILL would leave the workers behind.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("nginx (pid {pid}) ignored SIGTERM for 10 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `docker/nginx.conf` with these upstreams and listen address, by the
/// repository's script (never edited by hand).
fn generate_config(upstreams: [SocketAddr; 2], listen: SocketAddr) -> String {
    let script = repo_root().join("scripts/nginx-test-config.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(upstreams[0].to_string())
        .arg(upstreams[1].to_string())
        .arg(listen.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the config is UTF-8")
}

/// A client whose connections come from `127.0.0.<last>` (all of 127/8
/// reaches loopback listeners), as if from another machine.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("client builds")
}

#[tokio::test]
async fn two_clients_through_nginx_chat_in_every_mode_across_instances() {
    let cluster = Cluster::start().await;
    let nginx = Nginx::start([cluster.a.addr, cluster.b.addr]).await;
    let api = Api::new(&nginx.base_url, reqwest::Client::new());
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;

    // least_conn over a shared zone: with Alice's socket open on one
    // instance, Bob's goes to the other (checked in the access log below).
    let mut alice_ws = open_ws(nginx.addr, &alice).await;
    follow(&mut alice_ws, &["bob"]).await;
    let mut bob_ws = open_ws(nginx.addr, &bob).await;
    await_presence(&mut alice_ws, "bob", "online").await;
    for base in [&nginx.base_url, &cluster.a.base_url, &cluster.b.base_url] {
        let users: Value = reqwest::Client::new()
            .get(format!("{base}/api/ws/users"))
            .bearer_auth(&carol.token)
            .send()
            .await
            .expect("ws users")
            .json()
            .await
            .expect("json");
        assert_eq!(
            users["connected_users"],
            json!(["alice", "bob"]),
            "via {base}"
        );
    }

    // Global, over the WebSocket.
    alice_ws
        .send_json(json!({"type": "message", "content": "hi all"}))
        .await;
    let global = bob_ws.recv_event().await;
    assert_eq!(global["type"], "message");
    assert_eq!(global["message"]["content"], "hi all");
    assert_eq!(alice_ws.recv_event().await, global);

    // Direct, over the WebSocket, both ways.
    bob_ws
        .send_json(json!({"type": "message", "content": "just you", "recipient": "alice"}))
        .await;
    let direct = alice_ws.recv_event().await;
    assert_eq!(direct["type"], "direct_message");
    assert_eq!(direct["message"]["sender"], "bob");
    assert_eq!(bob_ws.recv_event().await, direct);

    // A room made and used over HTTP through nginx.
    let res = api_post(
        &nginx,
        &alice.token,
        "/api/rooms",
        json!({"name": "via nginx", "members": [bob.id]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let room: Value = res.json().await.expect("room");
    let room_id = room["id"].as_str().expect("room id");
    let res = api_post(
        &nginx,
        &bob.token,
        "/api/messages",
        json!({"content": "room hello", "room_id": room_id}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let stored: Value = res.json().await.expect("message");
    let expected = json!({"type": "message", "message": stored});
    assert_eq!(alice_ws.recv_stored().await, expected);
    assert_eq!(bob_ws.recv_stored().await, expected);

    // Typing, to a person and in the room.
    alice_ws
        .send_json(json!({"type": "typing", "recipient": "bob"}))
        .await;
    assert_eq!(
        bob_ws.recv_event().await,
        json!({"type": "typing", "username": "alice", "recipient": "bob"})
    );
    bob_ws
        .send_json(json!({"type": "typing", "room_id": room_id}))
        .await;
    assert_eq!(
        alice_ws.recv_event().await,
        json!({"type": "typing", "username": "bob", "room_id": room_id})
    );

    // Presence: Bob leaving is announced to Alice.
    bob_ws.close().await;
    await_presence(&mut alice_ws, "bob", "offline").await;
    alice_ws.expect_silence(QUIET).await;
    alice_ws.close().await;

    // The two sockets went to different instances.
    let started = Instant::now();
    let mut upstreams = nginx.websocket_upstreams();
    while upstreams.len() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        upstreams = nginx.websocket_upstreams();
    }
    let distinct: BTreeSet<String> = upstreams.iter().cloned().collect();
    let instances: BTreeSet<String> = [cluster.a.addr, cluster.b.addr]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        upstreams.len(),
        2,
        "two WebSocket sessions logged: {upstreams:?}"
    );
    assert_eq!(
        distinct, instances,
        "one socket on each instance: {upstreams:?}"
    );
}

async fn api_post(nginx: &Nginx, token: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", nginx.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request through nginx")
}

/// A wrong-password login through nginx from `client`.
async fn failed_login(
    nginx: &Nginx,
    client: &reqwest::Client,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(format!("{}/api/auth/login", nginx.base_url))
        .json(&json!({"username": "alice", "password": format!("{PASSWORD}-wrong")}));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("login through nginx")
}

#[tokio::test]
async fn the_address_nginx_forwards_keys_the_auth_rate_limit() {
    const LIMIT: u32 = 3;
    let limit = LIMIT.to_string();
    let cluster = Cluster::start_with(&[
        ("AUTH_RATE_LIMIT", limit.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let nginx = Nginx::start([cluster.a.addr, cluster.b.addr]).await;
    cluster.a.user("alice").await;

    // Each instance allows LIMIT attempts per client per minute, so 2 x
    // LIMIT + 1 attempts from one client through nginx must meet a 429.
    let second = client_from(2);
    let mut statuses = Vec::new();
    for _ in 0..=2 * LIMIT {
        let res = failed_login(&nginx, &second, &[]).await;
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["code"], "rate_limited");
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "127.0.0.2 was limited: {statuses:?}"
    );
    assert!(
        statuses[..statuses.len() - 1].iter().all(|&s| s == 401),
        "{statuses:?}"
    );

    // nginx's own address (127.0.0.1) is not the key: another client
    // behind the same nginx has its whole allowance.
    let third = client_from(3);
    for attempt in 0..LIMIT {
        let res = failed_login(&nginx, &third, &[]).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "127.0.0.3, attempt {attempt}"
        );
    }

    // What a client writes in X-Forwarded-For itself is not believed: nginx
    // appends the real address, and that one counts.
    let fourth = client_from(4);
    for attempt in 0..LIMIT {
        let res = failed_login(&nginx, &fourth, &[("x-forwarded-for", "127.0.0.2")]).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "127.0.0.4 posing as 127.0.0.2, attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn metrics_are_refused_through_nginx_and_served_by_each_instance() {
    let cluster = Cluster::start().await;
    let nginx = Nginx::start([cluster.a.addr, cluster.b.addr]).await;
    let client = reqwest::Client::new();
    // Every spelling nginx normalizes to /metrics is refused at the edge.
    for path in [
        "/metrics",
        "/metrics?format=text",
        "//metrics",
        "/metric%73",
    ] {
        let res = client
            .get(format!("{}{path}", nginx.base_url))
            .send()
            .await
            .expect("request through nginx");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path} through nginx");
    }
    // The refusals never reached an instance: each scrape below counts no
    // earlier /metrics request.
    for instance in [&cluster.a, &cluster.b] {
        let scrape = crate::exposition::scrape(&client, &instance.base_url).await;
        let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
        assert_eq!(scrape.value("chat_http_requests_total", &scrapes), 0.0);
        let refused = [("method", "GET"), ("route", "/metrics"), ("status", "404")];
        assert_eq!(scrape.value("chat_http_requests_total", &refused), 0.0);
    }
    // The API itself still goes through.
    let res = client
        .get(format!("{}/health", nginx.base_url))
        .send()
        .await
        .expect("health through nginx");
    assert_eq!(res.status(), StatusCode::OK);
}
