#!/usr/bin/env python3
"""Regenerates k8s.desc, the protobuf descriptor set the API server decodes
`application/vnd.kubernetes.protobuf` bodies with.

Kubernetes publishes its wire schema as .proto files in the Go modules
k8s.io/api and k8s.io/apimachinery. The `k8s-pb` crate (kube-rs) is
prost-build's output of exactly those files: every message with its field
numbers and wire types. prost renames fields to snake_case, which loses the
JSON spelling (`podIPs` -> `pod_ips`); the JSON names come back from
k8s-openapi's serde code, the same crate the server's JSON path uses. So the
descriptor is derived mechanically from two published crates, nothing is
typed by hand.

usage: gen_descriptor.py K8S_PB_SRC K8S_OPENAPI_VERSION_SRC OUT.desc
  e.g. ~/.cargo/registry/src/*/k8s-pb-0.9.0/src
       ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33
Needs protoc (Debian protobuf-compiler); only to regenerate, never to build.
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

# The API groups the server serves, plus what their messages refer to.
ROOTS = [
    "api/core/v1",
    "api/apps/v1",
    "api/discovery/v1",
    "api/coordination/v1",
    "api/authorization/v1",
    "api/rbac/v1",
    "api/authentication/v1",
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/apis/meta/v1",
]

SCALARS = {"string", "int32", "int64", "bool", "double", "float", "bytes", "uint32", "uint64"}
ATTR = re.compile(r'#\[prost\((.*)\)\]\s*$')
FIELD = re.compile(r'pub (?:r#)?(\w+):\s*(.*)$', re.S)
STRUCT = re.compile(r'^pub struct (\w+) \{')


def json_names(openapi_src):
    """JSON keys per k8s-openapi struct: {(module path, lowercased name): {lowercased key: key}}."""
    names = {}
    key = re.compile(r'"([A-Za-z0-9$-]+)" => Field::Key_')
    struct = re.compile(r'^pub struct (\w+) \{', re.M)
    for root, _, files in os.walk(openapi_src):
        module = tuple(os.path.relpath(root, openapi_src).split(os.sep))
        for f in files:
            if f.endswith(".rs"):
                with open(os.path.join(root, f)) as fh:
                    text = fh.read()
                m = struct.search(text)
                if m:
                    names[(module, m.group(1).lower())] = {k.lower(): k for k in key.findall(text)}
    return names


INLINE = "inline?"


def mark_inline(done, warnings):
    """An embedded struct is one whose JSON keys appear in the parent's (most
    of them: k8s-pb may be newer than k8s-openapi)."""
    fields_of = {}
    for pkg, (_, msgs, _) in done.items():
        for name, fields in msgs.items():
            fields_of["." + pkg + "." + name] = fields
    for pkg, (module, msgs, _) in done.items():
        for name, fields in msgs.items():
            for i, (label, ptype, json, tag) in enumerate(fields):
                if isinstance(json, tuple):
                    _, keys, fallback = json
                    sub = [f[2] for f in fields_of[ptype]]
                    known = [k for k in sub if isinstance(k, str) and k.lower() in keys]
                    inline = len(sub) > 0 and 2 * len(known) > len(sub)
                    fields[i] = (label, ptype, "inline_" + fallback if inline else fallback, tag)
                    if not inline:
                        warnings.append("%s.%s.%s: no JSON name in k8s-openapi, using %s" % (
                            pkg, name, fallback, fallback))


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def resolve(module, path):
    """A Rust type path (relative to `module`) to a fully qualified proto name."""
    parts = path.split("::")
    mod = list(module)
    while parts and parts[0] == "super":
        parts.pop(0)
        mod.pop()
    return ".".join(["k8s.io"] + mod + parts[:-1]), parts[-1]


def inner_type(ty):
    ty = re.sub(r"\s+", "", ty).rstrip(",")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        while ty.startswith(wrapper):
            # rustfmt leaves a trailing comma in a wrapper split over lines.
            ty = ty[len(wrapper):-1].rstrip(",")
    return ty


def parse_module(src, module, names, warnings):
    """Messages of one k8s-pb module: {name: [(label, type, field, tag)]}."""
    path = os.path.join(src, *module, "mod.rs")
    with open(path) as fh:
        lines = fh.read().split("\n")
    msgs, refs = {}, set()
    cur = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        m = STRUCT.match(line)
        if m:
            cur_name = m.group(1)
            cur = msgs.setdefault(cur_name, [])
        elif line == "}":
            cur = None
        elif cur is not None and ATTR.match(line):
            attr = ATTR.match(line).group(1)
            decl = ""
            i += 1
            while True:
                decl += lines[i].strip()
                if decl.endswith(",") and decl.count("<") == decl.count(">"):
                    break
                i += 1
            fm = FIELD.match(decl)
            rust_name, ty = fm.group(1), fm.group(2)
            tag = re.search(r'tag = "(\d+)"', attr).group(1)
            kind = attr.split(",")[0].split("=")[0].strip()
            label = "repeated" if ", repeated," in attr else "optional"
            if kind in ("map", "btree_map", "hash_map"):
                key_t, val_t = [t.strip() for t in re.search(r'map = "([^"]*)"', attr).group(1).split(",")]
                if val_t == "message":
                    pkg, name = resolve(module, re.sub(r"\s+", "", ty).rstrip(",")[:-1].rstrip(",").split(",")[-1])
                    refs.add(pkg)
                    val_t = "." + pkg + "." + name
                ptype, label = "map<%s, %s>" % (key_t, val_t), ""
            elif kind == "message":
                pkg, name = resolve(module, inner_type(ty))
                refs.add(pkg)
                ptype = "." + pkg + "." + name
            elif kind in SCALARS:
                ptype = kind
            else:
                raise SystemExit("%s: unknown prost kind %r" % (path, attr))
            keys = names.get((tuple(module), cur_name.lower()))
            json = (keys or {}).get(rust_name.replace("_", "").lower())
            if json is None and keys is not None and kind == "message" and label == "optional":
                # Maybe a Go struct embedded with `json:",inline"`, whose
                # fields belong to the parent object in JSON: decided in
                # `mark_inline` once every message is known.
                json = (INLINE, keys, camel(rust_name))
            if json is None:
                # No k8s-openapi struct (types only ever inlined, or newer
                # than k8s-openapi): the key if it is spelled one way in all
                # of k8s-openapi.
                spelled = {k[1].get(rust_name.replace("_", "").lower()) for k in names.items()} - {None}
                if len(spelled) == 1:
                    json = spelled.pop()
            if json is None:
                json = camel(rust_name)
                warnings.append("%s.%s.%s: no JSON name in k8s-openapi, using %s" % (
                    ".".join(module), cur_name, rust_name, json))
            cur.append((label, ptype, json, tag))
        i += 1
    return msgs, refs


def main():
    src, openapi_src, out = sys.argv[1:4]
    names = json_names(openapi_src)
    warnings = []
    todo = [r.split("/") for r in ROOTS]
    done = {}
    while todo:
        module = todo.pop()
        pkg = ".".join(["k8s.io"] + module)
        if pkg in done:
            continue
        msgs, refs = parse_module(src, module, names, warnings)
        done[pkg] = (module, msgs, refs)
        for r in refs:
            if r not in done:
                todo.append(r.split(".")[2:])
    mark_inline(done, warnings)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for pkg, (module, msgs, refs) in sorted(done.items()):
            rel = "/".join(module) + "/generated.proto"
            files.append(rel)
            os.makedirs(os.path.join(tmp, *module), exist_ok=True)
            with open(os.path.join(tmp, rel), "w") as fh:
                fh.write('syntax = "proto2";\npackage %s;\n' % pkg)
                for r in sorted(refs - {pkg}):
                    fh.write('import "%s/generated.proto";\n' % "/".join(r.split(".")[2:]))
                for name, fields in sorted(msgs.items()):
                    fh.write("message %s {\n" % name)
                    for label, ptype, json, tag in fields:
                        fh.write("  %s %s %s = %s;\n" % (label, ptype, json, tag) if label
                                 else "  %s %s = %s;\n" % (ptype, json, tag))
                    fh.write("}\n")
        subprocess.run(["protoc", "-I", tmp, "--include_imports", "--descriptor_set_out=" + out] + files,
                       check=True)
    for w in warnings:
        print("warning:", w, file=sys.stderr)
    print("%d packages, %d messages -> %s" % (len(done), sum(len(m) for _, m, _ in done.values()), out))


if __name__ == "__main__":
    main()
