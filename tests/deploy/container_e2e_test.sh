#!/usr/bin/env bash
# End-to-end test of the CPU image: scripts/build_image.sh --prebuilt packages
# the binaries of BIN_DIR's build, then the container runs as uid 10001 with a
# read-only root filesystem, its state in a mounted volume and a file:// data
# directory mounted read-only. curvctl on the host measures a zoo MLP on a
# file:// shard through it, /metrics is scraped, SIGTERM must end it with exit
# status 0, and a second container on the same volume must list the results.
# Exits 77 (ctest: skipped) with the reason when podman cannot run containers.
# usage: container_e2e_test.sh REPO_ROOT BUILD_DIR
set -euo pipefail

root=${1:?usage: container_e2e_test.sh REPO_ROOT BUILD_DIR}
build_dir=$(cd "${2:?usage: container_e2e_test.sh REPO_ROOT BUILD_DIR}" && pwd)
cd "$root"
podman=scripts/podman.sh
curvctl="$build_dir/bin/curvctl"
image=localhost/curvd-test:latest

skip() { echo "SKIPPED: $*"; exit 77; }
command -v podman >/dev/null || skip "podman is not installed (scripts/install_deps.sh installs it)"
command -v runc >/dev/null || skip "runc is not installed (scripts/install_deps.sh installs it)"
$podman info >/dev/null 2>&1 || skip "podman cannot run here: $($podman info 2>&1 | tail -n 1)"
[ -x "$curvctl" ] || { echo "FAIL: $curvctl is missing; build it first" >&2; exit 1; }

tmp=$(mktemp -d -t curvd-container.XXXXXX)
name="curvd-e2e-$$"
cleanup() {
  $podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- container log (tail) ---" >&2
  $podman logs "$name" 2>&1 | tail -n 30 >&2 || true
  exit 1
}

echo "== building the image from $build_dir/bin"
CURVD_BUILD_DIR=$build_dir scripts/build_image.sh --prebuilt --tag="$image" >"$tmp/build.log" 2>&1 ||
  { tail -n 30 "$tmp/build.log" >&2; echo "FAIL: scripts/build_image.sh failed" >&2; exit 1; }
tail -n 1 "$tmp/build.log"

# The state volume belongs to the image's user; the data directory is the host's.
mkdir -p "$tmp/state" "$tmp/data"
chown 10001:10001 "$tmp/state" 2>/dev/null || chmod 777 "$tmp/state"
python3 - "$tmp/data/shard.safetensors" <<'PY'
import json, struct, sys
n, d, outputs = 64, 8, 2
xs = [((i * 7 + j * 3) % 11 - 5) / 5.0 for i in range(n) for j in range(d)]
ys = [((i + k) % 5 - 2) / 2.0 for i in range(n) for k in range(outputs)]
tensors = {"inputs": (xs, [n, d]), "targets": (ys, [n, outputs])}
header, blob = {}, b""
for key, (values, shape) in tensors.items():
    data = struct.pack(f"<{len(values)}f", *values)
    header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
    blob += data
head = json.dumps(header).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(head)) + head + blob)
PY

read -r grpc_port metrics_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
server="127.0.0.1:$grpc_port"

# Starts the container in the background (host network: its ports are the
# host's loopback ports) and waits until curvctl reaches it.
start_container() {
  $podman rm -f "$name" >/dev/null 2>&1 || true
  $podman run -d --name "$name" --network=host --read-only --user 10001:10001 \
    --cap-drop=all --security-opt=no-new-privileges \
    -v "$tmp/state:/var/lib/curvd" -v "$tmp/data:/data:ro" "$image" \
    --listen="$server" --metrics_listen="127.0.0.1:$metrics_port" \
    --state_dir=/var/lib/curvd --data_roots=/data >/dev/null || fail "podman run failed"
  for _ in $(seq 1 120); do
    [ "$($podman inspect --format '{{.State.Running}}' "$name")" = true ] || fail "curvd exited during start-up"
    timeout 10 "$curvctl" runs --server="$server" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  fail "curvd in the container did not answer within 60 s"
}

echo "== the container runs as uid 10001 with a read-only root"
start_container
[ "$($podman inspect --format '{{.Config.User}}' "$name")" = "10001:10001" ] || fail "not run as 10001:10001"
[ "$($podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] || fail "root filesystem not read-only"
if $podman exec "$name" /bin/sh -c 'echo x > /usr/local/bin/probe' 2>/dev/null; then
  fail "the root filesystem is writable"
fi
[ "$($podman exec "$name" id -u)" = 10001 ] || fail "the container's processes are not uid 10001"

echo "== curvctl on the host measures a zoo MLP on a file:// shard in the container"
timeout 300 "$curvctl" measure --server="$server" --run=container --step=3 \
  --zoo=mlp:8,16,2:tanh --shard=file:///data/shard.safetensors --loss=mse \
  --measure=sharpness,hessian_trace --top_k=2 --precision=float64 --timeout=240 --json \
  >"$tmp/measure.json" 2>"$tmp/measure.err" ||
  { cat "$tmp/measure.err" >&2; fail "curvctl measure failed"; }
python3 - "$tmp/measure.json" <<'PY' || fail "the measurements are wrong"
import json, sys
ms = json.load(open(sys.argv[1]))["measurements"]
assert len(ms) == 2, ms
for m in ms:
    assert m["state"] == "SUCCEEDED", (m["state"], m.get("errorMessage"))
    assert int(m["diagnostics"]["numSamples"]) == 64, m["diagnostics"]
s = next(m for m in ms if "sharpness" in m)["sharpness"]["sharpness"]
assert s > 0, s
print(f"ok: sharpness {s:.6g} and a trace measured on the file:// shard")
PY

echo "== /metrics"
curl -fsS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" >"$tmp/metrics.txt" || fail "GET /metrics failed"
grep -q '^curvd_build_info' "$tmp/metrics.txt" || fail "/metrics lacks curvd_build_info"
grep -q '^curvd_measurements_total{.*} [1-9]' "$tmp/metrics.txt" || fail "/metrics counts no measurements"

echo "== SIGTERM: the container exits 0"
$podman kill --signal TERM "$name" >/dev/null || fail "podman kill --signal TERM failed"
status=$(timeout 60 $podman wait "$name") || fail "curvd still running 60 s after SIGTERM"
[ "$status" = 0 ] || fail "curvd exited with status $status after SIGTERM"
[ -s "$tmp/state/curvd.db" ] || fail "no curvd.db in the state volume"

echo "== a new container on the same volume lists the results"
start_container
timeout 30 "$curvctl" results --server="$server" --run=container --csv >"$tmp/results.csv" ||
  fail "curvctl results failed after the restart"
[ "$(grep -c ',3,.*,SUCCEEDED,' "$tmp/results.csv")" -eq 2 ] ||
  { cat "$tmp/results.csv" >&2; fail "the restarted container does not list both results of step 3"; }
$podman kill --signal TERM "$name" >/dev/null
status=$(timeout 60 $podman wait "$name") || fail "curvd still running 60 s after the second SIGTERM"
[ "$status" = 0 ] || fail "the second container exited with status $status"
echo "PASS"
