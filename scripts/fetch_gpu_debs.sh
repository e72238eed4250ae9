#!/usr/bin/env bash
# Downloads the Debian 12 packages that scripts/gpu_test.sh unpacks on the GPU
# machine (which reaches no package registry) into .debs/ (git-ignored, carried).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs
cd .debs
apt-get download \
  libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 libprotobuf-dev libprotobuf32 \
  libprotobuf-lite32 libprotoc32 protobuf-compiler protobuf-compiler-grpc libabsl-dev \
  libabsl20220623 prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
  libprometheus-cpp-push1.0 civetweb libcivetweb1 libcivetweb-dev libsqlite3-dev \
  libsqlite3-0 libre2-9 libre2-dev libc-ares2 libc-ares-dev libupb0 libupb-dev libssl-dev \
  zlib1g-dev libgtest-dev libgmock-dev googletest nlohmann-json3-dev dataset-fashion-mnist
echo "fetch_gpu_debs: $(ls | wc -l) packages, $(du -sh . | cut -f1) in .debs/"
