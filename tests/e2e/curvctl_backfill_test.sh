#!/usr/bin/env bash
# End-to-end test of `curvctl backfill` against the real curvd: a directory of
# generated checkpoints of a zoo MLP (safetensors state dicts of steps 0, 10
# and 20) measured on builtin://modular_addition, beside a file whose name has
# no step (skipped with a warning), a malformed checkpoint (an error for that
# file alone, the rest measured) and a file that is no checkpoint (ignored); a
# second backfill measures nothing new, and one with another kind measures only
# that. When /usr/bin/python3 has torch, also a TorchScript run backfilled from
# archives (.pt). Every wait is bounded.
# usage: curvctl_backfill_test.sh BIN_DIR   (holding curvd and curvctl)
set -euo pipefail

bin_dir=${1:?usage: curvctl_backfill_test.sh BIN_DIR}
for tool in "$bin_dir/curvd" "$bin_dir/curvctl"; do
  [ -x "$tool" ] || { echo "FAIL: $tool is missing; build it first" >&2; exit 1; }
done
curvctl="$bin_dir/curvctl"

tmp=$(mktemp -d -t curvd-backfill.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  echo "--- curvd log (tail)" >&2
  tail -n 30 "$tmp/curvd.log" >&2 || true
  exit 1
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server="127.0.0.1:$port"
mkdir -p "$tmp/state" "$tmp/data" "$tmp/checkpoints"
"$bin_dir/curvd" --listen="$server" --metrics_listen= --state_dir="$tmp/state" \
  --data_roots="$tmp/data" --devices=cpu >"$tmp/curvd.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  kill -0 "$server_pid" 2>/dev/null || fail "curvd exited during start-up"
  timeout 10 "$curvctl" runs --server="$server" >/dev/null 2>&1 && break
  sleep 0.5
done
timeout 10 "$curvctl" runs --server="$server" >/dev/null || fail "curvd did not answer within 60 s"

# State dicts of the zoo MLP 3-8-5 (fc0.weight [8, 3], ...), one per step, in
# safetensors written by hand: a little-endian header length, the JSON header,
# the float32 data.
python3 - "$tmp/checkpoints" <<'PY'
import json, random, struct, sys
d = sys.argv[1]
def write(path, tensors):
    header, data = {}, b""
    for name, shape in tensors:
        count = 1
        for s in shape:
            count *= s
        values = struct.pack(f"<{count}f", *[random.gauss(0, 0.5) for _ in range(count)])
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
shapes = [("fc0.weight", [8, 3]), ("fc0.bias", [8]), ("fc1.weight", [5, 8]), ("fc1.bias", [5])]
random.seed(1)
for step in (0, 10, 20):
    write(f"{d}/mlp_step_{step:05d}.safetensors", shapes)
write(f"{d}/final.safetensors", shapes)
with open(f"{d}/broken_30.safetensors", "wb") as f:
    f.write(b"this is not a safetensors file")
with open(f"{d}/notes.txt", "w") as f:
    f.write("not a checkpoint\n")
PY

shard='builtin://modular_addition?p=5&train_fraction=0.6&seed=2'
backfill() {
  timeout 300 "$curvctl" backfill "$tmp/checkpoints" --server="$server" --run=mlp \
    --zoo=mlp:3,8,5:tanh --shard="$shard" --measure=sharpness,hessian_trace \
    --top_k=2 --probes=8 --precision=float64 --timeout=240 --json "$@"
}

echo "== first backfill: steps 0, 10, 20 measured; final skipped; broken_30 an error"
status=0
backfill >"$tmp/first.json" 2>"$tmp/first.err" || status=$?
[ "$status" = 1 ] || fail "first backfill exited with $status, expected 1 (one file failed)"
grep -q "warning: final.safetensors has no digits" "$tmp/first.err" || fail "no warning for final.safetensors"
grep -q "broken_30.safetensors (step 30): error: INVALID_ARGUMENT" "$tmp/first.err" \
  || fail "no error naming broken_30.safetensors"
grep -q "\[1/4\] mlp_step_00000.safetensors (step 0): measuring sharpness, hessian_trace" "$tmp/first.err" \
  || fail "no progress line for step 0"
grep -q "3 checkpoints measured (6 measurements), 0 skipped as already measured, 1 failed; files skipped without a step: 1; other files ignored: 1" \
  "$tmp/first.err" || fail "wrong summary of the first backfill"
python3 - "$tmp/first.json" <<'PY' || fail "first backfill's --json output is wrong"
import json, sys
ms = json.load(open(sys.argv[1])).get("measurements", [])
got = sorted((m["name"].split("/")[3], "sharpness" if "sharpness" in m else "hessian_trace") for m in ms)
want = sorted((s, k) for s in ("0", "10", "20") for k in ("sharpness", "hessian_trace"))
assert got == want, got
assert all(m["state"] == "SUCCEEDED" for m in ms), [m["state"] for m in ms]
assert all(m["spec"]["shardUri"].startswith("builtin://modular_addition") for m in ms)
PY

echo "== second backfill: nothing new"
status=0
backfill >"$tmp/second.json" 2>"$tmp/second.err" || status=$?
[ "$status" = 1 ] || fail "second backfill exited with $status, expected 1 (broken_30 again)"
grep -q "mlp_step_00010.safetensors (step 10): skipped, already measured (sharpness, hessian_trace SUCCEEDED)" \
  "$tmp/second.err" || fail "step 10 not reported as skipped"
grep -q "0 checkpoints measured (0 measurements), 3 skipped as already measured, 1 failed" \
  "$tmp/second.err" || fail "wrong summary of the second backfill"
timeout 60 "$curvctl" results --server="$server" --run=mlp --json >"$tmp/results.json"
python3 - "$tmp/second.json" "$tmp/results.json" <<'PY' || fail "the second backfill measured again"
import json, sys
assert json.load(open(sys.argv[1])).get("measurements", []) == []
assert len(json.load(open(sys.argv[2]))["measurements"]) == 6
PY

echo "== a kind not yet measured is measured alone; --step_pattern picks the steps"
rm "$tmp/checkpoints/broken_30.safetensors"
status=0
backfill --measure=sharpness,trace_h3 --step_pattern='step_0*([0-9]+)\.' >"$tmp/third.json" 2>"$tmp/third.err" || status=$?
[ "$status" = 0 ] || fail "third backfill exited with $status"
grep -q "(step 20): measuring trace_h3 (the other kinds asked for already SUCCEEDED)" "$tmp/third.err" \
  || fail "third backfill did not measure trace_h3 alone"
grep -q "3 checkpoints measured (3 measurements)" "$tmp/third.err" || fail "wrong summary of the third backfill"

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== a TorchScript run from its archives"
  mkdir -p "$tmp/archives"
  /usr/bin/python3 - "$tmp/archives" <<'PY'
import sys, torch
d = sys.argv[1]
torch.manual_seed(0)
# Traced, not scripted: scripting needs the class's source file, and a heredoc
# has none.
model = torch.jit.trace(torch.nn.Linear(3, 5), torch.zeros(1, 3))
model.save(f"{d}/model.pt.init")
for step in (100, 200):
    with torch.no_grad():
        model.weight.mul_(1.5)
    model.save(f"{d}/epoch_{step}.pt")
PY
  mv "$tmp/archives/model.pt.init" "$tmp/model.pt"
  status=0
  timeout 300 "$curvctl" backfill "$tmp/archives" --server="$server" --run=scripted \
    --model="$tmp/model.pt" --shard="$shard" --measure=sharpness --top_k=1 \
    --precision=float64 --timeout=240 --csv >"$tmp/ts.csv" 2>"$tmp/ts.err" || status=$?
  [ "$status" = 0 ] || fail "TorchScript backfill exited with $status"
  grep -q "2 checkpoints measured (2 measurements)" "$tmp/ts.err" || fail "wrong TorchScript summary"
  [ "$(grep -c SUCCEEDED "$tmp/ts.csv")" = 2 ] || fail "TorchScript CSV lacks two SUCCEEDED rows"
fi

echo "PASS: curvctl backfill"
