#!/usr/bin/env bash
# Session 6, GPU call 2 (not committed): curvd build, Python client speed: process vs thread uploader.
set -uo pipefail
R=/tmp/r; mkdir -p $R
CURVD_GPU_BUILD_ONLY=curvd OUT=$R/g scripts/gpu_test.sh > $R/gpu_build.txt 2>&1; tail -2 $R/gpu_build.txt
for c in "p1|--rows submit,upload,training --uploader process --repetitions 8|" \
         "p2|--rows training_gpu --uploader thread --repetitions 8|" \
         "p3|--rows training_gpu --uploader process --measure none --repetitions 8|" \
         "p4|--rows training_cpu --uploader process --repetitions 8|4"; do
  IFS='|' read -r name args threads <<<"$c"
  echo "== $name: $args threads=${threads:-default}"
  OUT=$R/$name CURVD_BENCH_SERVER_THREADS=$threads CURVD_BENCH_ARGS="$args" scripts/bench_python_client.sh > $R/$name.txt 2>&1
  grep -E '^\| (grok|submit|100)' $R/$name.txt
done
cd $R && tar czf $OUT/r.tgz --exclude='build.log' . 2>/dev/null; ls -la $OUT
