#!/usr/bin/env bash
# The one command that runs every check and test; the README and CI (.ci/run)
# both call it, so what passes here is what passes in CI.
#
#   scripts/test.sh              everything
#   SKIP_LINT=1 scripts/test.sh  skip fmt, clippy and doc (quick local runs)
#
# It brings up PostgreSQL and Redis itself (see scripts/lib/services.sh) and
# hands them to the tests as TEST_DATABASE_URL and TEST_REDIS_URL; it
# installs nginx when missing (the cluster tests start their own) and hands
# it over as NGINX_BIN.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

# Report the wall time whether the run passes or fails, so slow CI runs are
# noticed before they hit the time limit.
report_time() {
  local rc=$? secs=$SECONDS
  if [[ $rc -eq 0 ]]; then
    step "all checks passed in $((secs / 60))m$((secs % 60))s"
  else
    step "FAILED (exit $rc) after $((secs / 60))m$((secs % 60))s"
  fi
}
trap report_time EXIT
SECONDS=0

step "Rust toolchain"
ensure_rust_toolchain
set_cargo_locked

# A fresh CI clone never reuses its build, so incremental artifacts are only
# extra disk and time there.
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL=0
fi

step "PostgreSQL"
ensure_postgres
step "Redis"
ensure_redis
step "nginx"
ensure_nginx

if [[ "${SKIP_LINT:-0}" == 1 ]]; then
  step "lint and doc skipped (SKIP_LINT=1)"
else
  bash scripts/lint.sh
  step "cargo doc (warnings are errors)"
  RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -Dwarnings" cargo doc --workspace --no-deps "${CARGO_LOCKED[@]}"
fi

# Hashing at the production cost (12) would make every register/login test
# take a noticeable fraction of a second; the cost is not what they test.
export BCRYPT_COST=4

if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run"
  # --no-tests=warn: like cargo test, an empty workspace is not a failure.
  cargo nextest run --workspace "${CARGO_LOCKED[@]}" --no-tests=warn
  # nextest does not run doctests; cargo test does them on its own.
  step "cargo test --doc"
  cargo test --workspace --doc "${CARGO_LOCKED[@]}"
else
  step "cargo test"
  cargo test --workspace "${CARGO_LOCKED[@]}"
fi

# Later checks (smoke benchmarks, schemathesis, end-to-end) drop an
# executable *.sh into scripts/test.d/; they run here, in name order, with
# the same environment (service URLs, BCRYPT_COST). A non-executable file is
# skipped so that a half-written hook cannot break the run by accident.
if [[ -d scripts/test.d ]]; then
  hooks=()
  while IFS= read -r hook; do
    hooks+=("$hook")
  done < <(find scripts/test.d -maxdepth 1 -type f -name '*.sh' | LC_ALL=C sort)
  for hook in "${hooks[@]}"; do
    if [[ -x "$hook" ]]; then
      step "$hook"
      "$hook"
    else
      info "skipping $hook (not executable)"
    fi
  done
fi
