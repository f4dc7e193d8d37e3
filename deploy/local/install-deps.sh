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
