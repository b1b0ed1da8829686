//! The seam where driver errors become domain errors: no diesel, pool or
//! PostgreSQL message ever reaches a client.

use chat_domain::DomainError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

/// A failure to start the store: the database could not be reached or
/// migrated. Its message names the database (host, port, name), never the
/// password.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The connection string does not parse.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The TLS settings cannot be used (`sslrootcert` unreadable, no
    /// trusted root for a `verify-*` mode).
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    /// No connection within the time limit, or the server refused it.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Unreachable {
        /// `host:port/database`.
        target: String,
        /// What the driver said, or that it timed out.
        reason: String,
    },
    /// The migrations failed.
    #[error("migrating PostgreSQL at {target} failed: {reason}")]
    Migration {
        /// `host:port/database`.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The pool could not be built.
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(String),
}

/// What a failed pool checkout means to a caller: the database is not there
/// (or not answering in time), except for a misconfigured pool.
pub(crate) fn pool_error(err: PoolError) -> DomainError {
    match err {
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            DomainError::internal(format!("connection pool: {err}"))
        }
        PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed => {
            tracing::warn!(error = %err, "PostgreSQL unavailable");
            DomainError::StoreUnavailable
        }
    }
}

/// Errors no query expects: lost connections become `StoreUnavailable`,
/// everything else `Internal` (logged, never shown).
pub(crate) fn db_error(err: DieselError) -> DomainError {
    if is_connection_loss(&err) {
        tracing::warn!(error = %err, "PostgreSQL connection lost");
        return DomainError::StoreUnavailable;
    }
    if is_statement_timeout(&err) {
        tracing::warn!(error = %err, "PostgreSQL statement timed out");
        return DomainError::StoreUnavailable;
    }
    tracing::error!(error = %err, "unexpected PostgreSQL error");
    DomainError::internal(err)
}

/// The constraint (or unique index) a unique violation hit.
pub(crate) fn unique_violation(err: &DieselError) -> Option<&str> {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name()
        }
        _ => None,
    }
}

/// The constraint a check violation hit (raised by a trigger, too).
pub(crate) fn check_violation(err: &DieselError) -> Option<&str> {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
            info.constraint_name()
        }
        _ => None,
    }
}

/// The foreign key a foreign-key violation hit.
pub(crate) fn foreign_key_violation(err: &DieselError) -> Option<&str> {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            info.constraint_name()
        }
        _ => None,
    }
}

/// Whether PostgreSQL cancelled the statement because it ran past the
/// connection's `statement_timeout` (SQLSTATE 57014, which diesel only
/// exposes through the message): the database is too slow or blocked to
/// serve right now, which is not a bug.
fn is_statement_timeout(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if info.message().starts_with("canceling statement due to statement timeout")
    )
}

/// Whether the error means the server went away mid-query. diesel-async
/// reports a dropped socket as `UnableToSendCommand`/`ClosedConnection`; a
/// server shutting down sends SQLSTATE 57P01-57P03 first, which diesel only
/// exposes through the message.
fn is_connection_loss(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => true,
            DatabaseErrorKind::Unknown => {
                let message = info.message();
                message.starts_with("terminating connection")
                    || message.contains("the database system is")
            }
            _ => false,
        },
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}
