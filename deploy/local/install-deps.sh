#!/usr/bin/env bash
# Installs the Debian packages Capstan's build, tests and local cluster need.
# Idempotent: does nothing (not even `apt-get update`) when all are present.
set -euo pipefail

PACKAGES=(
  etcd-server etcd-client          # the cluster store (lab and local cluster)
  containerd runc                  # the container runtime the kubelet drives
  iproute2 iputils-ping nftables   # lab namespaces, reachability checks, proxy/masquerade
  conntrack                        # the proxy clears stale UDP conntrack entries
  busybox-static                   # the lab's test image
  protobuf-compiler                # etcd-client and containerd-client build their gRPC stubs
  libprotobuf-dev                  # ... importing google/protobuf/*.proto, which protoc alone lacks
  containernetworking-plugins      # reference CNI plugins (chaining tests, CNI benchmark anchor)
  docker-registry skopeo           # image pull tests: a registry inside a lab node, pushed to with skopeo
  curl ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The package enables a registry on the host's :5000; the lab starts its
  # own inside node namespaces and needs none on the host.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

# kubectl: some machines already carry a newer one from another package, and
# Debian's kubernetes-client would then conflict on /usr/bin/kubectl.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: installing kubernetes-client (kubectl)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client; }
fi

# kubectl 1.20 (Debian's kubernetes-client) unpacked beside whatever kubectl
# the machine has: the kubectl e2e suite runs the oldest client we support
# (protobuf OpenAPI v2, no aggregated discovery) as well as the PATH one.
# `dpkg -x` into a private directory never conflicts with /usr/bin/kubectl.
KUBECTL_120_DIR=/opt/capstan/kubectl-1.20
if [ ! -x "$KUBECTL_120_DIR/usr/bin/kubectl" ]; then
  echo "install-deps: unpacking kubernetes-client (kubectl 1.20) into $KUBECTL_120_DIR" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # `apt-get download` fetches as the _apt user when it may write there.
  chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && { apt-get download kubernetes-client || { apt-get update -q && apt-get download kubernetes-client; }; })
  mkdir -p "$KUBECTL_120_DIR"
  dpkg -x "$tmp"/kubernetes-client_*.deb "$KUBECTL_120_DIR"
  rm -rf "$tmp"
  trap - EXIT
fi
