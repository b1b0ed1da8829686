//! The output contract: a human summary on stderr, and exactly one line on
//! stdout, a JSON object starting `{"mode":`, with every figure of the run
//! (`grep '^{"mode":'` finds it; the key order is fixed).

use serde::Serialize;

use crate::error::{BenchResult, Context};
use crate::modes::Ctx;

/// The figures of one mode.
pub trait Figures: Serialize {
    /// The mode's name, first key of the JSON line.
    const MODE: &'static str;
    /// Whether the run saw no error and lost nothing.
    fn ok(&self) -> bool;
    /// Lines for a human.
    fn human(&self) -> Vec<String>;
}

#[derive(Serialize)]
struct Line<'a, F: Serialize> {
    mode: &'static str,
    ok: bool,
    run: &'a str,
    url: &'a str,
    elapsed_s: f64,
    nofile_limit: u64,
    #[serde(flatten)]
    figures: &'a F,
}

/// Prints the summary and the JSON line; returns `figures.ok()`.
pub fn emit<F: Figures>(ctx: &Ctx, elapsed_s: f64, figures: &F) -> BenchResult<bool> {
    let ok = figures.ok();
    eprintln!();
    eprintln!(
        "== chat-bench {} (run {}) against {} ==",
        F::MODE,
        ctx.run,
        ctx.target.base
    );
    for line in figures.human() {
        eprintln!("  {line}");
    }
    eprintln!(
        "  result: {}",
        if ok {
            "OK (no errors, nothing lost)"
        } else {
            "NOT OK (see errors/lost above)"
        }
    );
    let value = serde_json::to_value(figures).context("serializing the report")?;
    for hint in hints(&value) {
        eprintln!("  hint: {hint}");
    }
    let line = Line {
        mode: F::MODE,
        ok,
        run: &ctx.run,
        url: &ctx.target.base,
        elapsed_s,
        nofile_limit: ctx.nofile,
        figures,
    };
    println!(
        "{}",
        serde_json::to_string(&line).context("serializing the report")?
    );
    Ok(ok)
}

/// Advice for errors that mean "the server was not set up for a benchmark".
fn hints(figures: &serde_json::Value) -> Vec<&'static str> {
    let has = |key: &str| figures.get("errors").and_then(|e| e.get(key)).is_some();
    let mut hints = Vec::new();
    if has("ws_rate_limited") {
        hints.push(
            "the server limits WebSocket sends: start it with WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0",
        );
    }
    if has("http_429") {
        hints.push("the server answered 429 to message posts: turn its rate limits off");
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_limit_errors_come_with_a_hint() {
        let limited = json!({"errors": {"ws_rate_limited": 3, "http_429": 1}});
        assert_eq!(hints(&limited).len(), 2);
        assert!(hints(&limited)[0].contains("WEBSOCKET_RATE_LIMIT=0"));
        assert!(hints(&json!({"errors": {}})).is_empty());
        assert!(hints(&json!({"mode": "idle"})).is_empty());
    }
}
