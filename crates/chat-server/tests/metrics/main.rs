//! `GET /metrics` end to end: the real server on a random loopback port,
//! real HTTP and WebSocket traffic, then the Prometheus text parsed
//! (`exposition`) and the moved series compared, per backend.
//!
//! Metrics are per process. Under `cargo nextest` every test is a process
//! of its own; under `cargo test` the tests of this binary share one, so
//! each holds [`exclusive`] for its whole body and compares differences
//! between scrapes, never absolute counts.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod exposition;
mod http;
mod parser;
mod ws;

use tokio::sync::{Mutex, MutexGuard};

/// Held by each test of this binary: one at a time in a shared process,
/// so that one test's traffic does not move another's counters.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());
    ONE_AT_A_TIME.lock().await
}
