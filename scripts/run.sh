#!/usr/bin/env bash
# Runs the server (release build). Arguments go to the chat-server binary.
# Configuration comes from the environment or .env (see .env.example);
# without DATABASE_URL/DB_HOST it runs on the in-memory store.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
ensure_rust_toolchain

exec cargo run --release -p chat-server -- "$@"
