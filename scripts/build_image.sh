#!/usr/bin/env bash
# Builds curvd's CPU image with podman (scripts/podman.sh) from the Dockerfile,
# first making the Debian 12 base image it starts from when the machine has none
# (debootstrap, imported and tagged debian:bookworm and debian:bookworm-slim, so
# nothing is pulled from a registry; podman's store keeps it for the next build).
# Prints the image's size and the build time.
# Usage: scripts/build_image.sh [--prebuilt] [--tag=NAME]
#   (default)   the Dockerfile's full multi-stage build: compiles inside the image
#               (about 10 minutes and more on 2 cores)
#   --prebuilt  packages the binaries scripts/build.sh built in $CURVD_BUILD_DIR
#               (default build) instead: seconds once the runtime packages are
#               cached (ADR 18); what the container test uses
#   --tag=NAME  image name (default localhost/curvd:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
tag=localhost/curvd:latest
for arg in "$@"; do
  case "$arg" in
    --prebuilt) mode=prebuilt ;;
    --tag=*) tag=${arg#--tag=} ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
podman=scripts/podman.sh
start=$(date +%s)

if ! $podman image exists docker.io/library/debian:bookworm; then
  command -v debootstrap >/dev/null || { echo "build_image: debootstrap is missing (scripts/install_deps.sh)" >&2; exit 1; }
  rootfs=$(mktemp -d -t curvd-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "build_image: making the Debian 12 base image with debootstrap (a minute or more)"
  debootstrap --variant=minbase bookworm "$rootfs" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
  tar -C "$rootfs" -c . | $podman import - localhost/debian:bookworm >/dev/null
  $podman tag localhost/debian:bookworm docker.io/library/debian:bookworm \
    docker.io/library/debian:bookworm-slim
fi

build_args=()
if [ "$mode" = prebuilt ]; then
  build_dir=${CURVD_BUILD_DIR:-build}
  staging="$build_dir/image-staging"
  scripts/stage_image_files.sh "$build_dir/bin" "$staging/staging"
  # An image holding only /staging, for the Dockerfile's BINARIES argument.
  tar -C "$staging" -c staging | $podman import - localhost/curvd-staging:latest >/dev/null
  build_args=(--build-arg BINARIES=localhost/curvd-staging:latest)
else
  # Podman 4.3 does not resolve a stage named through an argument (FROM
  # ${BINARIES}): build the compiled stage first, then name it as an image.
  $podman build --network=host --target compiled -t localhost/curvd-compiled:latest .
  build_args=(--build-arg BINARIES=localhost/curvd-compiled:latest)
fi
$podman build --network=host "${build_args[@]}" -t "$tag" .

size=$($podman image inspect --format '{{.Size}}' "$tag")
echo "build_image: $tag ($mode), $(( size / 1000000 )) MB, built in $(( $(date +%s) - start )) s"
