#!/usr/bin/env bash
# The OpenAPI document against the real server: schemathesis
# (from PyPI, in a virtual environment this script makes under
# target/schemathesis-venv) generates requests for every documented
# operation and checks that no answer is a 5xx and that every status code,
# content type, header and body matches /api/openapi.json. Run by
# scripts/test.sh after the tests; also runs on its own:
#   scripts/test.d/30-schemathesis.sh
#
# The server is the debug chat-server on a free loopback port, started from
# an empty directory (no .env), AUTH_RATE_LIMIT=0, BCRYPT_COST=4; requests
# carry a bearer token of a user registered for the run. It runs once on
# the in-memory store and, when TEST_DATABASE_URL is set (scripts/test.sh
# sets it) and psql is installed, once more on a fresh PostgreSQL database,
# whose errors differ (it was PostgreSQL that refused NUL characters).
#
# The main run is `alice` (bob exists too, so that the documented example
# of GET /api/messages/between/alice/bob reads a real conversation).
# Left out of it, because they would revoke the token every other request
# carries, each in a run of its own afterwards, with a token of its own:
#   POST /api/auth/refresh  with a token re-signed to expire in 10 minutes
#                           (inside the refresh window), so the 200 is seen
#   POST /api/auth/logout
# Left out entirely: GET /api/ws/connect, a WebSocket upgrade that a
# stateless HTTP generator cannot exercise (the ws tests cover it).
#
#   SCHEMATHESIS_MAX_EXAMPLES=30   test cases per operation and phase
#   SCHEMATHESIS_SEED=<n>          reproduce a run (the seed is printed)
#   SCHEMATHESIS_BACKENDS="memory postgres"
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
ensure_rust_toolchain
set_cargo_locked

# Pinned: a new schemathesis may add checks or change its options; bump it
# on purpose, re-running this script.
SCHEMATHESIS_VERSION=4.32.5
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,response_schema_conformance
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-30}

target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target_dir/schemathesis-venv"
st="$venv/bin/st"
if [[ "$("$st" --version 2>/dev/null || true)" != *"$SCHEMATHESIS_VERSION"* ]]; then
  step "schemathesis: installing $SCHEMATHESIS_VERSION into $venv (PyPI, one time)"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
info "$("$st" --version)"

step "schemathesis: building chat-server (debug)"
cargo build "${CARGO_LOCKED[@]}" -p chat-server
server_bin="$target_dir/debug/chat-server"

work=$(mktemp -d)
jwt_secret="schemathesis-secret-$RANDOM-0123456789abcdef0123"
server_pid=""
database=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  if [[ -n "$database" ]]; then
    psql "$TEST_DATABASE_URL" -XqAtc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the server with extra `VAR=value` arguments; sets server_pid, base.
start_server() {
  local port
  port=$(free_port)
  base="http://127.0.0.1:$port"
  mkdir -p "$work/cwd"
  (
    cd "$work/cwd"
    exec env -u DATABASE_URL -u DB_HOST -u DB_PORT -u DB_NAME -u DB_USER \
      -u DB_PASSWORD -u REDIS_URL \
      PORT="$port" ENVIRONMENT=development BCRYPT_COST=4 AUTH_RATE_LIMIT=0 \
      WEBSOCKET_RATE_LIMIT=0 MESSAGE_RATE_LIMIT=0 LOG_LEVEL=warn \
      JWT_SECRET="$jwt_secret" "$@" \
      "$server_bin" >"$work/server.log" 2>&1
  ) &
  server_pid=$!
  local _
  for _ in $(seq 1 120); do
    if python3 - "$base/health" <<'PY' 2>/dev/null; then
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
      info "chat-server up on $base (pid $server_pid)"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
  done
  cat "$work/server.log" >&2
  die "chat-server did not answer /health on $base"
}

# Registers `name` (once) and prints a fresh bearer token for it.
token_for() {
  python3 - "$base" "$1" <<'PY'
import json, sys, urllib.request, urllib.error
base, name = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
# The documented example password, so that the examples phase of
# POST /api/auth/login (alice) logs in for real.
password = "correct horse battery"
status, body = post("/api/auth/register",
                    {"username": name, "email": f"{name}@example.com", "password": password})
if status not in (201, 409):
    sys.exit(f"register {name}: {status} {body}")
status, body = post("/api/auth/login", {"username": name, "password": password})
if status != 200:
    sys.exit(f"login {name}: {status} {body}")
print(body["token"])
PY
}

# The token $1 with the same claims and a fresh `jti`, re-signed to expire
# in 10 minutes: eligible for refresh (the window is 15 minutes).
near_expiry() {
  JWT_SECRET="$jwt_secret" python3 - "$1" <<'PY'
import base64, hashlib, hmac, json, os, sys, time, uuid
def b64(raw): return base64.urlsafe_b64encode(raw).rstrip(b"=")
header, payload, _ = sys.argv[1].split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims.update(exp=int(time.time()) + 600, jti=str(uuid.uuid4()))
signing_input = header.encode() + b"." + b64(json.dumps(claims).encode())
signature = hmac.new(os.environ["JWT_SECRET"].encode(), signing_input, hashlib.sha256).digest()
print((signing_input + b"." + b64(signature)).decode())
PY
}

# One schemathesis run against the running server; extra arguments select
# the operations.
run_schemathesis() {
  local token=$1
  shift
  local seed=()
  [[ -n "${SCHEMATHESIS_SEED:-}" ]] && seed=(--seed "$SCHEMATHESIS_SEED")
  # --generation-database none: each run starts from scratch, so that a
  # local run and CI explore alike; the printed seed reproduces a failure.
  (cd "$work" && timeout 300 "$st" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --generation-database none \
    --request-timeout 10 \
    --no-color \
    "${seed[@]}" "$@") || {
    info "server log (last lines):"
    tail -n 40 "$work/server.log" >&2
    die "schemathesis found responses that do not match the OpenAPI document (see above)"
  }
}

# A full run against one store.
run_backend() {
  local name=$1
  shift
  step "schemathesis: $name store, $max_examples examples per operation"
  start_server "$@"
  token_for bob >/dev/null
  run_schemathesis "$(token_for alice)" --exclude-path /api/ws/connect \
    --exclude-path /api/auth/logout --exclude-path /api/auth/refresh
  step "schemathesis: $name store, POST /api/auth/refresh with a token inside the refresh window"
  run_schemathesis "$(near_expiry "$(token_for alice)")" --include-path /api/auth/refresh
  step "schemathesis: $name store, POST /api/auth/logout with a token of its own"
  run_schemathesis "$(token_for alice)" --include-path /api/auth/logout
  stop_server
}

for backend in ${SCHEMATHESIS_BACKENDS:-memory postgres}; do
  case "$backend" in
    memory) run_backend memory ;;
    postgres)
      if [[ -z "${TEST_DATABASE_URL:-}" ]] || ! command -v psql >/dev/null 2>&1; then
        info "PostgreSQL run skipped: needs TEST_DATABASE_URL and psql (scripts/test.sh sets the first)"
        continue
      fi
      database="chat_schemathesis_$$_$RANDOM"
      psql "$TEST_DATABASE_URL" -XqAtc "CREATE DATABASE $database" >/dev/null
      # The admin URL with its database replaced by ours.
      db_url=$(python3 - "$TEST_DATABASE_URL" "$database" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))
PY
)
      run_backend postgres DATABASE_URL="$db_url" DB_POOL_SIZE=4
      ;;
    *) die "unknown backend $backend in SCHEMATHESIS_BACKENDS (memory, postgres)" ;;
  esac
done
step "schemathesis: every response matched the document"
