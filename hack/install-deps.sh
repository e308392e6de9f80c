#!/usr/bin/env bash
# Installs every Debian package that Stowage's code, tests and demo need. Idempotent: when all
# packages are present it only checks and returns. Run as root (or through sudo) on Debian 12.
#   hack/install-deps.sh           everything: build, tests, demo
#   hack/install-deps.sh --build   only what building the binaries needs (the Dockerfile's build stage)
set -euo pipefail

build_packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # C++ libraries (DESIGN.md §4)
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev libcurl4-openssl-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libtomlplusplus-dev libarchive-dev zlib1g-dev
  libzstd-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libcli11-dev libbenchmark-dev libnghttp2-dev
  # static archives (and pkg-config files) of libarchive's dependencies, for stowage-agent's
  # static link (cmake/StowageStaticDeps.cmake)
  nettle-dev liblzma-dev libbz2-dev libxml2-dev
)
test_packages=(
  # fuzz targets, lint
  clang libclang-rt-14-dev clang-format clang-tidy
  # real peers used as oracles and fixtures in tests
  podman skopeo umoci containerd docker-registry uidmap util-linux openssl apache2-utils
  ca-certificates curl
)

case "${1:-}" in
  "") packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  --build) packages=("${build_packages[@]}") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# policy-rc.d keeps package scripts from starting daemons (containerd, docker-registry) on the
# machine: tests start their own instances on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
