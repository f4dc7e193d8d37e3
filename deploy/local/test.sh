#!/usr/bin/env bash
# Runs every check and test of Capstan, as root, on a Debian 12 machine with
# the Rust toolchain: installs missing packages, then formatting, clippy, all
# unit/integration/end-to-end tests (privileged: a missing prerequisite fails
# instead of skipping), and the local cluster script (up/down twice, host-side
# kubectl, every daemon killed and recovered by up, the network as the
# DaemonSet with a node added).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the lab makes network namespaces)" >&2; exit 1; }

stage() { printf '\n=== %s (%ss elapsed, %s free on disk)\n' "$1" "$SECONDS" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# A CI run builds once: incremental state would only double the target
# directory's size on disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

stage "dependencies"
deploy/local/install-deps.sh

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

stage "cargo build (every binary: tests of one package run the others' binaries)"
cargo build --workspace --bins

stage "Capstan image (debug; the DaemonSet suite and the cluster smoke test import it)"
# Built once here, so the suites only pack and import it.
deploy/image/build.sh --debug >/dev/null

stage "cargo test (privileged)"
export CAPSTAN_PRIVILEGED_TESTS=1
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/capstan-cargo-test.log
[ "${PIPESTATUS[0]}" = 0 ] || { echo "test.sh: cargo test failed" >&2; exit 1; }

stage "static CNI plugin (the installed artifact): build, then ADD/DEL/concurrent against it"
# The tests above run the debug plugin; this runs the one cluster.sh and
# users install (release, +crt-static) through the CNI benchmark, which
# fails on any plugin error, duplicate address or leftover reservation.
STATIC_CNI=$(deploy/cni/build-static.sh)
"${CARGO_TARGET_DIR:-target}/debug/capstan-bench" cni --runs 5 --concurrent 16 --plugin "$STATIC_CNI"

stage "local cluster: up/down twice, host-side kubectl, crash recovery"
deploy/local/cluster-smoke.sh

stage "done"
du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null | sed 's/^/target directory size: /' || true
