//! One error type for the whole tool: a sentence for the operator. A load
//! generator has nothing to recover from, so every failure becomes text.

use std::fmt;

/// Why a run could not be set up or finished.
#[derive(Debug)]
pub struct BenchError(String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// `Result` with [`BenchError`].
pub type BenchResult<T> = Result<T, BenchError>;

/// Adds what was being done to any displayable error.
pub trait Context<T> {
    /// Turns the error into a [`BenchError`] reading "`what`: cause".
    fn context(self, what: &str) -> BenchResult<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> BenchResult<T> {
        self.map_err(|e| BenchError(format!("{what}: {e}")))
    }
}
