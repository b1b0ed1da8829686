#!/usr/bin/env bash
# The standard benchmark profile: release builds, a fresh server
# for every run (in-memory and PostgreSQL stores), every figure compared
# with the previous run in the generated section of docs/benchmarks.md.
#
#   scripts/bench.sh                 the whole profile (~6 min of runs, plus
#                                    the build and the reads part's seed);
#                                    writes docs/bench/latest.json
#                                    (the old one becomes docs/bench/previous.json)
#                                    and rewrites docs/benchmarks.md between
#                                    <!-- bench:begin --> and <!-- bench:end -->
#   scripts/bench.sh idle dm         only these parts (idle fanout dm http
#                                    pgbench): prints the section, compared
#                                    with docs/bench/latest.json; writes
#                                    nothing under docs/
#   BENCH_QUICK=1 scripts/bench.sh   a short profile (a few seconds per run,
#                                    smaller loads): prints only, its
#                                    figures are not comparable to the targets
#   BENCH_SKIP_BUILD=1               use the release binaries already built
#                                    (the commit recorded is the tree's, which
#                                    they may not match)
#   BENCH_SERVER_BIN=PATH            run (and migrate the scratch database
#                                    with) this chat-server instead of the
#                                    tree's, driven by the tree's chat-bench:
#                                    another commit's server under the same
#                                    load (build it in its own worktree)
#   BENCH_RUNS="ID ..."              only the runs with these ids (e.g.
#                                    "dm.postgres fanout.memory") of the parts
#                                    asked; for interleaved comparisons
#   BENCH_DB_SSLMODE=MODE            the sslmode of the server's and
#                                    pgbench's connections (default disable:
#                                    loopback, and figures comparable with
#                                    earlier runs; prefer/require measure TLS)
#   BENCH_OUT=DIR                    keep the raw outputs (every chat-bench
#                                    and pgbench output, server logs, the
#                                    results file) in DIR; default a new
#                                    temporary directory, printed at the end
#
# The profile:
#   idle     19,000 WebSockets held 5 s on the memory store; server VmRSS per
#            socket (--server-pid)
#   fanout   1,000 receivers, 1 sender, 500 global msg/s for 10 s; memory
#            and PostgreSQL; on PostgreSQL also 4 senders (500 msg/s in
#            all), and one connection sending 2,000 msg/s to 10 receivers
#            whose messages are read back from the history to check their
#            order
#   dm       500 pairs, 10,000 direct msg/s for 10 s; PostgreSQL and memory;
#            the same 500 pairs and 10,000 operations/s with 10 % of them
#            edits and reactions (--changes 10), PostgreSQL and memory; and
#            50 pairs at 10,000 msg/s in all (100/s per sender) on
#            PostgreSQL
#   http     POST /api/messages, 1, 8 and 64 clients for 10 s on
#            PostgreSQL, 64 on memory
#   pgbench  the one-row INSERT ceiling of the messages table, 1, 8 and 64
#            clients for 10 s, with the ordering trigger and without it
#            (scripts/bench/pgbench-*.sql)
#   reads    GET /api/conversations (unread counts) for a user in 1,000
#            conversations with 1,000,000 messages stored, 1, 8 and 64
#            clients for 10 s, on a database of its own seeded by
#            scripts/bench/read-state-seed.sql (a few minutes of seeding)
# Servers run with BCRYPT_COST=4 AUTH_RATE_LIMIT=0 WEBSOCKET_RATE_LIMIT=0
# MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 LOG_LEVEL=warn on
# a free loopback port (no limit on sign-ins, sends or sockets per user: one
# connection sends 2,000 msg/s, the idle run opens hundreds of sockets per
# user); the PostgreSQL runs share one
# scratch database (created and migrated here, dropped on exit, like every
# server this script starts).
#
# Needs PostgreSQL (found or brought up as scripts/test.sh does), psql and
# pgbench, python3, and ~20,000 open files for the server and chat-bench
# each: the soft limit is raised to the hard one, and as root the hard one
# too. (Splitting chat-bench over processes would not help below that: the
# server holds as many sockets as the client.)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

all_parts=(idle fanout dm http pgbench reads)
parts=()
for arg in "$@"; do
  case "$arg" in
    idle | fanout | dm | http | pgbench | reads) parts+=("$arg") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown part '$arg' (parts: ${all_parts[*]})" ;;
  esac
done
full=1
if [[ ${#parts[@]} -eq 0 ]]; then
  parts=("${all_parts[@]}")
else
  full=0
fi
wants() { [[ " ${parts[*]} " == *" $1 "* ]]; }

quick=${BENCH_QUICK:-0}
if [[ "$quick" == 1 ]]; then
  profile=quick
  idle_sockets=2000 idle_hold=1
  fanout_receivers=200 fanout_rate=100
  dm_pairs=100 dm_rate=1000
  sender_rate=500 few_pairs=10
  seconds=3
else
  profile=standard
  idle_sockets=19000 idle_hold=5
  fanout_receivers=1000 fanout_rate=500
  dm_pairs=500 dm_rate=10000
  sender_rate=2000 few_pairs=50
  seconds=10
fi
write_docs=0
if [[ "$full" == 1 && "$quick" == 0 && -z "${BENCH_RUNS:-}${BENCH_SERVER_BIN:-}" ]]; then
  write_docs=1
fi
command_line="scripts/bench.sh${*:+ $*}"
[[ "$quick" == 1 ]] && command_line="BENCH_QUICK=1 $command_line"
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)

step "benchmark profile: $profile, parts: ${parts[*]}"
ensure_rust_toolchain
set_cargo_locked

# Open files: every socket is a file on both sides; chat-bench wants 256
# to spare (its check), the server a few dozen (pool, listeners, logs).
needed_files=$((idle_sockets + 300))
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited ]] && ((hard < needed_files)) && [[ "$(id -u)" -eq 0 ]]; then
  # May be refused even to root (a container without CAP_SYS_RESOURCE).
  ulimit -Hn "$needed_files" 2>/dev/null || info "could not raise the hard open-file limit ($hard)"
fi
ulimit -Sn "$(ulimit -Hn)"
soft=$(ulimit -Sn)
if wants idle && [[ "$soft" != unlimited ]] && ((soft < needed_files)); then
  die "idle with $idle_sockets sockets needs about $needed_files open files per process, the hard limit is $(ulimit -Hn): run as root, or raise nofile in /etc/security/limits.conf"
fi
info "open-file limit $(ulimit -n)"

step "PostgreSQL"
ensure_postgres
command -v psql >/dev/null 2>&1 || die "psql is needed (apt-get install postgresql-client)"
if wants pgbench && ! command -v pgbench >/dev/null 2>&1; then
  die "pgbench is needed for the pgbench part (Debian: postgresql-client or postgresql-contrib)"
fi
pg_version=$(psql "$TEST_DATABASE_URL" -XAtqc 'show server_version' | cut -d' ' -f1)

if [[ "${BENCH_SKIP_BUILD:-0}" == 1 ]]; then
  step "using the release binaries already built (BENCH_SKIP_BUILD=1)"
else
  step "building chat-server and chat-bench (release)"
  cargo build --release "${CARGO_LOCKED[@]}" -p chat-server -p chat-bench
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server_bin="$target_dir/release/chat-server"
bench_bin="$target_dir/release/chat-bench"
# How the binaries appear in the recorded commands.
server_cmd=target/release/chat-server
bench_cmd=target/release/chat-bench
if [[ -n "${BENCH_SERVER_BIN:-}" ]]; then
  server_bin=$BENCH_SERVER_BIN
  server_cmd=$BENCH_SERVER_BIN
  info "server: $server_bin (BENCH_SERVER_BIN)"
fi
[[ -x "$server_bin" && -x "$bench_bin" ]] || die "no release binaries: $server_bin, $bench_bin"
only_runs=" ${BENCH_RUNS:-} "

out=${BENCH_OUT:-$(mktemp -d -t chat-bench.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
runs_file="$out/runs.jsonl" servers_file="$out/servers.tsv" setup_file="$out/setup.txt"
: >"$runs_file"
: >"$servers_file"
: >"$setup_file"

db="chat_bench_$(date +%s)_$$"
db_url="${TEST_DATABASE_URL%/*}/$db?sslmode=${BENCH_DB_SSLMODE:-disable}"
secret="bench-secret-$(date +%s%N)-0123456789abcdef"
server_pid=""
db_created=0
failed_runs=()

stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
reads_db="${db}_reads"
reads_created=0
cleanup() {
  stop_server
  if [[ "$db_created" == 1 ]]; then
    psql "$TEST_DATABASE_URL" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [[ "$reads_created" == 1 ]]; then
    psql "$TEST_DATABASE_URL" -XAtqc "DROP DATABASE IF EXISTS $reads_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

psql "$TEST_DATABASE_URL" -XAtqc "CREATE DATABASE $db" >/dev/null
db_created=1
DATABASE_URL="$db_url" LOG_LEVEL=warn "$server_bin" migrate >"$out/migrate.log" 2>&1 ||
  { cat "$out/migrate.log" >&2; die "chat-server migrate failed"; }
printf '%s\n' "ulimit -n $(ulimit -n)   # for the server and chat-bench each" \
  "psql -c 'CREATE DATABASE $db'" \
  "DATABASE_URL=$db_url $server_cmd migrate" >>"$setup_file"

store_label() { [[ "$1" == postgres ]] && echo PostgreSQL || echo "memory store"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server STORE NAME: a fresh server on a free port, from an empty
# directory (no .env) with nothing but these variables; sets BASE and
# server_pid once /health answers.
declare -A server_recorded=()
start_server() {
  local store=$1 name=$2 port env_vars
  port=$(free_port)
  env_vars=(PORT="$port" JWT_SECRET="$secret" BCRYPT_COST=4 AUTH_RATE_LIMIT=0
    WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 LOG_LEVEL=warn)
  if [[ "$store" == postgres ]]; then
    env_vars+=(DATABASE_URL="$db_url")
  fi
  if [[ -z "${server_recorded[$store]:-}" ]]; then
    server_recorded[$store]=1
    printf '%s\t%s\n' "$store" "env -i PATH=\$PATH PORT=<free port> JWT_SECRET=<random> BCRYPT_COST=4 AUTH_RATE_LIMIT=0 WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 WEBSOCKET_MAX_CONNECTIONS_PER_USER=0 LOG_LEVEL=warn$([[ "$store" == postgres ]] && echo " DATABASE_URL=$db_url") $server_cmd &" >>"$servers_file"
  fi
  mkdir -p "$out/cwd"
  (
    cd "$out/cwd"
    exec env -i PATH="$PATH" "${env_vars[@]}" "$server_bin" >"$out/server-$name.log" 2>&1
  ) &
  server_pid=$!
  BASE="http://127.0.0.1:$port"
  local _
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$BASE/health" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  cat "$out/server-$name.log" >&2
  die "chat-server ($store) did not answer /health on $BASE"
}

# bench ID LABEL STORE MODE ARGS...: a fresh server, one chat-bench run,
# its record; a run that fails is reported at the end and keeps the docs
# unwritten.
bench() {
  local id=$1 label=$2 store=$3 extra=() before after
  shift 3
  if [[ "$only_runs" != "  " && "$only_runs" != *" $id "* ]]; then
    return 0
  fi
  start_server "$store" "$id"
  if [[ "$1" == idle ]]; then
    extra=(--server-pid "$server_pid")
  fi
  local args=(--url "$BASE" --no-progress "$@" "${extra[@]}")
  info "$id: chat-bench ${args[*]}"
  before=$(bench_load1)
  if "$bench_bin" "${args[@]}" >"$out/$id.json" 2>"$out/$id.log"; then
    after=$(bench_load1)
    # Quoted for the shell, so a recorded command can be pasted as it is.
    bench_record "$runs_file" "$id" "$label" "$store" "$bench_cmd$(printf ' %q' "${args[@]}")" \
      "$before" "$after" "$out/$id.json"
    info "    $(bench_summary "$out/$id.json")"
  else
    tail -n 20 "$out/$id.log" >&2
    info "$id FAILED (output in $out/$id.log)"
    failed_runs+=("$id")
  fi
  stop_server
}

# pgbench_run ID LABEL SCRIPT CLIENTS
pgbench_run() {
  local id=$1 label=$2 script=$3 clients=$4 threads before after
  if [[ "$only_runs" != "  " && "$only_runs" != *" $id "* ]]; then
    return 0
  fi
  threads=$((clients < 2 ? 1 : 2))
  local args=(-n -c "$clients" -j "$threads" -T "$seconds" -f "$script" "$db_url")
  info "$id: pgbench ${args[*]}"
  before=$(bench_load1)
  if pgbench "${args[@]}" >"$out/$id.out" 2>&1; then
    after=$(bench_load1)
    bench_pgbench_line "$out/$id.out" "$clients" "$seconds" >"$out/$id.json"
    bench_record "$runs_file" "$id" "$label" "" "pgbench ${args[*]}" \
      "$before" "$after" "$out/$id.json"
    info "    $(grep -E '^tps' "$out/$id.out")"
  else
    tail -n 20 "$out/$id.out" >&2
    failed_runs+=("$id")
  fi
}

if wants idle; then
  step "idle: $idle_sockets sockets"
  bench idle "$(sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$idle_sockets") sockets, memory store" memory \
    idle --connections "$idle_sockets" --users 100 --hold "$idle_hold"
fi
if wants fanout; then
  step "fanout: $fanout_receivers receivers at $fanout_rate msg/s"
  for store in memory postgres; do
    bench "fanout.$store" "$(store_label "$store")" "$store" \
      fanout --receivers "$fanout_receivers" --senders 1 --rate "$fanout_rate" --duration "$seconds"
  done
  bench fanout.postgres.s4 "PostgreSQL, 4 senders" postgres \
    fanout --receivers "$fanout_receivers" --senders 4 --rate "$fanout_rate" --duration "$seconds"
  step "fanout: one connection sending $sender_rate msg/s"
  bench sender.postgres "PostgreSQL, one connection at $(sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$sender_rate") msg/s to 10 receivers" postgres \
    fanout --receivers 10 --senders 1 --rate "$sender_rate" --duration "$seconds" --check-stored-order
fi
if wants dm; then
  step "dm: $dm_pairs pairs at $dm_rate msg/s"
  bench dm.postgres "$(store_label postgres)" postgres \
    dm --pairs "$dm_pairs" --rate "$dm_rate" --duration "$seconds"
  # The same load with a tenth of the operations changing messages, right
  # after the row it is read against.
  bench dm.postgres.changes "PostgreSQL, 10 % edits and reactions" postgres \
    dm --pairs "$dm_pairs" --rate "$dm_rate" --duration "$seconds" --changes 10
  bench dm.memory "$(store_label memory)" memory \
    dm --pairs "$dm_pairs" --rate "$dm_rate" --duration "$seconds"
  bench dm.memory.changes "memory store, 10 % edits and reactions" memory \
    dm --pairs "$dm_pairs" --rate "$dm_rate" --duration "$seconds" --changes 10
  bench dm.postgres.p50 "PostgreSQL, $few_pairs pairs" postgres \
    dm --pairs "$few_pairs" --rate "$dm_rate" --duration "$seconds"
fi
if wants http; then
  step "http: POST /api/messages"
  for clients in 1 8 64; do
    bench "http.postgres.c$clients" "PostgreSQL, $clients client$([[ $clients == 1 ]] || echo s)" postgres \
      http --clients "$clients" --duration "$seconds"
  done
  bench http.memory.c64 "memory store, 64 clients" memory http --clients 64 --duration "$seconds"
fi
if wants pgbench; then
  step "pgbench: one-row INSERTs into messages"
  psql "$db_url" -XAtq -v ON_ERROR_STOP=1 -f scripts/bench/pgbench-sender.sql >/dev/null
  echo "psql \$DATABASE_URL -f scripts/bench/pgbench-sender.sql" >>"$setup_file"
  for clients in 1 8 64; do
    pgbench_run "pgbench.trigger.c$clients" "ordering trigger, $clients client$([[ $clients == 1 ]] || echo s)" \
      scripts/bench/pgbench-insert.sql "$clients"
  done
  alter="ALTER TABLE messages DISABLE TRIGGER messages_assign_seq"
  psql "$db_url" -XAtq -v ON_ERROR_STOP=1 -c "$alter" >/dev/null
  echo "psql \$DATABASE_URL -c '$alter'   # before the plain runs" >>"$setup_file"
  for clients in 1 8 64; do
    pgbench_run "pgbench.plain.c$clients" "plain (no trigger), $clients client$([[ $clients == 1 ]] || echo s)" \
      scripts/bench/pgbench-insert-plain.sql "$clients"
  done
fi

if wants reads; then
  step "reads: GET /api/conversations, a user in 1,000 conversations, 1,000,000 messages"
  reads_url="${TEST_DATABASE_URL%/*}/$reads_db?sslmode=${BENCH_DB_SSLMODE:-disable}"
  psql "$TEST_DATABASE_URL" -XAtqc "CREATE DATABASE $reads_db" >/dev/null
  reads_created=1
  DATABASE_URL="$reads_url" LOG_LEVEL=warn "$server_bin" migrate >"$out/migrate-reads.log" 2>&1 ||
    { cat "$out/migrate-reads.log" >&2; die "chat-server migrate failed (reads)"; }
  info "seeding $reads_db (a few minutes)"
  psql "$reads_url" -XAtq -v ON_ERROR_STOP=1 -f scripts/bench/read-state-seed.sql >"$out/seed-reads.log" 2>&1 ||
    { tail -n 20 "$out/seed-reads.log" >&2; die "seeding $reads_db failed"; }
  # Every seeded user's password (scripts/bench/read-state-seed.sql).
  reads_password="correct horse battery"
  printf '%s\n' "psql -c 'CREATE DATABASE $reads_db'" \
    "DATABASE_URL=$reads_url $server_cmd migrate" \
    "psql $reads_url -f scripts/bench/read-state-seed.sql   # the reads runs' server uses this database" >>"$setup_file"
  # The reads runs' servers use the seeded database.
  main_db_url=$db_url
  db_url=$reads_url
  for clients in 1 8 64; do
    bench "reads.postgres.c$clients" "PostgreSQL, $clients client$([[ $clients == 1 ]] || echo s)" postgres \
      conversations --user user0000 --password "$reads_password" --clients "$clients" --duration "$seconds"
  done
  db_url=$main_db_url
fi

step "results"
bench_assemble "$out/results.json" "$profile" "$command_line" "$runs_file" \
  "$servers_file" "$setup_file" "$started_at" "$pg_version"
info "results file: $out/results.json (every output is in $out)"

if [[ ${#failed_runs[@]} -gt 0 ]]; then
  "$bench_bin" report --current "$out/results.json"
  die "runs that failed: ${failed_runs[*]}; docs/ left unchanged"
fi

if [[ "$write_docs" == 1 ]]; then
  mkdir -p docs/bench
  previous_args=()
  if [[ -f docs/bench/latest.json ]]; then
    cp docs/bench/latest.json docs/bench/previous.json
    previous_args=(--previous docs/bench/previous.json)
  fi
  cp "$out/results.json" docs/bench/latest.json
  "$bench_bin" report --current docs/bench/latest.json "${previous_args[@]}" --write docs/benchmarks.md
  step "docs/benchmarks.md rewritten (generated section); docs/bench/latest.json written"
else
  previous_args=()
  [[ -f docs/bench/latest.json ]] && previous_args=(--previous docs/bench/latest.json)
  "$bench_bin" report --current "$out/results.json" "${previous_args[@]}"
  step "partial or quick profile: section printed above, docs/ unchanged"
fi
