#!/usr/bin/env bash
# Brings the local cluster up and down twice on this machine with the debug
# build the tests already made, checking each time that it works while up
# (from inside the lab and with kubectl from the host shell) and that nothing
# is left when down; the second round also kills every daemon and checks
# that `up` recovers the dead cluster; the third installs the network as the
# DaemonSet (CAPSTAN_NETWORK=daemonset) and adds a node. Prints a pass/fail
# count line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CAPSTAN_PROFILE=${CAPSTAN_PROFILE:-debug} CAPSTAN_SKIP_BUILD=${CAPSTAN_SKIP_BUILD:-1}
export CAPSTAN_CLUSTER_NAME=${CAPSTAN_CLUSTER_NAME:-capstan-smoke}
C="$ROOT/deploy/local/cluster.sh"
# Scratch files named after the cluster, so two smoke runs never share them.
OUT=/tmp/$CAPSTAN_CLUSTER_NAME-smoke.out UP_OUT=/tmp/$CAPSTAN_CLUSTER_NAME-smoke.up
passed=0; failed=0

check() { # description, command...
  local what=$1; shift
  if "$@" >"$OUT" 2>&1; then
    echo "  ok: $what"
  else
    echo "  FAILED: $what"; sed 's/^/    /' "$OUT"; return 1
  fi
}

# What a working cluster shows, checked after every up.
works() {
  check "status lists both nodes" bash -c "'$C' status | grep -q node-2" &&
  check "node-1 reaches node-2 on the underlay" "$C" exec node-1 ping -c1 -W2 192.168.250.12 &&
  check "etcd answers inside a node" "$C" exec node-2 etcdctl --endpoints=http://192.168.250.1:2379 endpoint health &&
  check "containerd of node-1 holds the test image" bash -c "'$C' exec node-1 ctr --address /var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME/node-1/containerd/containerd.sock -n capstan images ls -q | grep -q capstan.local/busybox" &&
  check "agents program routes to each other's subnets" bash -c "'$C' exec node-1 ip route show dev capstan.1 | grep -q 10.244. && '$C' exec node-2 ip route show dev capstan.1 | grep -q 10.244." &&
  ready_and_serving
}

# The part a recovered cluster must show again: Ready nodes, Running demo
# pods, the NodePort from outside, and OUR API server from the host shell.
ready_and_serving() {
  check "kubectl: both nodes Ready" bash -c "'$C' kubectl get nodes --no-headers | grep -c ' Ready ' | grep -qx 2" &&
  check "kubectl: the demo pods are Running" bash -c "'$C' kubectl get pods -l app=demo --no-headers | grep -c ' Running ' | grep -qx 2" &&
  check "the demo answers on every node's NodePort from outside" bash -c "'$C' exec lab curl -sf --max-time 3 http://192.168.250.11:30080/ && '$C' exec lab curl -sf --max-time 3 http://192.168.250.12:30080/" &&
  check "host kubectl (cluster.sh kubeconfig) reaches our API on 127.0.0.1: node-1 and node-2 at v1.33.0-capstan" bash -c "
    k=\$('$C' kubeconfig) && grep -q 'server: https://127.0.0.1:' \"\$k\" &&
    out=\$(kubectl --kubeconfig \"\$k\" get nodes --no-headers) && echo \"\$out\" &&
    echo \"\$out\" | grep -q '^node-1 .* Ready .* v1.33.0-capstan\$' &&
    echo \"\$out\" | grep -q '^node-2 .* Ready .* v1.33.0-capstan\$'"
}

down_and_clean() {
  local rc=0
  check "down" "$C" down || rc=1
  check "nothing left (netns, lab dir, processes)" bash -c "! ip netns list | grep -q '^$CAPSTAN_CLUSTER_NAME-' && [ ! -e /var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME ] && ! pgrep -f [/]var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME/" || rc=1
  return $rc
}

# SIGKILL every recorded daemon (etcd, capstan-control, the forwarder,
# containerd and the agent per node), as a crash or a power cut would.
kill_all() {
  local pids
  pids=$("$C" status | awk '$2 == "on" && $4 == "pid" {print $5}')
  [ "$(echo "$pids" | wc -w)" = 7 ] || { echo "expected 7 daemons, found: $pids"; return 1; }
  kill -KILL $pids
  for _ in $(seq 1 50); do
    "$C" status | grep -q ' running ' || return 0
    sleep 0.1
  done
  "$C" status; return 1
}

# Round 1: a fresh up works, a second up sees it is up, restarts keep it
# working, down leaves nothing.
round1() {
  check "up" "$C" up &&
  works &&
  check "up again answers 'already up'" bash -c "if '$C' up >$UP_OUT 2>&1; then echo 'up succeeded on a running cluster'; exit 1; fi; cat $UP_OUT; grep -q 'already up' $UP_OUT" &&
  check "restart agent on node-1" "$C" restart agent node-1 &&
  check "the demo still answers after the agent restart" bash -c "'$C' exec lab curl -sf --max-time 3 http://192.168.250.11:30080/" &&
  check "restart etcd keeps its data" bash -c "'$C' exec node-1 etcdctl --endpoints=http://192.168.250.1:2379 put /smoke yes && '$C' restart etcd && '$C' exec node-2 etcdctl --endpoints=http://192.168.250.1:2379 get --print-value-only /smoke | grep -qx yes"
  local rc=$?
  down_and_clean || rc=1
  return $rc
}

# Round 2: up after a down works; then every daemon is killed and up
# recovers the dead cluster (and says so) instead of answering "already up".
round2() {
  check "up" "$C" up &&
  works &&
  check "SIGKILL every daemon (etcd, control, forwarder, containerd, agents)" kill_all &&
  check "up recovers the dead cluster and says so" bash -c "'$C' up >$UP_OUT 2>&1; rc=\$?; cat $UP_OUT; [ \$rc = 0 ] && grep -q 'was not running' $UP_OUT && ! grep -q 'already up' $UP_OUT" &&
  ready_and_serving
  local rc=$?
  down_and_clean || rc=1
  return $rc
}

# Round 3: the network as the DaemonSet of deploy/kubernetes (nodes run
# only the kubelet), then a third node added to the running cluster.
round3() {
  local pods="'$C' kubectl -n capstan-system get pods -l app.kubernetes.io/name=capstan -o wide --no-headers"
  check "up with CAPSTAN_NETWORK=daemonset" env CAPSTAN_NETWORK=daemonset "$C" up &&
  check "one Running agent pod per node" bash -c "$pods | grep -c ' Running ' | grep -qx 2" &&
  check "the init container put the plugin in node-1's own /opt/cni/bin" "$C" exec node-1 test -x /opt/cni/bin/capstan &&
  ready_and_serving &&
  check "add-node: node-3 joins, gets its agent pod and is Ready" "$C" add-node &&
  check "the demo answers on node-3's NodePort from outside" "$C" exec lab curl -sf --max-time 3 http://192.168.250.13:30080/
  local rc=$?
  down_and_clean || rc=1
  return $rc
}

for i in 1 2 3; do
  echo "round $i:"
  if "round$i"; then passed=$((passed + 1)); else failed=$((failed + 1)); "$C" down >/dev/null 2>&1; fi
done
echo "cluster-smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
