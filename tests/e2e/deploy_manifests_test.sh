#!/usr/bin/env bash
# The deployment files, checked offline with the real tools: yamllint on every
# manifest, `kubectl kustomize` renders the base into a Deployment whose gRPC
# probes ask the standard health service for curvd's service, and promtool
# accepts the Prometheus scrape configuration.
# Usage: deploy_manifests_test.sh REPO_ROOT
set -euo pipefail
root=$1
cd "$root"

fail() { echo "FAIL: $*" >&2; exit 1; }

yamllint -c .yamllint deploy/ || fail "yamllint found problems in deploy/"

rendered=$(kubectl kustomize deploy/kustomize) || fail "kubectl kustomize could not render deploy/kustomize"
for want in "kind: Deployment" "kind: Service" "clusterIP: None" \
            "service: curvd.v1.Curvd" "--state_dir=" "--metrics_listen=0.0.0.0:9464"; do
  grep -qF -- "$want" <<<"$rendered" || fail "rendered manifests lack '$want'"
done
[ "$(grep -c 'grpc:' <<<"$rendered")" -ge 2 ] || fail "expected gRPC liveness and readiness probes"

promtool check config deploy/prometheus/prometheus.yml >/dev/null ||
  fail "promtool rejects deploy/prometheus/prometheus.yml"

echo "deploy manifests: yamllint, kustomize render and promtool config check passed"
