#!/usr/bin/env bash
# Runs podman with the settings these machines need (../shared/CONTAINERS.md):
# the runc runtime with the cgroupfs manager, and no default ulimits, which the
# sandbox refuses. Every podman call of the project's scripts and tests goes
# through it, e.g. scripts/podman.sh images. The arguments are podman's.
#   CURVD_PODMAN_CONF  containers.conf to use (default: one written under
#                      ${XDG_CACHE_HOME:-~/.cache}/curvd with default_ulimits = [])
set -euo pipefail

conf=${CURVD_PODMAN_CONF:-}
if [ -z "$conf" ]; then
  conf="${XDG_CACHE_HOME:-$HOME/.cache}/curvd/containers.conf"
  if [ ! -f "$conf" ]; then
    mkdir -p "$(dirname "$conf")"
    printf '[containers]\ndefault_ulimits = []\n' >"$conf"
  fi
fi
export CONTAINERS_CONF=$conf
exec podman --runtime runc --cgroup-manager=cgroupfs "$@"
