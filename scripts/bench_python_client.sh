#!/usr/bin/env bash
# The Python client's speed of issue 13 on the GPU machine: submit latency, the
# grokking loop's steps per second with curvd against without (server on the
# CPU, then sharing the GPU) and a 100 MB checkpoint upload, against a real
# curvd server over loopback, in one run (bench/python/client_speed.py; see
# bench/README.md, "The Python client").
#
# Usage (GPU machine, repository root, after scripts/gpu_test.sh built /tmp/build
# in the same call): scripts/bench_python_client.sh
# Environment:
#   OUT                  output directory (default ./bench-python-out)
#   CURVD_BENCH_BUILD    build directory holding bin/curvd (default /tmp/build)
#   CURVD_PFX            unpacked Debian packages: protoc, grpc_python_plugin and
#                        the server's libraries (default /tmp/pfx; absent: PATH's)
#   CURVD_BENCH_DEVICE   the trainer's device (default cuda:0)
#   CURVD_BENCH_PYTHON   Python with torch, grpcio and protobuf (default python3)
#   CURVD_BENCH_SMOKE=1  small sizes, a few repetitions (CPU: CURVD_BENCH_DEVICE=cpu)
#   CURVD_BENCH_SERVER_THREADS  the servers' OMP_NUM_THREADS (default: the cores
#                        less two; a CPU server beside a trainer may get fewer)
#   CURVD_BENCH_ARGS     more flags of client_speed.py (--rows, --worker_nice,
#                        --measure, ...: its --help lists them)
#   CURVD_BENCH_TIMEOUT  seconds client_speed.py may run (default 480)
# Writes under $OUT: client_speed.json, client_speed.md and the logs; prints the
# table last.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-$PWD/bench-python-out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${CURVD_BENCH_BUILD:-/tmp/build}
pfx=${CURVD_PFX:-/tmp/pfx}
device=${CURVD_BENCH_DEVICE:-cuda:0}
python=${CURVD_BENCH_PYTHON:-python3}
smoke=()
[ "${CURVD_BENCH_SMOKE:-0}" = 1 ] && smoke=(--smoke)
# Word splitting of the extra flags is intended.
# shellcheck disable=SC2206
extra=(${CURVD_BENCH_ARGS:-})
[ -n "${CURVD_BENCH_SERVER_THREADS:-}" ] && extra+=(--server_threads "$CURVD_BENCH_SERVER_THREADS")
libs=$pfx/usr/lib/x86_64-linux-gnu
[ -d "$libs" ] || libs=

# Up to date after gpu_test.sh (a no-op); else built as gpu_test.sh builds.
if [ -f "$build/build.ninja" ]; then
  LIBRARY_PATH=$libs LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    PATH=$pfx/usr/bin:$PATH ninja -C "$build" curvd >"$out/build.log" 2>&1 ||
    { tail -30 "$out/build.log"; exit 1; }
fi
[ -x "$build/bin/curvd" ] || { echo "no $build/bin/curvd: run scripts/gpu_test.sh first"; exit 1; }

# The stubs, from this tree's proto/ by Debian's protoc 3.21 and
# grpc_python_plugin (those of $pfx when unpacked there, else PATH's).
tool() { if [ -x "$pfx/usr/bin/$1" ]; then echo "$pfx/usr/bin/$1"; else command -v "$1"; fi; }
protoc=$(tool protoc) || { echo "no protoc (protobuf-compiler)"; exit 1; }
plugin=$(tool grpc_python_plugin) || { echo "no grpc_python_plugin (protobuf-compiler-grpc)"; exit 1; }
protoc_version=$(LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$protoc" --version)
echo "== stubs: $protoc_version and $plugin"
LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$python" client/python/generate_protos.py \
  --protoc "$protoc" --grpc_python_plugin "$plugin"

# A protobuf runtime much newer than protoc 3.21 may refuse its generated code;
# its pure-Python implementation accepts more (and is slower: the JSON says
# which one ran).
probe='import google.protobuf as p, grpc, torch, curvd
from google.protobuf.internal import api_implementation as a
print(f"protobuf {p.__version__} ({a.Type()}), grpcio {grpc.__version__}, torch {torch.__version__}")'
if ! PYTHONPATH=client/python "$python" -c "$probe" >"$out/import.log" 2>&1; then
  if grep -qiE 'gencode|runtime.version|regenerate|Descriptors cannot be created|protoc' "$out/import.log"; then
    echo "== import curvd FAILED with a protobuf version error (stubs from $protoc_version):"
  else
    echo "== import curvd FAILED (not obviously a protobuf version error):"
  fi
  tail -6 "$out/import.log"
  echo "== retrying with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python"
  export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
  PYTHONPATH=client/python "$python" -c "$probe" >"$out/import.log" 2>&1 ||
    { echo "== import curvd failed with the pure-Python protobuf too:"; tail -12 "$out/import.log"; exit 1; }
fi
echo "== $(tail -1 "$out/import.log")"

rc=0
timeout -k 15 "${CURVD_BENCH_TIMEOUT:-480}" "$python" bench/python/client_speed.py --curvd "$build/bin/curvd" --device "$device" \
  --server_library_path "$libs" --out "$out" "${smoke[@]}" "${extra[@]}" >"$out/client_speed.log" 2>&1 || rc=$?
grep -E '^\[client_speed\]|Traceback|Error' "$out/client_speed.log" | cut -c1-300 || true
echo
if grep -q '^Python client speed' "$out/client_speed.log"; then
  sed -n '/^Python client speed/,$p' "$out/client_speed.log"
elif [ -f "$out/client_speed.md" ]; then  # cut short: the rows it finished
  tail -20 "$out/client_speed.log"
  echo "Python client speed, the rows done before it stopped:"
  cat "$out/client_speed.md"
else
  tail -30 "$out/client_speed.log"
fi
[ "$rc" -eq 0 ] || echo "client_speed.py: rc=$rc"
exit "$rc"
