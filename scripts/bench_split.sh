#!/usr/bin/env bash
# Issue 18's split benchmark on a machine with several GPUs: W2 (ResNet-18)
# with a shard of 16,384 images, one HVP, Lanczos top-5 and 100 Hutchinson
# probes on 1, 2, 4 and 8 GPUs as the machine has them, speed-ups against one
# GPU (bench/README.md, "One measurement on several GPUs").
#
# Usage (GPU machine, repository root, after
# `CURVD_GPU_BUILD_ONLY="curvd_split_bench" scripts/gpu_test.sh` built /tmp/build):
#   scripts/bench_split.sh
# Environment:
#   OUT                    output directory (default ./bench-split-out)
#   CURVD_BENCH_BUILD      build directory holding bin/curvd_split_bench
#                          (default /tmp/build)
#   CURVD_SPLIT_SAMPLES    W2's images (default 16384)
#   CURVD_SPLIT_COUNTS     device counts (default 1,2,4,8; those above the
#                          machine's are left out)
#   CURVD_SPLIT_ARGS       more flags of curvd_split_bench (--probes,
#                          --repeats, --devices: its --help lists them)
# Needs a python3 with torch and torchvision first on PATH (bench.sh's).
# Writes under $OUT: split.json, table.md and the logs; prints the table last.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-$PWD/bench-split-out}
mkdir -p "$out"
build=${CURVD_BENCH_BUILD:-/tmp/build}
export NCCL_NVLS_ENABLE=0  # the device notes: NVLink multicast stays off
work=/tmp/curvd-split-bench
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader \
  | tee "$out/gpu.txt" || echo "no nvidia-smi" >"$out/gpu.txt"
echo "== exporting W2 with ${CURVD_SPLIT_SAMPLES:-16384} images"
python3 bench/python/baseline.py --export_only --workloads W2 \
  --w2_samples "${CURVD_SPLIT_SAMPLES:-16384}" --out "$work" >"$out/export.log" 2>&1 ||
  { tail -20 "$out/export.log"; exit 1; }
extra=(${CURVD_SPLIT_ARGS:-})
"$build/bin/curvd_split_bench" --export_dir="$work" --workload=W2 \
  --counts="${CURVD_SPLIT_COUNTS:-1,2,4,8}" --out="$out/split.json" "${extra[@]}" \
  2>"$out/split.log" | tee "$out/table.md"
