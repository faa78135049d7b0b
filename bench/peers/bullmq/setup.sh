#!/usr/bin/env bash
# Idempotent setup for the BullMQ peer benchmark:
#   - installs redis-server (Debian package) when it is not on PATH,
#   - runs `npm ci` here so node_modules/ matches package-lock.json.
# node_modules/ lives in this folder only and is never committed (see .gitignore).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v redis-server >/dev/null 2>&1 && [[ ! -x /usr/bin/redis-server ]]; then
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "redis-server missing and not root (no sudo)"; exit 1; }
        sudo=(sudo)
    fi
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The Debian package starts a system-wide redis on 6379; the benchmark never uses it
    # (run.sh starts its own private instance on a free port).
fi

command -v node >/dev/null 2>&1 || { log "node not found (need Node >= 18)"; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 18 )); then
    log "Node $(node --version) is too old (need >= 18)"
    exit 1
fi

# npm ci only when node_modules is missing or older than the lock file.
stamp="$here/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$here/package-lock.json" -nt "$stamp" ]]; then
    log "npm ci in $here"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
else
    log "node_modules up to date"
fi
