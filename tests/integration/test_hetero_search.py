"""Hetero market over real loopback gRPC (`lwm serve --all` with LWM_MARKET_KIND=hetero).

Learnwares of one task world, each with its own columns; users whose columns are
shuffled and described in other words find the learnware of their task. The engine
trains in the searcher's background, retrains as learnwares arrive while searches keep
being answered, and a restarted market loads the engine's checkpoint instead of retraining.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from lwm.client import MarketClient
from lwm.rpc.learnware.v1 import market_pb2, market_pb2_grpc
from lwm.rpc.server import channel
from lwm.spec import RKMETableSpecification
from lwm.testing.hetero_world import HeteroTableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TASKS = 4


def table_spec(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return spec


def engine_state(address: str) -> market_pb2.MarketGetMarketInfoResponse:
    return market_pb2_grpc.MarketServiceStub(channel(address)).GetMarketInfo(market_pb2.MarketGetMarketInfoRequest())


def wait_for_engine(address: str, differs_from: str = "", timeout_s: float = 180.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        engine = engine_state(address).hetero_engine
        if engine.engine_id and engine.engine_id != differs_from and not engine.training:
            return engine.engine_id
        time.sleep(0.5)
    raise AssertionError(f"no new hetero engine within {timeout_s} s: {engine_state(address)}")


def test_hetero_market(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_MARKET_KIND", "hetero")
    monkeypatch.setenv("LWM_HETERO_MIN_LEARNWARES", str(TASKS))
    monkeypatch.setenv("LWM_HETERO_RETRAIN_AFTER", "2")
    address = market_process.start()
    world = HeteroTableWorld.make("diabetes", tasks=TASKS, seed=0)
    with MarketClient(address) as client:
        assert engine_state(address).kind == market_pb2.MARKET_KIND_HETERO
        ids = {}
        for task in range(TASKS):
            zip_path, semantic = world.write_learnware(task, tmp_path)
            learnware = client.add_learnware(zip_path, semantic, wait=True)
            assert learnware.status == "USABLE", learnware.check_report
            ids[task] = learnware.id
        first_engine = wait_for_engine(address)
        assert engine_state(address).hetero_engine.trained_on == TASKS

        # Users with a learnware's columns, shuffled and described in other words.
        users = []
        for task in range(TASKS):
            columns = [int(c) for c in np.random.default_rng(task).permutation(world.learnware_columns[task])]
            user = world.user_table(task, columns=columns)
            users.append((task, world.user_semantic_spec(user), table_spec(user.x)))
        found = []
        for task, semantic, spec in users:
            results = client.search_learnware(semantic, spec)
            assert results.search_path == "hetero", results.messages
            assert results.messages[0].startswith("hetero search:")
            assert any(first_engine in message for message in results.messages)
            singles = results.get_single_results()
            assert singles and all(0.0 <= s.score <= 1.0 for s in singles)
            assert singles[0].score == max(s.score for s in singles)
            found.append(singles[0].learnware.id == ids[task])
        assert sum(found) >= TASKS - 1, found  # a random ranking finds one user in four

        # Without feature descriptions: homogeneous search, saying why.
        task, semantic, spec = users[0]
        plain = {key: value for key, value in semantic.items() if key != "Input"}
        results = client.search_learnware(plain, spec)
        assert results.search_path == "statistical"
        assert results.messages[0].startswith("homogeneous search instead of hetero search")
        assert "Input" in results.messages[0]

        # Two more learnwares: the engine retrains; searches are answered meanwhile by the old one.
        more = HeteroTableWorld.make("diabetes", tasks=2, seed=5)
        for task in range(2):
            zip_path, semantic = more.write_learnware(task, tmp_path / "more")
            assert client.add_learnware(zip_path, semantic, wait=True).status == "USABLE"
        answered_while_training = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = engine_state(address).hetero_engine
            if state.engine_id != first_engine and not state.training:
                break
            results = client.search_learnware(users[1][1], users[1][2])
            assert results.search_path == "hetero", results.messages
            if state.training and any(first_engine in message for message in results.messages):
                answered_while_training += 1
        second_engine = wait_for_engine(address, differs_from=first_engine, timeout_s=10)
        assert answered_while_training > 0
        assert engine_state(address).hetero_engine.trained_on == TASKS + 2
        results = client.search_learnware(users[2][1], users[2][2])
        assert results.search_path == "hetero" and any(second_engine in message for message in results.messages)

    # Restart: the engine comes back from its checkpoint, not from a new training.
    assert market_process.stop() == 0
    address = market_process.start()
    assert wait_for_engine(address, timeout_s=60) == second_engine
    state = engine_state(address).hetero_engine
    assert state.trained_on == TASKS + 2 and not state.training
    with MarketClient(address) as client:
        results = client.search_learnware(users[3][1], users[3][2])
        assert results.search_path == "hetero" and any(second_engine in message for message in results.messages)
