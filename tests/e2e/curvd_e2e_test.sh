#!/usr/bin/env bash
# End-to-end test of the real binaries: starts curvd on free loopback ports with a
# temporary state directory, measures a zoo MLP with `curvctl measure --json`,
# checks that a FAILED measurement makes curvctl exit non-zero, has a real
# Prometheus scrape /metrics and answers queries, lints the exposition with
# promtool, checks that the Grafana dashboard and the alert rules of deploy/
# use only metric names it exports, then SIGTERMs curvd and expects exit
# status 0. Every wait is bounded.
# usage: curvd_e2e_test.sh BIN_DIR   (holding curvd and curvctl)
set -euo pipefail

bin_dir=${1:?usage: curvd_e2e_test.sh BIN_DIR}
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
curvd="$bin_dir/curvd"
curvctl="$bin_dir/curvctl"
for tool in "$curvd" "$curvctl"; do
  [ -x "$tool" ] || { echo "FAIL: $tool is missing; build it first" >&2; exit 1; }
done
for tool in prometheus promtool curl python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/install_deps.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d -t curvd-e2e.XXXXXX)
server_pid=""
prometheus_pid=""
cleanup() {
  for pid in "$prometheus_pid" "$server_pid"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$tmp/curvd.log" ]; then
    echo "--- curvd log (tail) ---" >&2
    tail -n 40 "$tmp/curvd.log" >&2
  fi
  exit 1
}

# Free loopback ports, chosen by the kernel.
read -r grpc_port metrics_port prometheus_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
server="127.0.0.1:$grpc_port"
mkdir -p "$tmp/state" "$tmp/data"

echo "== starting curvd on $server, metrics on 127.0.0.1:$metrics_port"
"$curvd" --listen="$server" --metrics_listen="127.0.0.1:$metrics_port" \
  --state_dir="$tmp/state" --data_roots="$tmp/data" >"$tmp/curvd.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 120); do
  kill -0 "$server_pid" 2>/dev/null || fail "curvd exited during start-up"
  if timeout 10 "$curvctl" runs --server="$server" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || fail "curvd did not answer within 60 s"

echo "== curvctl measure: sharpness and hessian_trace of a zoo MLP"
shard='builtin://gaussian_regression?n=128&d=8&outputs=2&seed=1'
timeout 300 "$curvctl" measure --server="$server" --run=e2e --step=0 \
  --zoo=mlp:8,16,2:tanh --shard="$shard" --loss=mse \
  --measure=sharpness,hessian_trace --top_k=3 --precision=float64 --train_loss=0.75 \
  --timeout=240 --json >"$tmp/measure.json" 2>"$tmp/measure.err" \
  || { status=$?; cat "$tmp/measure.err" >&2; fail "curvctl measure exited with status $status"; }

python3 - "$tmp/measure.json" <<'PY' || fail "curvctl measure --json output is wrong"
import json, math, sys
doc = json.load(open(sys.argv[1]))
ms = doc["measurements"]
assert len(ms) == 2, f"expected 2 measurements, got {len(ms)}"
by_kind = {("sharpness" if "sharpness" in m["spec"] else "hessian_trace"): m for m in ms}
params = 8 * 16 + 16 + 16 * 2 + 2
for kind, m in by_kind.items():
    assert m["state"] == "SUCCEEDED", f"{kind}: state {m['state']}: {m.get('errorMessage')}"
    assert m["name"].startswith("runs/e2e/checkpoints/0/measurements/"), m["name"]
    d = m["diagnostics"]
    assert int(d["numParameters"]) == params, f"{kind}: numParameters {d['numParameters']} != {params}"
    assert int(d["numSamples"]) == 128, f"{kind}: numSamples {d['numSamples']}"
    assert int(d["hvps"]) > 0, f"{kind}: no HVPs counted"
    assert math.isfinite(d["loss"]) and d["loss"] > 0, f"{kind}: loss {d['loss']}"
s = by_kind["sharpness"]["sharpness"]
top = [p["value"] for p in s["top"]]
assert len(top) == 3, f"top has {len(top)} values, asked for 3"
assert top == sorted(top, reverse=True), f"top not descending: {top}"
assert s["sharpness"] == top[0] and s["sharpness"] > 0, f"sharpness {s['sharpness']} vs top {top}"
t = by_kind["hessian_trace"]["hessianTrace"]
assert math.isfinite(t["trace"]) and t["standardError"] >= 0 and t["probes"] >= 2, t
# Every eigenvalue is at most the largest, so tr(H) <= P * lambda_max (up to noise).
assert t["trace"] <= params * top[0] + 4 * t["standardError"], (t, top[0])
print(f"ok: sharpness {top[0]:.6g}, top {top}, trace {t['trace']:.6g} ± {t['standardError']:.2g}")
PY

echo "== curvctl results (csv, wide, json) list what measure stored"
timeout 30 "$curvctl" results --server="$server" --run=e2e --csv >"$tmp/results.csv" \
  || fail "curvctl results --csv failed"
rows=$(wc -l <"$tmp/results.csv")
[ "$rows" -eq 3 ] || fail "results --csv has $rows lines, expected a header and 2 rows"
head -n 1 "$tmp/results.csv" | grep -q '^name,step,kind,state,value,' \
  || fail "results --csv header: $(head -n 1 "$tmp/results.csv")"
[ "$(grep -c ',SUCCEEDED,' "$tmp/results.csv")" -eq 2 ] || fail "results --csv rows are not both SUCCEEDED"
head -n 1 "$tmp/results.csv" | grep -q ',train_loss$' \
  || fail "results --csv does not end with train_loss: $(head -n 1 "$tmp/results.csv")"
timeout 30 "$curvctl" results --server="$server" --run=e2e --wide >"$tmp/wide.csv" \
  || fail "curvctl results --wide failed"
python3 - "$tmp/wide.csv" <<'PY' || fail "results --wide is not one row of step 0 with both kinds"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 1, rows
row = rows[0]
assert row["step"] == "0" and float(row["train_loss"]) == 0.75, row
assert float(row["sharpness"]) > 0 and row["trace"] and row["trace_standard_error"], row
PY
timeout 30 "$curvctl" results --server="$server" --run=e2e --json \
  | python3 -c 'import json,sys; assert len(json.load(sys.stdin)["measurements"]) == 2' \
  || fail "curvctl results --json does not list 2 measurements"

echo "== a measurement that FAILS (inputs of width 5 for a model wanting 8) makes curvctl exit 3"
set +e
timeout 300 "$curvctl" measure --server="$server" --run=e2e --step=0 \
  --shard='builtin://gaussian_regression?n=16&d=5&outputs=2&seed=1' --loss=mse \
  --measure=sharpness --timeout=240 --json >"$tmp/failed.json" 2>"$tmp/failed.err"
status=$?
set -e
[ "$status" -eq 3 ] || { cat "$tmp/failed.err" >&2; fail "curvctl exited $status for a FAILED measurement, expected 3"; }
python3 - "$tmp/failed.json" <<'PY' || fail "the failed measurement's JSON is wrong"
import json, sys
m = json.load(open(sys.argv[1]))["measurements"][0]
assert m["state"] == "FAILED", m["state"]
assert m["errorCode"] != 0 and m["errorMessage"], m
print(f"ok: FAILED with code {m['errorCode']}: {m['errorMessage']}")
PY

echo "== promtool lints /metrics"
curl -fsS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" >"$tmp/metrics.txt" \
  || fail "GET /metrics failed"
grep -q '^curvd_' "$tmp/metrics.txt" || fail "/metrics has no curvd_ series"
promtool check metrics <"$tmp/metrics.txt" || fail "promtool check metrics found problems"

echo "== the dashboard and the alerts use only names that /metrics exports"
python3 "$repo_root/tests/e2e/dashboard_expressions.py" names "$repo_root" "$tmp/metrics.txt" \
  || fail "deploy/grafana or deploy/prometheus uses a metric curvd does not export"

echo "== a real Prometheus scrapes curvd and evaluates the alerts"
cat >"$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $repo_root/deploy/prometheus/curvd_alerts.yml
scrape_configs:
  - job_name: curvd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!
# Not waited for: keeps bash from reporting its death at clean-up.
disown "$prometheus_pid"

# Prints the value of the first sample of an instant query, or nothing.
query() {
  curl -fsS --max-time 5 -G "http://127.0.0.1:$prometheus_port/api/v1/query" \
    --data-urlencode "query=$1" 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
up=""
for _ in $(seq 1 60); do
  kill -0 "$prometheus_pid" 2>/dev/null || { cat "$tmp/prometheus.log" >&2; fail "prometheus exited"; }
  up=$(query 'up{job="curvd"}')
  [ "$up" = "1" ] && break
  sleep 1
done
[ "$up" = "1" ] || { tail -n 20 "$tmp/prometheus.log" >&2; fail "Prometheus never saw curvd up (up='$up')"; }
series=$(query 'count({__name__=~"curvd_.+", job="curvd"})')
[ -n "$series" ] && [ "$series" -gt 0 ] || fail "Prometheus has no curvd_ series"
build_info=$(query 'curvd_build_info{job="curvd"}')
[ "$build_info" = "1" ] || fail "curvd_build_info is '$build_info', expected 1"
echo "ok: up=1, $series curvd_ series, curvd_build_info=1"
# Every alert rule evaluated against the live series without an error.
rules_ok=""
for _ in $(seq 1 30); do
  if curl -fsS --max-time 5 "http://127.0.0.1:$prometheus_port/api/v1/rules?type=alert" 2>/dev/null \
      | python3 -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
sys.exit(1 if not rules or bad else 0)' 2>/dev/null; then
    rules_ok=yes
    break
  fi
  sleep 1
done
[ -n "$rules_ok" ] || fail "Prometheus did not evaluate every alert of deploy/prometheus/curvd_alerts.yml cleanly"
echo "ok: the alerts of deploy/prometheus evaluate cleanly"

echo "== curvctl delete removes the run, its checkpoints, measurements and blobs"
timeout 30 "$curvctl" delete --server="$server" e2e --json >"$tmp/delete.json" \
  || fail "curvctl delete e2e failed"
python3 - "$tmp/delete.json" <<'PY' || fail "curvctl delete --json output is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert int(d["checkpointCount"]) == 1, d
assert int(d["measurementCount"]) >= 3, d
assert int(d.get("blobCount", 0)) >= 1 and int(d["blobBytes"]) > 0, d
print(f"ok: {d}")
PY
if timeout 10 "$curvctl" get --server="$server" runs/e2e >/dev/null 2>&1; then
  fail "runs/e2e is still there after curvctl delete"
fi
set +e
timeout 10 "$curvctl" delete --server="$server" e2e >/dev/null 2>&1
status=$?
set -e
[ "$status" -eq 1 ] || fail "curvctl delete of a deleted run exited $status, expected 1"

echo "== SIGTERM: curvd shuts down cleanly"
kill -TERM "$server_pid"
exited=""
for _ in $(seq 1 60); do
  if ! kill -0 "$server_pid" 2>/dev/null; then exited=yes; break; fi
  sleep 0.5
done
[ -n "$exited" ] || fail "curvd still running 30 s after SIGTERM"
set +e
wait "$server_pid"
status=$?
set -e
server_pid=""
[ "$status" -eq 0 ] || fail "curvd exited with status $status after SIGTERM"
echo "PASS"
