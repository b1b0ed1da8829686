//! Frames no client library sends, on a raw socket: a header that declares
//! gigabytes, and malformed close frames. The connection must be refused
//! from what it has read so far, and let go of at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::raw::{client_frame, client_header};
use crate::support::{Backend, TestApp};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// This process's resident memory, in KiB (the server runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[tokio::test]
async fn a_frame_declaring_2_gib_is_refused_at_its_header() {
    let app = TestApp::spawn(Backend::Memory).await;
    let alice = app.user("alice").await;
    let mut ws = app.raw_ws(&alice, 16 * 1024).await;
    let before = rss_kib();

    // The header, then up to 64 MiB of the payload it announced, written
    // while the close is awaited.
    let mut writer = ws.take_writer();
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = tokio::spawn({
        let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
        async move {
            if writer
                .write_all(&client_header(0x82, 2 * 1024 * MIB))
                .await
                .is_err()
            {
                return;
            }
            let chunk = vec![0x5a; 64 * 1024];
            while sent.load(Ordering::SeqCst) < 64 * MIB && !stop.load(Ordering::SeqCst) {
                match writer.write(&chunk).await {
                    Ok(n) => sent.fetch_add(n as u64, Ordering::SeqCst),
                    // The server closed the connection.
                    Err(_) => return,
                };
            }
        }
    });

    let code = ws.close_code().await;
    let sent_at_close = sent.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(code, Some(1009), "closed as too big");
    assert!(
        sent_at_close < MIB,
        "closed after the client had sent {sent_at_close} bytes of the payload"
    );
    assert!(ws.ends().await, "the server closes the connection");
    streaming.await.expect("the writer ends");
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 2 * KIB, "the server's memory grew by {grown} KiB");
}

/// Close frames RFC 6455 does not allow: a lone byte, a reason that makes
/// the frame longer than a control frame may be, a reason that is not
/// UTF-8, and codes no endpoint may send.
fn malformed_close_payloads() -> Vec<(String, Vec<u8>)> {
    let with_code = |code: u16, reason: &[u8]| {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        payload
    };
    let mut cases = vec![
        ("a 1-byte payload".to_owned(), vec![0x03]),
        (
            "a reason of 124 bytes".to_owned(),
            with_code(1000, &[b'a'; 124]),
        ),
        (
            "a reason that is not UTF-8".to_owned(),
            with_code(1000, &[0xff, 0xfe]),
        ),
    ];
    for code in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
        cases.push((format!("close code {code}"), with_code(code, b"")));
    }
    cases
}

#[tokio::test]
async fn a_malformed_close_frame_is_answered_with_1002_and_the_connection_closed_at_once() {
    let app = TestApp::spawn(Backend::Memory).await;
    let alice = app.user("alice").await;
    for (case, payload) in malformed_close_payloads() {
        let mut ws = app.raw_ws(&alice, 64 * 1024).await;
        let sent = Instant::now();
        ws.send(&client_frame(0x88, &payload)).await;
        assert_eq!(ws.close_code().await, Some(1002), "{case}");
        assert!(ws.ends().await, "{case}: the connection closes");
        let took = sent.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "{case}: the connection closed {took:?} after the close frame"
        );
    }
}

#[tokio::test]
async fn a_valid_close_is_echoed() {
    let app = TestApp::spawn(Backend::Memory).await;
    let alice = app.user("alice").await;
    for code in [1000u16, 1001, 3000, 4999] {
        let mut ws = app.raw_ws(&alice, 64 * 1024).await;
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice("bye ✓".as_bytes());
        ws.send(&client_frame(0x88, &payload)).await;
        assert_eq!(ws.close_code().await, Some(code));
        assert!(ws.ends().await, "the connection closes");
    }
}
