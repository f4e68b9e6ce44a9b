"""The committed stubs must equal a fresh `make proto`, and the contracts must follow our rules."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "libs" / "rpc" / "lwm" / "rpc" / "learnware" / "v1"
PROTOS = sorted((ROOT / "protos" / "learnware" / "v1").glob("*.proto"))


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_protos.py"), str(tmp_path)], check=True)
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir() if p.name != "__init__.py"}
    committed = {p.name: p.read_text() for p in GENERATED.iterdir() if p.suffix in (".py", ".pyi") and p.name != "__init__.py"}
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated stubs {stale}: run `make proto` and commit"


def test_contract_rules() -> None:
    """Lint in the spirit of buf: package, one Request/Response per RPC, *_UNSPECIFIED = 0 enums."""
    problems = []
    for proto in PROTOS:
        text = proto.read_text()
        if "package learnware.v1;" not in text:
            problems.append(f"{proto.name}: package must be learnware.v1")
        for rpc, request, response in re.findall(r"rpc (\w+)\((?:stream )?(\w+)\) returns \((?:stream )?(\w+)\)", text):
            if not request.endswith(f"{rpc}Request") or not response.endswith(f"{rpc}Response"):
                problems.append(f"{proto.name}: rpc {rpc} must take {rpc}Request and return {rpc}Response (got {request}, {response})")
        for enum, body in re.findall(r"enum (\w+) \{(.*?)\}", text, flags=re.S):
            first = re.search(r"(\w+) = 0;", body)
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum).upper()
            if first is None or first.group(1) != f"{prefix}_UNSPECIFIED":
                problems.append(f"{proto.name}: enum {enum} must start with {prefix}_UNSPECIFIED = 0")
        for line in re.findall(r"([^\n]*)\n  rpc (\w+)", text):
            if not line[0].strip().startswith("//"):
                problems.append(f"{proto.name}: rpc {line[1]} has no comment")
    assert not problems, "\n".join(problems)


def test_api_reference_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_api_docs.py"), str(tmp_path / "api.md")], check=True)
    assert (tmp_path / "api.md").read_text() == (ROOT / "docs" / "api.md").read_text(), "docs/api.md is stale: run `make proto`"


# Files whose every message, enum, field and enum value must carry a leading `//` comment
# (the API reference in docs/api.md is generated from them). The other files join as they are commented.
FULLY_COMMENTED = ["common.proto", "checker.proto", "organizer.proto", "market.proto", "searcher.proto", "reuse.proto"]


def _uncommented(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Messages (nested included), enums, fields and enum values of `file` without a leading comment."""
    # Field numbers in SourceCodeInfo paths: FileDescriptorProto.message_type = 4, .enum_type = 5;
    # DescriptorProto.field = 2, .nested_type = 3, .enum_type = 4; EnumDescriptorProto.value = 2.
    commented = {tuple(loc.path) for loc in file.source_code_info.location if loc.leading_comments.strip()}
    missing: list[str] = []

    def enum(path: tuple[int, ...], desc, prefix: str) -> None:
        name = f"{prefix}{desc.name}"
        if path not in commented:
            missing.append(f"enum {name}")
        for v, value in enumerate(desc.value):
            if path + (2, v) not in commented:
                missing.append(f"enum value {name}.{value.name}")

    def message(path: tuple[int, ...], desc, prefix: str) -> None:
        name = f"{prefix}{desc.name}"
        if desc.options.map_entry:  # synthetic entry type of a map<> field
            return
        if path not in commented:
            missing.append(f"message {name}")
        for f, field in enumerate(desc.field):
            if path + (2, f) not in commented:
                missing.append(f"field {name}.{field.name}")
        for n, nested in enumerate(desc.nested_type):
            message(path + (3, n), nested, f"{name}.")
        for e, nested in enumerate(desc.enum_type):
            enum(path + (4, e), nested, f"{name}.")

    for m, desc in enumerate(file.message_type):
        message((4, m), desc, "")
    for e, desc in enumerate(file.enum_type):
        enum((5, e), desc, "")
    return missing


def test_fully_commented_protos() -> None:
    """Every message, enum, field and enum value of FULLY_COMMENTED has a `//` comment directly above it."""
    descriptors = _descriptors()
    unknown = sorted(set(FULLY_COMMENTED) - set(descriptors))
    assert not unknown, f"FULLY_COMMENTED names files that do not exist: {unknown}"
    problems = [f"{name}: {item} has no comment" for name in FULLY_COMMENTED for item in _uncommented(descriptors[name])]
    assert not problems, "\n".join(problems)


def _descriptors() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The compiled protos with their source info (comments), by file name."""
    from grpc_tools import protoc

    proto_root = ROOT / "protos"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "protos.desc"
        names = [str(p.relative_to(proto_root)) for p in PROTOS]
        well_known = Path(protoc.__file__).parent / "_proto"  # google/protobuf/descriptor.proto, for google/api
        assert protoc.main(["protoc", f"-I{proto_root}", f"-I{well_known}", "--include_source_info", f"--descriptor_set_out={out}", *names]) == 0, "protoc failed"
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {Path(f.name).name: f for f in files}
