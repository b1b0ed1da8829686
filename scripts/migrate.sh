#!/usr/bin/env bash
# Applies the database migrations to the database the server is configured
# for (DATABASE_URL or DB_* from the environment or .env), through the
# server's own `migrate` subcommand, so there is no separate tool to install.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
ensure_rust_toolchain

exec cargo run -p chat-server -- migrate "$@"
