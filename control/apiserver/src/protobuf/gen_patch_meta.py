#!/usr/bin/env python3
"""Regenerates patch_meta.json: the strategic-merge-patch metadata of the
served kinds' fields, which the OpenAPI documents carry as
`x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` (what
`kubectl apply` computes its patches from: containers merged by name rather
than replaced, so a second apply of the same manifest is a no-op).

Kubernetes declares them as `+patchStrategy=` / `+patchMergeKey=` markers on
the Go fields; the `k8s-pb` crate keeps the Go comments on its fields, and
k8s-openapi gives the JSON names (as for gen_descriptor.py). The output is
{definition name: {JSON field: [strategy, merge key or null]}}.

usage: gen_patch_meta.py K8S_PB_SRC K8S_OPENAPI_VERSION_SRC OUT.json
  e.g. ~/.cargo/registry/src/*/k8s-pb-0.9.0/src
       ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_descriptor import ROOTS, json_names  # noqa: E402

MARKER = re.compile(r'^///\s*\+(patchMergeKey|patchStrategy)=(\S+)\s*$')
FIELD = re.compile(r'^pub (?:r#)?(\w+):')
STRUCT = re.compile(r'^pub struct (\w+) \{')


def module_meta(src, module, names):
    out = {}
    with open(os.path.join(src, *module, "mod.rs")) as fh:
        lines = [l.strip() for l in fh]
    struct, markers = None, {}
    for line in lines:
        m = STRUCT.match(line)
        if m:
            struct, markers = m.group(1), {}
            continue
        if struct is None:
            continue
        if line == "}":
            struct = None
            continue
        m = MARKER.match(line)
        if m:
            markers[m.group(1)] = m.group(2)
            continue
        m = FIELD.match(line)
        if m:
            keys = names.get((tuple(module), struct.lower()))
            if "patchStrategy" in markers and keys is None:
                # Only ever embedded (EphemeralContainerCommon): no
                # definition of its own carries the field.
                print("warning: %s.%s.%s: %s has no definition, skipped" % (
                    ".".join(module), struct, m.group(1), struct), file=sys.stderr)
            elif "patchStrategy" in markers:
                key = keys.get(m.group(1).replace("_", "").lower())
                if key is None:
                    raise SystemExit("%s.%s.%s: no JSON name" % (".".join(module), struct, m.group(1)))
                definition = "io.k8s." + ".".join(module) + "." + struct
                out.setdefault(definition, {})[key] = [
                    markers["patchStrategy"], markers.get("patchMergeKey")]
            markers = {}
        elif not line.startswith("///") and not line.startswith("#["):
            markers = {}
    return out


def main():
    src, openapi_src, out = sys.argv[1:4]
    names = json_names(openapi_src)
    meta = {}
    for root in ROOTS:
        module = root.split("/")
        if os.path.exists(os.path.join(src, *module, "mod.rs")):
            meta.update(module_meta(src, module, names))
    with open(out, "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print("%d definitions, %d fields -> %s" % (len(meta), sum(len(f) for f in meta.values()), out))


if __name__ == "__main__":
    main()
