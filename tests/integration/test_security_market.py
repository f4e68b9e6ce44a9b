"""A secured market (`lwm serve --all` with tokens, peer secret, limits, metrics and JSON logs):
owners and admins, upload and check limits, Prometheus metrics, request ids across services."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import zipfile
from pathlib import Path

import grpc
import pytest

from lwm.client import MarketClient, MarketError
from lwm.rpc.auth import TokenStore
from lwm.rpc.learnware.v1 import market_pb2, market_pb2_grpc
from lwm.testing.local_servers import free_port
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
MAX_ZIP_BYTES = 400_000


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_secured_market(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = {name: store.create(name, role)[0] for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin"))}
    metrics_port = free_port()
    for name, value in {
        "LWM_TOKENS_FILE": str(store.path), "LWM_PEER_SECRET": "s3cret-peer", "LWM_ALLOW_ANONYMOUS": "true",
        "LWM_METRICS_PORT": str(metrics_port), "LWM_LOG_FORMAT": "json", "LWM_LOG_LEVEL": "INFO",
        "LWM_MAX_ZIP_BYTES": str(MAX_ZIP_BYTES), "LWM_MAX_CONCURRENT_CHECKS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    address = market_process.start()
    monkeypatch.delenv("LWM_PEER_SECRET")  # the test is an outside client
    world = TableWorld.make(tasks=2, seed=8)
    zip_path, semantic = world.write_learnware(0, tmp_path)
    alice, bob, root = (MarketClient(address, token=token[n], tls_ca="") for n in ("alice", "bob", "root"))
    anonymous = MarketClient(address, token="", tls_ca="")

    mine = alice.add_learnware(zip_path, semantic, wait=False)
    assert mine.owner == "alice"
    alice.wait_until_checked(mine.id, timeout_s=120)
    with pytest.raises(MarketError) as denied:
        bob.delete_learnware(mine.id)
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED and "alice" in denied.value.message
    with pytest.raises(MarketError) as denied:
        bob.update_learnware(mine.id, semantic)
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(MarketError) as denied:
        anonymous.add_learnware(zip_path, semantic, wait=False)
    assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert [lw.id for lw in alice.list_learnwares()] == [mine.id]
    assert list(bob.list_learnwares()) == []
    assert anonymous.search_learnware({"Name": {"Values": semantic["Name"]["Values"], "Type": "String"}}).search_path  # anonymous search is on

    # Upload size limit (organizer) and concurrent-check limit (gateway).
    big = tmp_path / "big.zip"
    shutil.copy(zip_path, big)
    with zipfile.ZipFile(big, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("padding.bin", b"\0" * MAX_ZIP_BYTES)
    with pytest.raises(MarketError) as refused:
        bob.add_learnware(big, semantic, wait=False)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" in refused.value.message
    first = bob.add_learnware(zip_path, semantic, wait=False)  # its check holds the only slot
    with pytest.raises(MarketError) as refused:
        bob.add_learnware(zip_path, semantic, wait=False)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "checks" in refused.value.message
    bob.wait_until_checked(first.id, timeout_s=120)
    learnware_gauge = [line for line in scrape(metrics_port).splitlines() if line.startswith("lwm_learnwares{")]
    assert sum(float(line.split()[-1]) for line in learnware_gauge) == 2.0, learnware_gauge

    # An admin sees and may delete everyone's learnwares.
    assert {lw.id for lw in root.list_learnwares()} == {mine.id, first.id}
    root.delete_learnware(first.id)
    alice.delete_learnware(mine.id)

    # Request ids travel from the gateway to the organizer and appear in both services' JSON logs.
    stub = market_pb2_grpc.MarketServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError):
        stub.GetLearnware(market_pb2.MarketGetLearnwareRequest(learnware_id="no-such-id"), metadata=[("x-request-id", "req-trace-42")], timeout=30)
    time.sleep(0.5)
    lines = [json.loads(line) for line in market_process.log_path.read_text().splitlines() if line.startswith("{")]
    traced = {(line.get("rpc_service"), line.get("status")) for line in lines if line.get("request_id") == "req-trace-42"}
    assert {("gateway", "NOT_FOUND"), ("organizer", "NOT_FOUND")} <= traced

    exposition = scrape(metrics_port)
    assert 'lwm_rpc_requests_total{code="PERMISSION_DENIED",method="DeleteLearnware",service="gateway"} 1.0' in exposition
    assert 'lwm_auth_denials_total{code="UNAUTHENTICATED"}' in exposition
    assert 'lwm_limit_refusals_total{limit="learnware checks"} 1.0' in exposition
    assert "lwm_check_duration_seconds_count" in exposition
    assert 'lwm_rpc_duration_seconds_count{method="AddLearnware",service="organizer"}' in exposition
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=10) as reply:
        assert reply.status == 200
