#!/usr/bin/env bash
# Several databases under the same pgbench script, one client each, in
# short turns (A B C A B C ...), and each one's latency as a ratio to the
# first one's in the same round: the median of those ratios varies far
# less than single runs on a shared machine, though load elsewhere on the
# machine still moves it, so compare ratios from one invocation.
#
#   scripts/bench/pgbench-paired.sh ROUNDS SECONDS BATCH DB:SCRIPT...
#
#   ROUNDS   turns per database (20 or more on a shared machine)
#   SECONDS  length of each turn (`pgbench -T`)
#   BATCH    passed as `-D batch=BATCH` (scripts/bench/pgbench-batch-*.sql)
#   DB:SCRIPT  a database and the script under scripts/bench/ to run on it;
#            the first one is the reference
#
# Connection: libpq's environment (PGHOST, PGUSER, ...). Prints each
# database's median latency and the median of its ratio to the reference.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

[[ $# -ge 4 ]] || die "usage: $0 ROUNDS SECONDS BATCH DB:SCRIPT..."
rounds=$1 seconds=$2 batch=$3
shift 3
results=$(mktemp -t pgbench-paired.XXXXXX)
trap 'rm -f "$results"' EXIT

for round in $(seq 1 "$rounds"); do
  for entry in "$@"; do
    db=${entry%%:*} script=${entry#*:}
    latency=$(pgbench -n -M prepared -c 1 -T "$seconds" -D "batch=$batch" \
      -f "scripts/bench/$script" "$db" 2>&1 | awk '/latency average/ {print $4}')
    [[ -n "$latency" ]] || die "pgbench on $db with $script printed no latency"
    printf '%s\t%s\t%s\n' "$round" "$entry" "$latency" >>"$results"
  done
done

python3 - "$results" "$@" <<'EOF'
import statistics
import sys

path, entries = sys.argv[1], sys.argv[2:]
by_round = {}
for line in open(path):
    round_, entry, latency = line.split("\t")
    by_round.setdefault(round_, {})[entry] = float(latency)
reference = entries[0]
print("| database:script | median latency (ms) | median ratio to the first, same round |")
print("|---|---|---|")
for entry in entries:
    latencies = [r[entry] for r in by_round.values()]
    ratios = [r[entry] / r[reference] for r in by_round.values()]
    print(f"| {entry} | {statistics.median(latencies):.3f} | {statistics.median(ratios):.3f} |")
EOF
