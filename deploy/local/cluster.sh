#!/usr/bin/env bash
# A local multi-node Capstan cluster on one machine, in network namespaces.
#
#   deploy/local/cluster.sh up                  install what is missing, build, start
#   deploy/local/cluster.sh down                remove everything the cluster made
#   deploy/local/cluster.sh status              nodes, daemons, logs
#   deploy/local/cluster.sh kubeconfig          path of the admin kubeconfig
#   deploy/local/cluster.sh exec NODE CMD...    run CMD inside node NODE (or `lab`: outside every node)
#   deploy/local/cluster.sh restart etcd|control|agent NODE|containerd NODE
#
# NODES (default 2) sets the node count; nodes are node-1, node-2, ...
# CAPSTAN_PROFILE (default release) picks the cargo profile to build and run;
# CAPSTAN_SKIP_BUILD=1 uses the binaries already built in that profile.
# The host namespace's links, routes and firewall are never changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAME=${CAPSTAN_CLUSTER_NAME:-capstan}
NODES=${NODES:-2}
PROFILE=${CAPSTAN_PROFILE:-release}
case "$PROFILE" in
  release) BIN="$ROOT/target/release"; BUILD_FLAGS=(--release) ;;
  debug|dev) BIN="$ROOT/target/debug"; BUILD_FLAGS=() ;;
  *) echo "cluster.sh: CAPSTAN_PROFILE must be release or debug, not $PROFILE" >&2; exit 2 ;;
esac
LAB=("$BIN/capstan-lab" --name "$NAME")

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it makes network namespaces and runs containerd)"; }

build() {
  [ "${CAPSTAN_SKIP_BUILD:-0}" = 1 ] && return 0
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
  echo "cluster.sh: building ($PROFILE)..." >&2
  (cd "$ROOT" && cargo build --workspace "${BUILD_FLAGS[@]}" --quiet)
}

need_lab_binary() { [ -x "$BIN/capstan-lab" ] || build; }

ETCD=http://192.168.250.1:2379
NETWORK_CONFIG='{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}'

# The overlay network config goes into etcd, then one agent per node (overlay
# component; the kubelet and proxy components join as they are built).
start_agents() {
  "${LAB[@]}" exec node-1 etcdctl --endpoints="$ETCD" put /capstan/network/config "$NETWORK_CONFIG" >/dev/null
  local i dir
  for i in $(seq 1 "$NODES"); do
    dir="/var/lib/capstan-lab/$NAME/node-$i"
    "${LAB[@]}" spawn "node-$i" agent "$BIN/capstan-agent" --components=overlay \
      --node-name="node-$i" --etcd-endpoints="$ETCD" --iface=eth0 \
      --subnet-file="$dir/run/capstan/subnet.env" >/dev/null
  done
  for i in $(seq 1 "$NODES"); do
    dir="/var/lib/capstan-lab/$NAME/node-$i"
    for _ in $(seq 1 300); do [ -s "$dir/run/capstan/subnet.env" ] && break; sleep 0.1; done
    [ -s "$dir/run/capstan/subnet.env" ] || die "agent on node-$i wrote no subnet file; see $dir/logs/agent.log"
    echo "node-$i: $(grep CAPSTAN_SUBNET "$dir/run/capstan/subnet.env")"
  done
}

up() {
  need_root
  "$ROOT/deploy/local/install-deps.sh"
  build
  if "${LAB[@]}" status >/dev/null 2>&1; then
    die "cluster $NAME is already up (deploy/local/cluster.sh down first)"
  fi
  # A half-made cluster from an interrupted run is removed first.
  "${LAB[@]}" down
  "${LAB[@]}" up --nodes "$NODES" --etcd --containerd
  start_agents
  cat <<MSG

Capstan local cluster "$NAME" is up with $NODES node(s): $(seq -s ' ' -f 'node-%g' 1 "$NODES").
  run inside a node:   deploy/local/cluster.sh exec node-1 ip addr
  etcd (from nodes):   deploy/local/cluster.sh exec node-1 etcdctl --endpoints=http://192.168.250.1:2379 endpoint health
  status and logs:     deploy/local/cluster.sh status
  remove it:           deploy/local/cluster.sh down
Each node runs capstan-agent (overlay): its pod subnet is in
/var/lib/capstan-lab/$NAME/node-N/run/capstan/subnet.env, for capstan-cni.
The control plane (capstan-control) and the kubelet join this script as they are built.
MSG
}

cmd=${1:-}
[ -n "$cmd" ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
case "$cmd" in
  up) up ;;
  down) need_root; need_lab_binary; "${LAB[@]}" down; echo "cluster $NAME is down" ;;
  status) need_lab_binary; "${LAB[@]}" status ;;
  kubeconfig)
    f="/var/lib/capstan-lab/$NAME/kubeconfig"
    [ -f "$f" ] || die "no kubeconfig: this version has no control plane yet (capstan-control is not built)"
    echo "$f" ;;
  exec)
    [ $# -ge 2 ] || die "usage: exec NODE CMD..."
    need_root; need_lab_binary; "${LAB[@]}" exec "$@" ;;
  restart)
    [ $# -ge 1 ] || die "usage: restart etcd|control|agent NODE|containerd NODE"
    need_root; need_lab_binary; "${LAB[@]}" restart "$@" ;;
  *) die "unknown command $cmd (up, down, status, kubeconfig, exec, restart)" ;;
esac
