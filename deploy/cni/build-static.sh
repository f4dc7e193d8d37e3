#!/usr/bin/env bash
# Builds the capstan CNI plugin as the binary to install in /opt/cni/bin:
# release, statically linked against glibc (+crt-static) and stripped.
# A runtime execs the plugin once per pod event; without the dynamic loader
# resolving libc/libm/libgcc_s the process starts ~0.5 ms sooner, a fifth
# of an ADD. The explicit --target keeps the static flag off build scripts
# and proc-macros (which cannot be linked statically). Prints the path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOST=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$HOST" ] || { echo "build-static.sh: cannot read the host triple from rustc -vV" >&2; exit 1; }
cd "$ROOT"
cargo build --release --quiet -p capstan-cni --target "$HOST" \
  --config "target.$HOST.rustflags=[\"-C\",\"target-feature=+crt-static\"]"
echo "${CARGO_TARGET_DIR:-$ROOT/target}/$HOST/release/capstan-cni"
