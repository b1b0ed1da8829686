# Task shortcuts. Every recipe is a one-line call of a script in scripts/, so
# nothing here is required: the scripts work on their own, in CI too.
#
# Installing just: `apt-get install just` (Debian 13+, Ubuntu 24.04+; not in
# Debian 12), `cargo install just`, or `pip install rust-just` (prebuilt).

# Recipe arguments reach the scripts as "$@", with their quoting intact.
set positional-arguments

# List the recipes.
default:
    @just --list

# Run the server (release build); arguments go to chat-server.
run *args:
    scripts/run.sh "$@"

# Run every check and test, as CI does (SKIP_LINT=1 skips fmt/clippy/doc).
test:
    scripts/test.sh

# cargo fmt --check and clippy -D warnings.
lint:
    scripts/lint.sh

# Start (or install) PostgreSQL and Redis for the tests; prints their URLs.
db-up:
    scripts/db-up.sh

# One-time setup: rustfmt and clippy components, then db-up.
setup:
    scripts/setup.sh

# Apply database migrations (chat-server migrate).
migrate *args:
    scripts/migrate.sh "$@"

# Benchmark profile (release builds, ~6 min of runs plus a seed): rewrites the generated top of docs/benchmarks.md; `just bench idle` runs one part.
bench *parts:
    scripts/bench.sh "$@"

# Fuzz the frame decoder and request bodies (FUZZ_SECONDS per target, default 60).
fuzz *targets:
    scripts/fuzz.sh "$@"

# Build and start docker/docker-compose.yml (needs Docker and JWT_SECRET).
compose-up *args:
    scripts/compose-up.sh "$@"
