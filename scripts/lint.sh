#!/usr/bin/env bash
# Formatting and clippy, exactly as CI runs them (scripts/test.sh calls this).
# Warnings are errors so that none accumulate unnoticed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

ensure_rust_toolchain
set_cargo_locked

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets "${CARGO_LOCKED[@]}" -- -D warnings
