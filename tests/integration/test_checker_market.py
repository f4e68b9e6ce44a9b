"""Asynchronous checks through a live market: upload returns PENDING, the sandboxed check decides, `lwm upload --wait` follows it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.learnwares import build_learnware_zip, semantic_spec

from lwm.client import MarketClient
from lwm.client.market import Learnware
from lwm.rpc.learnware.v1 import market_pb2, market_pb2_grpc
from lwm.rpc.server import channel

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")]


def lwm(market: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lwm.client.cli", "--market", market, *args], capture_output=True, text=True, timeout=300)


def test_upload_is_pending_then_checked_and_rechecked(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_CHECK_TIMEOUT_S", "10")  # the market's checker gives up on a call after 10 s
    address = market_process.start()
    with MarketClient(address) as client:
        started = time.monotonic()
        pending = client.add_learnware(build_learnware_zip("sleeps_forever", tmp_path), semantic_spec(), wait=False)
        assert pending.status == "PENDING" and time.monotonic() - started < 10  # the id comes back before the check
        usable = client.add_learnware(build_learnware_zip("relative_imports", tmp_path), semantic_spec(), wait=False)
        assert usable.status == "PENDING"

        checked = client.wait_until_checked(usable.id, timeout_s=120)
        assert checked.status == "USABLE", checked.check_report
        assert [s["name"] for s in checked.check_report["steps"]][-3:] == ["instantiate", "shapes", "predict"]

        hanging = client.wait_until_checked(pending.id, timeout_s=120)
        assert hanging.status == "INVALID"
        [failed] = [s for s in hanging.check_report["steps"] if not s.get("passed")]
        assert failed["name"] == "predict" and "did not finish within" in " ".join(failed["messages"])

        # An admin re-check runs everything again and stores a new report.
        market = market_pb2_grpc.MarketServiceStub(channel(address))
        again = market.RecheckLearnware(market_pb2.MarketRecheckLearnwareRequest(learnware_id=usable.id, wait_for_check=True), timeout=120).learnware
        assert Learnware.from_proto(again).status == "USABLE"
        assert again.check_report.checked_at > checked.check_report["checkedAt"]


def test_cli_upload_waits_with_progress_and_reports(market_process, tmp_path: Path) -> None:
    address = market_process.start()
    semantic_path = tmp_path / "semantic.json"
    semantic_path.write_text(json.dumps(semantic_spec()))

    result = lwm(address, "upload", str(build_learnware_zip("missing_module", tmp_path)), "--semantic", str(semantic_path), "--wait")
    assert result.returncode == 4, result.stderr
    assert "PENDING" in result.stderr  # progress while the check runs
    assert "[FAIL] instantiate" in result.stdout and "lwm_fixture_module_that_does_not_exist" in result.stdout

    zip_path = build_learnware_zip("scores", tmp_path, requirements="numpy\npywin32\n")
    result = lwm(address, "--json", "upload", str(zip_path), "--semantic", str(semantic_path))
    assert result.returncode == 0, result.stderr
    uploaded = json.loads(result.stdout)
    assert uploaded["status"] == "USABLE"
    assert uploaded["check_report"]["droppedRequirements"] == ["pywin32"]

    result = lwm(address, "upload", str(zip_path), "--semantic", str(semantic_path), "--no-wait")
    assert result.returncode == 0 and result.stdout.split()[1] == "PENDING"
