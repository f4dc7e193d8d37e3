#!/usr/bin/env bash
# Brings the local cluster up and down twice on this machine with the debug
# build the tests already made, checking each time that it works while up and
# that nothing is left when down. Prints a pass/fail count line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CAPSTAN_PROFILE=${CAPSTAN_PROFILE:-debug} CAPSTAN_SKIP_BUILD=${CAPSTAN_SKIP_BUILD:-1}
export CAPSTAN_CLUSTER_NAME=${CAPSTAN_CLUSTER_NAME:-capstan-smoke}
C="$ROOT/deploy/local/cluster.sh"
passed=0; failed=0

check() { # description, command...
  local what=$1; shift
  if "$@" >/tmp/cluster-smoke.out 2>&1; then
    echo "  ok: $what"
  else
    echo "  FAILED: $what"; sed 's/^/    /' /tmp/cluster-smoke.out; return 1
  fi
}

round() {
  check "up" "$C" up &&
  check "status lists both nodes" bash -c "'$C' status | grep -q node-2" &&
  check "node-1 reaches node-2 on the underlay" "$C" exec node-1 ping -c1 -W2 192.168.250.12 &&
  check "etcd answers inside a node" "$C" exec node-2 etcdctl --endpoints=http://192.168.250.1:2379 endpoint health &&
  check "containerd of node-1 holds the test image" bash -c "'$C' exec node-1 ctr --address /var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME/node-1/containerd/containerd.sock -n capstan images ls -q | grep -q capstan.local/busybox" &&
  check "agents program routes to each other's subnets" bash -c "'$C' exec node-1 ip route show dev capstan.1 | grep -q 10.244. && '$C' exec node-2 ip route show dev capstan.1 | grep -q 10.244." &&
  check "kubectl: both nodes Ready" bash -c "'$C' kubectl get nodes --no-headers | grep -c ' Ready ' | grep -qx 2" &&
  check "kubectl: the demo pods are Running" bash -c "'$C' kubectl get pods -l app=demo --no-headers | grep -c ' Running ' | grep -qx 2" &&
  check "the demo answers on every node's NodePort from outside" bash -c "'$C' exec lab curl -sf --max-time 3 http://192.168.250.11:30080/ && '$C' exec lab curl -sf --max-time 3 http://192.168.250.12:30080/" &&
  check "restart agent on node-1" "$C" restart agent node-1 &&
  check "the demo still answers after the agent restart" bash -c "'$C' exec lab curl -sf --max-time 3 http://192.168.250.11:30080/" &&
  check "restart etcd keeps its data" bash -c "'$C' exec node-1 etcdctl --endpoints=http://192.168.250.1:2379 put /smoke yes && '$C' restart etcd && '$C' exec node-2 etcdctl --endpoints=http://192.168.250.1:2379 get --print-value-only /smoke | grep -qx yes"
  local rc=$?
  check "down" "$C" down || rc=1
  check "nothing left (netns, lab dir, processes)" bash -c "! ip netns list | grep -q '^$CAPSTAN_CLUSTER_NAME-' && [ ! -e /var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME ] && ! pgrep -f [/]var/lib/capstan-lab/$CAPSTAN_CLUSTER_NAME/" || rc=1
  return $rc
}

for i in 1 2; do
  echo "round $i:"
  if round; then passed=$((passed + 1)); else failed=$((failed + 1)); "$C" down >/dev/null 2>&1; fi
done
echo "cluster-smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
