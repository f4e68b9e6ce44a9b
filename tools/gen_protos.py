"""Generate the Python gRPC stubs (and .pyi) from protos/ into libs/rpc/lwm/rpc/learnware/v1.

protoc names the generated modules after the proto path (`learnware.v1`); our
code lives in the `lwm.rpc` package, so the imports are rewritten to
`lwm.rpc.learnware.v1`. Usage: python tools/gen_protos.py [OUT_DIR]
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_DIR = PROTO_ROOT / "learnware" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_DIR.glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.iterdir():
            if old.name.endswith(GENERATED_SUFFIXES):
                old.unlink()
        for src in sorted((Path(tmp) / "learnware" / "v1").iterdir()):
            text = re.sub(r"^from learnware\.v1 import", "from lwm.rpc.learnware.v1 import", src.read_text(), flags=re.M)
            (out_dir / src.name).write_text(text)
    init = out_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated from protos/learnware/v1 by tools/gen_protos.py (make proto). Do not edit."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "libs" / "rpc" / "lwm" / "rpc" / "learnware" / "v1")
