#!/usr/bin/env bash
# A local multi-node Capstan cluster on one machine, in network namespaces.
#
#   deploy/local/cluster.sh up                  install what is missing, build, start
#                                               (a cluster whose daemons died is cleaned and started again)
#   deploy/local/cluster.sh down                remove everything the cluster made
#   deploy/local/cluster.sh status              nodes, daemons, logs
#   deploy/local/cluster.sh kubeconfig          path of the admin kubeconfig for the host's kubectl
#   deploy/local/cluster.sh kubectl ARGS...     kubectl as the admin, run inside the lab
#   deploy/local/cluster.sh exec NODE CMD...    run CMD inside node NODE (or `lab`: outside every node)
#   deploy/local/cluster.sh restart etcd|control|forward|agent NODE|containerd NODE
#   deploy/local/cluster.sh add-node            add node N+1 to the running cluster
#
# NODES (default 2) sets the node count; nodes are node-1, node-2, ...
# CAPSTAN_NETWORK=daemonset runs only the kubelet on the nodes and installs
# the network (overlay, proxy, CNI) as the DaemonSet of deploy/kubernetes,
# from the image deploy/image/build.sh makes; unset, every node runs the
# whole agent as a process and the script installs the CNI plugin.
# CAPSTAN_PROFILE (default release) picks the cargo profile to build and run;
# CAPSTAN_SKIP_BUILD=1 uses the binaries already built in that profile.
# CAPSTAN_API_PORT (default: any free port) is the host loopback port where
# the API server is forwarded to.
# The host namespace's links, routes and firewall are never changed: the
# host reaches the API only through a forwarder listening on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAME=${CAPSTAN_CLUSTER_NAME:-capstan}
NODES=${NODES:-2}
PROFILE=${CAPSTAN_PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$PROFILE" in
  release) BIN="$TARGET/release"; BUILD_FLAGS=(--release) ;;
  debug|dev) BIN="$TARGET/debug"; BUILD_FLAGS=() ;;
  *) echo "cluster.sh: CAPSTAN_PROFILE must be release or debug, not $PROFILE" >&2; exit 2 ;;
esac
LAB=("$BIN/capstan-lab" --name "$NAME")
NETWORK=${CAPSTAN_NETWORK:-}
case "$NETWORK" in
  ""|daemonset) ;;
  *) echo "cluster.sh: CAPSTAN_NETWORK must be daemonset or unset, not $NETWORK" >&2; exit 2 ;;
esac

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it makes network namespaces and runs containerd)"; }

build() {
  [ "${CAPSTAN_SKIP_BUILD:-0}" = 1 ] && return 0
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
  echo "cluster.sh: building ($PROFILE)..." >&2
  (cd "$ROOT" && cargo build --workspace "${BUILD_FLAGS[@]}" --quiet)
  # The installed plugin is the static one in release (see its script).
  [ "$PROFILE" = release ] && "$ROOT/deploy/cni/build-static.sh" >/dev/null
  return 0
}

# The plugin binary to install: the static release build when there is one.
cni_binary() {
  local static
  static="$TARGET/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/release/capstan-cni"
  if [ "$PROFILE" = release ] && [ -x "$static" ]; then echo "$static"; else echo "$BIN/capstan-cni"; fi
}

need_lab_binary() { [ -x "$BIN/capstan-lab" ] || build; }

ETCD=http://192.168.250.1:2379
NETWORK_CONFIG='{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}'

CONTROL_IP=192.168.250.1
LAB_DIR="/var/lib/capstan-lab/$NAME"
PKI="$LAB_DIR/pki"
# The admin kubeconfig for the host: the same credentials, with the
# forwarder's loopback address as the server.
HOST_KUBECONFIG="$PKI/admin-host.kubeconfig"
API_PORT_FILE="$LAB_DIR/api-port"
# How the running cluster's network was installed (add-node needs to know).
NETWORK_FILE="$LAB_DIR/network"
CLUSTER_CIDR=10.244.0.0/16
# What a cluster that is really up runs (capstan-lab check).
EXPECT=(--expect etcd@lab --expect control@lab --expect forward@host --per-node containerd,agent)

# capstan-control: credentials for the admin and every node (init keeps
# what exists), then the API server in the underlay namespace, on the
# bridge's address, against the cluster's etcd; up once /readyz says ok.
start_control() {
  local nodes=() i
  for i in $(seq 1 "$NODES"); do nodes+=(--node "node-$i"); done
  "$BIN/capstan-control" init --dir "$PKI" --server "https://$CONTROL_IP:6443" "${nodes[@]}" >/dev/null
  # With the network as a DaemonSet the overlay takes each node's subnet
  # from node.spec.podCIDR, which the node IPAM controller hands out.
  local ipam=()
  [ "$NETWORK" = daemonset ] && ipam=(--allocate-node-cidrs --cluster-cidr="$CLUSTER_CIDR")
  "${LAB[@]}" spawn lab control "$BIN/capstan-control" serve --pki-dir="$PKI" \
    --etcd-endpoints="$ETCD" --bind-address="$CONTROL_IP" --secure-port=6443 "${ipam[@]}" >/dev/null
  for _ in $(seq 1 300); do
    "${LAB[@]}" exec lab curl -sf --max-time 2 --cacert "$PKI/ca.crt" "https://$CONTROL_IP:6443/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "${LAB[@]}" exec lab curl -sf --max-time 2 --cacert "$PKI/ca.crt" "https://$CONTROL_IP:6443/readyz" >/dev/null 2>&1 \
    || die "capstan-control is not ready; see /var/lib/capstan-lab/$NAME/logs/control.log"
  echo "control plane: https://$CONTROL_IP:6443 (admin kubeconfig $PKI/admin.kubeconfig)"
}

# The host's way in, as kind does it: a forwarder in the host namespace
# listening on 127.0.0.1 that dials the API server from inside the lab
# (recorded like every daemon; its command line names the lab directory,
# so down's sweep finds it). The serving certificate carries 127.0.0.1.
start_forward() {
  rm -f "$API_PORT_FILE"
  "${LAB[@]}" spawn host forward "$BIN/capstan-lab" --name "$NAME" forward \
    --listen "127.0.0.1:${CAPSTAN_API_PORT:-0}" --to "$CONTROL_IP:6443" --port-file "$API_PORT_FILE" >/dev/null
  for _ in $(seq 1 100); do [ -s "$API_PORT_FILE" ] && break; sleep 0.1; done
  [ -s "$API_PORT_FILE" ] || die "the API forwarder did not start; see $LAB_DIR/logs/forward.log"
  local port cluster
  port=$(cat "$API_PORT_FILE")
  install -m 0600 "$PKI/admin.kubeconfig" "$HOST_KUBECONFIG"
  cluster=$(kubectl --kubeconfig "$HOST_KUBECONFIG" config view -o jsonpath='{.clusters[0].name}')
  kubectl --kubeconfig "$HOST_KUBECONFIG" config set-cluster "$cluster" --server="https://127.0.0.1:$port" >/dev/null
  kubectl --kubeconfig "$HOST_KUBECONFIG" get --raw /readyz >/dev/null \
    || die "the API does not answer on https://127.0.0.1:$port; see $LAB_DIR/logs/forward.log"
  echo "API on the host: https://127.0.0.1:$port (kubeconfig $HOST_KUBECONFIG)"
}

node_dir() { echo "/var/lib/capstan-lab/$NAME/node-$1"; }

# Flags every node's agent gets: who it is, the API, its containerd, and
# where its pods' namespaces and cgroups go (names that carry the cluster's).
agent_common() {
  local i=$1 dir
  dir=$(node_dir "$i")
  echo --node-name="node-$i" --node-ip="192.168.250.$((10 + i))" \
    --kubeconfig="$PKI/node-$i.kubeconfig" \
    --containerd-socket="$dir/containerd/containerd.sock" --containerd-namespace=capstan \
    --netns-dir=/run/netns --netns-prefix="$NAME-node-$i-pod-" \
    --cgroup-root="capstan-lab/$NAME" --client-ca-file="$PKI/ca.crt"
}

# The whole agent as a process (the default): capstan-cni and its conflist
# installed by this script, then overlay (subnet lease in etcd, VXLAN),
# kubelet (pods on the node's containerd, through capstan-control) and
# proxy (Services in nftables).
start_agent() {
  local i=$1 dir cni
  dir=$(node_dir "$i")
  cni=$(cni_binary)
  install -m 0755 "$cni" "$dir/opt/cni/bin/capstan"
  cat >"$dir/etc/cni/net.d/10-capstan.conflist" <<CONF
{"cniVersion":"1.0.0","name":"capstan","plugins":[{"type":"capstan","subnetFile":"$dir/run/capstan/subnet.env","dataDir":"$dir/var/lib/cni/networks/capstan","hairpinMode":true}]}
CONF
  # shellcheck disable=SC2046 # agent_common's words are flags
  "${LAB[@]}" spawn "node-$i" agent "$BIN/capstan-agent" --components=overlay,kubelet,proxy \
    $(agent_common "$i") \
    --etcd-endpoints="$ETCD" --iface=eth0 --subnet-file="$dir/run/capstan/subnet.env" \
    --cni-conf-dir="$dir/etc/cni/net.d" --cni-bin-dir="$dir/opt/cni/bin" \
    --root-dir="$dir/var/lib/capstan/kubelet" --pod-log-dir="$dir/var/log/pods" \
    --cluster-cidr="$CLUSTER_CIDR" >/dev/null
}

wait_subnet() {
  local i=$1 dir
  dir=$(node_dir "$i")
  for _ in $(seq 1 300); do [ -s "$dir/run/capstan/subnet.env" ] && break; sleep 0.1; done
  [ -s "$dir/run/capstan/subnet.env" ] || die "no subnet file on node-$i; see $(agent_logs "$i")"
  echo "node-$i: $(grep CAPSTAN_SUBNET "$dir/run/capstan/subnet.env")"
}

agent_logs() {
  if [ "$(cat "$NETWORK_FILE" 2>/dev/null)" = daemonset ]; then
    echo "deploy/local/cluster.sh kubectl -n capstan-system logs ds/capstan (and $(node_dir "$1")/logs/agent.log, the kubelet)"
  else
    echo "$(node_dir "$1")/logs/agent.log"
  fi
}

start_agents() {
  "${LAB[@]}" exec node-1 etcdctl --endpoints="$ETCD" put /capstan/network/config "$NETWORK_CONFIG" >/dev/null
  local i
  for i in $(seq 1 "$NODES"); do start_agent "$i"; done
  for i in $(seq 1 "$NODES"); do wait_subnet "$i"; done
  kctl wait --for=condition=Ready node --all --timeout=60s >/dev/null \
    || die "nodes did not become Ready; see /var/lib/capstan-lab/$NAME/node-*/logs/agent.log"
}

# CAPSTAN_NETWORK=daemonset: the node process is the kubelet alone, with
# its default paths (/etc/cni/net.d, /opt/cni/bin, /var/lib/capstan, ...),
# which the node's mount namespace makes the node's own. Without a CNI
# config the node stays NotReady (NetworkPluginNotReady) until the
# DaemonSet's init container installs one.
start_kubelet() {
  local i=$1
  # shellcheck disable=SC2046 # agent_common's words are flags
  "${LAB[@]}" spawn "node-$i" agent "$BIN/capstan-agent" --components=kubelet $(agent_common "$i") >/dev/null
}

start_kubelets() {
  local i
  for i in $(seq 1 "$NODES"); do
    import_image "$i"
    start_kubelet "$i"
  done
  for _ in $(seq 1 300); do
    [ "$(kctl get nodes --no-headers 2>/dev/null | wc -l)" -ge "$NODES" ] && break
    sleep 0.1
  done
  [ "$(kctl get nodes --no-headers 2>/dev/null | wc -l)" -ge "$NODES" ] \
    || die "the kubelets did not register; see /var/lib/capstan-lab/$NAME/node-*/logs/agent.log"
}

# The Capstan image into a node's containerd (no registry here: the
# DaemonSet's imagePullPolicy is IfNotPresent).
import_image() {
  local i=$1 flags=()
  # The image packages the cluster's profile (debug: faster to build).
  [ "$PROFILE" = release ] || flags=(--debug)
  "$ROOT/deploy/image/build.sh" "${flags[@]}" --import "$(node_dir "$i")/containerd/containerd.sock" --namespace capstan >/dev/null \
    || die "deploy/image/build.sh could not import the image into node-$i"
}

# The network as users install it: kubectl apply -k, then the rollout.
# First the API server's own address for the agent pods (the kubernetes
# Service's ClusterIP answers only once a proxy runs, and they are it).
install_network() {
  kctl apply -f - >/dev/null <<YAML || die "could not create ConfigMap kubernetes-services-endpoint"
apiVersion: v1
kind: Namespace
metadata:
  name: capstan-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kubernetes-services-endpoint
  namespace: capstan-system
data:
  KUBERNETES_SERVICE_HOST: "$CONTROL_IP"
  KUBERNETES_SERVICE_PORT: "6443"
YAML
  kctl apply -k "$ROOT/deploy/kubernetes" >/dev/null || die "kubectl apply -k deploy/kubernetes failed"
  kctl -n capstan-system rollout status ds/capstan --timeout=180s >/dev/null \
    || die "DaemonSet capstan did not roll out; see deploy/local/cluster.sh kubectl -n capstan-system describe pods"
  local i
  for i in $(seq 1 "$NODES"); do wait_subnet "$i"; done
  kctl wait --for=condition=Ready node --all --timeout=60s >/dev/null \
    || die "nodes did not become Ready; see deploy/local/cluster.sh kubectl describe nodes"
}

network_summary() {
  if [ "$(cat "$NETWORK_FILE" 2>/dev/null)" = daemonset ]; then
    cat <<TXT
Each node runs capstan-agent --components=kubelet as a process; the network
(overlay, proxy, capstan-cni) is DaemonSet capstan in namespace capstan-system
(deploy/local/cluster.sh kubectl -n capstan-system get pods -o wide).
TXT
  else
    cat <<TXT
Each node runs capstan-agent (overlay, kubelet, proxy): its pod subnet is in
/var/lib/capstan-lab/$NAME/node-N/run/capstan/subnet.env, for capstan-cni.
TXT
  fi
}

# Node N+1 for the running cluster, set up like the others: credentials,
# containerd, and the agent (or, with the DaemonSet, the kubelet and the
# image, after which the DaemonSet controller gives it its agent pod).
add_node() {
  need_root; need_lab_binary
  [ -f "$NETWORK_FILE" ] || die "cluster $NAME is not up (deploy/local/cluster.sh up)"
  local node i mode
  mode=$(cat "$NETWORK_FILE")
  node=$("${LAB[@]}" add-node --containerd) || die "could not add a node to cluster $NAME"
  i=${node#node-}
  "$BIN/capstan-control" init --dir "$PKI" --server "https://$CONTROL_IP:6443" --node "$node" >/dev/null
  if [ "$mode" = daemonset ]; then
    import_image "$i"
    start_kubelet "$i"
    for _ in $(seq 1 300); do kctl get node "$node" >/dev/null 2>&1 && break; sleep 0.1; done
    kctl -n capstan-system rollout status ds/capstan --timeout=180s >/dev/null \
      || die "DaemonSet capstan did not roll out to $node"
  else
    start_agent "$i"
  fi
  wait_subnet "$i"
  kctl wait --for=condition=Ready "node/$node" --timeout=60s >/dev/null \
    || die "$node did not become Ready; see $(agent_logs "$i")"
  if [ "$mode" = daemonset ]; then
    # The subnet file comes from the agent pod before its kubelet reports
    # it Running: added means the pod says so too.
    local _
    for _ in $(seq 1 300); do
      kctl -n capstan-system get pods -l app.kubernetes.io/name=capstan \
        --field-selector "spec.nodeName=$node" --no-headers 2>/dev/null | grep -q ' Running ' && break
      sleep 0.2
    done
    kctl -n capstan-system get pods -l app.kubernetes.io/name=capstan \
      --field-selector "spec.nodeName=$node" --no-headers 2>/dev/null | grep -q ' Running ' \
      || die "the agent pod on $node is not Running; see deploy/local/cluster.sh kubectl -n capstan-system get pods -o wide"
  fi
  echo "$node added ($(kctl get node "$node" --no-headers))"
}

kctl() { "${LAB[@]}" exec lab kubectl --kubeconfig "$PKI/admin.kubeconfig" "$@"; }

DEMO_PORT=30080

# The seed example: a NodePort Service and a ReplicationController whose
# pods serve HTTP (from the test image) with a liveness probe.
demo() {
  kctl apply --validate=false -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: demo
  namespace: default
spec:
  type: NodePort
  selector:
    app: demo
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: demo
  namespace: default
spec:
  replicas: 2
  selector:
    app: demo
  template:
    metadata:
      labels:
        app: demo
    spec:
      containers:
      - name: web
        image: capstan.local/busybox:lab
        command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
        ports:
        - containerPort: 8080
        livenessProbe:
          httpGet:
            path: /
            port: 8080
          periodSeconds: 5
        readinessProbe:
          httpGet:
            path: /
            port: 8080
          periodSeconds: 1
YAML
  # kubectl wait fails at once while the controller has made no pod yet.
  local _
  for _ in $(seq 1 300); do
    [ -n "$(kctl get pods -l app=demo --no-headers 2>/dev/null)" ] && break
    sleep 0.2
  done
  kctl wait --for=condition=Ready pod -l app=demo --timeout=90s >/dev/null \
    || die "demo pods not Ready; see deploy/local/cluster.sh kubectl describe pods"
  kctl get nodes,pods,svc -o wide
  local answer="" _
  for _ in $(seq 1 50); do
    answer=$("${LAB[@]}" exec lab curl -sf --max-time 2 "http://192.168.250.11:$DEMO_PORT/") && break
    sleep 0.2
  done
  [ -n "$answer" ] || die "no answer from http://192.168.250.11:$DEMO_PORT/"
  echo "curl http://192.168.250.11:$DEMO_PORT/ (from outside the nodes): $answer"
}

up() {
  need_root
  "$ROOT/deploy/local/install-deps.sh"
  build
  # Up means every daemon runs. A cluster recorded but dead (a reboot, a
  # crash, an interrupted up) is cleaned like down and started again.
  local health rc=0
  health=$("${LAB[@]}" check "${EXPECT[@]}" 2>&1) || rc=$?
  case $rc in
    0) die "cluster $NAME is already up (deploy/local/cluster.sh down first)" ;;
    3) ;;
    *) echo "cluster.sh: cluster $NAME was not running ($health); cleaning it up and starting again" ;;
  esac
  # Also sweeps what a half-made cluster without state may have left.
  "${LAB[@]}" down
  "${LAB[@]}" up --nodes "$NODES" --etcd --containerd
  echo "${NETWORK:-processes}" >"$NETWORK_FILE"
  start_control
  start_forward
  if [ "$NETWORK" = daemonset ]; then
    start_kubelets
    install_network
  else
    start_agents
  fi
  [ "${CAPSTAN_NO_DEMO:-0}" = 1 ] || demo
  cat <<MSG

Capstan local cluster "$NAME" is up with $NODES node(s): $(seq -s ' ' -f 'node-%g' 1 "$NODES").
  run inside a node:   deploy/local/cluster.sh exec node-1 ip addr
  etcd (from nodes):   deploy/local/cluster.sh exec node-1 etcdctl --endpoints=http://192.168.250.1:2379 endpoint health
  kubectl (host):      kubectl --kubeconfig $HOST_KUBECONFIG get nodes
  kubectl (in lab):    deploy/local/cluster.sh kubectl get nodes
                       (in-lab admin kubeconfig: $PKI/admin.kubeconfig; node kubeconfigs beside it)
  status and logs:     deploy/local/cluster.sh status
  remove it:           deploy/local/cluster.sh down
$(network_summary)
capstan-control serves the API at https://$CONTROL_IP:6443 (reachable from the
nodes and from "cluster.sh exec lab ..."), forwarded to the host at
https://127.0.0.1:$(cat "$API_PORT_FILE"). The demo Service answers on every
node at port $DEMO_PORT (CAPSTAN_NO_DEMO=1 skips it).
MSG
}

cmd=${1:-}
[ -n "$cmd" ] || { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
case "$cmd" in
  up) up ;;
  down) need_root; need_lab_binary; "${LAB[@]}" down; echo "cluster $NAME is down" ;;
  status)
    need_lab_binary; "${LAB[@]}" status
    [ -s "$API_PORT_FILE" ] && echo "  API on the host: https://127.0.0.1:$(cat "$API_PORT_FILE") (kubeconfig: deploy/local/cluster.sh kubeconfig)"
    exit 0 ;;
  kubeconfig)
    f="$HOST_KUBECONFIG"
    [ -f "$f" ] || die "no kubeconfig at $f: is the cluster up? (deploy/local/cluster.sh up)"
    echo "$f" ;;
  kubectl)
    f="$PKI/admin.kubeconfig"
    [ -f "$f" ] || die "no kubeconfig at $f: is the cluster up? (deploy/local/cluster.sh up)"
    need_root; need_lab_binary; "${LAB[@]}" exec lab kubectl --kubeconfig "$f" "$@" ;;
  exec)
    [ $# -ge 2 ] || die "usage: exec NODE CMD..."
    need_root; need_lab_binary; "${LAB[@]}" exec "$@" ;;
  restart)
    [ $# -ge 1 ] || die "usage: restart etcd|control|forward|agent NODE|containerd NODE"
    need_root; need_lab_binary; "${LAB[@]}" restart "$@" ;;
  add-node) add_node ;;
  *) die "unknown command $cmd (up, down, status, kubeconfig, kubectl, exec, restart, add-node)" ;;
esac
