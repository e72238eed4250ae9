#!/usr/bin/env bash
# The seed study's figure through a local curvd: starts a server on a free
# loopback port with a temporary state directory, runs curvd_llc_rank_study
# (lambda_hat from llc against rank(H)/2 from exact_hessian on minimally
# singular linear models, the least-squares slope and intercept on log scales),
# writes its table as CSV and, when python3 has matplotlib, a PNG plot, and
# stops the server. Build first (scripts/build.sh). Arguments go to the study
# (build/bin/curvd_llc_rank_study --help); with none, the full study: d = 10,000
# parameters, r from 10 to 10,000 (seven exact Hessians of 10,000 parameters:
# for the GPU machine).
#   CURVD_BUILD_DIR           build directory (default build)
#   CURVD_LLC_DEVICES         the server's --devices (default auto)
#   CURVD_LLC_OUT             where the CSV, PNG and server log go
#                             (default llc-rank-study)
#   CURVD_LLC_EXACT_HESSIAN_MAX  the server's --exact_hessian_max_parameters
#                             (default 20000, which covers d = 10,000)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CURVD_BUILD_DIR:-build}/bin
out=${CURVD_LLC_OUT:-llc-rank-study}
for tool in curvd curvd_llc_rank_study; do
  [ -x "$bin/$tool" ] || { echo "llc_rank_study: $bin/$tool is missing; run scripts/build.sh" >&2; exit 1; }
done
mkdir -p "$out"
state=$(mktemp -d -t curvd-llc-rank-study.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server="127.0.0.1:$port"
log="$out/curvd.log"

"$bin/curvd" --listen="$server" --metrics_listen= --state_dir="$state" \
  --devices="${CURVD_LLC_DEVICES:-auto}" \
  --exact_hessian_max_parameters="${CURVD_LLC_EXACT_HESSIAN_MAX:-20000}" \
  >"$log" 2>&1 &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || echo "llc_rank_study: curvd exited with status $? (see $log)" >&2
  fi
  rm -rf "$state"
}
trap stop_server EXIT
trap "exit 1" INT TERM
echo "llc_rank_study: curvd on $server (devices ${CURVD_LLC_DEVICES:-auto}, log $log)" >&2

status=0
"$bin/curvd_llc_rank_study" --server="$server" --csv="$out/llc_rank_study.csv" "$@" \
  | tee "$out/llc_rank_study.txt" || status=$?
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "llc_rank_study: curvd stopped during the study; its log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 - "$out/llc_rank_study.csv" "$out/llc_rank_study.png" <<'PY'
import csv, math, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
x = [math.log(int(r["rank"]) / 2) for r in rows]
y = [math.log(float(r["lambda_hat"])) for r in rows]
err = [float(r["standard_error"]) / float(r["lambda_hat"]) for r in rows]
slope, intercept = float(rows[0]["slope"]), float(rows[0]["intercept"])
fig, ax = plt.subplots(figsize=(5, 4))
ax.errorbar(x, y, yerr=err, fmt="o", label="curvd llc")
ax.plot(x, x, "k:", label="lambda = rank/2")
ax.plot(x, [slope * v + intercept for v in x], "-",
        label=f"fit: slope {slope:.3f}, intercept {intercept:+.3f}")
ax.set_xlabel("log(rank(H) / 2)")
ax.set_ylabel("log lambda_hat")
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=120)
PY
  echo "llc_rank_study: plot in $out/llc_rank_study.png" >&2
else
  echo "llc_rank_study: python3 has no matplotlib; no plot (the CSV is $out/llc_rank_study.csv)" >&2
fi
