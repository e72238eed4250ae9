#!/usr/bin/env bash
# The main job, start to finish: installs what is missing, builds, starts curvd
# with its state under demo-state/, runs the example trainer (an MLP learning
# Fashion-MNIST while curvd measures the sharpness and Hessian trace of its
# checkpoints), shows how to query the stored results, and stops the server.
# Uses the GPU when there is one: the server and the trainer pick CUDA themselves.
# Arguments go to the trainer (see build/bin/curvd_example_trainer --help).
#   CURVD_DEMO_PORT, CURVD_DEMO_METRICS_PORT  loopback ports (default 50051, 9464;
#                                              metrics port "off": no /metrics)
#   CURVD_DEMO_STATE                           state directory (default demo-state)
set -euo pipefail
cd "$(dirname "$0")/.."

port=${CURVD_DEMO_PORT:-50051}
metrics_port=${CURVD_DEMO_METRICS_PORT:-9464}
state_dir=${CURVD_DEMO_STATE:-demo-state}
data_root=/usr/share/datasets
server="127.0.0.1:$port"
bin=${CURVD_BUILD_DIR:-build}/bin

scripts/build.sh

metrics_listen="127.0.0.1:$metrics_port"
[ "$metrics_port" = off ] && metrics_listen=""
for p in "$port" "${metrics_listen:+$metrics_port}"; do
  [ -n "$p" ] || continue
  if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
    echo "demo: port $p is in use; set CURVD_DEMO_PORT / CURVD_DEMO_METRICS_PORT" >&2
    exit 1
  fi
done

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "demo: GPU present: $(nvidia-smi -L | head -1)"
else
  echo "demo: no GPU found, measuring on the CPU"
fi

mkdir -p "$state_dir"
log="$state_dir/curvd.log"
echo "demo: starting curvd on $server (metrics on 127.0.0.1:$metrics_port, state in $state_dir/, log in $log)"
"$bin/curvd" --listen="$server" --metrics_listen="$metrics_listen" \
  --state_dir="$state_dir" --data_roots="$data_root" >"$log" 2>&1 &
server_pid=$!

stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: stopping curvd (SIGTERM)"
    kill -TERM "$server_pid"
    for _ in $(seq 1 60); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "demo: curvd did not stop within 30 s; killing it" >&2
      kill -KILL "$server_pid"
    fi
    wait "$server_pid" 2>/dev/null && echo "demo: curvd stopped cleanly" \
      || echo "demo: curvd exited with status $? (see $log)"
  fi
}
trap stop_server EXIT

echo -n "demo: waiting for curvd to answer"
for i in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo; echo "demo: curvd exited during start-up; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if "$bin/curvctl" runs --server="$server" >/dev/null 2>&1; then
    echo " ok"
    break
  fi
  if [ "$i" -eq 120 ]; then
    echo; echo "demo: curvd did not answer within 60 s; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  echo -n "."
  sleep 0.5
done

run_id="fmnist-mlp-$(date +%Y%m%d-%H%M%S)"
echo "demo: training run $run_id"
echo
"$bin/curvd_example_trainer" --server="$server" --run="$run_id" \
  --data_dir="$data_root/fashion-mnist" "$@"
echo

echo "demo: the stored results of $run_id, as curvctl lists them:"
"$bin/curvctl" results --server="$server" --run="$run_id"
echo
if [ -n "$metrics_listen" ]; then
  echo "demo: a few of curvd's metrics (http://127.0.0.1:$metrics_port/metrics):"
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" \
    | grep -E '^curvd_(measurements|hvps|build_info|queue)' | head -n 8 || true
fi
echo
stop_server
trap - EXIT

cat <<MSG

demo: results are stored in $state_dir/ (SQLite database and content-addressed
blobs; the server log is $log). To query them again, start the server on the same
state directory and ask curvctl:
  $bin/curvd --listen=$server --state_dir=$state_dir --data_roots=$data_root &
  $bin/curvctl runs --server=$server
  $bin/curvctl results --server=$server --run=$run_id
  $bin/curvctl results --server=$server --run=$run_id --csv > $run_id.csv
  $bin/curvctl results --server=$server --run=$run_id --json
  $bin/curvctl measure --server=$server --run=$run_id --step=0 \\
      --shard='file://$data_root/fashion-mnist/t10k-images-idx3-ubyte.gz?labels=t10k-labels-idx1-ubyte.gz&limit=1024' \\
      --measure=sharpness,hessian_trace --top_k=5
MSG
