#!/usr/bin/env bash
# Installs the Debian 12 packages curvd builds, tests and demos with, and the
# container tools that build and run its image (scripts/build_image.sh). Installs
# only what is missing, so a second run takes a second. Needs root (or sudo).
#   CURVD_SKIP_CONTAINER_TOOLS=1  leave out podman, buildah, runc and debootstrap
#                                 (inside the image's own build stage)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libtorch-dev libsqlite3-dev libssl-dev zlib1g-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev
  # clang with libFuzzer's runtime builds the fuzz targets (scripts/fuzz.sh).
  clang libclang-rt-14-dev
  dataset-fashion-mnist
  # prometheus brings promtool, which the alert and dashboard tests run.
  prometheus sqlite3 curl openssl python3-torch python3-grpcio python3-protobuf
  python3-pandas python3-matplotlib python3-yaml
  yamllint
)
if [ "${CURVD_SKIP_CONTAINER_TOOLS:-0}" != 1 ]; then
  packages+=(podman buildah runc debootstrap)
fi
# Tools any package may provide: install Debian's only when none is on PATH (some
# images ship their own kubectl package, which Debian's would conflict with).
declare -A tool_packages=([kubectl]=kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for tool in "${!tool_packages[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_packages[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
