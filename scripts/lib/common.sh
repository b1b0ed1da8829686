# shellcheck shell=bash
# Helpers shared by the scripts under scripts/. Sourced, never executed: it
# sets no shell options of its own so each caller keeps `set -euo pipefail`.

# One visible line per step, so a CI log reads as a list of what happened.
step() { printf '==> %s\n' "$*"; }

# Messages that are not steps go to stderr, so scripts whose stdout is meant
# to be captured (db-up.sh prints `export ...` lines) stay clean.
info() { printf '    %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Puts cargo on PATH or stops with a clear message. Rustup installs into
# ~/.cargo/bin but non-login shells (CI, `sudo`, cron) often lack it on PATH.
# Nothing is downloaded: this machine cannot fetch a toolchain anyway.
ensure_rust_toolchain() {
  if ! command -v cargo >/dev/null 2>&1; then
    local bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
    if [[ -x "$bin/cargo" ]]; then
      PATH="$bin:$PATH"
      export PATH
    else
      die "no Rust toolchain: cargo is neither on PATH nor in $bin. Install one with rustup (https://rustup.rs) and re-run."
    fi
  fi
  info "$(cargo --version), $(rustc --version)"
}

# `--locked` makes cargo refuse to touch Cargo.lock, so CI builds exactly
# what was committed; before the first lock file exists it would only fail.
# Sets the global array CARGO_LOCKED; expand it as "${CARGO_LOCKED[@]}"
# (an array, not a string, so an empty value adds no empty argument).
# shellcheck disable=SC2034  # used by the scripts that source this file
set_cargo_locked() {
  CARGO_LOCKED=()
  if [[ -f Cargo.lock ]]; then
    CARGO_LOCKED=(--locked)
  fi
}
