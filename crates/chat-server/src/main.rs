//! `chat-server`: reads the configuration from the environment (and
//! `.env`), then serves the chat API until SIGINT or SIGTERM.
//!
//! `chat-server migrate` applies the database migrations and exits (the
//! server also applies them at start; this is for deploy pipelines).
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
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("migrate") => return migrate(&config),
        Some(other) => {
            eprintln!("chat-server: unknown command {other:?}; usage: chat-server [migrate]");
            return ExitCode::from(2);
        }
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

/// Applies pending migrations to the configured database.
fn migrate(config: &chat_server::Config) -> ExitCode {
    let Some(database) = &config.database else {
        eprintln!("chat-server migrate: no database configured (set DATABASE_URL or DB_HOST ...)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chat-server migrate: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chat_store_postgres::run_migrations(&database.url)) {
        Ok(applied) if applied.is_empty() => {
            tracing::info!("database schema is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            tracing::info!(migrations = ?applied, "applied migrations");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "migration failed");
            ExitCode::FAILURE
        }
    }
}
