#!/usr/bin/env bash
# Runs Stowage's test tiers and ends with one line "stowage: N passed, M failed".
#   hack/test.sh all | unit | integration | e2e | asan | fuzz
# Builds what each tier needs: build/ (GCC), build-asan/ (GCC, ASan+UBSan, unit tier only) and
# build-fuzz/ (clang, libFuzzer targets only).
set -uo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
jobs=$(nproc)
passed=0
failed=0
status=0
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

configure() {  # dir, extra cmake args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >"$logdir/cmake-$(basename "$dir").log" 2>&1 ||
    { cat "$logdir/cmake-$(basename "$dir").log"; return 1; }
  echo "== building $dir"
  local log="$logdir/build-$(basename "$dir").log"
  cmake --build "$dir" -j "$jobs" >"$log" 2>&1
  local rc=$?
  # Show diagnostics, not progress lines.
  grep -Ev '^\[[0-9]+/[0-9]+\] |^ninja: (Entering|no work)' "$log" | tail -n 200
  return "$rc"
}

run_ctest() {  # name, dir, label regex
  local name=$1 dir=$2 labels=$3
  local log="$logdir/ctest-$name.log"
  echo "== ctest $name (labels: $labels)"
  ctest --test-dir "$dir" -L "$labels" --output-on-failure -j "$jobs" --timeout 600 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -n "$line" ]; then
    local total fail
    fail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + total - fail))
    failed=$((failed + fail))
  elif grep -q "No tests were found" "$log"; then
    echo "no $name tests"
  else
    failed=$((failed + 1))
  fi
  [ "$rc" -eq 0 ] || status=1
}

# Builds the binaries the kube-apiserver tests run (once; later runs are instant) and exports
# STOWAGE_ENVTEST_BIN for them. On failure it still names the expected folder, so those tests fail
# (the fixture skips only when the variable is unset) and the run fails.
envtest_bins() {
  [ -n "${STOWAGE_ENVTEST_BIN:-}" ] && return 0
  echo "== hack/envtest.sh"
  local out
  if out=$(bash hack/envtest.sh); then
    STOWAGE_ENVTEST_BIN=$(tail -n1 <<<"$out")
    export STOWAGE_ENVTEST_BIN
    return 0
  fi
  echo "stowage: hack/envtest.sh FAILED: the integration/e2e tests that need kube-apiserver will fail"
  STOWAGE_ENVTEST_BIN=$(bash hack/envtest.sh --print-dir)
  export STOWAGE_ENVTEST_BIN
  return 1
}

tier_main() {  # labels
  configure build || { status=1; failed=$((failed + 1)); return; }
  if [[ "$1" == *integration* || "$1" == *e2e* ]]; then
    envtest_bins || { status=1; failed=$((failed + 1)); }
  fi
  run_ctest "$1" build "$1"
}

tier_asan() {
  configure build-asan -DSTOWAGE_SANITIZE=address,undefined -DSTOWAGE_TEST_TIERS=unit ||
    { status=1; failed=$((failed + 1)); return; }
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest asan build-asan unit
}

tier_fuzz() {
  if ! command -v clang++ >/dev/null; then
    echo "clang++ is missing: run hack/install-deps.sh"
    status=1
    failed=$((failed + 1))
    return
  fi
  CC=clang CXX=clang++ configure build-fuzz -DSTOWAGE_FUZZ=ON -DSTOWAGE_TEST_TIERS=fuzz \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTOWAGE_SANITIZE=address,undefined ||
    { status=1; failed=$((failed + 1)); return; }
  run_ctest fuzz build-fuzz fuzz
}

case "$what" in
  all)
    tier_main 'unit|integration|e2e'
    tier_asan
    tier_fuzz
    ;;
  unit | integration | e2e) tier_main "$what" ;;
  asan) tier_asan ;;
  fuzz) tier_fuzz ;;
  *)
    echo "usage: $0 all|unit|integration|e2e|asan|fuzz" >&2
    exit 2
    ;;
esac

echo "stowage: $passed passed, $failed failed"
exit "$status"
