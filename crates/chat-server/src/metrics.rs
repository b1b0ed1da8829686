//! Metrics: the Prometheus recorder behind `GET /metrics`.
//!
//! The adapter crates record into the `metrics` facade where things happen
//! (requests, sockets, deliveries, sends, rate limits, Redis fan-out); this
//! binary installs the one recorder of the process, a
//! `metrics-exporter-prometheus` recorder without its own HTTP listener,
//! and serves its text on the app's own port. Gauges of polled state (the
//! PostgreSQL pool, the Redis link) are read when scraped: see
//! [`renderer`].

use std::sync::OnceLock;
use std::time::Duration;

use chat_domain::RealtimeHealth;
use chat_http::RenderMetrics;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Upper bounds of the HTTP latency histogram's buckets, in seconds: from
/// a cached read (~1 ms) to a slow bcrypt login or a stuck store (10 s).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are folded so that samples recorded between
/// scrapes do not pile up (the recorder keeps them until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use. `None` when another
/// recorder was installed first (an embedding app's own): metrics then go
/// there, and this binary does not serve `/metrics`.
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS);
    let installed = builder.and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => {
            chat_http::metrics::describe();
            chat_store_postgres::describe_metrics();
            chat_realtime_redis::describe_metrics();
            let upkeep = handle.clone();
            // A thread rather than a task: one per process, whatever runtime
            // (or runtimes, in tests) the servers run on.
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(err) = spawned {
                tracing::warn!(error = %err, "metrics: no upkeep thread; histograms fold at each scrape only");
            }
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics: recorder not installed; /metrics is not served");
            None
        }
    }
}

/// Sets `chat_redis_connected` from the notifier's health: 1 connected,
/// 0 degraded; nothing for a notifier of one instance, which has no link.
pub fn record_realtime(health: RealtimeHealth) {
    let connected = match health {
        RealtimeHealth::Local => return,
        RealtimeHealth::Connected => 1.0,
        RealtimeHealth::Degraded => 0.0,
    };
    metrics::gauge!("chat_redis_connected").set(connected);
}

/// What `/metrics` answers: the polled gauges refreshed (`refresh`, the
/// store's pool, the Redis link), then the text of every series.
pub fn renderer(
    handle: PrometheusHandle,
    refresh: impl Fn() + Send + Sync + 'static,
) -> RenderMetrics {
    std::sync::Arc::new(move || {
        refresh();
        handle.render()
    })
}
