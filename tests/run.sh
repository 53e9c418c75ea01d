#!/usr/bin/env bash
# Runs every test twice: a plain optimised build, then a build with
# AddressSanitizer and UndefinedBehaviorSanitizer. Installs missing packages
# first. Exits non-zero when any build or test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./deploy/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
failed=0
total_passed=0
total_failed=0

run_suite() {
  local name=$1
  shift
  local dir="build-test-$name"
  echo "== $name build"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j"$jobs" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^(Consolidate|Scanning|Building|Linking)' || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  echo "== $name tests"
  local log="$dir/ctest.log"
  set +e
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local passed failed_count
  passed=$(grep -cE 'Test +#[0-9]+: .* Passed' "$log" || true)
  failed_count=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cv ' Passed ' || true)
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed_count))
  return "$rc"
}

run_suite plain || failed=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite sanitize -DCONVEYOR_SANITIZE=ON || failed=1

echo "$total_passed passed, $total_failed failed"
exit "$failed"
