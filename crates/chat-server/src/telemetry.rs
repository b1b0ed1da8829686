//! Logging: `LOG_LEVEL` as a tracing filter, `LOG_FORMAT` text or JSON.
//!
//! Whatever `LOG_LEVEL` asks for, dependencies whose verbose levels print
//! request data are held at INFO ([`QUIETED_TARGETS`]): at DEBUG
//! tokio-postgres logs every statement with its parameters, which would put
//! password hashes, email addresses and message text in the log.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log targets (and their children) never logged below INFO.
pub const QUIETED_TARGETS: [&str; 1] = ["tokio_postgres"];

/// Installs the global subscriber. Fails if the filter does not parse or a
/// subscriber is already installed.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = filter(level)?;
    // Colours only for a person at a terminal, not in files or log shippers.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.finish().with(quiet_dependencies()).try_init(),
        // One object per line, with the request span's fields (request id,
        // route, status, latency) on every line logged inside it.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(quiet_dependencies())
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

/// `LOG_LEVEL` as a filter (`info`, `debug`, `warn,chat_http=debug`, ...).
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("LOG_LEVEL: {e}"))
}

/// A global filter dropping the [`QUIETED_TARGETS`]' events below INFO. A
/// separate filter rather than directives appended to `LOG_LEVEL`, so that
/// no directive (`LOG_LEVEL=tokio_postgres::query=trace`) can undo it.
pub fn quiet_dependencies() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(loggable as fn(&Metadata<'_>) -> bool)
}

fn loggable(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || !QUIETED_TARGETS.iter().any(|t| in_target(meta.target(), t))
}

/// Whether `target` is `parent` or one of its modules.
fn in_target(target: &str, parent: &str) -> bool {
    target
        .strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Registry;

    fn enabled_with(level: &str, check: impl FnOnce() -> bool) -> bool {
        let subscriber = Registry::default()
            .with(filter(level).expect("valid filter"))
            .with(quiet_dependencies());
        tracing::subscriber::with_default(subscriber, check)
    }

    #[test]
    fn database_statements_are_never_logged() {
        let level = "trace,tokio_postgres=trace,tokio_postgres::query=trace";
        assert!(!enabled_with(level, || tracing::enabled!(
            target: "tokio_postgres::query",
            Level::DEBUG
        )));
        assert!(enabled_with(level, || tracing::enabled!(
            target: "tokio_postgres::connection",
            Level::INFO
        )));
        assert!(enabled_with(level, || tracing::enabled!(
            target: "tokio_postgresql_other",
            Level::TRACE
        )));
        assert!(enabled_with(level, || tracing::enabled!(
            target: "chat_http",
            Level::TRACE
        )));
    }

    #[test]
    fn a_bad_level_names_the_variable() {
        let err = filter("info,chat_http=loud").expect_err("invalid");
        assert!(err.contains("LOG_LEVEL"), "{err}");
    }
}
