#!/usr/bin/env bash
# Stages what the runtime image carries, from a build directory: the binaries
# curvd, curvd_archive_check (which curvd runs beside itself), curvctl and
# curvd_example_trainer (debug sections stripped) under
# STAGING/usr/local/bin, and STAGING/runtime-packages.txt, the Debian packages
# that own the shared libraries they load (found with ldd and dpkg -S), which the
# runtime stage installs with their own dependencies. The Dockerfile's build
# stage and scripts/build_image.sh --prebuilt both stage with it.
# Usage: scripts/stage_image_files.sh BIN_DIR STAGING_DIR
set -euo pipefail

bin_dir=${1:?usage: stage_image_files.sh BIN_DIR STAGING_DIR}
staging=${2:?usage: stage_image_files.sh BIN_DIR STAGING_DIR}
binaries=(curvd curvd_archive_check curvctl curvd_example_trainer)

rm -rf "$staging"
mkdir -p "$staging/usr/local/bin"
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || { echo "stage_image_files: $bin_dir/$b is missing; build it first" >&2; exit 1; }
  strip --strip-debug -o "$staging/usr/local/bin/$b" "$bin_dir/$b"
done

# One dpkg -S for every library (it reads its whole database per call). A
# library's owner is recorded under its path, its resolved path, or either with
# /usr added or removed (Debian 12 merges /lib into /usr/lib; dpkg records either).
libraries=$(ldd "${binaries[@]/#/$staging/usr/local/bin/}" | awk '/=> \//{print $3}' | sort -u)
candidates() {
  local p
  for p in "$1" "$(readlink -f "$1")"; do
    echo "$p"
    case "$p" in /usr/*) echo "${p#/usr}" ;; *) echo "/usr$p" ;; esac
  done
}
owned=$(for lib in $libraries; do candidates "$lib"; done | sort -u | xargs dpkg -S 2>/dev/null || true)
for lib in $libraries; do
  if ! candidates "$lib" | grep -qxFf - <(sed 's/^.*: //' <<<"$owned"); then
    echo "stage_image_files: no Debian package owns $lib" >&2
    exit 1
  fi
done
# "pkg:arch, pkg2:arch: /path" lines: the packages, without the architecture.
sed 's/: [^:]*$//; s/, /\n/g' <<<"$owned" | cut -d: -f1 | sort -u >"$staging/runtime-packages.txt"
echo "stage_image_files: ${#binaries[@]} binaries ($(du -sh "$staging/usr/local/bin" | cut -f1))," \
  "$(wc -l <"$staging/runtime-packages.txt") runtime packages, in $staging"
