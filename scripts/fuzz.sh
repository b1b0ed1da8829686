#!/usr/bin/env bash
# A bounded fuzzing run of the cargo-fuzz targets in fuzz/ (the WebSocket
# client-frame decoder and the JSON request bodies). Exits non-zero, leaving
# the crashing input in fuzz/artifacts/<target>/, if any target crashes.
#
#   scripts/fuzz.sh                    every target, 60 s each (just fuzz)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh  every target, an hour each
#   scripts/fuzz.sh client_frame       one target
#
# The corpus each run grows is kept in fuzz/corpus/<target>/ (not committed),
# so later runs start where earlier ones stopped; fuzz/seeds/<target>/ holds
# the committed starting inputs. See docs/fuzzing.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

ensure_rust_toolchain

seconds="${FUZZ_SECONDS:-60}"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a positive number of seconds, not '$seconds'"

# Installed once per machine from crates.io, built in its own target dir so
# it does not wait on (or hold) the workspace's build lock.
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz (one time, about a minute)"
  CARGO_TARGET_DIR="${CARGO_FUZZ_TARGET_DIR:-${TMPDIR:-/tmp}/cargo-fuzz-target}" \
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address and others) to
# rustc. No nightly toolchain can be downloaded here, and the stable
# compiler accepts those flags when RUSTC_BOOTSTRAP=1; a nightly compiler
# ignores the variable. Stable ships the sanitizer runtimes for x86_64 Linux.
export RUSTC_BOOTSTRAP=1

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

step "cargo fuzz build (address sanitizer, debug assertions)"
cargo fuzz build --fuzz-dir fuzz

root="$PWD"
for target in "${targets[@]}"; do
  step "fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
  # -max_len 8192: twice the WebSocket frame limit (4096 bytes) and past the
  # 4000-character content limit, so both boundaries are reachable.
  cargo fuzz run --fuzz-dir fuzz "$target" \
    "$root/fuzz/corpus/$target" "$root/fuzz/seeds/$target" -- \
    -max_total_time="$seconds" \
    -max_len=8192 \
    -dict="$root/fuzz/json.dict" \
    -print_final_stats=1
done
step "no crash in ${#targets[@]} target(s), ${seconds}s each"
