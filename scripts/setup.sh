#!/usr/bin/env bash
# One-time developer setup: the Rust components the checks need, then the
# local PostgreSQL and Redis. Safe to run again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

step "Rust toolchain"
ensure_rust_toolchain

# rustfmt and clippy are rustup components, absent from minimal profiles.
step "rustfmt and clippy"
missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if ((${#missing[@]} == 0)); then
  info "already installed"
elif command -v rustup >/dev/null 2>&1; then
  rustup component add "${missing[@]}" ||
    die "could not add ${missing[*]} with rustup (offline?); scripts/lint.sh needs them"
else
  die "${missing[*]} missing and no rustup to add them; install them with your toolchain"
fi

step "PostgreSQL and Redis"
bash scripts/db-up.sh >/dev/null

step "done: 'just test' (or scripts/test.sh) runs every check"
