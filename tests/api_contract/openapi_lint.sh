#!/usr/bin/env bash
# The ctest openapi_lint: lints the OpenAPI document of the real route table with an
# independent validator, Redocly CLI (pinned in openapi/package-lock.json), using the
# `recommended` ruleset (openapi/redocly.yaml). Fails on any error or warning.
#
#   openapi_lint.sh OPENAPI_DUMP SRC_DIR WORK_DIR
#
# OPENAPI_DUMP  the openapi_dump binary (prints the document)
# SRC_DIR       tests/api_contract/openapi (package.json, package-lock.json, redocly.yaml)
# WORK_DIR      a directory in the build tree: the package is copied there and installed
#               with `npm ci` (once per lock file), so the source tree stays clean
#
# Exit 77 (ctest: skipped) when node or npm is missing or too old, with the reason.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 OPENAPI_DUMP SRC_DIR WORK_DIR" >&2
  exit 2
fi
dump=$1
src=$2
work=$3
readonly SKIP=77

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed; the OpenAPI lint needs Node.js >= 18.17 with npm"
    exit $SKIP
  fi
done
if ! node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 18 || (maj === 18 && min >= 17) ? 0 : 1);'; then
  echo "SKIP: Node.js $(node --version) is too old; @redocly/cli 1.34 needs >= 18.17"
  exit $SKIP
fi

mkdir -p "$work"
for f in package.json package-lock.json .npmrc redocly.yaml; do
  cmp -s "$src/$f" "$work/$f" || cp "$src/$f" "$work/$f"
done

# Install when node_modules is missing or was installed from another lock file.
stamp="$work/node_modules/.automan-lock.sha256"
want=$(sha256sum "$work/package-lock.json" | cut -d' ' -f1)
if [[ ! -x "$work/node_modules/.bin/redocly" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing the linter: npm ci in $work"
  rm -rf "$work/node_modules"
  (cd "$work" && npm ci --no-audit --no-fund)
  echo "$want" >"$stamp"
fi

# Redocly must not phone home (telemetry, update checks): the linter reads files only.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export NO_COLOR=1
redocly="$work/node_modules/.bin/redocly"
echo "$("$redocly" --version | head -n1) on Node.js $(node --version)"

failed=0
# /metrics is public or not by a flag, which changes its `security`: lint both documents.
for variant in default metrics-public; do
  doc="$work/openapi-$variant.json"
  args=()
  [[ $variant == metrics-public ]] && args+=(--metrics-public)
  "$dump" "${args[@]}" >"$doc.min"
  # Indented, so the findings' line:column point somewhere readable.
  node -e '
    const fs = require("fs");
    const doc = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    fs.writeFileSync(process.argv[2], JSON.stringify(doc, null, 2) + "\n");' "$doc.min" "$doc"
  echo "== redocly lint ($variant): $doc"
  # Human-readable findings first, then the counts from the JSON report (warnings fail
  # too: `redocly lint` itself only fails on errors).
  "$redocly" lint --config "$work/redocly.yaml" --format=stylish "$doc" || true
  report="$work/lint-$variant.json"
  "$redocly" lint --config "$work/redocly.yaml" --format=json "$doc" >"$report" 2>/dev/null || true
  if ! counts=$(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const t = r.totals || {};
      if (typeof t.errors !== "number" || typeof t.warnings !== "number") process.exit(1);
      console.log(`${t.errors} ${t.warnings}`);' "$report"); then
    echo "FAIL: could not read the lint report $report"
    failed=1
    continue
  fi
  read -r errors warnings <<<"$counts"
  echo "$variant: $errors error(s), $warnings warning(s)"
  if [[ $errors -ne 0 || $warnings -ne 0 ]]; then failed=1; fi
done

if [[ $failed -ne 0 ]]; then
  echo "FAIL: the OpenAPI document has lint findings (see above; src/api/openapi.cpp)"
  exit 1
fi
echo "OK: no errors, no warnings"
