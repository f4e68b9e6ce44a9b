"""Generate docs/api.md (the gRPC API reference) from the comments in protos/learnware/v1.

Usage: python tools/gen_api_docs.py [OUT_FILE]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
# Field numbers of FileDescriptorProto / DescriptorProto / ServiceDescriptorProto / EnumDescriptorProto
# used in SourceCodeInfo paths.
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, METHOD, ENUM_VALUE = 2, 2, 2
TYPE_NAMES = {value: name.removeprefix("TYPE_").lower() for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()}


def load_files() -> list[descriptor_pb2.FileDescriptorProto]:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "learnware" / "v1").glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.desc"
        if protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{Path(protoc.__file__).parent / '_proto'}", "--include_source_info", f"--descriptor_set_out={out}", *protos]) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    order = {"market.proto": 0, "common.proto": 9}  # public API first, shared messages last
    return sorted(files, key=lambda f: (order.get(Path(f.name).name, 5), f.name))


def comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {tuple(loc.path): " ".join(loc.leading_comments.split()) for loc in file.source_code_info.location if loc.leading_comments.strip()}


def field_type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    name = field.type_name.rsplit(".", 1)[-1] if field.type_name else TYPE_NAMES[field.type]
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        return f"repeated {name}"
    return f"optional {name}" if field.proto3_optional else name


def render(files: list[descriptor_pb2.FileDescriptorProto]) -> str:
    lines = ["# Learnware Market gRPC API (learnware.v1)", "", "Generated from the comments in `protos/learnware/v1` by `tools/gen_api_docs.py`; do not edit.", ""]
    for file in files:
        docs = comments(file)
        lines += [f"## {Path(file.name).name}", ""]
        for s, service in enumerate(file.service):
            lines += [f"### service {service.name}", "", docs.get((SERVICE, s), ""), "", "| RPC | request | response | description |", "|---|---|---|---|"]
            for m, method in enumerate(service.method):
                request = ("stream " if method.client_streaming else "") + method.input_type.rsplit(".", 1)[-1]
                response = ("stream " if method.server_streaming else "") + method.output_type.rsplit(".", 1)[-1]
                lines.append(f"| {method.name} | {request} | {response} | {docs.get((SERVICE, s, METHOD, m), '')} |")
            lines.append("")
        for i, message in enumerate(file.message_type):
            lines += [f"### message {message.name}", ""]
            if (MESSAGE, i) in docs:
                lines += [docs[(MESSAGE, i)], ""]
            if message.field:
                lines += ["| field | type | description |", "|---|---|---|"]
                for f, field in enumerate(message.field):
                    lines.append(f"| {field.name} = {field.number} | {field_type(field)} | {docs.get((MESSAGE, i, FIELD, f), '')} |")
                lines.append("")
        for e, enum in enumerate(file.enum_type):
            lines += [f"### enum {enum.name}", "", docs.get((ENUM, e), ""), "", "| value | number | description |", "|---|---|---|"]
            for v, value in enumerate(enum.value):
                lines.append(f"| {value.name} | {value.number} | {docs.get((ENUM, e, ENUM_VALUE, v), '')} |")
            lines.append("")
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "api.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(load_files()))
