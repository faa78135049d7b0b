#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it: the release build and its tests,
# the whole suite under ASan+UBSan (dev preset), then the `concurrency`-labelled subset
# under TSan (skip with AUTOMAN_SKIP_TSAN=1). Prints how long each stage took.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -a stage_names=() stage_secs=()
stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  stage_names+=("$name"); stage_secs+=($((SECONDS - start)))
  echo "==> $name took $((SECONDS - start))s"
}
report() {
  echo "==> stage timings"
  for i in "${!stage_names[@]}"; do
    printf '    %-28s %5ss\n' "${stage_names[$i]}" "${stage_secs[$i]}"
  done
}
trap report EXIT

# Sanitizers stop at the first report so a finding fails the stage.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

stage "configure release" cmake --preset release
stage "build release" cmake --build --preset release
stage "test release" ctest --preset release
stage "configure dev (asan+ubsan)" cmake --preset dev
stage "build dev" cmake --build --preset dev
stage "test dev (whole suite)" ctest --preset dev
if [ "${AUTOMAN_SKIP_TSAN:-0}" != 1 ]; then
  stage "configure tsan" cmake --preset tsan
  stage "build tsan" cmake --build --preset tsan
  stage "test tsan (concurrency)" ctest --preset tsan
fi
