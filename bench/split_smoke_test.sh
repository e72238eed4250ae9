#!/usr/bin/env bash
# curvd_split_bench at tiny sizes on the CPU: W1's smoke export (256 samples,
# micro-batches of 64) split over 1, 2 and 3 CPU engines; the bench exits
# non-zero when a split answer differs from one device's.
# Usage: split_smoke_test.sh CURVD_SPLIT_BENCH PYTHON WORK_DIR. Exit 77 (ctest:
# skipped) when PYTHON is empty, i.e. CMake found no python3 that imports torch.
set -euo pipefail
bench=$1
python=${2:-}
work=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$python" ]; then
  echo "no python3 with torch: skipping the split bench smoke test"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
"$python" "$here/python/baseline.py" --smoke --device cpu --workloads W1 \
  --export_only --out "$work/export"
"$bench" --export_dir="$work/export" --workload=W1 --devices=cpu,cpu,cpu \
  --counts=1,2,3 --repeats=1 --probes=8 --hvp_probes=2 | tee "$work/table.md"
grep -q '^| hutchinson | 3 |' "$work/table.md"
grep -q 'split: 3 parts' "$work/table.md"
