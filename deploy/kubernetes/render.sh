#!/usr/bin/env bash
# Renders the Kustomize base beside this script into capstan.yaml, the one
# file for `kubectl apply -f`. `render.sh` rewrites capstan.yaml;
# `render.sh -` prints the rendering instead (the test compares the two).
# Needs kubectl with Kustomize v5 (kubectl 1.27+); KUBECTL picks the binary.
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBECTL=${KUBECTL:-kubectl}
die() { echo "render.sh: $*" >&2; exit 1; }
command -v "$KUBECTL" >/dev/null || die "no $KUBECTL on PATH (set KUBECTL)"
ver=$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')
case "$ver" in
  5.*) ;;
  *) die "$KUBECTL has Kustomize '${ver:-none}', need v5 (kubectl 1.27 or newer): older ones order and format differently" ;;
esac
render() {
  cat <<'HEAD'
# Capstan: rendered from deploy/kubernetes (kustomization.yaml) by render.sh.
# Do not edit: change the base and run deploy/kubernetes/render.sh.
# Install: kubectl apply -f capstan.yaml
HEAD
  "$KUBECTL" kustomize "$DIR"
}
case "${1:-}" in
  -) render ;;
  "")
    tmp=$(mktemp "$DIR/.capstan.yaml.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    render >"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$DIR/capstan.yaml"
    trap - EXIT
    echo "$DIR/capstan.yaml" ;;
  *) die "usage: render.sh [-]" ;;
esac
