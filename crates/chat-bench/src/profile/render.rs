//! The markdown of the generated section: tables of figures beside the
//! previous results file's, the targets' verdicts, the commands.

use super::*;

/// A count: thousands separators; fractions (there should be none) as for
/// [`decimal`].
pub(super) fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format_number(v, 0)
    } else {
        decimal(v)
    }
}

/// A measured figure: thousands separators, and fewer decimals the larger
/// it is (three significant digits are all these runs support).
pub(super) fn decimal(v: f64) -> String {
    let abs = v.abs();
    let decimals = if abs >= 100.0 {
        0
    } else if abs >= 10.0 {
        1
    } else {
        2
    };
    format_number(v, decimals)
}

pub(super) fn format_number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    // No "-0.00": a sign only when a digit shows it.
    let sign = if v < 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

pub(super) fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), decimal)
}

pub(super) fn value(run: &Run, figure: &Figure) -> Option<String> {
    match figure.unit {
        // Integers in the JSON are counts; anything else was measured.
        Unit::Number => run.result.pointer(figure.pointer).and_then(|v| {
            if v.is_u64() || v.is_i64() {
                v.as_f64().map(number)
            } else {
                v.as_f64().map(decimal)
            }
        }),
        Unit::Mib => run.number(figure.pointer).map(|b| decimal(b / 1_048_576.0)),
        Unit::Flag => run
            .result
            .pointer(figure.pointer)
            .and_then(Value::as_bool)
            .map(|b| if b { "yes" } else { "**no**" }.to_owned()),
        Unit::Sum => run.sum(figure.pointer).map(|n| number(n as f64)),
    }
}

/// "+6.5 % (better)", "=", "–" when there is nothing to compare.
pub(super) fn change(now: Option<f64>, before: Option<f64>, better: Better) -> String {
    let (Some(now), Some(before)) = (now, before) else {
        return "–".to_owned();
    };
    if now == before {
        return "=".to_owned();
    }
    let direction = match better {
        Better::Neither => "",
        Better::Higher if now > before => " (better)",
        Better::Lower if now < before => " (better)",
        _ => " (worse)",
    };
    if before == 0.0 {
        return format!("from 0{direction}");
    }
    let pct = (now - before) / before.abs() * 100.0;
    let sign = if pct >= 0.0 { "+" } else { "-" };
    format!("{sign}{:.1} %{direction}", pct.abs())
}

pub(super) fn load(run: &Run) -> String {
    match (run.load_before, run.load_after) {
        (None, None) => "–".to_owned(),
        (before, after) => format!("{} → {}", load_one(before), load_one(after)),
    }
}

pub(super) fn load_one(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"))
}

/// Markdown table cells must not contain a bare `|`.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

pub(super) fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

pub(super) fn describe(results: &Results) -> String {
    let mut out = format!(
        "{} from commit `{}`",
        if results.date.is_empty() {
            "an unknown date"
        } else {
            &results.date
        },
        if results.commit.is_empty() {
            "unknown"
        } else {
            short(&results.commit)
        }
    );
    if results.dirty {
        out.push_str(" (working tree with uncommitted changes)");
    }
    out
}

/// The generated section, markers excluded.
pub fn render(current: &Results, previous: Option<&Results>) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; the results are ignored below.
    let _ = writeln!(md, "## Standard profile (generated)\n");
    let _ = writeln!(
        md,
        "Rewritten by every full run of `just bench` (`scripts/bench.sh`), from \
         `docs/bench/latest.json` compared with `docs/bench/previous.json`; \
         edit the script or `chat-bench report`, not this section."
    );
    let _ = writeln!(md);
    let profile = if current.profile.is_empty() {
        "standard"
    } else {
        &current.profile
    };
    let _ = writeln!(
        md,
        "- This run (`{profile}` profile): {}.",
        describe(current)
    );
    match previous {
        Some(p) => {
            let _ = writeln!(md, "- Previous run: {}.", describe(p));
        }
        None => {
            let _ = writeln!(md, "- Previous run: none (nothing to compare with).");
        }
    }
    let m = &current.machine;
    let _ = writeln!(
        md,
        "- Machine: {} CPUs ({}), {} memory, {}, PostgreSQL {}; the server, \
         the load generator and PostgreSQL share it, so the 1-minute load \
         average before → after each run is given with its figures.",
        m.nproc.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        or_unknown(&m.cpu),
        or_unknown(&m.memory),
        or_unknown(&m.kernel),
        or_unknown(&m.postgres)
    );
    let _ = writeln!(md);

    render_targets(&mut md, current, previous);
    for (mode, title, what, figures) in SECTIONS {
        render_mode(&mut md, current, previous, mode, title, what, figures);
    }
    render_commands(&mut md, current);
    md
}

pub(super) fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

pub(super) fn render_targets(md: &mut String, current: &Results, previous: Option<&Results>) {
    let _ = writeln!(md, "### Targets\n");
    let _ = writeln!(
        md,
        "| target | run | this run | verdict | previous run | previous verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for target in TARGETS {
        let judged = |results: Option<&Results>| match results.and_then(|r| r.run(target.run)) {
            Some(run) => {
                let (summary, verdict) = (target.judge)(run);
                (summary, verdict.text())
            }
            None => ("–".to_owned(), Verdict::NotRun.text()),
        };
        let label = current
            .run(target.run)
            .or_else(|| previous.and_then(|p| p.run(target.run)))
            .map_or(target.run, Run::label);
        let (now, now_verdict) = judged(Some(current));
        let (before, before_verdict) = if previous.is_some() {
            judged(previous)
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            cell(target.text),
            cell(label),
            cell(&now),
            now_verdict,
            cell(&before),
            before_verdict
        );
    }
    let _ = writeln!(md);
}

pub(super) fn render_mode(
    md: &mut String,
    current: &Results,
    previous: Option<&Results>,
    mode: &str,
    title: &str,
    what: &str,
    figures: &[Figure],
) {
    let runs: Vec<&Run> = current.runs.iter().filter(|r| r.mode() == mode).collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(md, "### {title}\n");
    let _ = writeln!(md, "{what}\n");
    let _ = writeln!(md, "| run | figure | this run | previous | change |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for run in runs {
        let before = previous.and_then(|p| p.run(&run.id));
        let mut first = true;
        let mut row = |figure: &str, now: String, was: String, delta: String| {
            let name = if first {
                cell(run.label())
            } else {
                String::new()
            };
            first = false;
            let _ = writeln!(md, "| {name} | {figure} | {now} | {was} | {delta} |");
        };
        for figure in figures {
            let now = value(run, figure);
            let was = before.and_then(|b| value(b, figure));
            if now.is_none() && was.is_none() {
                continue;
            }
            let delta = match figure.unit {
                Unit::Flag => "–".to_owned(),
                Unit::Number | Unit::Mib | Unit::Sum => change(
                    run.figure(figure),
                    before.and_then(|b| b.figure(figure)),
                    figure.better,
                ),
            };
            row(
                figure.label,
                now.unwrap_or_else(|| "–".to_owned()),
                was.unwrap_or_else(|| "–".to_owned()),
                delta,
            );
        }
        row(
            "load average, 1 min (before → after)",
            load(run),
            before.map_or_else(|| "–".to_owned(), load),
            "–".to_owned(),
        );
    }
    let _ = writeln!(md);
}

pub(super) fn render_commands(md: &mut String, current: &Results) {
    let _ = writeln!(md, "### Commands\n");
    let _ = writeln!(
        md,
        "As `{}` ran them, each chat-bench run against a fresh server; \
         each run's JSON line is kept whole in the results file \
         (`docs/bench/latest.json`).\n",
        if current.command.is_empty() {
            "scripts/bench.sh"
        } else {
            &current.command
        }
    );
    let _ = writeln!(md, "```sh");
    for (store, server) in &current.servers {
        let _ = writeln!(md, "# server, {store} store\n{server}");
    }
    if !current.setup.is_empty() {
        let _ = writeln!(md, "# setup");
        for line in &current.setup {
            let _ = writeln!(md, "{line}");
        }
    }
    let _ = writeln!(md, "# runs, in order");
    for run in &current.runs {
        let _ = writeln!(md, "{}", run.command);
    }
    let _ = writeln!(md, "```");
}

/// Replaces what lies between [`BEGIN`] and [`END`] in `doc` with
/// `section`, leaving everything else as it was.
pub fn splice(doc: &str, section: &str) -> BenchResult<String> {
    let start = doc
        .find(BEGIN)
        .ok_or_else(|| BenchError::new(format!("no {BEGIN} line in the document")))?;
    let end = doc
        .find(END)
        .ok_or_else(|| BenchError::new(format!("no {END} line in the document")))?;
    if end < start {
        return Err(BenchError::new(format!("{END} comes before {BEGIN}")));
    }
    let mut out = String::with_capacity(doc.len() + section.len());
    out.push_str(&doc[..start]);
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(section);
    if !section.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&doc[end..]);
    Ok(out)
}
