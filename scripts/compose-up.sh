#!/usr/bin/env bash
# Builds the image and starts the whole deployment of docker/docker-compose.yml
# (PostgreSQL, Redis, two chat-server instances, nginx on :8080). Arguments
# go to `docker compose up` (e.g. -d to run in the background).
#
# Needs a Docker engine with the compose plugin, and JWT_SECRET set (at least
# 32 bytes: `export JWT_SECRET="$(openssl rand -hex 32)"`). The development
# machine of this project has no Docker engine; see docs/operations.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

docker compose version >/dev/null 2>&1 ||
  die "needs 'docker compose' (Docker with the compose plugin)"
docker info >/dev/null 2>&1 ||
  die "no Docker engine answers ('docker info' failed); start one first"
[[ -n "${JWT_SECRET:-}" ]] ||
  die "set JWT_SECRET (at least 32 bytes), e.g. export JWT_SECRET=\"\$(openssl rand -hex 32)\""

step "docker compose up --build"
exec docker compose -f docker/docker-compose.yml up --build "$@"
