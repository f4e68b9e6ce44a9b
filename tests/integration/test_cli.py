"""The `lwm` command line against a live market: spec, upload, search, reuse, ls, show, rm; global options before or after the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


def lwm(*args: str, market: str = "") -> subprocess.CompletedProcess[str]:
    prefix = ["--market", market] if market else []
    return subprocess.run([sys.executable, "-m", "lwm.client.cli", *prefix, *args], capture_output=True, text=True, timeout=300)


def test_cli_workflow(market_process, tmp_path: Path) -> None:
    address = market_process.start()
    world = TableWorld.make(tasks=2, seed=21)
    zips = [world.write_learnware(task, tmp_path) for task in range(2)]
    ids = []
    for zip_path, semantic in zips:
        semantic_path = zip_path.with_suffix(".json")
        semantic_path.write_text(json.dumps(semantic))
        result = lwm("--json", "upload", str(zip_path), "--semantic", str(semantic_path), market=address)
        assert result.returncode == 0, result.stderr
        uploaded = json.loads(result.stdout)
        assert uploaded["status"] == "USABLE"
        ids.append(uploaded["id"])

    x, y = world.sample(1, 300, np.random.default_rng(3))
    np.savetxt(tmp_path / "user.csv", x, delimiter=",", header=",".join(f"f{i}" for i in range(x.shape[1])), comments="")
    result = lwm("spec", "table", str(tmp_path / "user.csv"), "-o", str(tmp_path / "stat.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "stat.json").read_text())["type"] == "RKMETableSpecification"

    result = lwm("--json", "search", "--stat", str(tmp_path / "stat.json"), market=address)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["single_results"][0]["learnware"]["id"] == ids[1]
    result = lwm("search", "--name", "demo-table", market=address)
    assert result.returncode == 0 and ids[0] in result.stdout and ids[1] in result.stdout

    result = lwm("reuse", "--method", "averaging", "--mode", "vote_by_prob", "--ids", ids[1], "--data", str(tmp_path / "user.csv"), "-o", str(tmp_path / "pred.csv"), market=address)
    assert result.returncode == 0, result.stderr
    predictions = np.loadtxt(tmp_path / "pred.csv", delimiter=",")
    assert predictions.shape == (x.shape[0], world.n_classes)
    assert (predictions.argmax(axis=1) == y).mean() > 0.8

    listed = lwm("ls", market=address)  # `lwm --market ADDRESS ls`
    assert listed.returncode == 0 and all(i in listed.stdout for i in ids)
    listed = lwm("ls", "--market", address, "--json")  # global options after the command too
    assert listed.returncode == 0, listed.stderr
    assert {lw["id"] for lw in json.loads(listed.stdout)} == set(ids)
    assert lwm("rm", ids[0], market=address).returncode == 0
    missing = lwm("show", ids[0], market=address)
    assert missing.returncode == 3 and "no learnware" in missing.stderr
    assert lwm("upload", str(tmp_path / "user.csv"), "--semantic", str(zips[0][0].with_suffix(".json")), market=address).returncode == 4
    assert lwm("frobnicate").returncode == 2


def test_serve_market_kind_flag_makes_a_hetero_market(market_process) -> None:
    address = market_process.start(extra_args=("--market-kind", "hetero"))
    info = json.loads(lwm("info", market=address).stdout)
    assert info["kind"] == "HETERO", info
