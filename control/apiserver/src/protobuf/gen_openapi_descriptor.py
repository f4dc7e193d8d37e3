#!/usr/bin/env python3
"""Regenerates openapi_v2.desc, the descriptor the API server encodes
`/openapi/v2` with when a client asks for
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf` (kubectl before
1.27: client-side validation, `explain`, the apply patch metadata).

The wire schema is gnostic's OpenAPIv2 `Document` (package `openapi.v2`,
github.com/google/gnostic openapiv2/OpenAPIv2.proto), which client-go
unmarshals the body into. Only the part the server's document uses is
declared here: protobuf readers skip what they do not know, so a message
written with a subset of the fields parses as the full message. Field
numbers and types are gnostic's; the rest (names of oneofs, the fields left
out) does not reach the wire. A field added here must carry gnostic's number.

usage: gen_openapi_descriptor.py OUT.desc
Needs protoc (Debian protobuf-compiler); only to regenerate, never to build.
"""
import os
import subprocess
import sys
import tempfile

# (message, [(label, type, name, number)]); label "" for singular fields.
# Every message that can carry `x-` keys has `vendor_extension`.
MESSAGES = [
    ("Document", [
        ("", "string", "swagger", 1),
        ("", "Info", "info", 2),
        ("", "string", "host", 3),
        ("", "string", "base_path", 4),
        ("repeated", "string", "schemes", 5),
        ("repeated", "string", "consumes", 6),
        ("repeated", "string", "produces", 7),
        ("", "Paths", "paths", 8),
        ("", "Definitions", "definitions", 9),
        ("repeated", "NamedAny", "vendor_extension", 16),
    ]),
    ("Info", [
        ("", "string", "title", 1),
        ("", "string", "version", 2),
        ("", "string", "description", 3),
        ("repeated", "NamedAny", "vendor_extension", 7),
    ]),
    ("Paths", [
        ("repeated", "NamedAny", "vendor_extension", 1),
        ("repeated", "NamedPathItem", "path", 2),
    ]),
    ("NamedPathItem", [("", "string", "name", 1), ("", "PathItem", "value", 2)]),
    ("PathItem", [
        ("", "string", "_ref", 1),
        ("", "Operation", "get", 2),
        ("", "Operation", "put", 3),
        ("", "Operation", "post", 4),
        ("", "Operation", "delete", 5),
        ("", "Operation", "options", 6),
        ("", "Operation", "head", 7),
        ("", "Operation", "patch", 8),
        ("repeated", "ParametersItem", "parameters", 9),
        ("repeated", "NamedAny", "vendor_extension", 10),
    ]),
    ("Operation", [
        ("repeated", "string", "tags", 1),
        ("", "string", "summary", 2),
        ("", "string", "description", 3),
        ("", "string", "operation_id", 5),
        ("repeated", "string", "produces", 6),
        ("repeated", "string", "consumes", 7),
        ("repeated", "ParametersItem", "parameters", 8),
        ("", "Responses", "responses", 9),
        ("repeated", "string", "schemes", 10),
        ("", "bool", "deprecated", 11),
        ("repeated", "NamedAny", "vendor_extension", 13),
    ]),
    ("ParametersItem", [
        ("oneof", "Parameter", "parameter", 1),
        ("oneof", "JsonReference", "json_reference", 2),
    ]),
    ("JsonReference", [("", "string", "_ref", 1), ("", "string", "description", 2)]),
    ("Parameter", [
        ("oneof", "BodyParameter", "body_parameter", 1),
        ("oneof", "NonBodyParameter", "non_body_parameter", 2),
    ]),
    ("BodyParameter", [
        ("", "string", "description", 1),
        ("", "string", "name", 2),
        ("", "string", "in", 3),
        ("", "bool", "required", 4),
        ("", "Schema", "schema", 5),
        ("repeated", "NamedAny", "vendor_extension", 6),
    ]),
    # Header (1) and form data (2) parameters are not served.
    ("NonBodyParameter", [
        ("oneof", "QueryParameterSubSchema", "query_parameter_sub_schema", 3),
        ("oneof", "PathParameterSubSchema", "path_parameter_sub_schema", 4),
    ]),
    ("QueryParameterSubSchema", [
        ("", "bool", "required", 1),
        ("", "string", "in", 2),
        ("", "string", "description", 3),
        ("", "string", "name", 4),
        ("", "bool", "allow_empty_value", 5),
        ("", "string", "type", 6),
        ("", "string", "format", 7),
        ("", "bool", "unique_items", 20),
        ("repeated", "NamedAny", "vendor_extension", 23),
    ]),
    ("PathParameterSubSchema", [
        ("", "bool", "required", 1),
        ("", "string", "in", 2),
        ("", "string", "description", 3),
        ("", "string", "name", 4),
        ("", "string", "type", 5),
        ("", "string", "format", 6),
        ("", "bool", "unique_items", 19),
        ("repeated", "NamedAny", "vendor_extension", 22),
    ]),
    ("Responses", [
        ("repeated", "NamedResponseValue", "response_code", 1),
        ("repeated", "NamedAny", "vendor_extension", 2),
    ]),
    ("NamedResponseValue", [("", "string", "name", 1), ("", "ResponseValue", "value", 2)]),
    ("ResponseValue", [
        ("oneof", "Response", "response", 1),
        ("oneof", "JsonReference", "json_reference", 2),
    ]),
    ("Response", [
        ("", "string", "description", 1),
        ("", "SchemaItem", "schema", 2),
        ("repeated", "NamedAny", "vendor_extension", 5),
    ]),
    ("SchemaItem", [("oneof", "Schema", "schema", 1)]),
    ("Definitions", [("repeated", "NamedSchema", "additional_properties", 1)]),
    ("Properties", [("repeated", "NamedSchema", "additional_properties", 1)]),
    ("NamedSchema", [("", "string", "name", 1), ("", "Schema", "value", 2)]),
    ("Schema", [
        ("", "string", "_ref", 1),
        ("", "string", "format", 2),
        ("", "string", "title", 3),
        ("", "string", "description", 4),
        ("", "Any", "default", 5),
        ("", "double", "multiple_of", 6),
        ("", "double", "maximum", 7),
        ("", "bool", "exclusive_maximum", 8),
        ("", "double", "minimum", 9),
        ("", "bool", "exclusive_minimum", 10),
        ("", "int64", "max_length", 11),
        ("", "int64", "min_length", 12),
        ("", "string", "pattern", 13),
        ("", "int64", "max_items", 14),
        ("", "int64", "min_items", 15),
        ("", "bool", "unique_items", 16),
        ("", "int64", "max_properties", 17),
        ("", "int64", "min_properties", 18),
        ("repeated", "string", "required", 19),
        ("repeated", "Any", "enum", 20),
        ("", "AdditionalPropertiesItem", "additional_properties", 21),
        ("", "TypeItem", "type", 22),
        ("", "ItemsItem", "items", 23),
        ("repeated", "Schema", "all_of", 24),
        ("", "Properties", "properties", 25),
        ("", "string", "discriminator", 26),
        ("", "bool", "read_only", 27),
        ("", "Any", "example", 30),
        ("repeated", "NamedAny", "vendor_extension", 31),
    ]),
    ("AdditionalPropertiesItem", [
        ("oneof", "Schema", "schema", 1),
        ("oneof", "bool", "boolean", 2),
    ]),
    ("TypeItem", [("repeated", "string", "value", 1)]),
    ("ItemsItem", [("repeated", "Schema", "schema", 1)]),
    ("NamedAny", [("", "string", "name", 1), ("", "Any", "value", 2)]),
    # Field 1 (a google.protobuf.Any) is never written: values go as YAML.
    ("Any", [("", "string", "yaml", 2)]),
]


def proto_text():
    out = ['syntax = "proto3";', "package openapi.v2;", ""]
    for name, fields in MESSAGES:
        out.append("message %s {" % name)
        oneof = [f for f in fields if f[0] == "oneof"]
        for label, ty, field, num in fields:
            if label != "oneof":
                out.append("  %s%s %s = %d;" % (label + " " if label else "", ty, field, num))
        if oneof:
            out.append("  oneof kind {")
            for _, ty, field, num in oneof:
                out.append("    %s %s = %d;" % (ty, field, num))
            out.append("  }")
        out.append("}")
    return "\n".join(out) + "\n"


def main():
    out = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "openapiv2.proto"), "w") as fh:
            fh.write(proto_text())
        subprocess.run(["protoc", "-I", tmp, "--descriptor_set_out=" + out, "openapiv2.proto"],
                       check=True)
    print("%d messages -> %s" % (len(MESSAGES), out))


if __name__ == "__main__":
    main()
