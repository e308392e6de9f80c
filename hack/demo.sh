#!/usr/bin/env bash
# `make demo`: the whole system on this machine. Builds what it needs, starts etcd +
# kube-apiserver + kube-controller-manager, a local registry seeded with sample images made here,
# two simulated nodes (each a containerd and a stowage-agent with its own host root) and
# stowage-operator — each component under its own ServiceAccount with the shipped RBAC — applies
# manifests/samples/, and shows what each node received. The system keeps running afterwards;
# `make demo-down` (hack/demo.sh down) stops it and removes its files.
#   STOWAGE_DEMO_DIR   where the demo keeps its files (default: .demo in the source tree)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=${STOWAGE_DEMO_DIR:-$root/.demo}
build=${BUILD:-build}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

down() {
  if [ -f "$demo/sandbox.pid" ]; then
    local pid
    pid=$(cat "$demo/sandbox.pid")
    if kill -0 "$pid" 2>/dev/null; then
      note "stopping the demo (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$demo"
}

if [ "${1:-}" = down ]; then
  down
  note "demo stopped and removed"
  exit 0
fi
if [ -f "$demo/sandbox.pid" ] && kill -0 "$(cat "$demo/sandbox.pid")" 2>/dev/null; then
  step "a demo is already running; stopping it first"
  down
fi
rm -rf "$demo"
mkdir -p "$demo"

step "1/6 upstream Kubernetes binaries (built once from the Go module proxy, then cached; the first time takes 10-25 minutes)"
bin=$(bash hack/envtest.sh | tail -n1)
kubectl() { "$bin/kubectl" "$@"; }

step "2/6 building stowage-operator, stowage-agent, stowctl and the demo launcher"
cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc)" \
  --target stowage-operator stowage-agent stowctl stowage-sandbox |
  awk '/^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 25 == 1) { sub(/ .*/, "", $0); printf "   compiled %s\n", $0 } } /error/ { print }'

# node-1 is a GPU node (the sample ImageCache selects it); node-2 a worker (the corp-mirrors
# RegistryConfig selects it, with mirrors that exist only on paper: containerd applies registry
# settings per host, so on node-2 they would shadow the demo's mirror for quay.io).
step "3/6 starting the system (control plane, registry, node-1 (GPU) and node-2 (worker), operator)"
nohup "$build/bin/stowage-sandbox" --work-dir "$demo" \
  --node "node-1:nvidia.com/gpu.present=true" \
  --node "node-2:node-role.kubernetes.io/worker=" \
  --seed nginx/nginx:1.25 --seed ubi9/ubi-minimal:9.4 --seed library/busybox:1.36 \
  --agent-arg=--prune-min-age=10s >"$demo/sandbox.log" 2>&1 &
echo $! >"$demo/sandbox.pid"
shown=0
for _ in $(seq 1 600); do
  lines=$(wc -l <"$demo/sandbox.log")
  if [ "$lines" -gt "$shown" ]; then sed -n "$((shown + 1)),${lines}p" "$demo/sandbox.log"; shown=$lines; fi
  [ -e "$demo/ready" ] && break
  if ! kill -0 "$(cat "$demo/sandbox.pid")" 2>/dev/null; then
    echo "the demo launcher stopped; its log:" >&2
    cat "$demo/sandbox.log" >&2
    exit 1
  fi
  sleep 0.5
done
[ -e "$demo/ready" ] || { echo "the system did not start in 5 minutes; see $demo" >&2; exit 1; }
# shellcheck disable=SC1091
source "$demo/sandbox.env"
export KUBECONFIG

step "4/6 applying manifests/samples/ (plus a pull secret and a RegistryConfig that mirrors the samples' registries to the local one)"
kubectl create secret docker-registry corp-pull -n default --docker-server="$REGISTRY" \
  --docker-username=demo --docker-password=demo >/dev/null
kubectl apply -f manifests/samples/
kubectl apply -f - <<EOF
# The samples name quay.io, registry.access.redhat.com and docker.io; here they are served by the
# local registry ($REGISTRY), as an internal mirror would serve them on an air-gapped site.
apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata:
  name: demo-local-mirror
spec:
  priority: 20
  insecureRegistries: ["$REGISTRY"]
  registries:
    - {prefix: quay.io/nginx, location: quay.io/nginx, mirrors: [{location: "$REGISTRY/nginx", insecure: true}]}
    - {prefix: registry.access.redhat.com/ubi9, location: registry.access.redhat.com/ubi9, mirrors: [{location: "$REGISTRY/ubi9", insecure: true}]}
    - {prefix: docker.io/library, location: docker.io/library, mirrors: [{location: "$REGISTRY/library", insecure: true}]}
EOF

step "5/6 waiting for the ImageCache to be Ready on its nodes"
for i in $(seq 1 180); do
  ready=$(kubectl get imagecache base-images -n default \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$ready" = True ] && break
  if [ $((i % 10)) -eq 0 ]; then kubectl get imagecache base-images -n default --no-headers | sed 's/^/   /'; fi
  sleep 1
done
[ "$ready" = True ] || note "not Ready after 3 minutes; the statuses below say why"

step "6/6 what the system did"
for i in $(seq 0 $((NODES - 1))); do
  name_var=NODE_${i}_NAME root_var=NODE_${i}_ROOT sock_var=NODE_${i}_CONTAINERD exp_var=NODE_${i}_EXPORTS
  name=${!name_var} host=${!root_var} sock=${!sock_var} exports=${!exp_var}
  printf '\n\033[1m-- %s\033[0m\n' "$name"
  echo "registries drop-in (/etc/containers/registries.conf.d/99-stowage.conf):"
  grep -v '^#' "$host/etc/containers/registries.conf.d/99-stowage.conf" | grep -v '^$' | head -n 20 | sed 's/^/   /'
  echo "containerd hosts.toml files (/etc/containerd/certs.d):"
  (cd "$host/etc/containerd/certs.d" 2>/dev/null && find . -name hosts.toml | sort | sed 's/^/   /') || true
  echo "images in the node's runtime (ctr -n k8s.io images ls):"
  ctr -a "$sock" -n k8s.io images ls 2>/dev/null | awk 'NR == 1 || ($1 !~ /^sha256:/ && $1 !~ /@sha256:/) { printf "   %-52s %s\n", $1, $3 }'
  for tar in "$exports"/*.tar; do
    [ -e "$tar" ] || continue
    echo "export $(basename "$tar"): $(du -h "$tar" | cut -f1), sha256 $(sha256sum "$tar" | cut -c1-16)..."
    podroot=$(mktemp -d "$demo/podman.XXXXXX")
    if podman --root "$podroot/root" --runroot "$podroot/run" --storage-driver vfs \
      load -i "$tar" 2>&1 | grep -E '^Loaded image' | sed 's/^/   podman load: /'; then :; fi
  done
done
printf '\n\033[1m-- kubectl get registryconfigs,imagecaches,nodecaches\033[0m\n'
kubectl get registryconfigs
echo
kubectl get imagecaches -A
echo
kubectl get nodecaches

cat <<EOF

The system keeps running. Try:
  export KUBECONFIG=$KUBECONFIG
  $bin/kubectl get nodecache node-1 -o yaml
  $bin/kubectl label node node-2 nvidia.com/gpu.present=true     # node-2 joins the ImageCache
Logs: $demo/*.log. Stop it with: make demo-down
EOF
