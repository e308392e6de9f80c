#!/usr/bin/env bash
# Builds the upstream binaries that Stowage's integration tests run (kube-apiserver, kube-controller-manager,
# kubectl, etcd, helm, ignition-validate) from the Go module proxy into a per-version cache folder.
# Idempotent: when everything is built it only prints the bin directory (the last line of stdout).
set -euo pipefail

# ---- pinned versions: change them here and nowhere else ------------------------------------------
KUBERNETES_VERSION=v1.36.3 # k8s.io/kubernetes; its k8s.io/* staging modules are used at v0.36.3
ETCD_VERSION=v3.6.8        # go.etcd.io/etcd/server/v3: the etcd that Kubernetes v1.36 pins in go.mod
HELM_VERSION=v3.22.0       # helm.sh/helm/v3 (cmd/helm)
IGNITION_VERSION=v2.24.0   # github.com/coreos/ignition/v2 (validate command)
GO_MIN_VERSION=1.26.0      # the go directive of k8s.io/kubernetes and helm at the versions above
# ---------------------------------------------------------------------------------------------------

VERSIONS_TAG="k8s-${KUBERNETES_VERSION#v}_etcd-${ETCD_VERSION#v}_helm-${HELM_VERSION#v}_ignition-${IGNITION_VERSION#v}"
ENVTEST_DIR=${STOWAGE_ENVTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stowage/envtest/$VERSIONS_TAG}
BIN_DIR=$ENVTEST_DIR/bin
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm ignition-validate)

usage() {
  cat <<EOF
Usage: hack/envtest.sh [--print-dir] [--help]

Builds these binaries from the Go module proxy (once; later runs only print the location):
  kube-apiserver, kube-controller-manager, kubectl  k8s.io/kubernetes $KUBERNETES_VERSION
  etcd                                              go.etcd.io/etcd/server/v3 $ETCD_VERSION
  helm                                              helm.sh/helm/v3 $HELM_VERSION
  ignition-validate                                 github.com/coreos/ignition/v2 $IGNITION_VERSION
into
  $BIN_DIR
and prints that directory on the last line of stdout:  bin=\$(hack/envtest.sh | tail -n1)
Progress and build output go to stderr.

Options:
  --print-dir  print the bin directory without building anything
  --help       show this text

Environment:
  STOWAGE_ENVTEST_DIR  folder to use instead of \${XDG_CACHE_HOME:-\$HOME/.cache}/stowage/envtest/<versions>
  GO                   the go command to use (default: go from PATH, else \$GOROOT/bin/go); needs
                       go >= $GO_MIN_VERSION
  STOWAGE_ENVTEST_KEEP_GO_CACHE=1  keep the Go module and build caches (under the folder) after a
                       complete build; by default they are deleted then, leaving only bin/
  GOPROXY              used as configured; module downloads and the build cache stay under the folder
EOF
}

log() { echo "envtest: $*" >&2; }
die() {
  echo "envtest: error: $*" >&2
  exit 1
}

all_built() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "$BIN_DIR/$b" ]] || return 1
  done
}

case "${1:-}" in
  "") ;;
  --print-dir)
    echo "$BIN_DIR"
    exit 0
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

# Fast path: nothing to build, no go needed.
if all_built; then
  echo "$BIN_DIR"
  exit 0
fi

# ---- toolchain check ------------------------------------------------------------------------------
GO=${GO:-$(command -v go || true)}
if [[ -z "$GO" && -n "${GOROOT:-}" && -x "$GOROOT/bin/go" ]]; then
  GO=$GOROOT/bin/go
fi
if [[ -z "$GO" ]]; then
  die "the go command was not found on PATH (nor GO or GOROOT set). Kubernetes $KUBERNETES_VERSION needs go >= $GO_MIN_VERSION: install it and put it on PATH, or set GO=/path/to/go."
fi
command -v "$GO" >/dev/null 2>&1 || die "GO=$GO is not a command. Kubernetes $KUBERNETES_VERSION needs go >= $GO_MIN_VERSION."
go_version=$(GOTOOLCHAIN=local "$GO" env GOVERSION 2>/dev/null) || die "'$GO env GOVERSION' failed: is $GO a working go command?"
go_version=${go_version#go}
go_version=${go_version%%[ -]*}
if [[ "$go_version" =~ ^[0-9]+\.[0-9]+$ ]]; then go_version=$go_version.0; fi
oldest=$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -n1)
if [[ ! "$go_version" =~ ^[0-9]+\.[0-9]+ ]] || [[ "$oldest" != "$GO_MIN_VERSION" ]]; then
  die "$GO is go $go_version, but Kubernetes $KUBERNETES_VERSION needs go >= $GO_MIN_VERSION (toolchain downloads are off: GOTOOLCHAIN=local). Install a newer Go, or set GO=/path/to/go."
fi

# ---- isolated Go environment under the cache folder -----------------------------------------------
mkdir -p "$BIN_DIR" "$ENVTEST_DIR/work"
export GOPATH=$ENVTEST_DIR/go
export GOMODCACHE=$GOPATH/pkg/mod
export GOCACHE=$ENVTEST_DIR/go-build
# -modcacherw keeps the module cache deletable with plain rm -rf.
export GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
export GOTOOLCHAIN=local
export GOWORK=off
export CGO_ENABLED=0
unset GOOS GOARCH GOBIN GOEXPERIMENT

# One build at a time per folder; a second caller waits, then finds the binaries built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ENVTEST_DIR/.lock"
  if ! flock -n 9; then
    log "another build is running in $ENVTEST_DIR; waiting for it"
    flock 9
  fi
  if all_built; then
    echo "$BIN_DIR"
    exit 0
  fi
fi

# Leftovers of runs that were killed or failed: nobody else builds here while the lock is held.
rm -rf "$ENVTEST_DIR"/work/build.* "$BIN_DIR"/.*.tmp.*
WORK=$(mktemp -d "$ENVTEST_DIR/work/build.XXXXXX")
cleanup() {
  local rc=$?
  rm -f "$BIN_DIR"/.*.tmp.$$
  if ((rc == 0)); then
    rm -rf "$WORK"
  else
    log "failed; build logs kept in $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run DIR CMD...: runs CMD in DIR with its output appended to DIR/build.log; on failure shows its end.
run() {
  local dir=$1
  shift
  if ! (cd "$dir" && "$@") >>"$dir/build.log" 2>&1; then
    log "command failed in $dir: $*"
    tail -n 40 "$dir/build.log" | sed 's/^/    /' >&2
    exit 1
  fi
}

# new_module NAME: creates an empty throw-away module and prints its folder.
new_module() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  run "$dir" "$GO" mod init "envtest.invalid/$1"
  echo "$dir"
}

# build_binary MODULE_DIR NAME PACKAGE VERSION LDFLAGS: builds PACKAGE to $BIN_DIR/NAME via a temp name.
build_binary() {
  local dir=$1 name=$2 pkg=$3 version=$4 ldflags=$5
  local tmp=$BIN_DIR/.$name.tmp.$$
  if [[ -x "$BIN_DIR/$name" ]]; then
    log "$name $version already built"
    return
  fi
  log "building $name $version ..."
  local start=$SECONDS
  run "$dir" "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg"
  mv -f "$tmp" "$BIN_DIR/$name"
  log "built $name in $((SECONDS - start))s"
}

missing() {
  local b
  for b in "$@"; do
    [[ -x "$BIN_DIR/$b" ]] || return 0
  done
  return 1
}

# ---- etcd -----------------------------------------------------------------------------------------
if missing etcd; then
  log "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION ..."
  dir=$(new_module etcd)
  # server/go.mod replaces its sibling modules with ../ paths; a dependency's replaces are ignored, so
  # they resolve to the published modules that server/go.mod requires at the same version.
  run "$dir" "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  build_binary "$dir" etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ""
fi

# ---- kube-apiserver, kube-controller-manager, kubectl ---------------------------------------------
if missing kube-apiserver kube-controller-manager kubectl; then
  log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION and its staging modules ..."
  dir=$(new_module kubernetes)
  staging_version=v0.${KUBERNETES_VERSION#v1.}
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging/src/...;
  # the consuming module must replace each with the published v0.x.y. The list comes from the go.mod
  # that the module proxy serves for this exact version.
  run "$dir" "$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION"
  kube_gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' "$dir/build.log" | tail -n1)
  [[ -f "$kube_gomod" ]] || die "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION (see $dir/build.log)"
  kube_go=$(awk '$1 == "go" { print $2; exit }' "$kube_gomod")
  if [[ -n "$kube_go" && "$(printf '%s\n%s\n' "$kube_go" "$go_version" | sort -V | head -n1)" != "$kube_go" ]]; then
    die "k8s.io/kubernetes@$KUBERNETES_VERSION needs go >= $kube_go, found go $go_version: raise GO_MIN_VERSION and install a newer Go"
  fi
  mapfile -t staging < <(awk '
    /=> \.\/staging\/src\// { replaced[$1] = 1; next }
    $1 ~ /^k8s\.io\// && $2 == "v0.0.0" { required[$1] = 1 }
    END { for (m in replaced) if (m in required) print m }' "$kube_gomod" | sort)
  ((${#staging[@]} > 0)) || die "found no staging modules in $kube_gomod"
  edits=("-require=k8s.io/kubernetes@$KUBERNETES_VERSION")
  for m in "${staging[@]}"; do
    edits+=("-replace=$m=$m@$staging_version")
  done
  run "$dir" "$GO" mod edit "${edits[@]}"
  log "replaced ${#staging[@]} k8s.io staging modules with $staging_version"
  run "$dir" "$GO" get \
    "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@$KUBERNETES_VERSION"
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  kube_ldflags=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    kube_ldflags+=" -X $p.gitTreeState=clean"
  done
  for b in kube-apiserver kube-controller-manager kubectl; do
    build_binary "$dir" "$b" "k8s.io/kubernetes/cmd/$b" "$KUBERNETES_VERSION" "$kube_ldflags"
  done
fi

# ---- helm -----------------------------------------------------------------------------------------
if missing helm; then
  log "resolving helm.sh/helm/v3@$HELM_VERSION ..."
  dir=$(new_module helm)
  run "$dir" "$GO" get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # Helm's Makefile derives the default Kubernetes version it reports from its client-go version.
  client_go=$(cd "$dir" && "$GO" list -m -f '{{.Version}}' k8s.io/client-go)
  client_go=${client_go#v0.}
  helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  helm_ldflags+=" -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${client_go%%.*}"
  done
  build_binary "$dir" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags"
fi

# ---- ignition-validate ----------------------------------------------------------------------------
if missing ignition-validate; then
  log "resolving github.com/coreos/ignition/v2@$IGNITION_VERSION ..."
  dir=$(new_module ignition)
  run "$dir" "$GO" get "github.com/coreos/ignition/v2/validate@$IGNITION_VERSION"
  build_binary "$dir" ignition-validate github.com/coreos/ignition/v2/validate "$IGNITION_VERSION" \
    "-X github.com/coreos/ignition/v2/internal/version.Raw=$IGNITION_VERSION"
fi

all_built || die "some binaries are missing in $BIN_DIR"
log "all binaries built: ${BINARIES[*]}"
# The module and build caches (about 5 GB) only serve this build; keep them on request.
if [[ "${STOWAGE_ENVTEST_KEEP_GO_CACHE:-0}" != 1 ]]; then
  rm -rf "$GOPATH" "$GOCACHE" "$ENVTEST_DIR/work"
fi
echo "$BIN_DIR"
