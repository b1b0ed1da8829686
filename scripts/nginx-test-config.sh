#!/usr/bin/env bash
# Writes, to stdout, the repository's docker/nginx.conf adapted to run on
# this machine in front of two local chat-server instances. Only the two
# upstream `server HOST:PORT` lines and the `listen` line change, by the awk
# that the header of docker/nginx.conf documents; everything else (headers,
# timeouts, balancing) is the deployed file as it is.
#
#   scripts/nginx-test-config.sh 127.0.0.1:18081 127.0.0.1:18082 127.0.0.1:18080 > "$tmp/nginx.conf"
#   nginx -p "$tmp" -c "$tmp/nginx.conf" \
#     -g "daemon off; pid $tmp/nginx.pid; error_log $tmp/error.log;"
#
# Fails (exit 1, nothing on stdout) when the file no longer has exactly two
# such upstream lines and one listen line: the tests must then be told how
# the file changed rather than run a config nobody wrote.
# NGINX_CONF overrides the source file (default docker/nginx.conf).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source="${NGINX_CONF:-$root/docker/nginx.conf}"

if [[ $# -ne 3 ]]; then
  echo "usage: $0 UPSTREAM_A UPSTREAM_B LISTEN   (each HOST:PORT, e.g. 127.0.0.1:18081)" >&2
  exit 2
fi
host_port='^[^[:space:];]+:[0-9]+$'
for addr in "$@"; do
  [[ "$addr" =~ $host_port ]] || {
    echo "error: $addr is not HOST:PORT" >&2
    exit 2
  }
done

out="$(
  awk -v a="$1" -v b="$2" -v p="$3" '
    /^[ \t]*server [^ ]+:[0-9]+ / { sub(/server [^ ]+:[0-9]+/, "server " (n++ ? b : a)) }
    /^[ \t]*listen [^;]+;/       { sub(/listen [^;]+;/, "listen " p ";"); l++ }
    { print }
    END {
      if (n != 2 || l != 1) {
        printf "error: expected 2 upstream server lines and 1 listen line, found %d and %d\n", n, l > "/dev/stderr"
        exit 1
      }
    }' "$source"
)"
printf '%s\n' "$out"
