#!/usr/bin/env bash
# The deployment files, checked offline with the real tools: yamllint on every
# manifest; `kubectl kustomize` renders deploy/base and each overlay, and
# check_manifests.py validates each render (fields, references, security,
# resources; GPU requests in deploy/overlays/gpu); promtool accepts the
# Prometheus scrape configuration.
# Usage: deploy_manifests_test.sh REPO_ROOT
set -euo pipefail
root=$1
cd "$root"
tmp=$(mktemp -d -t curvd-manifests.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

yamllint -c .yamllint deploy/ || fail "yamllint found problems in deploy/"

for dir in deploy/base deploy/overlays/cpu deploy/overlays/gpu; do
  out="$tmp/$(tr / _ <<<"$dir").yaml"
  kubectl kustomize "$dir" >"$out" || fail "kubectl kustomize could not render $dir"
  gpu=()
  [ "$dir" = deploy/overlays/gpu ] && gpu=(--gpu)
  python3 tests/deploy/check_manifests.py "$out" "${gpu[@]}" || fail "$dir renders invalid manifests"
  echo "ok: $dir"
done
grep -q 'replicas: 3' "$tmp/deploy_overlays_cpu.yaml" || fail "the CPU overlay does not run 3 replicas"
grep -q 'image: curvd-cuda:' "$tmp/deploy_overlays_gpu.yaml" || fail "the GPU overlay does not use the CUDA image"

promtool check config deploy/prometheus/prometheus.yml >/dev/null ||
  fail "promtool rejects deploy/prometheus/prometheus.yml"

echo "deploy manifests: yamllint, kustomize renders checked, promtool config check passed"
