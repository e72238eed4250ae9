#!/usr/bin/env bash
# Builds curvd on the GPU machine and runs the GPU-labelled tests, then the demo on
# the GPU. The recipe is ../shared/GPU.md's: Debian 12's packages for gRPC,
# protobuf, Abseil, prometheus-cpp, SQLite and GoogleTest travel as .deb files in
# .debs/ (made by scripts/fetch_gpu_debs.sh, carried with the call) and are unpacked
# into a prefix; LibTorch with CUDA comes from the machine's PyTorch.
#
# Usage (on the GPU machine, repository root): scripts/gpu_test.sh
# Writes logs under $OUT (or ./gpu-out) and prints a summary table last.
#   CURVD_GPU_BEFORE_TREE=DIR  also build DIR's curvd_bench (another commit,
#                              e.g. a `git archive` carried to the machine)
#                              into /tmp/build-before, beside this tree's
#                              build, for scripts/bench.sh's before/after run
#                              (CURVD_BENCH_BUILD=/tmp/build-before
#                              CURVD_BENCH_REUSE_EXPORT=1)
#   CURVD_GPU_SKIP_UNIT=1      skip the CPU unit and service tests there (run
#                              them on the CPU machine when the lease is short)
#   CURVD_GPU_BUILD_ONLY="T.." build only these ninja targets (e.g. "curvd
#                              curvctl") and stop: no tests, no demo (for a
#                              bench in the same call, such as
#                              scripts/bench_python_client.sh)
set -euo pipefail

out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
pfx=/tmp/pfx
build=/tmp/build

echo "== unpacking $(ls .debs/*.deb | wc -l) packages into $pfx"
mkdir -p "$pfx"
for d in .debs/*.deb; do dpkg-deb -x "$d" "$pfx"; done
# The image has its own OpenSSL and zlib: link against those, not the unpacked ones.
rm -f "$pfx"/usr/lib/x86_64-linux-gnu/{libssl,libcrypto}* "$pfx"/usr/lib/x86_64-linux-gnu/libz.so
export LD_LIBRARY_PATH=$pfx/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export LIBRARY_PATH=$pfx/usr/lib/x86_64-linux-gnu   # re2 is found with a /usr path
export PATH=$pfx/usr/bin:$PATH
if [ -d "$pfx/usr/share/datasets" ] && [ ! -e /usr/share/datasets ]; then
  ln -s "$pfx/usr/share/datasets" /usr/share/datasets
fi

torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt" ||
  echo "no GPU visible (an image build: Dockerfile.cuda)" | tee "$out/gpu.txt"

echo "== configure and build"
start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$pfx/usr;$torch_prefix" \
  -DProtobuf_PROTOC_EXECUTABLE="$pfx/usr/bin/protoc" >"$out/configure.log" 2>&1 ||
  { tail -40 "$out/configure.log"; exit 1; }
before_pid=
if [ -n "${CURVD_GPU_BEFORE_TREE:-}" ]; then
  (cmake -S "$CURVD_GPU_BEFORE_TREE" -B /tmp/build-before -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DCMAKE_PREFIX_PATH="$pfx/usr;$torch_prefix" \
     -DProtobuf_PROTOC_EXECUTABLE="$pfx/usr/bin/protoc" &&
   ninja -C /tmp/build-before curvd_bench) >"$out/build-before.log" 2>&1 &
  before_pid=$!
fi
# Word splitting of the target list is intended.
# shellcheck disable=SC2086
ninja -C "$build" ${CURVD_GPU_BUILD_ONLY:-} >"$out/build.log" 2>&1 ||
  { grep -B2 -A12 'error' "$out/build.log" | head -80; exit 1; }
if [ -n "$before_pid" ]; then
  wait "$before_pid" || { echo "before build failed:"; tail -30 "$out/build-before.log"; exit 1; }
fi
build_s=$(( $(date +%s) - start ))
if [ -n "${CURVD_GPU_BUILD_ONLY:-}" ]; then
  echo "| build of ${CURVD_GPU_BUILD_ONLY} | ${build_s} s |"
  exit 0
fi

echo "== GPU-labelled tests"
set +e
ctest --test-dir "$build" -L gpu --output-on-failure -j4 >"$out/gpu-tests.log" 2>&1
gpu_rc=$?
unit_rc=skipped
if [ -z "${CURVD_GPU_SKIP_UNIT:-}" ]; then
  ctest --test-dir "$build" -L 'unit|service' -LE gpu -j8 >"$out/unit-tests.log" 2>&1
  unit_rc=$?
fi
set -e
tail -25 "$out/gpu-tests.log"

demo_rc=skipped
if [ -x scripts/demo.sh ] && [ -d /usr/share/datasets/fashion-mnist ]; then
  echo "== demo on the GPU"
  set +e
  # No /metrics there: civetweb fails to start on that machine (any port).
  CURVD_BUILD_DIR=$build CURVD_SKIP_INSTALL=1 CURVD_DEMO_PORT=50151 \
    CURVD_DEMO_METRICS_PORT=off timeout 300 scripts/demo.sh >"$out/demo.log" 2>&1
  demo_rc=$?
  set -e
  tail -30 "$out/demo.log"
fi

echo
echo "| step | result |"
echo "| --- | --- |"
echo "| gpu | $(cat "$out/gpu.txt") |"
echo "| build | ${build_s} s |"
echo "| ctest -L gpu | rc=$gpu_rc, $(grep -E 'tests passed' "$out/gpu-tests.log" || echo none) |"
echo "| ctest -L 'unit|service' | rc=$unit_rc, $(grep -E 'tests passed' "$out/unit-tests.log" 2>/dev/null || echo none) |"
echo "| demo | rc=$demo_rc |"
[ "$gpu_rc" -eq 0 ]
