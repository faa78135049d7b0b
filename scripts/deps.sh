#!/usr/bin/env bash
# Installs every Debian package Automan needs to build, test and run.
# Idempotent: packages already installed are skipped without touching apt.
# Uses sudo only when not root. Node.js/npm are installed only if `node` is missing
# (Debian's npm package conflicts with a Node.js that ships its own npm).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang-format clang-tidy
  clang libclang-rt-14-dev   # libFuzzer + sanitizers for -DAUTOMAN_FUZZ=ON (tests/fuzz)
  # libraries (DESIGN.md "Decisions already made")
  libboost1.81-dev libboost-json1.81-dev
  libsqlite3-dev sqlite3
  libyaml-cpp-dev
  libhowardhinnant-date-dev tzdata
  libfmt-dev libspdlog-dev
  libcli11-dev
  libre2-dev
  libssl-dev libsodium-dev libpq-dev
  postgresql                # the throw-away cluster of the PostgreSQL store tests
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  procps psmisc hyperfine
  prometheus                # promtool checks the server's /metrics
  wrk ccache                # bench/api load generator; faster rebuilds
  openssl zsh fish          # TLS test certificates; completion script checks
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
