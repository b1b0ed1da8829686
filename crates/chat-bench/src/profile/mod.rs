//! `chat-bench report`: turns the results file of the standard benchmark
//! profile (`scripts/bench.sh`, `just bench`) into the generated section at
//! the top of docs/benchmarks.md.
//!
//! The results file is one JSON object: when and where the profile ran
//! (date, commit, machine), how each server was started, and one record per
//! run holding the exact command, the 1-minute load average before and
//! after it, and the run's own JSON line (a chat-bench line, or the figures
//! scripts/bench.sh parsed out of pgbench's output). The rendering compares
//! every figure with the same run of a previous results file, and gives a
//! verdict for each target of the profile.
//!
//! Runs are matched by their `id` (`idle`, `fanout.memory`,
//! `http.postgres.c64`, `pgbench.trigger.c8`, ...); the targets name the
//! ids they judge. Unknown fields are ignored and missing ones render as
//! "–", so older results files still compare.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{BenchError, BenchResult, Context};

mod figures;
mod render;
mod targets;

use figures::*;
use render::*;
pub use render::{render, splice};
use targets::*;

/// First line of the generated section.
pub const BEGIN: &str = "<!-- bench:begin -->";
/// Last line of the generated section.
pub const END: &str = "<!-- bench:end -->";

/// A results file of scripts/bench.sh.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Results {
    /// `standard`, `quick` or `smoke`.
    pub profile: String,
    /// When the profile started, UTC, ISO 8601.
    pub date: String,
    /// `git rev-parse HEAD` of the tree measured.
    pub commit: String,
    /// Whether that tree had uncommitted changes.
    pub dirty: bool,
    /// The command that produced the file.
    pub command: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// How the server was started, by store (`memory`, `postgres`).
    pub servers: BTreeMap<String, String>,
    /// Commands run before the measured ones (database setup for pgbench).
    pub setup: Vec<String>,
    /// One record per measured run, in the order they ran.
    pub runs: Vec<Run>,
}

/// Facts about the machine a profile ran on.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// `nproc`.
    pub nproc: Option<u64>,
    /// CPU model name.
    pub cpu: String,
    /// Total memory, human readable.
    pub memory: String,
    /// `uname -sr`.
    pub kernel: String,
    /// PostgreSQL server version.
    pub postgres: String,
}

/// One measured run.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Stable name that matches the same run across results files.
    pub id: String,
    /// Words for a reader ("PostgreSQL, 64 clients").
    pub label: String,
    /// The store of the server it ran against (none for pgbench).
    pub store: String,
    /// The exact command.
    pub command: String,
    /// 1-minute load average just before the run.
    pub load_before: Option<f64>,
    /// 1-minute load average just after it.
    pub load_after: Option<f64>,
    /// The run's JSON line: `mode`, `ok` and every figure.
    pub result: Value,
}

impl Run {
    fn mode(&self) -> &str {
        self.result
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn number(&self, pointer: &str) -> Option<f64> {
        self.result.pointer(pointer).and_then(Value::as_f64)
    }

    /// The sum of the numbers in the object at `pointer`.
    fn sum(&self, pointer: &str) -> Option<u64> {
        let map = self.result.pointer(pointer)?.as_object()?;
        Some(map.values().filter_map(Value::as_u64).sum())
    }

    /// A figure of this run as a number, whatever its unit.
    fn figure(&self, figure: &Figure) -> Option<f64> {
        match figure.unit {
            Unit::Number | Unit::Mib => self.number(figure.pointer),
            Unit::Sum => self.sum(figure.pointer).map(|n| n as f64),
            Unit::Flag => None,
        }
    }

    fn label(&self) -> &str {
        if self.label.is_empty() {
            &self.id
        } else {
            &self.label
        }
    }
}

impl Results {
    /// Parses a results file's text.
    pub fn parse(text: &str) -> BenchResult<Self> {
        serde_json::from_str(text).context("reading the results file")
    }

    fn run(&self, id: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests;
