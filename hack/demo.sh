#!/usr/bin/env bash
# `make demo`: shows what Stowage does today. The operator and the agent do not exist yet, so this
# demonstrates the registries engine they will use: it renders the sample RegistryConfigs for two
# kinds of node, in every output format, and has real podman read each rendered file.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building stowctl"
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target stowctl -j "$(nproc)" | grep -Ev '^\[[0-9]+/[0-9]+\] ' || true
stowctl=build/bin/stowctl
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
samples=(-f manifests/samples/registryconfig-classic.yaml -f manifests/samples/registryconfig-mirrors.yaml)

step "validating the samples (manifests/samples/)"
for f in manifests/samples/registryconfig-*.yaml; do "$stowctl" registries validate "$f"; done

step "a worker node (node-role.kubernetes.io/worker=): both RegistryConfigs merge, corp-mirrors (priority 10) wins"
"$stowctl" registries render "${samples[@]}" --node-labels node-role.kubernetes.io/worker= -o "$out/worker.conf"
cat "$out/worker.conf"

step "a control-plane node: only 'classic' matches"
"$stowctl" registries render "${samples[@]}" --node-labels node-role.kubernetes.io/control-plane= -o "$out/cp.conf"
cat "$out/cp.conf"

step "the same for an old host, in the legacy v1 format"
"$stowctl" registries render -f manifests/samples/registryconfig-classic.yaml --format v1 -o "$out/v1.conf"
cat "$out/v1.conf"

step "containerd nodes: certs.d/<host>/hosts.toml, and what containerd cannot express"
"$stowctl" registries render "${samples[@]}" --node-labels node-role.kubernetes.io/worker= --format containerd -o "$out/certs.d"
find "$out/certs.d" -name hosts.toml | sort | sed "s|$out/||"

step "podman reads each rendered file (hermetic: its own mount namespace, vfs storage)"
for f in worker.conf cp.conf v1.conf; do
  printf '%-12s podman sees:' "$f"
  unshare -m sh -c "mount -t tmpfs none /etc/containers/registries.conf.d &&
    CONTAINERS_REGISTRIES_CONF='$out/$f' podman --root '$out/podman' --runroot '$out/run' \
      --storage-driver vfs info --format '{{range \$k, \$v := .Registries}} {{\$k}}{{end}}'"
done

step "an invalid file is refused with the error podman would print"
printf '[[registry]]\nlocation = "https://quay.io"\n' >"$out/bad.conf"
"$stowctl" registries validate "$out/bad.conf" || true

printf '\nDone. The operator, the node agent and the image commands are not built yet;\n'
printf 'docs/registries.md describes what is here now.\n'
