"""Run the reference `learnware` repository's own test files against this market, imports changed only.

    python tools/reference_tests.py --reference-repo /path/to/Learnware [-k EXPR] [FILE ...]

The files are read from the reference checkout (a work tree, or a bare/mirror git
directory: then from HEAD), never copied into this project. Each is rewritten in a
temporary folder by one rule, the one a user would follow:

- `from learnware.specification import ...` -> `from lwm.spec import ...`
- `from learnware.<anything else> import ...` -> `from lwm.client.compat import ...`
- `import learnware` and `learnware.init(...)` lines are dropped.

Files that use a market get their own `lwm serve --all` (Easy, or `--market-kind
hetero` for the hetero workflow) on a free loopback port, passed as LWM_MARKET.
pytest's summary is the result; the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReferenceTestFile:
    path: str
    market_kind: str | None  # None: needs no market
    helpers: tuple[str, ...] = ()


REFERENCE_TEST_FILES = (
    ReferenceTestFile("tests/test_specification/test_table_rkme.py", None),
    ReferenceTestFile("tests/test_specification/test_image_rkme.py", None),
    ReferenceTestFile("tests/test_specification/test_text_rkme.py", None),
    ReferenceTestFile("tests/test_specification/test_hetero_spec.py", None),
    ReferenceTestFile("tests/test_workflow/test_workflow.py", "easy"),
    ReferenceTestFile("tests/test_workflow/test_hetero_workflow.py", "hetero", ("tests/test_workflow/hetero_config.py",)),
)

SPEC_IMPORT = re.compile(r"^from learnware\.specification import ", re.MULTILINE)
OTHER_IMPORT = re.compile(r"^from learnware(\.[\w.]+)? import ", re.MULTILINE)
DROPPED_LINE = re.compile(r"^(import learnware|learnware\.init\(.*\))\s*$\n?", re.MULTILINE)


def rewrite_imports(source: str) -> str:
    source = DROPPED_LINE.sub("", source)
    source = SPEC_IMPORT.sub("from lwm.spec import ", source)
    return OTHER_IMPORT.sub("from lwm.client.compat import ", source)


def read_reference_file(repo: Path, path: str) -> str:
    if (repo / path).is_file():
        return (repo / path).read_text()
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_file(repo: Path, test_file: ReferenceTestFile, workdir: Path, pytest_args: list[str]) -> int:
    folder = workdir / Path(test_file.path).parent.name
    folder.mkdir(parents=True, exist_ok=True)
    for path in (test_file.path, *test_file.helpers):
        (folder / Path(path).name).write_text(rewrite_imports(read_reference_file(repo, path)))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--rootdir", str(folder), str(folder / Path(test_file.path).name), *pytest_args]
    if test_file.market_kind is None:
        return subprocess.run(command, cwd=folder).returncode

    from lwm.rpc.server import stop_process, wait_until_serving

    address = f"127.0.0.1:{free_port()}"
    data_dir = workdir / f"market-{folder.name}"
    serve = [sys.executable, "-m", "lwm.client.cli", "serve", "--all", "--port", address.rsplit(":", 1)[1], "--data-dir", str(data_dir)]
    if test_file.market_kind == "hetero":
        serve += ["--market-kind", "hetero"]
    with open(workdir / f"{folder.name}-market.log", "ab") as log:
        market = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(address, timeout_s=120)
        return subprocess.run(command, cwd=folder, env={**os.environ, "LWM_MARKET": address}).returncode
    finally:
        stop_process(market)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-repo", type=Path, required=True, help="the reference repository (work tree or git directory)")
    parser.add_argument("--keep", type=Path, help="write the rewritten files and market logs here (default: a temporary folder, removed)")
    parser.add_argument("files", nargs="*", help="reference test files to run (default: the workflow and specification tests)")
    args, pytest_args = parser.parse_known_args()
    chosen = [f for f in REFERENCE_TEST_FILES if not args.files or f.path in args.files]
    unknown = set(args.files) - {f.path for f in REFERENCE_TEST_FILES}
    if unknown:
        parser.error(f"unknown test files {sorted(unknown)}; choose from {[f.path for f in REFERENCE_TEST_FILES]}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="lwm-reference-tests-"))
    try:
        results = {f.path: run_file(args.reference_repo, f, workdir, pytest_args) for f in chosen}
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    for path, code in results.items():
        print(f"{'passed' if code == 0 else 'FAILED'}  {path}")
    return max(results.values(), default=0)


if __name__ == "__main__":
    sys.exit(main())
