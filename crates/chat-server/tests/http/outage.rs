//! The PostgreSQL outage, automated: PostgreSQL killed and started again
//! while the server runs gives 503s, then recovery without a restart, with
//! nothing acknowledged lost and nothing stored twice. The database is a
//! private PostgreSQL server (`chat_test_support::pg_server`), since the
//! shared one serves every other test.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_test_support::pg_server::PgServer;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::support::ws::WsClient;
use crate::support::{expect_error, link, TestApp, TestUser, WAIT_FOR_A_BLOCKED_INSERT};

/// Clients sending over HTTP at the same time (one more sends over a
/// WebSocket).
const HTTP_SENDERS: usize = 4;

/// Pause between two sends of one client: steady traffic, a history of a
/// few hundred messages.
const PACE: Duration = Duration::from_millis(15);

/// Sends each client must have acknowledged before the kill, and again
/// after the recovery.
const ACKS_PER_PHASE: usize = 3;

/// Sends each client must have had refused before PostgreSQL comes
/// back: the outage lasts a while, not one request.
const REFUSALS: usize = 3;

/// How long the server may take to notice the outage, and to recover
/// once PostgreSQL accepts connections again (pool checkouts and connects
/// give up after 5 s each, so a healthy recovery takes far less).
const BOUND: Duration = Duration::from_secs(15);

/// Any one request: the server must answer, even with the database gone.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client did: every send it tried, by `client_id`, with the
/// message id when it was acknowledged (`None`: refused with 503).
#[derive(Debug, Default)]
struct SendLog {
    sends: Vec<(String, Option<String>)>,
}

impl SendLog {
    fn acked(&self) -> usize {
        self.sends.iter().filter(|(_, id)| id.is_some()).count()
    }

    fn refused(&self) -> usize {
        self.sends.iter().filter(|(_, id)| id.is_none()).count()
    }
}

type SharedLog = Arc<Mutex<SendLog>>;

fn record(log: &SharedLog, client_id: String, id: Option<String>) {
    log.lock()
        .expect("no sender panicked holding the log")
        .sends
        .push((client_id, id));
}

/// The content of the message with this `client_id`: the history is
/// matched back to the sends by content.
fn content(client_id: &str) -> String {
    format!("outage test {client_id}")
}

#[tokio::test]
async fn killing_postgres_gives_503s_then_recovery_without_losing_an_acknowledged_message() {
    let t0 = Instant::now();
    let mut pg = PgServer::start().await;
    eprintln!("{:?}: private PostgreSQL started", t0.elapsed());
    let app =
        Arc::new(TestApp::spawn_on_database(&pg.url(), &[("WEBSOCKET_RATE_LIMIT", "0")]).await);
    let mut users = Vec::new();
    for i in 0..HTTP_SENDERS {
        users.push(app.user(&format!("sender{i}")).await);
    }
    let ws_user = app.user("wssender").await;
    let ws = app.ws(&ws_user).await;

    // Every client sends with a client_id every PACE until told to stop,
    // recording what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut logs: Vec<SharedLog> = Vec::new();
    let mut http_tasks: Vec<JoinHandle<()>> = Vec::new();
    for user in &users {
        let log = SharedLog::default();
        logs.push(log.clone());
        http_tasks.push(tokio::spawn(keep_sending_over_http(
            app.url("/api/messages"),
            user.clone(),
            log,
            stop.clone(),
        )));
    }
    let ws_log = SharedLog::default();
    logs.push(ws_log.clone());
    let ws_task = tokio::spawn(keep_sending_over_ws(ws, ws_log, stop.clone()));
    let senders_alive = || http_tasks.iter().all(|t| !t.is_finished()) && !ws_task.is_finished();

    // 1. Traffic flows.
    wait_for("every client to get acknowledgements", BOUND, || {
        assert!(senders_alive(), "a sender stopped early");
        logs.iter().all(|log| lock(log).acked() >= ACKS_PER_PHASE)
    })
    .await;

    // 2. PostgreSQL dies with message inserts in flight (held on a lock
    // of the messages table, so that the kill surely cuts a statement
    // short rather than falling between two): 503s, not hangs or 500s.
    // None of those sends may be acknowledged, since none was committed
    // (step 5 would find an acknowledged message missing).
    let mut locker = AsyncPgConnection::establish(&pg.url())
        .await
        .expect("a connection of the test's own");
    locker
        .batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
        .await
        .expect("messages locked");
    locker
        .batch_execute(WAIT_FOR_A_BLOCKED_INSERT)
        .await
        .expect("a message insert waits on the lock");
    pg.kill().await;
    eprintln!("{:?}: PostgreSQL killed", t0.elapsed());
    drop(locker);
    let health = get_health(&app).await;
    assert_eq!(
        health,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "database": "unavailable", "websocket": "ready", "realtime": "local"})
        )
    );
    let reader = &users[0];
    for path in ["/api/messages", "/api/users", "/api/auth/profile"] {
        let res = app.get(path, &reader.token).send().await.expect(path);
        expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").await;
    }
    wait_for(
        "every client to be refused with 503 a few times",
        BOUND,
        || {
            assert!(senders_alive(), "a sender stopped during the outage");
            logs.iter().all(|log| lock(log).refused() >= REFUSALS)
        },
    )
    .await;

    // 3. PostgreSQL comes back (crash recovery, same port): the server
    // recovers by itself, no restart.
    eprintln!("{:?}: every client refused a few times", t0.elapsed());
    pg.start_again().await;
    eprintln!("{:?}: PostgreSQL accepts connections again", t0.elapsed());
    let started = Instant::now();
    let mut health = get_health(&app).await;
    while health.0 != StatusCode::OK {
        assert!(
            started.elapsed() < BOUND,
            "the server did not recover within {BOUND:?} of PostgreSQL accepting connections: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        health = get_health(&app).await;
    }
    eprintln!(
        "healthy again {:?} after PostgreSQL accepted connections",
        started.elapsed()
    );
    assert_eq!(
        health.1,
        json!({"status": "healthy", "database": "connected", "websocket": "ready", "realtime": "local"})
    );
    let acked_at_restart: Vec<usize> = logs.iter().map(|log| lock(log).acked()).collect();
    wait_for("every client to get acknowledgements again", BOUND, || {
        assert!(senders_alive(), "a sender stopped after the recovery");
        logs.iter()
            .zip(&acked_at_restart)
            .all(|(log, before)| lock(log).acked() >= before + ACKS_PER_PHASE)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    eprintln!("{:?}: senders stopped", t0.elapsed());
    for task in http_tasks {
        task.await.expect("an HTTP sender panicked");
    }
    let mut ws = ws_task.await.expect("the WebSocket sender panicked");

    // 4. Every refused send is sent again with the same client_id: new
    // ones are stored now, those the database had committed before its
    // death (the answer was lost with it) come back as the original.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut acked_before_kill = None;
    let mut refused = 0;
    let mut in_doubt = 0;
    for (log, user) in logs.iter().zip(users.iter().chain([&ws_user])) {
        let sends = std::mem::take(&mut lock(log).sends);
        for (client_id, acked) in sends {
            let id = match acked {
                Some(id) => {
                    if user.username == users[0].username && acked_before_kill.is_none() {
                        acked_before_kill = Some((client_id.clone(), id.clone()));
                    }
                    id
                }
                None => {
                    refused += 1;
                    let (status, id) = if user.username == ws_user.username {
                        ws_send(&mut ws, &client_id)
                            .await
                            .map(|id| (StatusCode::CREATED, id))
                            .unwrap_or_else(|code| panic!("resend of {client_id}: {code}"))
                    } else {
                        http_send(&app.client, &app.url("/api/messages"), user, &client_id)
                            .await
                            .unwrap_or_else(|status| panic!("resend of {client_id}: {status}"))
                    };
                    if status == StatusCode::OK {
                        in_doubt += 1;
                    }
                    id
                }
            };
            let previous = expected.insert(content(&client_id), id);
            assert!(previous.is_none(), "{client_id} was tried twice");
        }
    }
    // A send acknowledged before the crash is still known by its
    // client_id: a resend answers 200 with the original.
    let (first_cid, first_id) = acked_before_kill.expect("sender0 was acknowledged");
    let resend = http_send(
        &app.client,
        &app.url("/api/messages"),
        &users[0],
        &first_cid,
    )
    .await;
    assert_eq!(resend, Ok((StatusCode::OK, first_id)));
    eprintln!(
        "{} sends, {refused} refused during the outage and sent again ({in_doubt} of those had been stored)",
        expected.len()
    );

    // 5. The history holds every acknowledged message exactly once, under
    // the id it was acknowledged with, and nothing else.
    let history = read_history(&app, reader).await;
    eprintln!("{:?}: history read", t0.elapsed());
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in &history {
        let text = message["content"].as_str().expect("content").to_owned();
        let id = message["id"].as_str().expect("id").to_owned();
        seen.entry(text).or_default().push(id);
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(duplicated.is_empty(), "stored twice: {duplicated:?}");
    let unexpected: BTreeSet<_> = seen.keys().filter(|c| !expected.contains_key(*c)).collect();
    assert!(
        unexpected.is_empty(),
        "stored but never sent: {unexpected:?}"
    );
    for (text, id) in &expected {
        assert_eq!(
            seen.get(text),
            Some(&vec![id.clone()]),
            "{text:?} acknowledged as {id}"
        );
    }
    assert_eq!(history.len(), expected.len());

    ws.close().await;
    eprintln!("{:?}: socket closed", t0.elapsed());
    drop(app);
    let dir = pg.data_dir();
    drop(pg);
    assert!(!dir.exists(), "the private server's directory is removed");
    eprintln!("{:?}: private PostgreSQL removed", t0.elapsed());
}

/// DB_STATEMENT_TIMEOUT of the frozen-database test: short, so the test is.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a request may take while the database is frozen: the timeout,
/// plus generous room for a slow machine (a request makes a few store
/// calls, each bounded by the timeout). Not a benchmark: without a
/// deadline a request would hang until the database came back.
const FROZEN_ANSWER_BOUND: Duration = Duration::from_secs(8);

#[tokio::test]
async fn a_frozen_database_gives_503s_within_the_statement_timeout_then_recovery() {
    let mut pg = PgServer::start().await;
    let app = TestApp::spawn_on_database(&pg.url(), &[("DB_STATEMENT_TIMEOUT", "1s")]).await;
    let alice = app.user("alice").await;
    let mut acked = Vec::new();
    for n in 0..3 {
        let client_id = format!("before-{n}");
        let (status, id) = http_send(&app.client, &app.url("/api/messages"), &alice, &client_id)
            .await
            .expect("stored before the freeze");
        assert_eq!(status, StatusCode::CREATED);
        acked.push((client_id, id));
    }

    // SIGSTOP: connections stay open, nothing answers. Every kind of call
    // (token check, reads, a send, health) answers 503 instead of hanging.
    pg.freeze();
    eprintln!("PostgreSQL frozen");
    let sends = ["during-0", "during-1"];
    for (round, client_id) in sends.into_iter().enumerate() {
        for path in ["/api/messages", "/api/users", "/api/auth/profile"] {
            let started = Instant::now();
            let res = app
                .get(path, &alice.token)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .unwrap_or_else(|err| panic!("{path} answers while frozen: {err}"));
            let took = started.elapsed();
            expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").await;
            assert!(
                took < FROZEN_ANSWER_BOUND,
                "{path} (round {round}) took {took:?}, DB_STATEMENT_TIMEOUT is {STATEMENT_TIMEOUT:?}"
            );
        }
        let started = Instant::now();
        let refused = http_send(&app.client, &app.url("/api/messages"), &alice, client_id).await;
        assert_eq!(refused, Err(StatusCode::SERVICE_UNAVAILABLE));
        assert!(
            started.elapsed() < FROZEN_ANSWER_BOUND,
            "send took {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let health = get_health(&app).await;
    assert_eq!(health.0, StatusCode::SERVICE_UNAVAILABLE, "{health:?}");
    assert!(started.elapsed() < FROZEN_ANSWER_BOUND);

    // SIGCONT: the server recovers by itself.
    pg.thaw();
    eprintln!("PostgreSQL thawed");
    let thawed = Instant::now();
    let mut health = get_health(&app).await;
    while health.0 != StatusCode::OK {
        assert!(
            thawed.elapsed() < BOUND,
            "no recovery within {BOUND:?} of the thaw: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = get_health(&app).await;
    }
    // The sends refused while frozen are sent again with their client_id:
    // stored now, or found stored (the writer may have committed one as
    // the database came back), never twice.
    for client_id in sends {
        let (_, id) = http_send(&app.client, &app.url("/api/messages"), &alice, client_id)
            .await
            .expect("stored after the thaw");
        acked.push((client_id.to_owned(), id));
    }
    let (status, id) = http_send(&app.client, &app.url("/api/messages"), &alice, "after-0")
        .await
        .expect("stored after the thaw");
    assert_eq!(status, StatusCode::CREATED);
    acked.push(("after-0".to_owned(), id));

    // Nothing acknowledged was lost, nothing stored twice.
    let history = read_history(&app, &alice).await;
    let stored: Vec<(String, String)> = history
        .iter()
        .map(|m| {
            (
                m["content"].as_str().expect("content").to_owned(),
                m["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = acked
        .iter()
        .map(|(client_id, id)| (content(client_id), id.clone()))
        .collect();
    let stored_set: BTreeSet<_> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "stored twice: {stored:?}");
    let expected_set: BTreeSet<_> = expected.into_iter().collect();
    assert_eq!(stored_set, expected_set);
}

#[tokio::test]
async fn a_server_started_while_its_database_is_down_exits_1_naming_it() {
    let mut pg = PgServer::start().await;
    pg.kill().await;
    let started = Instant::now();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env_clear()
        .current_dir(std::env::temp_dir())
        .envs([
            ("PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("DATABASE_URL", pg.url().as_str()),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the server gives up within 10 s")
        .expect("the server runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let database = format!("127.0.0.1:{}/postgres", pg.port());
    assert!(output.contains(&database), "names {database}: {output}");
    eprintln!("exited after {:?}", started.elapsed());
}

// ------------------------------------------------------------- helpers

fn lock(log: &SharedLog) -> std::sync::MutexGuard<'_, SendLog> {
    log.lock().expect("no sender panicked holding the log")
}

/// Polls `done` every 10 ms until it holds; fails after `bound`.
async fn wait_for(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "waited {bound:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /health`: status and body.
async fn get_health(app: &TestApp) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.url("/health"))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("/health answers");
    let status = res.status();
    (status, res.json().await.expect("health JSON"))
}

/// Sends the message of `client_id` as `user` over HTTP: the status (201
/// new, 200 a resend) and message id, or the status of a refusal (503
/// `store_unavailable`; anything else fails the test).
async fn http_send(
    client: &reqwest::Client,
    url: &str,
    user: &TestUser,
    client_id: &str,
) -> Result<(StatusCode, String), StatusCode> {
    let res = client
        .post(url)
        .bearer_auth(&user.token)
        .json(&json!({"content": content(client_id), "client_id": client_id}))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|err| panic!("{client_id}: no answer: {err}"));
    let status = res.status();
    let body: Value = res.json().await.expect("JSON answer");
    match status {
        StatusCode::CREATED | StatusCode::OK => {
            assert_eq!(body["content"], content(client_id).as_str(), "{body}");
            Ok((status, body["id"].as_str().expect("id").to_owned()))
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["code"], "store_unavailable", "{body}");
            Err(status)
        }
        other => panic!("{client_id}: {other} {body}"),
    }
}

/// One client sending over HTTP every [`PACE`] until `stop`; a 201 is
/// acknowledged, a 503 refused.
async fn keep_sending_over_http(
    url: String,
    user: TestUser,
    log: SharedLog,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let client_id = format!("{}-{n}", user.username);
        match http_send(&client, &url, &user, &client_id).await {
            Ok((status, id)) => {
                assert_eq!(status, StatusCode::CREATED, "{client_id} is new");
                record(&log, client_id, Some(id));
            }
            Err(_) => record(&log, client_id, None),
        }
        tokio::time::sleep(PACE).await;
    }
}

/// Sends the message of `client_id` on the socket and waits for its `ack`
/// (the message id) or its `error` (the code), skipping other frames
/// (everyone's messages arrive on this socket too).
async fn ws_send(ws: &mut WsClient, client_id: &str) -> Result<String, String> {
    ws.send_json(json!({"type": "message", "content": content(client_id), "client_id": client_id}))
        .await;
    loop {
        let frame = ws.recv_json().await;
        if frame["client_id"] != client_id {
            continue;
        }
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["message"]["content"], content(client_id).as_str());
                return Ok(frame["message"]["id"].as_str().expect("id").to_owned());
            }
            Some("error") => {
                let code = frame["code"].as_str().expect("code").to_owned();
                assert_eq!(code, "store_unavailable", "{frame}");
                return Err(code);
            }
            _ => panic!("{client_id}: unexpected frame {frame}"),
        }
    }
}

/// One client sending on its WebSocket every [`PACE`] until `stop`, one
/// message in flight at a time; gives the socket back for the resends.
async fn keep_sending_over_ws(mut ws: WsClient, log: SharedLog, stop: Arc<AtomicBool>) -> WsClient {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let client_id = format!("{}-{n}", ws.username);
        let acked = ws_send(&mut ws, &client_id).await.ok();
        record(&log, client_id, acked);
        tokio::time::sleep(PACE).await;
    }
    ws
}

/// Every global message, oldest first, walking back from the newest page
/// along `rel="prev"`.
async fn read_history(app: &TestApp, reader: &TestUser) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = "/api/messages?limit=200".to_owned();
    for _ in 0..100 {
        let res = app
            .get(&path, &reader.token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("history");
        assert_eq!(res.status(), StatusCode::OK);
        let prev = link(&res, "prev");
        let page: Vec<Value> = res.json().await.expect("a page of messages");
        pages.push(page);
        match prev {
            Some(prev) => path = prev,
            None => return pages.into_iter().rev().flatten().collect(),
        }
    }
    panic!("more than 100 pages of history");
}
