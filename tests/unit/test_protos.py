"""The committed stubs must equal a fresh `make proto`, and the contracts must follow our rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "libs" / "rpc" / "learnware" / "v1"
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
