"""Load with a storage outage (bench/load_bench.py at small scale): concurrent clients on
PostgreSQL + S3; the S3 server is stopped mid-run. Requests needing it fail with
UNAVAILABLE and a message, nothing acknowledged is lost, and the market recovers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_bench.py"


def test_s3_outage_under_load(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(BENCH), "--clients", "4", "--ops", "8", "--s3-outage", "6", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["lost_or_corrupt"] == []
    assert report["s3_outage"]["restarted_at_s"] > report["s3_outage"]["stopped_at_s"]
    codes = {failure["code"] for failure in report["failures"]}
    assert codes <= {"UNAVAILABLE"}, report["failures"]
    assert all("unavailable" in failure["message"] for failure in report["failures"])
    assert report["latency_ms"]["search"]["count"] > 0  # searches do not need the object store
    print(done.stdout)
