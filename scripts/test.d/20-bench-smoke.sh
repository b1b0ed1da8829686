#!/usr/bin/env bash
# Keeps chat-bench working: builds chat-server and chat-bench in
# debug, starts the server on a free loopback port (in-memory store,
# AUTH_RATE_LIMIT=0, WEBSOCKET_RATE_LIMIT=0, MESSAGE_RATE_LIMIT=0, WEBSOCKET_MAX_CONNECTIONS_PER_USER=0, BCRYPT_COST=4), runs each mode
# (and direct messages with edits and reactions) for a couple of seconds
# and checks that each printed its one JSON line with nothing failed or
# lost. A smoke test, not a benchmark: no figure is compared to a target.
# Then the runs go through the same path as scripts/bench.sh's results
# (scripts/lib/bench.sh, `chat-bench report`), and the rendered section is
# checked for its tables and its splicing between the markers.
#
# Last, a reconnect storm at a size CI carries: 1,000 users connect at
# once (512 handshakes in flight), each following 50 others' presence; no
# socket may be closed and every view must be right within 2 s of the
# wave's end.
#
# While the server has no WebSocket endpoint (GET /api/ws/connect answers
# 404), only the http mode runs, and the script says so.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
ensure_rust_toolchain
set_cargo_locked

step "bench smoke: building chat-server and chat-bench (debug)"
cargo build "${CARGO_LOCKED[@]}" -p chat-server -p chat-bench
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server_bin="$target_dir/debug/chat-server"
bench_bin="$target_dir/debug/chat-bench"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The storm holds a thousand sockets on each side.
ulimit -n "$(ulimit -Hn)"

# From an empty directory, so that no .env turns the store into PostgreSQL;
# and without the database and Redis variables the test run may export.
(
  cd "$work"
  exec env -u DATABASE_URL -u DB_HOST -u DB_PORT -u DB_NAME -u DB_USER \
    -u DB_PASSWORD -u REDIS_URL \
    PORT="$port" ENVIRONMENT=development BCRYPT_COST=4 AUTH_RATE_LIMIT=0 \
    WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 \
    JWT_SECRET="bench-smoke-secret-0123456789abcdef0123" LOG_LEVEL=warn \
    "$server_bin" >"$work/server.log" 2>&1
) &
server_pid=$!

# GET `path`; prints the status code (000 when nothing answers).
status_of() {
  python3 - "$base$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

for _ in $(seq 1 120); do
  [[ "$(status_of /health)" == 200 ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log" >&2
    die "chat-server exited before answering /health"
  fi
  sleep 0.5
done
[[ "$(status_of /health)" == 200 ]] || {
  cat "$work/server.log" >&2
  die "chat-server did not answer /health on $base within 60 s"
}
info "chat-server up on $base (pid $server_pid)"

# Runs chat-bench with the given mode arguments and checks its JSON line.
run_bench() {
  local name=$1
  local before
  before=$(bench_load1)
  run_checked "$@"
  shift
  bench_record "$work/runs.jsonl" "$name" "smoke $name" memory "chat-bench $*" \
    "$before" "$(bench_load1)" "$work/$name.json"
}

# Runs chat-bench with the given mode arguments and checks that its JSON
# line reports a clean run.
run_checked() {
  local name=$1
  shift
  info "chat-bench $*"
  if ! timeout 180 "$bench_bin" --url "$base" --no-progress "$@" \
    >"$work/$name.json" 2>"$work/$name.log"; then
    cat "$work/$name.log" >&2
    die "chat-bench $name failed"
  fi
  python3 - "$work/$name.json" <<'PY' || { cat "$work/$name.log" >&2; die "chat-bench $name: bad report"; }
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith('{"mode":')]
if len(lines) != 1:
    sys.exit(f"expected one JSON line, got {len(lines)}")
r = json.loads(lines[0])
problems = [k for k in ("errors", "connect_errors") if r.get(k)]
problems += [k for k in ("lost", "unsent", "duplicates", "unexpected", "misdelivered",
                         "failed", "sockets_closed", "closed_during_hold") if r.get(k, 0) != 0]
changes = r.get("changes") or {}
problems += [f"changes.{k}" for k in ("lost", "unsent", "unexpected", "mismatched")
             if changes.get(k, 0) != 0]
if changes and changes.get("delivered", 0) == 0:
    problems.append("changes.delivered")
if not r.get("ok") or problems:
    sys.exit(f"run not clean ({', '.join(problems) or 'ok is false'}): {lines[0]}")
figures = {k: r[k] for k in ("requests", "req_per_s", "delivered", "deliveries_per_s",
                             "connected", "rss_per_socket_kb", "wave_s", "converged_after_s",
                             "presence_frames_max") if k in r}
if changes:
    figures["updates"] = changes.get("delivered")
print(f"    {r['mode']}: ok {figures}")
PY
}

# The rendering path of scripts/bench.sh on these runs: the results file,
# `chat-bench report` compared with itself, and --write between markers.
check_report() {
  bench_assemble "$work/results.json" smoke "scripts/test.d/20-bench-smoke.sh" \
    "$work/runs.jsonl" /dev/null /dev/null "$(date -u +%Y-%m-%dT%H:%M:%SZ)" unknown
  "$bench_bin" report --current "$work/results.json" --previous "$work/results.json" \
    >"$work/section.md" 2>"$work/report.log" || {
    cat "$work/report.log" >&2
    die "chat-bench report failed"
  }
  local want
  for want in "### Targets" "### POST /api/messages" "| smoke http | clean run (nothing failed or lost) | yes |" \
    "### Commands"; do
    grep -qF -- "$want" "$work/section.md" || {
      cat "$work/section.md" >&2
      die "chat-bench report: no '$want' in the rendered section"
    }
  done
  printf '# Doc\n\nintro\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\n## Kept\n' >"$work/doc.md"
  "$bench_bin" report --current "$work/results.json" --write "$work/doc.md" 2>>"$work/report.log"
  grep -qF "### Targets" "$work/doc.md" && ! grep -qx old "$work/doc.md" &&
    tail -n 3 "$work/doc.md" | grep -qx "## Kept" || {
    cat "$work/doc.md" >&2
    die "chat-bench report --write did not replace exactly the generated section"
  }
  info "report: $(grep -c '^|' "$work/section.md") table rows rendered from $(wc -l <"$work/runs.jsonl") runs"
}

run_bench http http --clients 4 --duration 2

if [[ "$(status_of /api/ws/connect)" == 404 ]]; then
  info "GET /api/ws/connect answers 404: no WebSocket endpoint yet; fanout and idle smoke skipped"
  check_report
  exit 0
fi
run_bench fanout fanout --receivers 20 --senders 2 --rate 50 --duration 2 --drain 5
# One connection sending fast, its messages read back from the history.
run_bench sender fanout --receivers 5 --senders 1 --rate 500 --duration 2 --drain 5 --check-stored-order
# Direct messages with a tenth of the operations edits and reactions, each
# of which the recipient must get as message_updated.
run_bench dmchanges dm --pairs 10 --rate 200 --duration 2 --drain 5 --changes 10
run_bench idle idle --connections 200 --hold 1
check_report
run_checked storm --connect-concurrency 512 storm --users 1000 --follow 50 --settle 2
