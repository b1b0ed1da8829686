//! `chat-server`: reads the configuration from the environment (and
//! `.env`), then serves the chat API until SIGINT or SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a configuration error, 1 for
//! anything else (such as an unreachable database).

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match chat_server::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("chat-server: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = chat_server::telemetry::init(&config.log_level, config.log_format) {
        eprintln!("chat-server: {err}");
        return ExitCode::from(2);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match actix_web::rt::System::new().block_on(chat_server::run(config)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "chat-server failed");
            ExitCode::FAILURE
        }
    }
}
