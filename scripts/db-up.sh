#!/usr/bin/env bash
# Brings up the PostgreSQL and Redis that the tests use (starting or
# installing them if needed, see scripts/lib/services.sh) and prints their
# URLs as shell exports, so that
#   eval "$(scripts/db-up.sh)"
# lets `cargo test` be run by hand with the same services as scripts/test.sh.
# Progress messages go to stderr; stdout carries only the export lines.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

ensure_postgres
ensure_redis

printf 'export TEST_DATABASE_URL=%q\n' "$TEST_DATABASE_URL"
printf 'export TEST_REDIS_URL=%q\n' "$TEST_REDIS_URL"
