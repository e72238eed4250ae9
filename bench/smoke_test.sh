#!/usr/bin/env bash
# The benchmark harness at tiny sizes on the CPU: baseline.py --smoke (exports
# and times plain PyTorch), curvd_bench --smoke (engine, in-process gRPC server,
# float64 reference), report.py --smoke (the table and the correctness checks);
# the GOP rows of issue 14 included (both sides' default --gop on); then, given
# CURVD_SPLIT_BENCH, issue 18's split bench on W1's export over 1, 2 and 3 CPU
# engines (it exits non-zero when a split answer differs from one device's).
# Usage: smoke_test.sh CURVD_BENCH PYTHON WORK_DIR [CURVD_SPLIT_BENCH]. Exit 77 (ctest: skipped)
# when PYTHON is empty, i.e. CMake found no python3 that imports torch.
set -euo pipefail
bench=$1
python=${2:-}
work=$3
split_bench=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$python" ]; then
  echo "no python3 with torch: skipping the benchmark smoke test"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
# Two threads at most: CI machines have two cores and run tests side by side.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# W2 (ResNet-18, 11 M parameters) is left out even where torchvision imports: its
# double backward takes seconds per HVP on a CPU. Try it by hand with
# baseline.py --workloads W2 --smoke --lanczos_max_iterations 8 --probes 4.
"$python" "$here/python/baseline.py" --smoke --device cpu --workloads W1,W1F,W3 \
  --out "$work/export"
"$bench" --smoke --device=cpu --export_dir="$work/export" --out="$work/curvd.json"
"$python" "$here/python/report.py" --smoke --baseline "$work/export/baseline.json" \
  --curvd "$work/curvd.json" --markdown "$work/table.md"
if [ -n "$split_bench" ]; then
  "$split_bench" --export_dir="$work/export" --workload=W1 --devices=cpu,cpu,cpu \
    --counts=1,2,3 --repeats=1 --probes=8 --hvp_probes=2 | tee "$work/split.md"
  grep -q '^| hutchinson | 3 |' "$work/split.md"
  grep -q 'split: 3 parts' "$work/split.md"
fi
