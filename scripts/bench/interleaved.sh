#!/usr/bin/env bash
# Two chat-server builds under the same load, interleaved: A B A B ...,
# each turn one `scripts/bench.sh` of the given parts and runs against one
# of them (BENCH_SKIP_BUILD=1 BENCH_SERVER_BIN=... BENCH_RUNS=...), driven
# by this tree's release chat-bench; then the median per run and side of
# delivery p99 and throughput, and B's difference from A in percent.
#
#   scripts/bench/interleaved.sh OUT ROUNDS A_BIN B_BIN "RUN_ID ..." PART...
#   scripts/bench/interleaved-summary.py OUT...   the tables again, over
#                                                 the rounds of several OUTs
#
#   OUT     directory for everything (OUT/<side>.<round>/ per turn, as
#           BENCH_OUT keeps it; OUT/loads.tsv: `uptime` before each turn)
#   ROUNDS  turns per side (at least 3 on a shared machine)
#   A_BIN, B_BIN   the two chat-server binaries (each migrates its own
#           scratch database with `chat-server migrate`)
#
# Build the tree's chat-bench first (cargo build --release -p chat-bench),
# with the CARGO_TARGET_DIR this script then sees. Another machine's load
# reaches both sides alike only when they alternate, so read the medians,
# not one pair of runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

[[ $# -ge 6 ]] || die "usage: $0 OUT ROUNDS A_BIN B_BIN \"RUN_ID ...\" PART..."
out=$1 rounds=$2 a_bin=$3 b_bin=$4 runs=$5
shift 5
mkdir -p "$out"
out=$(cd "$out" && pwd)
for bin in "$a_bin" "$b_bin"; do
  [[ -x "$bin" ]] || die "no executable $bin"
done
printf 'side\tround\tuptime\n' >"$out/loads.tsv"
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    bin=$a_bin
    [[ "$side" == B ]] && bin=$b_bin
    step "round $round, $side: $bin"
    printf '%s\t%s\t%s\n' "$side" "$round" "$(uptime)" >>"$out/loads.tsv"
    BENCH_SKIP_BUILD=1 BENCH_SERVER_BIN="$bin" BENCH_RUNS="$runs" \
      BENCH_OUT="$out/$side.$round" scripts/bench.sh "$@" >"$out/$side.$round.log" 2>&1 ||
      info "round $round $side failed: see $out/$side.$round.log"
  done
done

scripts/bench/interleaved-summary.py "$out"
