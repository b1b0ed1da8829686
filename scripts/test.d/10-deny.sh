#!/usr/bin/env bash
# Dependency policy (deny.toml): only permissive licenses, no wildcard
# versions, nothing from outside crates.io. Run by scripts/test.sh after the
# tests; also runs on its own: scripts/test.d/10-deny.sh
#
# The advisories check is left out on purpose: it downloads the RustSec
# database, which this machine and CI cannot reach. docs/operations.md says
# how to run it where that database is reachable.
#
#   DENY_CHECKS="licenses bans sources"  which checks to run (the default)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

ensure_rust_toolchain
set_cargo_locked

# Installed once per machine from crates.io. Its own target dir keeps the
# build out of the workspace's (whose lock other cargo runs may hold) and
# `--locked` builds the versions its authors tested.
if ! cargo deny --version >/dev/null 2>&1; then
  step "installing cargo-deny (one time, a few minutes)"
  CARGO_TARGET_DIR="${CARGO_DENY_TARGET_DIR:-${TMPDIR:-/tmp}/cargo-deny-target}" \
    cargo install cargo-deny --locked
fi
info "$(cargo deny --version)"

# shellcheck disable=SC2206  # word splitting of the list is the intent
checks=(${DENY_CHECKS:-licenses bans sources})
step "cargo deny check ${checks[*]}"
# --hide-inclusion-graph: one line per duplicate crate instead of its whole
# dependency tree, so the CI log stays readable.
cargo deny "${CARGO_LOCKED[@]}" check --hide-inclusion-graph "${checks[@]}"
