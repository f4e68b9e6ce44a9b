"""Two gateway replicas (separate processes) over one organizer, checker and searcher:
a client's writes through one replica are seen by its searches through the other
(min_revision), retried uploads are stored once, and a step that runs out of time comes
back as DEADLINE_EXCEEDED naming the step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import free_port

from lwm.client import DeadlineExceededError, MarketClient
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, market_pb2_grpc
from lwm.rpc.server import stop_process, wait_until_serving
from lwm.services.market.launch import Running, ServeConfig, start_service
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
# Gateway B gives the searcher 1 s per search (LWM_DEADLINE_<STEP>_S); gateway A keeps the default (30 s).
B_SEARCH_DEADLINE_S = "1"


@dataclass
class Replicas:
    gateway_a: str
    gateway_b: str
    world: TableWorld
    folder: Path


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    folder = tmp_path_factory.mktemp("replicas")
    config = ServeConfig(data_dir=folder / "data")
    running = Running()
    gateways: list[subprocess.Popen[bytes]] = []
    log = open(folder / "gateways.log", "wb")
    try:
        config.organizer = start_service("organizer", 0, config, running).address
        config.checker = start_service("checker", 0, config, running).address
        config.searcher = start_service("searcher", 0, config, running).address
        config.reuse = f"127.0.0.1:{free_port()}"  # reuse is not part of this test
        addresses = []
        for extra_env in ({}, {"LWM_DEADLINE_SEARCHER_SEARCHLEARNWARES_S": B_SEARCH_DEADLINE_S}):
            port = free_port()
            command = [sys.executable, "-m", "lwm.client.cli", "serve", "gateway", "--port", str(port), "--organizer", config.organizer, "--checker", config.checker, "--searcher", config.searcher, "--reuse", config.reuse]
            gateways.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **extra_env}))
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            wait_until_serving(address, timeout_s=90)
        yield Replicas(addresses[0], addresses[1], TableWorld.make(tasks=2, seed=31), folder)
    finally:
        for gateway in gateways:
            stop_process(gateway, grace_s=30)
        running.stop()
        log.close()


def _spec(world: TableWorld, task: int) -> RKMETableSpecification:
    x, _ = world.sample(task, 200, np.random.default_rng(task))
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return spec


def test_writes_through_one_gateway_are_searched_at_once_through_the_other(replicas: Replicas) -> None:
    zip_path, semantic = replicas.world.write_learnware(0, replicas.folder)
    with MarketClient(replicas.gateway_a, token="", tls_ca="") as through_a:
        added = through_a.add_learnware(zip_path, semantic, wait=True)
        assert added.status == "USABLE" and through_a.seen_revision > 0
        with MarketClient(replicas.gateway_b, token="", tls_ca="", seen_revision=through_a.seen_revision) as through_b:
            found = through_b.search_learnware({}, _spec(replicas.world, 0)).get_single_results()
            assert [result.learnware.id for result in found] == [added.id]
        through_a.delete_learnware(added.id)
        with MarketClient(replicas.gateway_b, token="", tls_ca="", seen_revision=through_a.seen_revision) as through_b:
            assert through_b.search_learnware({}, _spec(replicas.world, 0)).get_single_results() == []


def test_min_revision_reaches_the_searcher_and_a_search_without_it_does_not_wait(replicas: Replicas) -> None:
    """A revision the organizer has not written yet: the search waits for it until a deadline runs out."""
    with MarketClient(replicas.gateway_a, token="", tls_ca="") as client:
        client.search_learnware({}, _spec(replicas.world, 1))  # min_revision 0: answers without waiting for any write
    stub = market_pb2_grpc.MarketServiceStub(grpc.insecure_channel(replicas.gateway_a))
    future = market_pb2.MarketSearchLearnwareRequest(min_revision=10**12)
    # The caller's 6 s are less than the step's 30 s: the gateway passes them on, keeping a margin (10%: 0.6 s) to
    # answer. With 3 s the 0.3 s margin was once too short beside CI's mypy on 2 cores: the caller's own deadline came first.
    with pytest.raises(grpc.RpcError) as error:
        stub.SearchLearnware(future, timeout=6.0)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert re.fullmatch(r"searcher\.SearchLearnwares did not answer within 5\.\d s \(the time the caller had left\)", error.value.details() or ""), error.value.details()
    # Gateway B's searcher step has 1 s (LWM_DEADLINE_SEARCHER_SEARCHLEARNWARES_S), less than the caller's 30 s.
    with MarketClient(replicas.gateway_b, token="", tls_ca="", seen_revision=10**12) as client:
        with pytest.raises(DeadlineExceededError, match=r"searcher.SearchLearnwares did not answer within 1.0 s$"):
            client.search_learnware({}, _spec(replicas.world, 1))


def test_a_retried_upload_through_the_other_gateway_returns_the_first_learnware(replicas: Replicas) -> None:
    zip_path, semantic = replicas.world.write_learnware(1, replicas.folder)

    def upload(address: str) -> market_pb2.MarketAddLearnwareResponse:
        def requests() -> Iterator[market_pb2.MarketAddLearnwareRequest]:
            metadata = market_pb2.MarketAddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic), wait_for_check=True, client_request_id="retry-me")
            yield market_pb2.MarketAddLearnwareRequest(metadata=metadata)
            yield market_pb2.MarketAddLearnwareRequest(chunk=common_pb2.Chunk(data=zip_path.read_bytes()))

        with grpc.insecure_channel(address) as channel:
            reply: market_pb2.MarketAddLearnwareResponse = market_pb2_grpc.MarketServiceStub(channel).AddLearnware(requests(), timeout=300)
            return reply

    first = upload(replicas.gateway_a)
    retried = upload(replicas.gateway_b)
    assert first.learnware.status == common_pb2.LEARNWARE_STATUS_USABLE
    # The same learnware, as the first check left it: no second learnware, no second check (its revision is unchanged).
    assert retried.learnware.id == first.learnware.id and retried.revision == first.revision == first.learnware.revision
    with MarketClient(replicas.gateway_a, token="", tls_ca="") as client:
        assert [learnware.id for learnware in client.list_learnwares()].count(first.learnware.id) == 1
        assert sum(1 for learnware in client.list_learnwares() if learnware.name == semantic["Name"]["Values"]) == 1


SLOW_PREDICT = """

import time as _time

_predict = PickledModel.predict


def _slow_predict(self, X):
    _time.sleep(25)  # a model this slow makes the check outlast the uploader's deadline
    return _predict(self, X)


PickledModel.predict = _slow_predict
"""


def _with_slow_model(zip_path: Path, target: Path) -> Path:
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            out.writestr(item, data + SLOW_PREDICT.encode() if item.filename.endswith("__init__.py") else data)
    return target


def test_a_check_outlives_the_deadline_of_the_uploader_who_waited_for_it(replicas: Replicas) -> None:
    zip_path, semantic = replicas.world.write_learnware(0, replicas.folder / "slow")
    slow_zip = _with_slow_model(zip_path, replicas.folder / "slow.zip")

    def upload(timeout: float) -> market_pb2.MarketAddLearnwareResponse:
        def requests() -> Iterator[market_pb2.MarketAddLearnwareRequest]:
            metadata = market_pb2.MarketAddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic), wait_for_check=True, client_request_id="slow-upload")
            yield market_pb2.MarketAddLearnwareRequest(metadata=metadata)
            yield market_pb2.MarketAddLearnwareRequest(chunk=common_pb2.Chunk(data=slow_zip.read_bytes()))

        with grpc.insecure_channel(replicas.gateway_a) as channel:
            reply: market_pb2.MarketAddLearnwareResponse = market_pb2_grpc.MarketServiceStub(channel).AddLearnware(requests(), timeout=timeout)
            return reply

    with pytest.raises(grpc.RpcError) as error:
        upload(10.0)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert re.fullmatch(r"checker\.CheckLearnware did not answer within \d+\.\d s \(the time the caller had left\); the check goes on: .*", error.value.details() or ""), error.value.details()
    # The uploader learns its learnware's id by sending the upload again (same client_request_id) ...
    stored = upload(60.0).learnware
    # ... and the check, no longer bound to the uploader's deadline, ends and is stored.
    with MarketClient(replicas.gateway_b, token="", tls_ca="") as client:
        assert client.wait_until_checked(stored.id, timeout_s=120).status == "USABLE"
