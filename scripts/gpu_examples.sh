#!/usr/bin/env bash
# The Python examples of issue 13 at full size on the GPU machine: grokking
# (client/python/examples/grokking.py, its defaults: p = 97, 20,000 AdamW steps,
# a checkpoint every 250) and the edge of stability
# (cifar_resnet_eos.py: ResNet-20 by full-batch gradient descent on generated
# CIFAR-10-format images, as no CIFAR-10 can be fetched there), each against a
# curvd server of its own on cuda:0 that measures while the trainer trains.
#
# Usage (GPU machine, repository root, after a build of bin/curvd into /tmp/build
# and the Python stubs generated, e.g. by scripts/bench_python_client.sh in the
# same lease): scripts/gpu_examples.sh
# Environment:
#   OUT                  output directory (default ./gpu-examples-out)
#   CURVD_BENCH_BUILD    build directory holding bin/curvd (default /tmp/build)
#   CURVD_PFX            unpacked Debian packages (the server's libraries;
#                        default /tmp/pfx)
#   CURVD_EXAMPLES       which, comma list of grokking,eos (default both)
#   CURVD_EXAMPLE_LIMIT  seconds each example may take (default 270)
#   CURVD_EXAMPLE_DEVICE the server's and the trainers' device (default cuda:0;
#                        cpu with tiny CURVD_EOS_ARGS to try the script)
#   CURVD_BENCH_PYTHON   Python with torch, grpcio and protobuf (default python3)
#   CURVD_EOS_ARGS       extra flags of cifar_resnet_eos.py (default
#                        "--generate_records=2000 --samples=2000 --steps=600")
# Writes under $OUT each example's CSV, figure and log (server log included);
# prints each example's own summary last.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-$PWD/gpu-examples-out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${CURVD_BENCH_BUILD:-/tmp/build}
libs=${CURVD_PFX:-/tmp/pfx}/usr/lib/x86_64-linux-gnu
examples=${CURVD_EXAMPLES:-grokking,eos}
limit=${CURVD_EXAMPLE_LIMIT:-270}
python=${CURVD_BENCH_PYTHON:-python3}
device=${CURVD_EXAMPLE_DEVICE:-cuda:0}
eos_args=${CURVD_EOS_ARGS:---generate_records=2000 --samples=2000 --steps=600}
[ -x "$build/bin/curvd" ] || { echo "no $build/bin/curvd: build it first"; exit 1; }

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

# start_server NAME PORT [DATA_ROOT]: curvd on $device with a fresh state directory.
start_server() {
  local state=/tmp/curvd-example-$1
  rm -rf "$state"
  mkdir -p "$state" "${3:-$state}"
  LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$build/bin/curvd" \
    --listen="127.0.0.1:$2" --state_dir="$state" --devices="$device" \
    --data_roots="${3:-$state}" --metrics_listen= >"$out/$1-server.log" 2>&1 &
  server_pid=$!
  # Listening once the port accepts (at most 30 s).
  local i
  for i in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "curvd did not start listening on $2:"
  tail -20 "$out/$1-server.log"
  exit 1
}

rc=0
# run_example NAME SCRIPT ARGS...: the example under a time limit, its log kept.
run_example() {
  local name=$1
  shift
  echo "== $name: $*"
  local start
  start=$(date +%s)
  PYTHONPATH=client/python PYTHONUNBUFFERED=1 timeout -k 10 "$limit" "$python" "$@" \
    >"$out/$name.log" 2>&1 || { echo "$name: rc=$?"; rc=1; }
  echo "$name: $(( $(date +%s) - start )) s"
}

if [[ ,$examples, == *,grokking,* ]]; then
  start_server grokking 50161
  run_example grokking client/python/examples/grokking.py --server=127.0.0.1:50161 \
    --out="$out" --device="$device"
  stop_server
fi
if [[ ,$examples, == *,eos,* ]]; then
  data=/tmp/curvd-example-eos-data
  start_server eos 50162 "$data"
  # Word splitting of the extra flags is intended.
  # shellcheck disable=SC2086
  run_example eos client/python/examples/cifar_resnet_eos.py --server=127.0.0.1:50162 \
    --out="$out" --device="$device" --generate="$data" $eos_args
  stop_server
fi

for name in grokking eos; do
  [ -f "$out/$name.log" ] || continue
  echo
  echo "== $name, the end of its output:"
  tail -25 "$out/$name.log"
done
exit "$rc"
