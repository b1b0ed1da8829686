#!/usr/bin/env bash
# The browser client end to end: the real chat-server binary and
# Debian's headless Chromium driven by playwright-core, two people chatting
# globally, directly and in a room, one dropping off the network and coming
# back. Run by scripts/test.sh after the tests; also runs on its own:
#   scripts/test.d/50-e2e.sh
#
# Installs what is missing, once per machine: Chromium from Debian (apt; no
# browser download from anywhere else) and playwright-core from the npm
# registry at the version pinned in e2e/package-lock.json.
# On failure, screenshots and the server log are in e2e/artifacts/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
ensure_rust_toolchain
set_cargo_locked

# Runs a command as root: directly when we are root (CI, containers), else
# through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $*"
  fi
}

chromium_bin=${CHROMIUM_BIN:-/usr/bin/chromium}
if [[ ! -x "$chromium_bin" ]]; then
  step "e2e: installing chromium (apt, one time)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[[ -x "$chromium_bin" ]] || die "no Chromium at $chromium_bin"

command -v node >/dev/null 2>&1 || die "node is needed for the e2e test (Debian: apt-get install nodejs npm)"
if [[ ! -d e2e/node_modules/playwright-core ]]; then
  step "e2e: npm ci (playwright-core, pinned in e2e/package-lock.json)"
  # playwright-core itself downloads no browser; the variable makes sure.
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

step "e2e: building chat-server (debug)"
cargo build "${CARGO_LOCKED[@]}" -p chat-server
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

step "e2e: node --test e2e/chat.spec.mjs"
rm -rf e2e/artifacts
CHAT_SERVER_BIN="$target_dir/debug/chat-server" CHROMIUM_BIN="$chromium_bin" \
  timeout 300 node --test --test-reporter=spec e2e/chat.spec.mjs
