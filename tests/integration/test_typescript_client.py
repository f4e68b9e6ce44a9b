"""The generated TypeScript client (clients/typescript) against a live gateway: Python uploads, Node searches and downloads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from lwm.client import MarketClient
from lwm.rpc import convert
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def test_node_client_searches_and_downloads(market_process, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    compiled = CLIENT_DIR / "dist" / "test" / "market.test.js"
    assert compiled.exists(), "build the TypeScript client first: make clients"
    address = market_process.start()
    world = TableWorld.make(tasks=3, seed=31)
    with MarketClient(address) as client:
        ids = [client.add_learnware(*world.write_learnware(task, tmp_path), wait=True).id for task in range(3)]
    (tmp_path / "other").mkdir()
    with MarketClient(address, market_id="other") as other:
        other_ids = [other.add_learnware(*world.write_learnware(0, tmp_path / "other"), wait=True).id]
    x, _ = world.sample(2, 300, np.random.default_rng(5))
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    # Uploaded by Node into market "ts-writes"; the semantic spec as the proto's JSON (field names in camelCase).
    (tmp_path / "node").mkdir()
    upload_zip, upload_semantic = world.write_learnware(1, tmp_path / "node")
    upload = {"zip": str(upload_zip), "semanticSpec": json_format.MessageToDict(convert.semantic_from_dict(upload_semantic))}
    expected = {"ids": ids, "otherMarketIds": other_ids, "topId": ids[2], "upload": upload, "userSpec": {"z": spec.get_z().tolist(), "beta": spec.get_beta().tolist(), "gamma": spec.gamma}}
    env = dict(os.environ, LWM_MARKET=address, LWM_EXPECTED=json.dumps(expected))
    result = subprocess.run(["node", "--test", str(compiled)], cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 3" in result.stdout and "# fail 0" in result.stdout
