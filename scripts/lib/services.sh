# shellcheck shell=bash
# Brings up the PostgreSQL and Redis that the tests talk to, and exports
#   TEST_DATABASE_URL  admin URL of a maintenance database (tests create and
#                      drop their own databases from it)
#   TEST_REDIS_URL     URL of a Redis server the tests may use
#
# Sourced by scripts/test.sh and scripts/db-up.sh. Each function tries, in
# order: the URL already in the environment; a server already answering on
# the usual local port; one installed but stopped; installing it with
# apt-get (as root, or through passwordless sudo). It never assumes the
# services of the machine it was written on: CI and a fresh machine may have
# none, and the script must get there on its own.
#
# Knobs, mostly so the fallback branches can be exercised without stopping
# a real server:
#   TEST_PG_HOST / TEST_PG_PORT        where to look for PostgreSQL (127.0.0.1:5432)
#   TEST_REDIS_HOST / TEST_REDIS_PORT  where to look for Redis (127.0.0.1:6379)
#   SERVICES_DRY_RUN=1                 print the commands that would start or
#                                      install something instead of running them
#   SERVICES_PG_ETC_DIR                where installed clusters are listed (/etc/postgresql)
#   SERVICES_REDIS_SERVER              redis-server binary to look for (redis-server)
#
# Messages go to stderr so that callers can capture stdout.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# --- small helpers ---------------------------------------------------------

_svc_dry_run() { [[ "${SERVICES_DRY_RUN:-0}" == 1 ]]; }

# Runs a command that changes the machine (start, install, reconfigure), or
# only prints it under SERVICES_DRY_RUN=1.
_svc_run() {
  if _svc_dry_run; then
    # %q so that empty arguments (--save "") stay visible.
    info "[dry-run] $(printf '%q ' "$@")"
    return 0
  fi
  "$@"
}

# Same, for commands that need root: as root directly, else through sudo if
# it works without a password (never prompt: CI has no terminal).
_svc_run_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    _svc_run "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    _svc_run sudo -n "$@"
  elif _svc_dry_run; then
    _svc_run "$@"
  else
    die "need root (or passwordless sudo) to run: $*
  Alternatively start the service yourself and set TEST_DATABASE_URL / TEST_REDIS_URL."
  fi
}

# Hides a password in a URL before it is printed to a (CI) log.
_svc_redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# Is anything listening on host:port? Plain bash, no extra tool needed; the
# timeout keeps a filtered port from hanging the script.
_svc_tcp_open() {
  # shellcheck disable=SC2016  # $1/$2 expand in the inner bash, on purpose
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Polls $1 (a command) until it succeeds or $2 seconds have passed.
_svc_wait_for() {
  local check="$1" seconds="$2" what="$3" i
  _svc_dry_run && return 0
  for ((i = 0; i < seconds; i++)); do
    if "$check"; then
      return 0
    fi
    sleep 1
  done
  die "$what did not answer within ${seconds}s"
}

# apt-get update once per run, not once per service.
_SVC_APT_UPDATED=0
_svc_apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "$1 is not installed and apt-get is not available: install $1 yourself, or set the matching TEST_*_URL"
  if [[ "$_SVC_APT_UPDATED" == 0 ]]; then
    _svc_run_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    _SVC_APT_UPDATED=1
  fi
  # noninteractive: no debconf prompts (CI has no standard input).
  _svc_run_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# --- PostgreSQL ------------------------------------------------------------

_PG_HOST=127.0.0.1
_PG_PORT=5432
_PG_WAS_ONLINE=0

_pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$_PG_HOST" -p "$_PG_PORT" -t 2
  else
    _svc_tcp_open "$_PG_HOST" "$_PG_PORT"
  fi
}

# Can this URL log in and run a query? Without psql we cannot tell, and
# assume yes: the tests will say so soon enough if not.
_pg_can_login() {
  command -v psql >/dev/null 2>&1 || return 0
  PGCONNECT_TIMEOUT=5 psql "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

# Runs psql as the postgres OS user over the local socket, where Debian's
# default pg_hba.conf grants `peer` auth whatever the TCP rules say.
_pg_local_psql() {
  _svc_run_root su -s /bin/sh postgres -c "psql -X -q -p $_PG_PORT -c \"$1\""
}

# Newest installed major version (e.g. "15"), or nothing.
_pg_installed_version() {
  local etc="${SERVICES_PG_ETC_DIR:-/etc/postgresql}"
  [[ -d "$etc" ]] || return 0
  # shellcheck disable=SC2012  # names are plain version numbers
  ls "$etc" | sort -V | tail -n 1
}

# Starts cluster $1/main, creating it first if the package is there but the
# cluster was never created (e.g. createcluster disabled, or dropped).
_pg_start_cluster() {
  local ver="$1" etc="${SERVICES_PG_ETC_DIR:-/etc/postgresql}" line port status
  if [[ ! -d "$etc/$ver/main" ]]; then
    _svc_run_root pg_createcluster "$ver" main
  fi
  # The cluster may listen on another port than the one probed (Debian picks
  # 5433 when 5432 was taken at install time): follow the cluster.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    line="$(pg_lsclusters --no-header "$ver" main 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      read -r _ _ port status _ <<<"$line"
      if [[ "$port" != "$_PG_PORT" ]]; then
        info "postgres: cluster $ver/main listens on port $port, using that"
        _PG_PORT="$port"
      fi
      if [[ "$status" == online* ]]; then
        _PG_WAS_ONLINE=1
        return 0
      fi
    fi
  fi
  # --skip-systemctl-redirect: start it directly; there is no systemd in
  # containers and CI sandboxes.
  _svc_run_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
}

# Makes postgres@host:port reachable from the tests and sets _PG_URL.
# Debian's packaged pg_hba.conf asks for a password over TCP (scram), so a
# freshly installed cluster refuses the passwordless URL. The least invasive
# fix is giving the postgres role a password ("postgres", as in the old
# service's README): no configuration file is edited, nothing is reloaded,
# and it only opens the server to whoever knows the password on an address
# that listens on localhost only. Only when password auth is not offered for
# 127.0.0.1 at all do we add a trust line for that one role and address.
_pg_resolve_url() {
  local trust_url="postgres://postgres@$_PG_HOST:$_PG_PORT/postgres"
  local pw_url="postgres://postgres:postgres@$_PG_HOST:$_PG_PORT/postgres"
  _PG_URL="$trust_url"
  if _svc_dry_run || _pg_can_login "$trust_url"; then
    return 0
  fi
  if _pg_can_login "$pw_url"; then
    _PG_URL="$pw_url"
    info "postgres: passwordless login refused; the password 'postgres' works"
    return 0
  fi
  # Only a local server can be fixed from here.
  case "$_PG_HOST" in 127.0.0.1 | localhost) ;; *)
    die "cannot log in to PostgreSQL at $_PG_HOST:$_PG_PORT as postgres; set TEST_DATABASE_URL" ;;
  esac
  info "postgres: passwordless TCP login refused; setting password 'postgres' for role postgres"
  _pg_local_psql "ALTER ROLE postgres PASSWORD 'postgres'" >/dev/null ||
    die "could not set a password for role postgres; set TEST_DATABASE_URL"
  if _pg_can_login "$pw_url"; then
    _PG_URL="$pw_url"
    return 0
  fi
  info "postgres: password login still refused (pg_hba.conf offers none for 127.0.0.1);"
  info "          adding 'host all postgres 127.0.0.1/32 trust' at the top of pg_hba.conf and reloading"
  local hba
  hba="$(_svc_run_root su -s /bin/sh postgres -c "psql -X -At -p $_PG_PORT -c 'show hba_file'")" ||
    die "could not locate pg_hba.conf; set TEST_DATABASE_URL"
  # First matching line wins in pg_hba.conf, so the new line goes first.
  _svc_run_root sed -i '1i host all postgres 127.0.0.1/32 trust  # added by scripts/lib/services.sh for tests' "$hba"
  _pg_local_psql "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  _pg_can_login "$trust_url" ||
    die "still cannot log in to PostgreSQL at $_PG_HOST:$_PG_PORT; set TEST_DATABASE_URL"
  _PG_URL="$trust_url"
}

ensure_postgres() {
  if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
    info "postgres: using TEST_DATABASE_URL ($(_svc_redact "$TEST_DATABASE_URL"))"
    export TEST_DATABASE_URL
    return 0
  fi
  _PG_HOST="${TEST_PG_HOST:-127.0.0.1}"
  _PG_PORT="${TEST_PG_PORT:-5432}"
  local how ver
  if _pg_answers; then
    how="found running on $_PG_HOST:$_PG_PORT"
  else
    ver="$(_pg_installed_version)"
    if [[ -n "$ver" ]]; then
      how="started installed cluster $ver/main"
    else
      info "postgres: nothing on $_PG_HOST:$_PG_PORT and no cluster installed; installing"
      _svc_apt_install postgresql
      ver="$(_pg_installed_version)"
      # In a dry run nothing was installed; show what would be started.
      [[ -n "$ver" ]] || ver="<version>"
      how="installed postgresql with apt-get and started it"
    fi
    # The package's own start may or may not have worked (no systemd, or a
    # policy-rc.d that forbids starting services): start it if needed.
    if ! _pg_answers; then
      _pg_start_cluster "$ver"
      if [[ "$_PG_WAS_ONLINE" == 1 ]]; then
        how="found cluster $ver/main already running on port $_PG_PORT"
      fi
    fi
    _svc_wait_for _pg_answers 60 "PostgreSQL on $_PG_HOST:$_PG_PORT"
  fi
  _pg_resolve_url
  TEST_DATABASE_URL="$_PG_URL"
  export TEST_DATABASE_URL
  info "postgres: $how; TEST_DATABASE_URL=$(_svc_redact "$TEST_DATABASE_URL")"
}

# --- Redis -----------------------------------------------------------------

_REDIS_HOST=127.0.0.1
_REDIS_PORT=6379

_redis_answers() { _svc_tcp_open "$_REDIS_HOST" "$_REDIS_PORT"; }

# Something answers on the port; is it a Redis we can use without a password?
_redis_pong() {
  command -v redis-cli >/dev/null 2>&1 || return 0
  [[ "$(redis-cli -h "$_REDIS_HOST" -p "$_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

ensure_redis() {
  if [[ -n "${TEST_REDIS_URL:-}" ]]; then
    info "redis: using TEST_REDIS_URL ($(_svc_redact "$TEST_REDIS_URL"))"
    export TEST_REDIS_URL
    return 0
  fi
  _REDIS_HOST="${TEST_REDIS_HOST:-127.0.0.1}"
  _REDIS_PORT="${TEST_REDIS_PORT:-6379}"
  local how server="${SERVICES_REDIS_SERVER:-redis-server}"
  if _redis_answers; then
    how="found running on $_REDIS_HOST:$_REDIS_PORT"
  else
    if command -v "$server" >/dev/null 2>&1; then
      how="started installed redis-server"
    else
      info "redis: nothing on $_REDIS_HOST:$_REDIS_PORT and redis-server not installed; installing"
      _svc_apt_install redis-server
      server=redis-server
      how="installed redis-server with apt-get and started it"
    fi
    # The package may have started its own (where services can start).
    if ! _redis_answers; then
      # Test-only instance: keeps nothing on disk (no RDB, no AOF). The
      # leading "-" on ::1 makes that address optional, for hosts without
      # IPv6. The log file is there for when it fails to come up.
      _svc_run "$server" --daemonize yes --bind 127.0.0.1 -::1 --port "$_REDIS_PORT" \
        --save "" --appendonly no --logfile "${TMPDIR:-/tmp}/chat-test-redis-$_REDIS_PORT.log"
    fi
    _svc_wait_for _redis_answers 30 "Redis on $_REDIS_HOST:$_REDIS_PORT"
  fi
  if ! _svc_dry_run && ! _redis_pong; then
    die "something answers on $_REDIS_HOST:$_REDIS_PORT but not a passwordless Redis PING; set TEST_REDIS_URL"
  fi
  TEST_REDIS_URL="redis://$_REDIS_HOST:$_REDIS_PORT"
  export TEST_REDIS_URL
  info "redis: $how; TEST_REDIS_URL=$TEST_REDIS_URL"
}

# --- nginx -----------------------------------------------------------------

# The cluster tests run the repository's docker/nginx.conf in a real nginx
# of their own (own prefix directory, port, pid file and logs), so all they
# need is the binary. Installing Debian's package starts the system service
# on port 80 where services can start; that one is stopped again at once:
# the tests never use it and it should not outlive them.
ensure_nginx() {
  local bin="${NGINX_BIN:-}"
  if [[ -z "$bin" ]]; then
    bin="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nginx || true)"
  fi
  if [[ -n "$bin" ]]; then
    NGINX_BIN="$bin"
    export NGINX_BIN
    info "nginx: found $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | head -n 1))"
    return 0
  fi
  info "nginx: not installed; installing Debian's package"
  _svc_apt_install nginx
  _svc_dry_run && { NGINX_BIN=/usr/sbin/nginx; export NGINX_BIN; return 0; }
  bin="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nginx || true)"
  [[ -n "$bin" ]] || die "nginx: apt-get install nginx left no nginx binary; install it or set NGINX_BIN"
  # The package's service, if its postinst could start one: stop it.
  if [[ -s /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    info "nginx: stopping the system service the package started (the tests run their own)"
    _svc_run_root "$bin" -s quit || _svc_run_root kill -QUIT "$(cat /run/nginx.pid)" || true
  fi
  NGINX_BIN="$bin"
  export NGINX_BIN
  info "nginx: installed $NGINX_BIN"
}
