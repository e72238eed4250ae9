#!/usr/bin/env bash
# Builds curvd into build/: installs missing Debian packages, configures with
# CMake (Ninja, ccache when present) the first time, then builds every target.
# Binaries land in build/bin. Extra arguments go to the CMake configure step.
#   CURVD_BUILD_DIR  build directory (default: build)
#   CURVD_JOBS       parallel jobs (default: the number of cores)
#   CURVD_SKIP_INSTALL=1  do not check Debian packages (machines without apt access,
#                    such as the GPU machine of scripts/gpu_test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${CURVD_BUILD_DIR:-build}
jobs=${CURVD_JOBS:-$(nproc)}

if [ "${CURVD_SKIP_INSTALL:-0}" != 1 ]; then
  echo "build: checking dependencies"
  scripts/install_deps.sh
fi

# Configure when there is no usable build tree yet (a configure that failed half
# way leaves CMakeCache.txt but no build.ninja), or when asked to with arguments.
if [ ! -f "$build_dir/build.ninja" ] || [ $# -gt 0 ]; then
  echo "build: configuring $build_dir"
  cmake -S . -B "$build_dir" -G Ninja "$@"
fi

echo "build: compiling with $jobs jobs (LibTorch translation units are slow; ccache makes the next build fast)"
start=$(date +%s)
ninja -C "$build_dir" -j "$jobs"
echo "build: done in $(( $(date +%s) - start )) s; binaries in $build_dir/bin"
