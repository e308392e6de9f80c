#!/usr/bin/env bash
# `make image`: builds the stowage-operator and stowage-agent container images from the Dockerfile
# with buildah, on a Debian bookworm base image made locally with debootstrap (no Docker engine and
# no image registry needed). Not part of `make test`.
#   hack/build-image.sh [TAG]        # images localhost/stowage-operator:TAG and localhost/stowage-agent:TAG
# Environment: STOWAGE_IMAGE_MIRROR (Debian mirror, default http://deb.debian.org/debian),
#              STOWAGE_IMAGE_PREFIX (default localhost/), BUILDAH_ISOLATION (default chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-dev}
mirror=${STOWAGE_IMAGE_MIRROR:-http://deb.debian.org/debian}
prefix=${STOWAGE_IMAGE_PREFIX:-localhost/}
base=localhost/stowage-base:bookworm
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  step "making the base image $base with debootstrap (minbase, bookworm)"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xf -
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --rm "$ctr" "$base"
fi

for target in operator agent; do
  step "building ${prefix}stowage-$target:$tag"
  buildah bud --layers --build-arg "BASE_IMAGE=$base" --target "$target" \
    -t "${prefix}stowage-$target:$tag" -f Dockerfile .
done
step "done"
buildah images --filter "reference=${prefix}stowage-*"
