#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest: unit, service
# and end-to-end tests, the container test (skipped, with the reason, where podman
# cannot run containers), and the GPU-labelled ones only when a GPU is present;
# never the slow ones (ctest -L slow runs those). The reliability label (load and
# crash tests, tests/reliability) runs at its CI sizes; larger ones by hand.
# Prints a summary; exits non-zero when a test fails.
#   CURVD_BUILD_DIR   build directory (default: build)
#   CURVD_TEST_JOBS   tests run in parallel (default: 2)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${CURVD_BUILD_DIR:-build}
test_jobs=${CURVD_TEST_JOBS:-2}
start=$(date +%s)

scripts/build.sh

label_args=(-LE "gpu|slow")
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "test: GPU present, running the gpu-labelled tests too"
  label_args=(-LE slow)
fi

log="$build_dir/ctest.log"
echo "test: ctest -j$test_jobs ${label_args[*]:-} (log: $log)"
set +e
ctest --test-dir "$build_dir" --output-on-failure -j "$test_jobs" \
  "${label_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

elapsed=$(( $(date +%s) - start ))
echo
echo "===== test summary ====="
grep -E "tests passed|tests failed" "$log" || echo "(ctest printed no summary)"
# ctest prints one "Label Time Summary" line per label: how many tests each had.
sed -n '/^Label Time Summary:/,/^$/p' "$log"
echo "total time (build + tests): ${elapsed} s"
if [ "$rc" -ne 0 ]; then
  echo "test: FAILED (ctest exit status $rc); the failing tests' output is above"
  exit "$rc"
fi
echo "test: all passed"
