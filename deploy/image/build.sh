#!/usr/bin/env bash
# Builds the Capstan image, capstan.local/capstan:<crate version>, as an OCI
# image archive without a container daemon or registry, reproducibly: two
# builds of one commit on one machine give the same bytes and digest.
#
# usage: deploy/image/build.sh [--out FILE] [--debug] [--import SOCKET [--namespace NS]]
#   --out FILE       where the archive goes
#                    [default: $CARGO_TARGET_DIR/image/capstan-<version>.oci.tar]
#   --debug          package the debug build (faster to build; larger image)
#   --import SOCKET  then load it into the containerd at SOCKET, as
#                    `ctr -a SOCKET -n NS images import --index-name IMAGE ARCHIVE`
#   --namespace NS   containerd namespace for --import [default: k8s.io]
# Prints the archive's path, then the image's manifest digest (sha256:...).
#
# What is inside (one layer, merged /usr like Debian):
#   /usr/bin/capstan-agent    static (glibc, +crt-static), stripped
#   /opt/capstan/cni/capstan  the CNI plugin, static, stripped; the init
#                             container installs it into the host's /opt/cni/bin
#   /usr/sbin/nft, /usr/sbin/conntrack and their shared libraries and loader,
#   copied from this machine: the proxy and the overlay's masquerade run
#   `nft`, the proxy runs `conntrack` to clear stale UDP flows.
#   /etc/protocols, /etc/services (nft prints and parses names from them)
# The image has no shell. Entrypoint: /usr/bin/capstan-agent.
#
# Reproducible because: cargo's build is (same toolchain, same paths);
# tar gets sorted names, mtime 0, owner 0:0, fixed modes; gzip -n drops the
# name and time; the JSON documents are written here with fixed key order
# and no timestamps.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
die() { echo "build.sh: $*" >&2; exit 1; }

OUT="" PROFILE=release SOCKET="" NAMESPACE=k8s.io
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --debug) PROFILE=debug; shift ;;
    --import) [ $# -ge 2 ] || die "--import needs a containerd socket"; SOCKET=$2; shift 2 ;;
    --import=*) SOCKET=${1#--import=}; shift ;;
    --namespace) [ $# -ge 2 ] || die "--namespace needs a name"; NAMESPACE=$2; shift 2 ;;
    --namespace=*) NAMESPACE=${1#--namespace=}; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for tool in cargo rustc tar gzip sha256sum strip ldd readelf; do
  command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
[ -z "$SOCKET" ] || command -v ctr >/dev/null || die "--import needs ctr (Debian containerd)"
[ -z "$SOCKET" ] || [ -S "$SOCKET" ] || die "--import $SOCKET: not a socket (is containerd running?)"

# A caller inside `cargo test` passes its own package's CARGO_PKG_* and
# CARGO_MANIFEST_* variables; build scripts (ring's) track some of them, so
# every build from a test would rebuild half the tree.
for v in $(compgen -e | grep -E '^CARGO_(PKG_|MANIFEST_|CRATE_|BIN_|PRIMARY_|TARGET_TMPDIR)' || true); do
  unset "$v"
done
cd "$ROOT"
VERSION=$(cargo pkgid -p capstan-agent 2>/dev/null | sed -n 's/.*[@#]\([0-9][^@#]*\)$/\1/p')
[ -n "$VERSION" ] || die "cannot read capstan-agent's version (cargo pkgid -p capstan-agent)"
IMAGE="capstan.local/capstan:$VERSION"
HOST=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$HOST" ] || die "cannot read the host triple from rustc -vV"
case "${HOST%%-*}" in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  *) die "no OCI architecture name for $HOST" ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/image/capstan-$VERSION.oci.tar}

# The same command as deploy/cni/build-static.sh for the plugin (so one
# build serves both): the explicit --target keeps +crt-static off build
# scripts and proc-macros. A build cargo already did is reused as is.
flags=()
[ "$PROFILE" = release ] && flags+=(--release)
echo "build.sh: building capstan-agent and capstan-cni ($PROFILE, static) for $HOST" >&2
cargo build "${flags[@]}" --quiet -p capstan-agent -p capstan-cni --target "$HOST" \
  --config "target.$HOST.rustflags=[\"-C\",\"target-feature=+crt-static\"]" >&2
BIN="$TARGET_DIR/$HOST/$PROFILE"
for b in capstan-agent capstan-cni; do
  [ -x "$BIN/$b" ] || die "$BIN/$b was not built"
  # A static binary has no program interpreter; one with an interpreter
  # would need the loader and libc at their host paths inside the image.
  ! readelf -l "$BIN/$b" | grep -q 'Requesting program interpreter' \
    || die "$BIN/$b is dynamically linked (+crt-static did not apply)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstan-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FS="$WORK/rootfs"
mkdir -p "$FS"/usr/bin "$FS"/usr/sbin "$FS"/usr/lib "$FS"/usr/lib64 "$FS"/etc \
  "$FS"/opt/capstan/cni "$FS"/run "$FS"/tmp "$FS"/proc "$FS"/sys "$FS"/dev "$FS"/var/lib
for l in bin sbin lib lib64; do ln -s "usr/$l" "$FS/$l"; done
strip --strip-debug -o "$FS/usr/bin/capstan-agent" "$BIN/capstan-agent"
strip --strip-debug -o "$FS/opt/capstan/cni/capstan" "$BIN/capstan-cni"

# A host binary and what it loads: each library lands at the path ldd names
# (under /usr, as merged /usr resolves it) as a regular file.
add_host() {
  local src=$1 dst lib real dir
  src=$(command -v "$src") || die "needs $1 on this machine for the image (deploy/local/install-deps.sh)"
  dst="$FS/usr/sbin/$(basename "$src")"
  install -m 0755 "$(readlink -f "$src")" "$dst"
  ldd "$src" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | while read -r lib; do
    real=$(readlink -f "$lib")
    dir=$(readlink -f "$(dirname "$lib")")
    mkdir -p "$FS$dir"
    [ -e "$FS$dir/$(basename "$lib")" ] || install -m 0755 "$real" "$FS$dir/$(basename "$lib")"
  done
}
add_host nft
add_host conntrack
for f in /etc/protocols /etc/services; do
  [ -f "$f" ] || die "needs $f (Debian netbase) for nft inside the image"
  install -m 0644 "$f" "$FS$f"
done

find "$FS" -type d -exec chmod 0755 {} +
chmod 1777 "$FS/tmp"
# Fixed order, times and owners: the layer's bytes depend only on content.
TARFLAGS=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)
tar "${TARFLAGS[@]}" -C "$FS" -cf "$WORK/layer.tar" .
gzip -n -6 <"$WORK/layer.tar" >"$WORK/layer.tar.gz"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
DIFF_ID=$(sha "$WORK/layer.tar")
LAYER=$(sha "$WORK/layer.tar.gz")

BLOBS="$WORK/oci/blobs/sha256"
mkdir -p "$BLOBS"
mv "$WORK/layer.tar.gz" "$BLOBS/$LAYER"
printf '%s' "{\"architecture\":\"$ARCH\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/sbin:/usr/bin:/sbin:/bin\"],\"Entrypoint\":[\"/usr/bin/capstan-agent\"],\"WorkingDir\":\"/\",\"Labels\":{\"org.opencontainers.image.title\":\"capstan\",\"org.opencontainers.image.version\":\"$VERSION\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$DIFF_ID\"]},\"history\":[{\"created_by\":\"deploy/image/build.sh\"}]}" >"$WORK/config.json"
CONFIG=$(sha "$WORK/config.json")
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$CONFIG\",\"size\":$(size "$WORK/config.json")},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$LAYER\",\"size\":$(size "$BLOBS/$LAYER")}],\"annotations\":{\"org.opencontainers.image.version\":\"$VERSION\"}}" >"$WORK/manifest.json"
MANIFEST=$(sha "$WORK/manifest.json")
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$MANIFEST\",\"size\":$(size "$WORK/manifest.json"),\"platform\":{\"architecture\":\"$ARCH\",\"os\":\"linux\"},\"annotations\":{\"org.opencontainers.image.ref.name\":\"$VERSION\"}}]}" >"$WORK/oci/index.json"
mv "$WORK/config.json" "$BLOBS/$CONFIG"
mv "$WORK/manifest.json" "$BLOBS/$MANIFEST"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$WORK/oci/oci-layout"
find "$WORK/oci" -type d -exec chmod 0755 {} +
find "$WORK/oci" -type f -exec chmod 0644 {} +

mkdir -p "$(dirname "$OUT")"
tar "${TARFLAGS[@]}" -C "$WORK/oci" -cf "$OUT.tmp$$" oci-layout index.json blobs
mv "$OUT.tmp$$" "$OUT"

if [ -n "$SOCKET" ]; then
  ctr -a "$SOCKET" -n "$NAMESPACE" images import --index-name "$IMAGE" "$OUT" >&2 \
    || die "ctr images import into $SOCKET (namespace $NAMESPACE) failed"
  echo "build.sh: imported $IMAGE into $SOCKET (namespace $NAMESPACE)" >&2
fi
echo "build.sh: $IMAGE ($(du -h "$OUT" | cut -f1))" >&2
echo "$OUT"
echo "sha256:$MANIFEST"
