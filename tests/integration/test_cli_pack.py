"""`lwm init-learnware` and `lwm pack`: a template filled in with a trained model packs USABLE and uploads USABLE; broken folders fail clearly."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lwm.client.cli import main
from lwm.spec import generate_stat_spec
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration

EXIT_USAGE, EXIT_INVALID = 2, 4


def lwm(*args: str, market: str = "") -> subprocess.CompletedProcess[str]:
    prefix = ["--market", market] if market else []
    return subprocess.run([sys.executable, "-m", "lwm.client.cli", *prefix, *args], capture_output=True, text=True, timeout=600)


def lwm_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (fast: no interpreter start), as (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exit:  # argparse: --help and usage errors
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("init-learnware", "pack", "upload", "search", "reuse", "ls", "show", "rm", "download", "info", "spec", "serve", "admin"):
        code, out, _ = lwm_here(capsys, command, "--help")
        assert code == 0 and f"usage: lwm {command}" in out, command


def test_pack_without_the_checks_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lwm.checks", None)  # as if lwm-checks were not installed
    code, _, err = lwm_here(capsys, "pack", str(tmp_path))
    assert code == EXIT_USAGE and err.strip() == "lwm pack: running the market's checks locally needs lwm-checks: pip install lwm-checks"


@pytest.mark.slow
def test_init_fill_in_pack_and_upload(market_process, tmp_path: Path) -> None:
    folder = tmp_path / "region-model"
    result = lwm("init-learnware", str(folder), "--input-dim", "8", "--output-dim", "3")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in folder.iterdir()} == {"learnware.yaml", "__init__.py", "requirements.txt", "semantic_specification.json", "README.md"}
    assert "class PickledModel(BaseModel)" in (folder / "__init__.py").read_text()

    world = TableWorld.make(tasks=2, seed=4)
    x, y = world.sample(0, 400, np.random.default_rng(0))
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression(max_iter=1000).fit(x, y)))
    np.savetxt(tmp_path / "train.csv", x, delimiter=",")
    assert lwm("spec", "table", str(tmp_path / "train.csv"), "-o", str(folder / "stat_spec.json")).returncode == 0

    packed = lwm("--json", "pack", str(folder), "-o", str(tmp_path / "out.zip"))
    assert packed.returncode == 0, packed.stdout + packed.stderr
    report = json.loads(packed.stdout)
    assert report["status"] == "USABLE" and report["zip"] == str(tmp_path / "out.zip")
    assert [step["name"] for step in report["check_report"]["steps"]] == ["semantic", "archive", "stat_spec", "environment", "instantiate", "shapes", "predict"]
    assert "checking" in packed.stderr

    address = market_process.start()
    uploaded = lwm("--json", "upload", str(tmp_path / "out.zip"), "--semantic", str(folder / "semantic_specification.json"), market=address)
    assert uploaded.returncode == 0, uploaded.stderr
    assert json.loads(uploaded.stdout)["status"] == "USABLE"


def test_pack_of_broken_folders_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "unfinished"
    assert lwm_here(capsys, "init-learnware", str(folder), "--input-dim", "4")[0] == 0
    code, _, err = lwm_here(capsys, "pack", str(folder))
    assert code == EXIT_INVALID and "stat_spec.json is missing" in err
    assert not (tmp_path / "unfinished.zip").exists()

    assert lwm_here(capsys, "pack", str(tmp_path / "no-such-folder"))[0] == EXIT_USAGE
    assert lwm_here(capsys, "pack")[0] == EXIT_USAGE
    code, _, err = lwm_here(capsys, "init-learnware", str(folder), "--input-dim", "4")
    assert code == EXIT_USAGE and "not empty" in err


def test_pack_reports_a_model_that_fails_in_the_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bad-pickle"
    assert lwm_here(capsys, "init-learnware", str(folder), "--input-dim", "4")[0] == 0
    generate_stat_spec(type="table", X=np.random.default_rng(1).normal(size=(200, 4))).save(str(folder / "stat_spec.json"))
    (folder / "model.pkl").write_bytes(b"not a pickle")
    code, out, err = lwm_here(capsys, "--json", "pack", str(folder))
    assert code == EXIT_INVALID
    assert "[ok ] environment" in err and "[FAIL] instantiate" in err  # each check as it ends, on stderr with --json
    report = json.loads(out)
    assert report["status"] == "INVALID" and report["zip"] is None
    failed = [step for step in report["check_report"]["steps"] if not step.get("passed")]
    assert failed[0]["name"] == "instantiate" and "could not be instantiated" in failed[0]["messages"][0]
    assert not (tmp_path / "bad-pickle.zip").exists()
