#!/usr/bin/env bash
# The benchmark of issue 4 on the GPU machine: plain PyTorch and curvd (engine
# and loopback gRPC) on W1, W1F, W2 and W3, same GPU, same data, same run. See bench/README.md.
#
# Usage (on the GPU machine, repository root, after scripts/gpu_test.sh built
# into /tmp/build in the same session; otherwise it builds curvd_bench there the
# same way from the carried .debs/):
#   scripts/bench.sh
# Environment:
#   OUT                          output directory (default ./bench-out)
#   CURVD_BENCH_BUILD            build directory (default /tmp/build)
#   CURVD_BENCH_WORKLOADS        comma list (default W1,W1F,W2,W3; W1F needs
#                                Fashion-MNIST, from the carried .debs/)
#   CURVD_BENCH_REFERENCE_BUDGET seconds a float64 reference Lanczos may take
#                                per workload (default 60; estimated first)
#   CURVD_BENCH_DEVICE           device of both sides (default cuda:0)
#   CURVD_BENCH_GOP              the GOP rows of issue 14: off (default), on
#                                (after the other rows; both timeouts grow by
#                                240 s) or only (no other row, no gRPC server)
#   CURVD_BENCH_GOP_BUDGET       seconds a curvd GOP row may take at its N
#                                (default 30; estimated first, else a smaller
#                                N of the manifest's ladder)
#   CURVD_BENCH_REUSE_EXPORT=1   keep the last run's export and PyTorch
#                                timings in /tmp/curvd-bench and time only
#                                curvd: with CURVD_BENCH_BUILD pointing at a
#                                build of another commit, a before/after
#                                comparison on the same data and baseline
#   CURVD_BENCH_SMOKE=1          tiny sizes, few repeats (to try the script on
#                                a CPU machine: CURVD_BENCH_DEVICE=cpu, a
#                                python3 with torch first on PATH, CURVD_PFX
#                                and CURVD_BENCH_BUILD pointing at a local build)
# Writes under $OUT: baseline.json, manifest.json, curvd.json, table.md,
# summary.json and the logs; prints the table last. The exported archives and
# shards (some 250 MB with W2) stay in /tmp/curvd-bench.
set -euo pipefail

out=${OUT:-$PWD/bench-out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${CURVD_BENCH_BUILD:-/tmp/build}
workloads=${CURVD_BENCH_WORKLOADS:-W1,W1F,W2,W3}
reference_budget=${CURVD_BENCH_REFERENCE_BUDGET:-60}
device=${CURVD_BENCH_DEVICE:-cuda:0}
gop=${CURVD_BENCH_GOP:-off}
gop_budget=${CURVD_BENCH_GOP_BUDGET:-30}
case "$gop" in
  off) baseline_timeout=240 curvd_timeout=300 ;;
  on) baseline_timeout=480 curvd_timeout=540 ;;
  only) baseline_timeout=240 curvd_timeout=300 ;;
  *) echo "CURVD_BENCH_GOP must be off, on or only, got $gop"; exit 1 ;;
esac
smoke=()
[ "${CURVD_BENCH_SMOKE:-0}" = 1 ] && smoke=(--smoke)
pfx=${CURVD_PFX:-/tmp/pfx}
work=/tmp/curvd-bench
reuse=${CURVD_BENCH_REUSE_EXPORT:-0}
if [ "$reuse" = 1 ]; then
  [ -f "$work/export/baseline.json" ] || { echo "no export in $work to reuse"; exit 1; }
  rm -rf "$work/state"
else
  rm -rf "$work"
  mkdir -p "$work"
fi
start=$(date +%s)

# gRPC, protobuf, Abseil, ... come from Debian packages unpacked into $pfx (the
# recipe of ../shared/GPU.md and scripts/gpu_test.sh); curvd_bench needs them at
# run time too.
if [ ! -d "$pfx/usr/lib/x86_64-linux-gnu" ]; then
  echo "== unpacking $(ls .debs/*.deb | wc -l) packages into $pfx"
  mkdir -p "$pfx"
  for d in .debs/*.deb; do dpkg-deb -x "$d" "$pfx"; done
  rm -f "$pfx"/usr/lib/x86_64-linux-gnu/{libssl,libcrypto}* "$pfx"/usr/lib/x86_64-linux-gnu/libz.so
fi
export LD_LIBRARY_PATH=$pfx/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export LIBRARY_PATH=$pfx/usr/lib/x86_64-linux-gnu
export PATH=$pfx/usr/bin:$PATH
# W1F's data: the dataset-fashion-mnist package, installed or unpacked above.
if [ -z "${CURVD_FASHION_MNIST_DIR:-}" ] && [ -d "$pfx/usr/share/datasets/fashion-mnist" ]; then
  export CURVD_FASHION_MNIST_DIR=$pfx/usr/share/datasets/fashion-mnist
fi

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
  | tee "$out/gpu.txt" || echo "no nvidia-smi" >"$out/gpu.txt"

echo "== building curvd_bench in $build"
if [ ! -f "$build/build.ninja" ]; then
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$pfx/usr;$torch_prefix" \
    -DProtobuf_PROTOC_EXECUTABLE="$pfx/usr/bin/protoc" >"$out/configure.log" 2>&1 ||
    { tail -40 "$out/configure.log"; exit 1; }
fi
# Up to date after gpu_test.sh: then this costs a second.
ninja -C "$build" curvd_bench >"$out/build.log" 2>&1 ||
  { grep -B2 -A12 'error' "$out/build.log" | head -80; exit 1; }
build_s=$(( $(date +%s) - start ))

baseline_rc=0
if [ "$reuse" = 1 ]; then
  echo "== plain PyTorch: the last run's export and timings ($work/export)"
else
  echo "== plain PyTorch: export and time ($workloads)"
  timeout "$baseline_timeout" python3 bench/python/baseline.py --out "$work/export" \
    --workloads "$workloads" --device "${device%%:*}" --gop "$gop" "${smoke[@]}" \
    >"$out/baseline.log" 2>&1 || baseline_rc=$?
  grep '^\[baseline\]' "$out/baseline.log" || true
fi
cp "$work/export/manifest.json" "$work/export/baseline.json" "$out/" 2>/dev/null || true
if [ ! -f "$work/export/manifest.json" ]; then
  tail -30 "$out/baseline.log"; exit 1
fi
[ "$baseline_rc" -eq 0 ] || { echo "baseline.py: rc=$baseline_rc"; tail -20 "$out/baseline.log"; }

echo "== curvd: engine and gRPC"
curvd_rc=0
timeout "$curvd_timeout" "$build/bin/curvd_bench" --export_dir="$work/export" --out="$out/curvd.json" --state_dir="$work/state" \
  --device="$device" --workloads="$workloads" --gop="$gop" --gop_budget_seconds="$gop_budget" "${smoke[@]}" \
  --reference_budget_seconds="$reference_budget" >"$out/curvd_bench.log" 2>&1 || curvd_rc=$?
grep '^\[curvd_bench\]' "$out/curvd_bench.log" || true
[ "$curvd_rc" -eq 0 ] || { echo "curvd_bench: rc=$curvd_rc"; tail -20 "$out/curvd_bench.log"; }

echo "== build ${build_s} s, total $(( $(date +%s) - start )) s; baseline rc=$baseline_rc, curvd_bench rc=$curvd_rc"
echo
report_rc=0
python3 bench/python/report.py --baseline "$out/baseline.json" \
  --curvd "$out/curvd.json" "${smoke[@]}" --markdown "$out/table.md" --summary "$out/summary.json" ||
  report_rc=$?
[ "$baseline_rc" -eq 0 ] && [ "$curvd_rc" -eq 0 ] && [ "$report_rc" -eq 0 ]
