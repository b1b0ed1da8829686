#!/usr/bin/env bash
# Delivery across instances: release chat-server instances on one
# PostgreSQL database, chat-bench fanout runs, one JSON line per run in
# $OUT_DIR (default a temporary directory) and a summary table on stdout.
#
#   scripts/bench-cluster.sh                 # the runs in docs/benchmarks.md
#   RECEIVERS=200 RATE=100 DURATION=10 THROUGHPUT_RATE=40 scripts/bench-cluster.sh
#   STORE=memory scripts/bench-cluster.sh   # each instance on its own in-memory
#                                           # store: no database write in the path
#
# Runs, all with global messages sent over WebSocket by 2 senders on
# instance A:
#   single   one instance, in-process hub (no REDIS_URL): the baseline
#   same     two instances with Redis, receivers on A (same instance)
#   cross    two instances with Redis, receivers on B (every delivery
#            crosses Redis)
#   split    two instances with Redis, receivers half on A, half on B, at
#            THROUGHPUT_RATE: deliveries/s with 2 instances
#   split-1  the same load on the single instance, for comparison
#
# Needs PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL, as
# scripts/test.sh finds them); builds chat-server and chat-bench --release.
# Every process it starts is stopped, and its database dropped, on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
ensure_rust_toolchain
set_cargo_locked

RECEIVERS=${RECEIVERS:-100}
RATE=${RATE:-50}
DURATION=${DURATION:-10}
THROUGHPUT_RECEIVERS=${THROUGHPUT_RECEIVERS:-1000}
THROUGHPUT_RATE=${THROUGHPUT_RATE:-100}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
# postgres: one shared database (as deployed); memory: each instance its
# own in-memory store (tokens are checked without the store, and global
# messages need no user lookup on the receiving side), which takes the
# database write out of the measured latency.
STORE=${STORE:-postgres}
[[ "$STORE" == postgres || "$STORE" == memory ]] || die "STORE must be postgres or memory"
mkdir -p "$OUT_DIR"

ensure_postgres
ensure_redis
command -v psql >/dev/null 2>&1 || die "psql is needed to create the benchmark database"

step "building chat-server and chat-bench (release)"
cargo build --release "${CARGO_LOCKED[@]}" -p chat-server -p chat-bench
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server_bin="$target_dir/release/chat-server"
bench_bin="$target_dir/release/chat-bench"

db="chat_bench_$(date +%s)_$$"
db_url="${TEST_DATABASE_URL%/*}/$db"
prefix="bench-$db"
secret="bench-cluster-secret-$(date +%s%N)-0123456789abcdef"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  psql "$TEST_DATABASE_URL" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$TEST_DATABASE_URL" -XAtqc "CREATE DATABASE $db" >/dev/null

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts an instance on a free port; "redis" as $1 sets REDIS_URL. Sets
# BASE to its URL once /health answers 200 (not printed: a command
# substitution would run this in a subshell and lose the pid).
start_instance() {
  local with_redis=$1 name=$2 port extra_env=()
  port=$(free_port)
  if [[ "$with_redis" == redis ]]; then
    extra_env+=(REDIS_URL="$TEST_REDIS_URL" REDIS_PREFIX="$prefix")
  fi
  if [[ "$STORE" == postgres ]]; then
    extra_env+=(DATABASE_URL="$db_url" DB_POOL_SIZE=16)
  fi
  (
    cd "$OUT_DIR"
    exec env -i PATH="$PATH" PORT="$port" JWT_SECRET="$secret" BCRYPT_COST=4 \
      AUTH_RATE_LIMIT=0 WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 LOG_LEVEL=warn "${extra_env[@]}" \
      "$server_bin" >"$OUT_DIR/$name.log" 2>&1
  ) &
  pids+=($!)
  local base="http://127.0.0.1:$port" _
  for _ in $(seq 1 100); do
    if curl -fsS "$base/health" >/dev/null 2>&1; then
      BASE=$base
      return 0
    fi
    sleep 0.2
  done
  cat "$OUT_DIR/$name.log" >&2
  die "instance $name did not answer /health"
}

# bench NAME SENDER_URL RECEIVERS RATE [--receiver-url URL ...]
bench() {
  local name=$1 url=$2 receivers=$3 rate=$4
  shift 4
  info "fanout $name: $receivers receivers, $rate msg/s for ${DURATION}s"
  "$bench_bin" --url "$url" --no-progress fanout --senders 2 --receivers "$receivers" \
    --rate "$rate" --duration "$DURATION" --drain 10 "$@" \
    >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.err" || {
    cat "$OUT_DIR/$name.err" >&2
    die "chat-bench $name failed"
  }
  grep '^{"mode":' "$OUT_DIR/$name.json" >"$OUT_DIR/$name.line"
}

step "single instance, in-process hub"
start_instance local single
single=$BASE
bench single "$single" "$RECEIVERS" "$RATE"
bench split-1 "$single" "$THROUGHPUT_RECEIVERS" "$THROUGHPUT_RATE"
kill "${pids[0]}" 2>/dev/null || true
wait "${pids[0]}" 2>/dev/null || true

step "two instances with Redis (prefix $prefix)"
start_instance redis a
a=$BASE
start_instance redis b
b=$BASE
info "A = $a, B = $b"
bench same "$a" "$RECEIVERS" "$RATE"
bench cross "$a" "$RECEIVERS" "$RATE" --receiver-url "$b"
bench split "$a" "$THROUGHPUT_RECEIVERS" "$THROUGHPUT_RATE" --receiver-url "$a" --receiver-url "$b"

step "results, store $STORE (JSON lines in $OUT_DIR)"
python3 - "$OUT_DIR" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| run | receivers | msg/s | deliveries | deliveries/s | lost | stored p50 ms | p50 ms | p90 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in ("single", "same", "cross", "split-1", "split"):
    path = os.path.join(out, name + ".line")
    if not os.path.exists(path):
        continue
    r = json.loads(open(path).read())
    lat = r["latency"]
    print(f"| {name} | {r['receivers']} | {r['rate_target']} | {r['delivered']:,} | "
          f"{r['deliveries_per_s']:,.0f} | {r['lost']} | {r['persist_latency'].get('p50_ms')} | "
          f"{lat.get('p50_ms')} | {lat.get('p90_ms')} | "
          f"{lat.get('p99_ms')} | {lat.get('max_ms')} |")
PY
