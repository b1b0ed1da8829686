#!/usr/bin/env bash
# Two chat-server builds under the same load, interleaved: A B A B ...,
# each turn one `scripts/bench.sh` of the given parts and runs against one
# of them (BENCH_SKIP_BUILD=1 BENCH_SERVER_BIN=... BENCH_RUNS=...), driven
# by this tree's release chat-bench; then the median per run and side of
# delivery p99 and throughput, and B's difference from A in percent.
#
#   scripts/bench/interleaved.sh OUT ROUNDS A_BIN B_BIN "RUN_ID ..." PART...
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

python3 - "$out" "$rounds" "$a_bin" "$b_bin" <<'PY'
import json, statistics, sys
out, rounds, a_bin, b_bin = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# (p99 pointer, throughput pointer) by mode
FIGS = {"dm": (("delivery_latency", "p99_ms"), ("delivered_per_s",)),
        "fanout": (("latency", "p99_ms"), ("deliveries_per_s",))}
def get(d, path):
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d
table = {}
for side in ("A", "B"):
    for r in range(1, rounds + 1):
        try:
            results = json.load(open(f"{out}/{side}.{r}/results.json"))
        except FileNotFoundError:
            continue
        for run in results["runs"]:
            res = run["result"]
            p99_path, rate_path = FIGS.get(res.get("mode"), ((), ()))
            row = table.setdefault(run["id"], {"A": [], "B": []})
            row[side].append({"round": r, "p99": get(res, p99_path), "rate": get(res, rate_path),
                              "ok": res.get("ok"), "lost": res.get("lost"),
                              "load": run.get("load_before")})
def n(v):
    return "–" if v is None else f"{v:,.0f}"
print(f"A = {a_bin}\nB = {b_bin}\n")
print("| run | round | A: p99 ms / per s (load) | B: p99 ms / per s (load) |")
print("|---|---|---|---|")
for run_id, sides in table.items():
    for r in range(1, rounds + 1):
        cells = []
        for side in ("A", "B"):
            x = next((x for x in sides[side] if x["round"] == r), None)
            if x is None:
                cells.append("–")
            else:
                flag = "" if x["ok"] else ", not clean"
                cells.append(f"{x['p99']} / {n(x['rate'])} ({x['load']}){flag}")
        print(f"| {run_id if r == 1 else ''} | {r} | {cells[0]} | {cells[1]} |")
print()
print("| run | median p99 A | median p99 B | B vs A | median per s A | median per s B | B vs A |")
print("|---|---|---|---|---|---|---|")
def med(xs, k):
    vals = [x[k] for x in xs if x[k] is not None]
    return statistics.median(vals) if vals else None
def pct(a, b):
    return f"{(b - a) / a * 100:+.1f} %" if a and b is not None else "–"
for run_id, sides in table.items():
    pa, pb = med(sides["A"], "p99"), med(sides["B"], "p99")
    ra, rb = med(sides["A"], "rate"), med(sides["B"], "rate")
    print(f"| {run_id} | {pa} | {pb} | {pct(pa, pb)} | {n(ra)} | {n(rb)} | {pct(ra, rb)} |")
PY
