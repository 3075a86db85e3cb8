#!/usr/bin/env python3
"""Writes the API server's protobuf fact tables from checkouts of Kubernetes' `api` and
`apimachinery` repositories (at the release berth follows):

    scripts/k8s-protos.py API_CHECKOUT APIMACHINERY_CHECKOUT

- orchestrator/apiserver/proto/k8s.io/.../generated.proto: each package's messages
  reduced to names, field numbers and types (no comments, no Go options);
- orchestrator/apiserver/proto/go-fields.txt: what the .proto files cannot say and the
  JSON form depends on, read from the Go types' struct tags: which scalar fields Go
  declares as pointers (a zero on the wire was set by the client, so it is kept) and
  which message fields are embedded inline in the JSON object.

The build script of berth-apiserver compiles the .proto files with protoc and checks
every line of go-fields.txt against them.
"""

import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent.parent / "orchestrator/apiserver/proto"

# (repository, folder inside it, package) for each file berth decodes; the Go types of
# the packages with objects are read for go-fields.txt.
PACKAGES = [
    ("api", "core/v1", "k8s.io/api/core/v1", True),
    ("api", "apps/v1", "k8s.io/api/apps/v1", True),
    ("api", "policy/v1", "k8s.io/api/policy/v1", True),
    ("api", "rbac/v1", "k8s.io/api/rbac/v1", True),
    ("api", "authorization/v1", "k8s.io/api/authorization/v1", True),
    ("apimachinery", "pkg/apis/meta/v1", "k8s.io/apimachinery/pkg/apis/meta/v1", True),
    ("apimachinery", "pkg/runtime", "k8s.io/apimachinery/pkg/runtime", True),
    ("apimachinery", "pkg/runtime/schema", "k8s.io/apimachinery/pkg/runtime/schema", False),
    ("apimachinery", "pkg/api/resource", "k8s.io/apimachinery/pkg/api/resource", False),
    ("apimachinery", "pkg/util/intstr", "k8s.io/apimachinery/pkg/util/intstr", False),
]

SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}
FIELD = re.compile(r"^(optional|repeated|required)?\s*(map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*(\d+);$")


def reduce_proto(text):
    """The statements of a .proto file without comments or `option` lines."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines, depth = [], 0
    for line in text.splitlines():
        code = line.split("//", 1)[0].strip()
        if not code or code.startswith("option "):
            continue
        if code == "}":
            depth -= 1
        lines.append("  " * depth + code)
        if code.endswith("{"):
            depth += 1
            if depth == 1:
                lines.insert(len(lines) - 1, "")
    return "\n".join(lines).strip() + "\n"


def proto_fields(reduced):
    """(message, field name, type) of every field."""
    message = None
    for line in reduced.splitlines():
        line = line.strip()
        if m := re.match(r"message (\w+) \{", line):
            message = m.group(1)
        elif m := FIELD.match(line):
            yield message, m.group(3), m.group(2), m.group(1)


def go_fields(folder):
    """(struct, proto field name, Go type, JSON options) from the struct tags."""
    for path in sorted(folder.glob("*.go")):
        if path.name.endswith("_test.go") or path.name.startswith("zz_"):
            continue
        struct = None
        for line in path.read_text().splitlines():
            if m := re.match(r"^type (\w+) struct", line):
                struct = m.group(1)
                continue
            if line.startswith("}"):
                struct = None
            if not struct:
                continue
            m = re.match(r"^\s*(?:\w+\s+)?(\S+)\s+`(.*)`", line)
            if not m:
                continue
            go_type, tags = m.groups()
            tag = re.search(r'protobuf:"([^"]*)"', tags)
            json = re.search(r'json:"([^"]*)"', tags)
            if not tag:
                continue
            parts = tag.group(1).split(",")
            named = dict(p.split("=", 1) for p in parts if "=" in p)
            json_options = json.group(1).split(",")[1:] if json else []
            yield struct, named.get("name"), go_type, json_options


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    checkouts = {"api": pathlib.Path(sys.argv[1]), "apimachinery": pathlib.Path(sys.argv[2])}
    facts = []
    for repo, folder, package_path, has_types in PACKAGES:
        source = checkouts[repo] / folder
        reduced = reduce_proto((source / "generated.proto").read_text())
        target = HERE / package_path / "generated.proto"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(reduced)
        if not has_types:
            continue
        package = package_path.replace("/", ".")
        fields = {(msg, name): (ty, label) for msg, name, ty, label in proto_fields(reduced)}
        for struct, name, go_type, json_options in go_fields(source):
            if "inline" in json_options and name is None:
                # An embedded struct without a name in its tag: the proto names it after
                # its type, lower camel case.
                base = go_type.lstrip("*").split(".")[-1]
                name = base[0].lower() + base[1:]
            proto = fields.get((struct, name))
            if proto is None:
                continue
            ty, label = proto
            qualified = f"{package}.{struct}.{name}"
            if "inline" in json_options:
                facts.append(f"inline {qualified}")
            elif ty in SCALARS and label == "optional" and go_type.startswith("*"):
                facts.append(f"pointer {qualified}")
    header = (
        "# How Go declares the fields the JSON form depends on (from the struct tags of\n"
        "# Kubernetes' types; written by scripts/k8s-protos.py):\n"
        "#   pointer <message>.<field>  a scalar behind a pointer: sent only when set, so a\n"
        "#                              zero value is the client's and stays in the JSON\n"
        "#   inline  <message>.<field>  an embedded struct: its fields are the object's own\n"
    )
    (HERE / "go-fields.txt").write_text(header + "\n".join(sorted(set(facts))) + "\n")


if __name__ == "__main__":
    main()
