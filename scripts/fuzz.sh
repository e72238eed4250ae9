#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (curvd's torch-free parsers) with clang
# into their own build directory, replays every crash each target ever found
# (fuzz/regressions/TARGET/), then fuzzes each for a bounded time from its seeds
# (fuzz/corpus/TARGET/). The main build (g++) is not touched.
#   scripts/fuzz.sh [SECONDS]  seconds of fuzzing per target (default 15, the CI
#                              bound that ctest's reliability.libfuzzer uses;
#                              run `scripts/fuzz.sh 600` by hand)
#   CURVD_FUZZ_BUILD_DIR  build directory (default: build-fuzz)
#   CURVD_FUZZ_CXX        the clang++ to build with (default: clang++)
#   CURVD_FUZZ_TARGETS    targets to run, space-separated (default: every
#                         fuzz/*_fuzz.cc)
#   CURVD_JOBS            parallel build jobs and targets fuzzed at once
#                         (default: the number of cores)
#   CURVD_FUZZ_SEED       libFuzzer's -seed (default: a new random one each run,
#                         printed in the log; ctest fixes it, so that CI meets
#                         the same inputs on every run and a failure there is
#                         the change's, never the draw's)
# A new crash is written to BUILD_DIR/crashes/TARGET/ and fails the script (exit
# 1); keep it as a regression case in fuzz/regressions/TARGET/, then fix the
# parser. Inputs the fuzzer found interesting accumulate in BUILD_DIR/corpus/,
# so that the next run starts from them. Exits 77 (ctest's skip) when clang++
# cannot build a libFuzzer program (Debian: clang and libclang-rt-14-dev).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

seconds=${1:-15}
build_dir=${CURVD_FUZZ_BUILD_DIR:-build-fuzz}
cxx=${CURVD_FUZZ_CXX:-clang++}
jobs=${CURVD_JOBS:-$(nproc)}
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)

probe="$build_dir/probe"
cat > "$probe.cc" <<'CC'
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
CC
if ! command -v "$cxx" >/dev/null 2>&1 ||
   ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe.cc" -o "$probe" 2>/dev/null; then
  echo "fuzz: SKIP: $cxx cannot build a libFuzzer program with ASan and UBSan" \
       "(install Debian's clang and libclang-rt-14-dev: scripts/install_deps.sh)"
  exit 77
fi

start=$(date +%s)
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S fuzz -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
ninja -C "$build_dir" -j "$jobs" >/dev/null
echo "fuzz: built in $(( $(date +%s) - start )) s into $build_dir"

if [ -n "${CURVD_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<< "$CURVD_FUZZ_TARGETS"
else
  targets=()
  for source in fuzz/*_fuzz.cc; do targets+=("$(basename "$source" .cc)"); done
fi

# The path targets make their data root under TMPDIR; a crash leaves it there.
export TMPDIR="$build_dir/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
# libFuzzer's own default failure code is 77, which ctest would take for a skip.
codes=(-error_exitcode=1 -timeout_exitcode=1 -timeout=10 -rss_limit_mb=2048)
if [ -n "${CURVD_FUZZ_SEED:-}" ]; then codes+=(-seed="$CURVD_FUZZ_SEED"); fi

# Replays TARGET's regression cases, then fuzzes it; writes one line saying how
# it went to logs/TARGET.summary, starting "ok" or not.
run_target() {
  local target=$1
  local binary="$build_dir/$target"
  local log="$build_dir/logs/$target.log"
  local summary="$build_dir/logs/$target.summary"
  local crashes="$build_dir/crashes/$target"
  mkdir -p "$crashes" "$build_dir/corpus/$target"
  local regressions=()
  if [ -d "fuzz/regressions/$target" ]; then
    regressions=(fuzz/regressions/"$target"/*)
  fi
  if [ ${#regressions[@]} -gt 0 ] &&
     ! "$binary" "${codes[@]}" "${regressions[@]}" > "$log" 2>&1; then
    echo "FAILED a regression case of fuzz/regressions/$target (log: $log)" > "$summary"
    return
  fi
  if "$binary" "${codes[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$crashes/" "$build_dir/corpus/$target" \
       "fuzz/corpus/$target" > "$log" 2>&1; then
    local runs rate
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "ok, ${#regressions[@]} regression cases, $runs runs in $seconds s" \
         "($rate exec/s), corpus $(ls "$build_dir/corpus/$target" | wc -l) inputs" > "$summary"
  else
    { echo "CRASH, input in $crashes/ (log: $log):"
      grep -m 3 -E "ERROR|property failed|runtime error" "$log" || tail -n 5 "$log"
    } > "$summary"
  fi
}

# As many targets at once as there are build jobs: each is one process.
mkdir -p "$build_dir/logs"
rm -f "$build_dir"/logs/*.summary
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$target" &
done
wait
failed=()
for target in "${targets[@]}"; do
  echo "fuzz: $target: $(cat "$build_dir/logs/$target.summary")"
  head -c 2 "$build_dir/logs/$target.summary" | grep -q ok || failed+=("$target")
done

echo "fuzz: done in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
