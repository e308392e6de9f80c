#!/usr/bin/env bash
# Measures `stowctl pull` against `skopeo copy docker://… oci:…` and `stowctl save` (docker-archive
# and oci-archive) against `podman save`, side by side in one run on one fixture (DESIGN.md §7):
# an image of 4 random 64 MiB gzip layers pushed to a local docker-registry on a free port.
# Prints median wall times, peer/stowage ratios (>1: Stowage is faster) and the targets. It is a
# measurement, not a test: it exits 0 whatever the ratios; non-zero only when it cannot measure.
#
#   bench/pull_save_bench.sh [STOWCTL]        (default: build/bin/stowctl)
#   BENCH_REPS=5 BENCH_LAYERS=4 BENCH_LAYER_MIB=64 bench/pull_save_bench.sh
#
# Needs root for the podman rows (hermetic podman: `unshare -m`, a tmpfs over
# /etc/containers/registries.conf.d, its own --root/--runroot, vfs storage); without root those
# rows are skipped. Needs docker-registry, skopeo, podman, curl, gzip, tar, sha256sum and GNU time.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
stowctl=${1:-$repo/build/bin/stowctl}
reps=${BENCH_REPS:-5}
layers=${BENCH_LAYERS:-4}
layer_mib=${BENCH_LAYER_MIB:-64}

die() {
  echo "pull_save_bench: $*" >&2
  exit 2
}

[[ -x $stowctl ]] || die "$stowctl is not an executable (build it: ninja -C build stowctl)"
stowctl=$(cd "$(dirname "$stowctl")" && pwd)/$(basename "$stowctl")
for tool in docker-registry skopeo curl gzip tar sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (Debian package time) is not installed"
with_podman=1
if [[ $(id -u) -ne 0 ]]; then
  echo "pull_save_bench: not root: podman save rows skipped (podman here needs root for" \
    "unshare -m, the tmpfs mount and its storage)" >&2
  with_podman=0
elif ! command -v podman >/dev/null || ! command -v unshare >/dev/null; then
  echo "pull_save_bench: podman or unshare not installed: podman save rows skipped" >&2
  with_podman=0
elif [[ ! -d /etc/containers/registries.conf.d ]]; then
  echo "pull_save_bench: /etc/containers/registries.conf.d is missing: podman save rows skipped" >&2
  with_podman=0
fi

work=$(mktemp -d -t stowage-bench.XXXXXX)
registry_pid=
cleanup() {
  if [[ -n $registry_pid ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"/{home,tmp,runtime,src,times,out}
# Every tool sees only this run's configuration.
export HOME=$work/home TMPDIR=$work/tmp XDG_RUNTIME_DIR=$work/runtime
export REGISTRY_AUTH_FILE=$work/auth.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE"
: >"$CONTAINERS_REGISTRIES_CONF"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

log=$work/commands.log
# Runs a command, its output to the log; on failure shows the log's tail and stops.
quiet() {
  if ! "$@" >>"$log" 2>&1; then
    echo "pull_save_bench: failed: $*" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

# ---- the image: an OCI layout written by hand -------------------------------------------------

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

layout=$work/layout
mkdir -p "$layout/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

# Moves a file into the layout's blobs; prints "sha256:<hex> <size>".
add_blob() {
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# One layer: four random files in a deterministic tar, gzip -n (random bytes stay stored blocks).
make_layer() {
  local k=$1 dir=$work/src/layer$k
  mkdir -p "$dir/data$k"
  for f in 1 2 3 4; do
    head -c "$((layer_mib * 1024 * 1024 / 4))" /dev/urandom >"$dir/data$k/blob$f.bin"
  done
  echo "layer $k" >"$dir/data$k/README"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$dir.tar" "data$k"
  rm -rf "$dir"
  sha256sum "$dir.tar" | cut -d' ' -f1 >"$dir.diffid"
  gzip -n -1 "$dir.tar"
}

echo "building a ${layers}-layer image of $((layers * layer_mib)) MiB (random content, gzip)" >&2
pids=()
for ((k = 1; k <= layers; k++)); do
  make_layer "$k" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "making a layer failed"; done

diff_ids=()
layer_descs=()
for ((k = 1; k <= layers; k++)); do
  diff_ids+=("\"sha256:$(cat "$work/src/layer$k.diffid")\"")
  read -r digest size < <(add_blob "$work/src/layer$k.tar.gz")
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$digest\",\"size\":$size}")
done
join() {
  local IFS=,
  echo "$*"
}
printf '{"created":"1970-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$arch" "$(join "${diff_ids[@]}")" >"$work/src/config.json"
read -r config_digest config_size < <(add_blob "$work/src/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
  "$config_digest" "$config_size" "$(join "${layer_descs[@]}")" >"$work/src/manifest.json"
read -r manifest_digest manifest_size < <(add_blob "$work/src/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
  "$manifest_digest" "$manifest_size" >"$layout/index.json"

# ---- the registry -----------------------------------------------------------------------------

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 40000))
  fi
}

mkdir -p "$work/registry"
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: "$work/registry"
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: stowage-bench-not-a-secret
health:
  storagedriver:
    enabled: false
EOF
  # docker-registry reads REGISTRY_* variables as configuration.
  env -u REGISTRY_AUTH_FILE docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    if curl -fs --noproxy '*' -o /dev/null "http://127.0.0.1:$port/v2/"; then break 2; fi
    kill -0 "$registry_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$registry_pid" 2>/dev/null || true
  wait "$registry_pid" 2>/dev/null || true
  registry_pid=
  grep -q 'address already in use' "$work/registry.log" || break
done
[[ -n $registry_pid ]] || { cat "$work/registry.log" >&2; die "docker-registry did not start"; }

host=127.0.0.1:$port
image=$host/bench/img:v1
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$host" >"$CONTAINERS_REGISTRIES_CONF"
quiet skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:v1" "docker://$image"
rm -rf "$layout"

podman_dir=$work/podman
# Paths arrive as $1..$3, never inside the script.
podman_cmd=(unshare -m sh -c 'mount -t tmpfs none /etc/containers/registries.conf.d &&
  r=$1 rr=$2 t=$3 && shift 3 && exec podman --root "$r" --runroot "$rr" --tmpdir "$t" \
  --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"'
  sh "$podman_dir/root" "$podman_dir/runroot" "$podman_dir/tmp")

# The stores saved from: one stowctl pull, one podman pull, made before any timing.
store=$work/store
quiet "$stowctl" --root "$store" --registries-conf "$CONTAINERS_REGISTRIES_CONF" pull -q "$image"
if ((with_podman)); then
  mkdir -p "$podman_dir/tmp"
  quiet "${podman_cmd[@]}" pull -q --tls-verify=false "$image"
fi

# ---- timing -----------------------------------------------------------------------------------

# Runs one timed command (after `sync`, so that no run pays for the previous run's writeback);
# appends its wall time (ms) and max RSS (KiB) to times/<key>.
timed() {
  local key=$1
  shift
  sync
  local t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -o "$work/rss" -f %M "$@" >>"$log" 2>&1; then
    echo "pull_save_bench: failed: $*" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  echo "$(((t1 - t0) / 1000000)) $(tail -n 1 "$work/rss")" >>"$work/times/$key"
}

run_pull_stowage() {
  timed pull.stowage "$stowctl" --root "$work/out/store-$1" \
    --registries-conf "$CONTAINERS_REGISTRIES_CONF" pull -q "$image"
}
run_pull_peer() {
  timed pull.peer skopeo --insecure-policy copy --quiet --src-tls-verify=false \
    "docker://$image" "oci:$work/out/skopeo-$1:v1"
}
run_save_stowage() {  # rep, format
  timed "save-$2.stowage" "$stowctl" --root "$store" save --format "$2" -o "$work/out/s-$1.tar" \
    "$image"
}
run_save_peer() {
  timed "save-$2.peer" "${podman_cmd[@]}" save --format "$2" -o "$work/out/p-$1.tar" "$image"
}
run_copy_blobs() {
  timed copy.blobs sh -c 'cat "$1"/blobs/sha256/* >"$2"' sh "$store" "$work/out/copy-$1"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before timing: $load_before" >&2
for ((i = 1; i <= reps; i++)); do
  echo "repetition $i/$reps" >&2
  # Odd repetitions run Stowage first, even ones the peer.
  if ((i % 2)); then order=(stowage peer); else order=(peer stowage); fi
  for who in "${order[@]}"; do "run_pull_$who" "$i"; done
  rm -rf "$work"/out/*
  for format in docker-archive oci-archive; do
    for who in "${order[@]}"; do
      [[ $who == peer && $with_podman -eq 0 ]] && continue
      "run_save_$who" "$i" "$format"
    done
    rm -rf "$work"/out/*
  done
  run_copy_blobs "$i"
  rm -rf "$work"/out/*
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -----------------------------------------------------------------------------------

median() {  # key, column (1: ms, 2: KiB)
  [[ -s $work/times/$1 ]] || return 0
  cut -d' ' -f"$2" "$work/times/$1" | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
secs() { [[ -n $1 ]] && awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }' || echo "n/a"; }
mib() { [[ -n $1 ]] && awk -v k="$1" 'BEGIN { printf "%d MiB", k / 1024 }' || echo "n/a"; }
ratio() {
  [[ -n $1 && -n $2 ]] && awk -v s="$1" -v p="$2" 'BEGIN { printf "%.2fx", p / s }' || echo "n/a"
}

echo
echo "stowctl pull/save vs skopeo/podman: ${layers} gzip layers of ${layer_mib} MiB random data," \
  "median of $reps cold runs, $(nproc) CPUs"
echo "load average (1/5/15 min): before $load_before, after $load_after"
printf '%-22s %9s %9s %7s %9s %9s  %s\n' operation stowage peer ratio "RSS stow" "RSS peer" \
  "target: ratio >= (peer command)"
row() {  # label, key, target
  local s p
  s=$(median "$2.stowage" 1)
  p=$(median "$2.peer" 1)
  printf '%-22s %9s %9s %7s %9s %9s  %s\n' "$1" "$(secs "$s")" "$(secs "$p")" "$(ratio "$s" "$p")" \
    "$(mib "$(median "$2.stowage" 2)")" "$(mib "$(median "$2.peer" 2)")" "$3"
}
row "pull" pull "1.50x (skopeo copy docker://… oci:…)"
row "save docker-archive" save-docker-archive "1.50x (podman save)"
row "save oci-archive" save-oci-archive "1.50x (podman save --format oci-archive)"
echo "reference: cat of the store's blobs into one file: $(secs "$(median copy.blobs 1)")"
echo "docker-archive: uncompressed layers on both sides (stowctl inflates its gzip blobs and checks"
echo "their diffIDs; podman reassembles them from its unpacked storage). oci-archive: gzip layers on"
echo "both sides (stowctl copies its blobs as stored; podman compresses its storage's layers again)."
echo "Samples (ms, in run order):"
for key in pull.stowage pull.peer save-docker-archive.stowage save-docker-archive.peer \
  save-oci-archive.stowage save-oci-archive.peer copy.blobs; do
  [[ -s $work/times/$key ]] && echo "  $key: $(cut -d' ' -f1 "$work/times/$key" | tr '\n' ' ')"
done
exit 0
