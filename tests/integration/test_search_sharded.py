"""A market sharded over two searcher processes: the gateway's merged results equal one searcher's over all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import free_port

from lwm.client import MarketClient, MarketError
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, organizer_pb2, organizer_pb2_grpc, searcher_pb2, searcher_pb2_grpc
from lwm.rpc.server import channel, wait_until_serving
from lwm.services.market.launch import Running, ServeConfig, start_service
from lwm.services.searcher.index import Shard
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


class ShardProcesses:
    """`lwm serve searcher` children, one per shard, stopped by PID with SIGTERM."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "wb")
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, organizer: str, shard: str) -> str:
        port = free_port()
        command = [sys.executable, "-m", "lwm.client.cli", "serve", "searcher", "--port", str(port), "--organizer", organizer]
        self.children.append(subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "LWM_SEARCHER_SHARD": shard}))
        address = f"127.0.0.1:{port}"
        wait_until_serving(address, timeout_s=60)
        return address

    def stop(self) -> None:
        for child in self.children:
            child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.log.close()


@pytest.fixture
def market(tmp_path: Path) -> Iterator[tuple[ServeConfig, Running, ShardProcesses]]:
    """An organizer in this process, and the place for shard processes and more services."""
    config = ServeConfig(data_dir=tmp_path / "data")
    running = Running()
    shards = ShardProcesses(tmp_path / "shards.log")
    try:
        config.organizer = start_service("organizer", 0, config, running).address
        yield config, running, shards
    finally:
        shards.stop()
        running.stop()


def _upload(organizer: organizer_pb2_grpc.OrganizerServiceStub, zip_path: Path, semantic: dict) -> common_pb2.LearnwareInfo:
    def requests() -> Iterator[organizer_pb2.AddLearnwareRequest]:
        yield organizer_pb2.AddLearnwareRequest(metadata=organizer_pb2.AddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic), owner="anonymous"))
        yield organizer_pb2.AddLearnwareRequest(chunk=common_pb2.Chunk(data=zip_path.read_bytes()))

    added = organizer.AddLearnware(requests(), timeout=60).learnware
    # Checks are the checker's business (tested elsewhere); here the learnware is simply declared USABLE.
    return organizer.UpdateLearnware(organizer_pb2.UpdateLearnwareRequest(learnware_id=added.id, status=common_pb2.LEARNWARE_STATUS_USABLE), timeout=60).learnware


def _wait_for_revision(searchers: list[searcher_pb2_grpc.SearcherServiceStub], revision: int) -> list[searcher_pb2.GetIndexStatsResponse]:
    deadline = time.monotonic() + 60
    while True:
        stats = [s.GetIndexStats(searcher_pb2.GetIndexStatsRequest(), timeout=10) for s in searchers]
        if all(stat.synced and stat.revision >= revision for stat in stats):
            return stats
        assert time.monotonic() < deadline, f"searchers did not reach revision {revision}: {stats}"
        time.sleep(0.1)


def _spec(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return spec


def test_gateway_merges_two_searcher_shards(market: tuple[ServeConfig, Running, ShardProcesses], tmp_path: Path) -> None:
    config, running, shards = market
    organizer_address = config.organizer
    shard_addresses = [shards.start(organizer_address, f"{i}/2") for i in range(2)]
    whole_address = start_service("searcher", 0, config, running).address  # the whole market, for comparison
    config.searcher = ",".join(shard_addresses)
    config.checker = config.reuse = f"127.0.0.1:{free_port()}"  # checks and reuse are not part of this test
    gateway_address = start_service("gateway", 0, config, running).address

    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    searchers = [searcher_pb2_grpc.SearcherServiceStub(channel(a)) for a in (*shard_addresses, whole_address)]
    world = TableWorld.make(tasks=16, seed=21)
    ids: dict[int, str] = {}  # task -> learnware id
    # Upload until both shards hold learnwares (ids are random; each lands in a shard with p = 1/2).
    while len(ids) < 8 or len({Shard(0, 2).owns(i) for i in ids.values()}) < 2:
        task = len(ids)
        info = _upload(organizer, *world.write_learnware(task, tmp_path))
        ids[task] = info.id
    stats = _wait_for_revision(searchers, info.revision)
    assert [s.shard for s in stats] == ["0/2", "1/2", "0/1"]
    assert stats[0].learnware_count + stats[1].learnware_count == stats[2].learnware_count == len(ids)
    assert min(stats[0].learnware_count, stats[1].learnware_count) > 0

    rng = np.random.default_rng(5)
    x_one, _ = world.sample(2, 300, rng)
    x_two, _ = world.sample_mixture([0, 3], 400, rng)
    with MarketClient(gateway_address) as client:
        requests = [
            ({}, _spec(x_one), "greedy"),
            ({}, _spec(x_two), "greedy"),
            ({}, _spec(x_two), "auto"),
            ({"Scenario": world.semantic_spec(1)["Scenario"]}, _spec(x_one), "greedy"),
            ({"Name": {"Values": "demo-tabel-4", "Type": "String"}}, None, "greedy"),  # fuzzy name
        ]
        for semantic, spec, strategy in requests:
            merged = client.search_learnware(semantic, spec, mixture_strategy=strategy)
            request = market_pb2.MarketSearchLearnwareRequest(semantic_spec=convert.semantic_from_dict(semantic), max_search_num=5, max_results=10)
            request.mixture_strategy = searcher_pb2.MIXTURE_STRATEGY_AUTO if strategy == "auto" else searcher_pb2.MIXTURE_STRATEGY_GREEDY
            if spec is not None:
                request.stat_specs.append(convert.stat_spec_to_proto(spec.to_dict()))
            whole = searchers[2].SearchLearnwares(
                searcher_pb2.SearchLearnwaresRequest(semantic_spec=request.semantic_spec, stat_specs=request.stat_specs, max_search_num=5, max_results=10, mixture_strategy=request.mixture_strategy),
                timeout=60,
            )
            assert [r.learnware.id for r in merged.get_single_results()] == [r.learnware.id for r in whole.single_results]
            np.testing.assert_allclose([r.score for r in merged.get_single_results()], [r.score for r in whole.single_results], rtol=1e-6)
            assert [[lw.id for lw in m.learnwares] for m in merged.get_multiple_results()] == [[lw.id for lw in m.learnwares] for m in whole.multiple_results]
            assert merged.search_path == whole.search_path and merged.get_single_results()

        singles = client.search_learnware({}, _spec(x_one)).get_single_results()
        assert singles[0].learnware.id == ids[2]
        mixture = client.search_learnware({}, _spec(x_two)).get_multiple_results()[0]
        assert {lw.id for lw in mixture.learnwares} == {ids[0], ids[3]}

        # Deleting through the gateway: gone from the merged results at once.
        best = singles[0].learnware.id
        client.delete_learnware(best)
        assert best not in {r.learnware.id for r in client.search_learnware({}, _spec(x_one)).get_single_results()}

        # A user spec of another width is comparable with no learnware: no results, and why (as the reference).
        other_width = client.search_learnware({}, _spec(rng.normal(size=(200, world.dim + 3))))
        assert not other_width.get_single_results() and not other_width.get_multiple_results()
        assert any(f"point shape [{world.dim}]" in message for message in other_width.messages), other_width.messages

        # Bad user specifications are the caller's error, with what is wrong.
        for bad, expected in [
            ({"type": "RKMETableSpecification", "z": np.full((5, world.dim), np.nan), "beta": np.full(5, 0.2), "gamma": 0.1}, "NaN"),
            ({"type": "FancySpecification", "z": np.zeros((5, world.dim)), "beta": np.full(5, 0.2), "gamma": 0.1}, "unsupported"),
        ]:
            with pytest.raises(MarketError) as error:
                client.search_learnware({}, bad)
            assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and expected in error.value.message
