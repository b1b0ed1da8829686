//! Logging: `LOG_LEVEL` as a tracing filter, `LOG_FORMAT` text or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Fails if the filter does not parse or a
/// subscriber is already installed.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("LOG_LEVEL: {e}"))?;
    // Colours only for a person at a terminal, not in files or log shippers.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        // One object per line, with the request span's fields (request id,
        // route, status, latency) on every line logged inside it.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}
