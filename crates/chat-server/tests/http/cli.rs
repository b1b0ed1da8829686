//! The `chat-server` binary itself: exit codes and signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary in a clean environment, run where no `.env` is found.
fn chat_server(vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    cmd.env_clear()
        .current_dir(std::env::temp_dir())
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    cmd
}

#[test]
fn a_bad_value_exits_2_naming_the_variable() {
    let out = chat_server(&[("PORT", "eighty")]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PORT") && stderr.contains("expected"),
        "{stderr}"
    );
}

#[test]
fn production_without_a_strong_secret_exits_2_saying_why() {
    let out = chat_server(&[("ENVIRONMENT", "production"), ("JWT_SECRET", "change-me")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("change-me"),
        "the secret is not echoed: {stderr}"
    );
}

#[test]
fn production_refuses_low_entropy_and_published_secrets_with_exit_2() {
    let low_entropy = "a".repeat(32);
    for secret in [low_entropy.as_str(), "your-very-strong-secret-key-here"] {
        let out = chat_server(&[("ENVIRONMENT", "production"), ("JWT_SECRET", secret)])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{secret}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(
            !stderr.contains(secret),
            "the secret is not echoed: {stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut child = chat_server(&[("PORT", "0"), ("BCRYPT_COST", "4"), ("LOG_FORMAT", "json")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first_lines = Vec::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let listening = line.contains("listening on");
        first_lines.push(line);
        if listening {
            break;
        }
    }
    assert!(
        first_lines.iter().any(|l| l.contains("IN-MEMORY")),
        "the store is announced loudly: {first_lines:?}"
    );
    assert!(
        first_lines.iter().all(|l| l.starts_with('{')),
        "JSON logs: {first_lines:?}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}
