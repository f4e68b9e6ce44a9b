"""Hostile learnwares against a live market (`lwm serve --all`), under gVisor and under bubblewrap:
a fork flood, a thread flood and an 8 GB allocation end INVALID with the limit named, nothing of them
outlives the check, and the market keeps answering."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fixtures.learnwares import build_learnware_zip, semantic_spec

from lwm.client import MarketClient
from lwm.testing.processes import live_processes_with

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_floods_and_hogs_are_invalid_and_the_market_keeps_answering(
    market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("LWM_SANDBOX", isolation)
    monkeypatch.setenv("LWM_SANDBOX_MEMORY_MB", "2048")
    address = market_process.start()
    token = f"0.0000{uuid.uuid4().int % 10**8:08d}"  # a valid extra `sleep` argument the fork flood runs with
    hostile = {
        "processes": (build_learnware_zip("floods", tmp_path / "p", kwargs={"kind": "processes", "token": token}), "at most 64 processes and threads"),
        "threads": (build_learnware_zip("floods", tmp_path / "t", kwargs={"kind": "threads", "token": token}), "at most 64 processes and threads"),
        "memory": (build_learnware_zip("allocates_10gb", tmp_path / "m"), "ran out of memory"),
    }
    with MarketClient(address) as client:
        uploaded = {name: client.add_learnware(zip_path, semantic_spec(name), wait=False).id for name, (zip_path, _) in hostile.items()}
        for name, learnware_id in uploaded.items():
            checked = client.wait_until_checked(learnware_id, timeout_s=300)
            assert checked.status == "INVALID", (name, checked.check_report)
            messages = " ".join(m for step in checked.check_report["steps"] for m in step.get("messages", []))
            assert hostile[name][1] in messages, (name, messages)
        assert not live_processes_with(token)
        usable = client.add_learnware(build_learnware_zip("scores", tmp_path / "s"), semantic_spec("after the floods"))
        assert usable.status == "USABLE", usable.check_report
        assert {lw.id for lw in client.list_learnwares()} >= {*uploaded.values(), usable.id}
