"""One hetero trainer among a market's searcher replicas, by the organizer's trainer lease.

The slow test runs an organizer and two searchers as separate processes on loopback
(`lwm serve organizer|searcher`) with a short lease: only the lease holder trains and
writes the checkpoint, the other serves hetero searches from it; SIGKILL the trainer and
the other takes training over, and a learnware uploaded afterwards is trained on and
found. The quick test runs them in this process (one text encoder load instead of three)
and hands training over by TrainHeteroEngine on the follower instead.
Learnwares are stored through the organizer and marked USABLE directly (no checker), and
the engine trains a few dozen steps on 3 to 4 learnwares, so both stay cheap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port
from test_hetero_search_lifecycle import Searcher, add_usable, hetero_request, organizer_address  # noqa: F401 (organizer_address is a fixture)

from lwm.rpc.learnware.v1 import organizer_pb2, organizer_pb2_grpc, searcher_pb2, searcher_pb2_grpc
from lwm.rpc.server import channel, stop_process, wait_until_serving
from lwm.testing.hetero_world import HeteroTableWorld

pytestmark = pytest.mark.integration
LEASE_S = 3.0
# A lapsed lease is retaken at the next attempt (every third of the lease); the slack is for a loaded machine.
TAKEOVER_BOUND_S = LEASE_S * 4 / 3 + 10.0
SEARCHER_ENV = {
    "LWM_MARKET_KIND": "hetero",
    "LWM_HETERO_MIN_LEARNWARES": "3",
    "LWM_HETERO_RETRAIN_AFTER": "1",
    "LWM_HETERO_TRAIN_STEPS": "40",
    "LWM_HETERO_TRAINER_LEASE_S": str(LEASE_S),
    "LWM_HETERO_CHECKPOINT_POLL_S": "0.5",
    "LWM_LOG_LEVEL": "INFO",
}


@dataclass
class Service:
    """One `lwm serve NAME` child process and its log."""

    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    @classmethod
    def start(cls, name: str, tmp_path: Path, label: str, *args: str) -> Service:
        port = free_port()
        log_path = tmp_path / f"{label}.log"
        with open(log_path, "wb") as log:
            command = [sys.executable, "-m", "lwm.client.cli", "serve", name, "--port", str(port), *args]
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **SEARCHER_ENV})
        return cls(process, f"127.0.0.1:{port}", log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    try:
        organizer = Service.start("organizer", tmp_path, "organizer", "--data-dir", str(tmp_path / "data"))
        started.append(organizer)
        for label in ("searcher-a", "searcher-b"):  # started together: a searcher retries the organizer until it serves
            started.append(Service.start("searcher", tmp_path, label, "--organizer", organizer.address))
        for service in started:
            wait_until_serving(service.address, timeout_s=120)
        yield started
    finally:
        for service in reversed(started):
            stop_process(service.process, grace_s=30)


def engine_of(searcher: Service) -> searcher_pb2.HeteroEngineStats:
    return searcher_pb2_grpc.SearcherServiceStub(channel(searcher.address)).GetIndexStats(searcher_pb2.GetIndexStatsRequest()).hetero


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> float:
    """Seconds until `condition` held."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.slow  # 190 s at load 9 on 2 cores: three processes each load torch and the text encoder
def test_one_searcher_trains_and_the_other_takes_over_when_it_is_killed(services: list[Service], tmp_path: Path) -> None:
    organizer_service, *searchers = services
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_service.address))
    world = HeteroTableWorld.make("wine", tasks=4, seed=1)
    for task in range(3):
        add_usable(organizer, *world.write_learnware(task, tmp_path / "zips"))

    def both_serve_one_engine() -> bool:
        engines = [engine_of(searcher) for searcher in searchers]
        return bool(engines[0].engine_id) and engines[0].engine_id == engines[1].engine_id and not any(engine.training for engine in engines)

    wait_for(both_serve_one_engine, "both searchers serving the trained engine")
    trainers = [searcher for searcher in searchers if engine_of(searcher).trainer]
    assert len(trainers) == 1, [engine_of(searcher) for searcher in searchers]
    trainer = trainers[0]
    follower = next(searcher for searcher in searchers if searcher is not trainer)
    first = engine_of(follower)
    assert first.trained_on == 3 and not first.trainer
    checkpoint = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
    assert f":{trainer.process.pid}:" in checkpoint.writer and checkpoint.version == first.checkpoint_version
    assert "hetero engine: training on 3 of 3" in trainer.log()
    assert "hetero engine: training on" not in follower.log() and "loaded from checkpoint version" in follower.log()
    stub = searcher_pb2_grpc.SearcherServiceStub(channel(follower.address))
    reply = stub.SearchLearnwares(hetero_request(world, 0))
    assert reply.search_path == "hetero" and reply.single_results
    assert any(first.engine_id in message for message in reply.messages)

    trainer.process.send_signal(signal.SIGKILL)
    trainer.process.wait(timeout=30)
    took_over_s = wait_for(lambda: engine_of(follower).trainer, "the follower taking the trainer lease over", timeout_s=60)
    assert took_over_s < TAKEOVER_BOUND_S

    fourth = add_usable(organizer, *world.write_learnware(3, tmp_path / "zips"))
    wait_for(lambda: engine_of(follower).engine_id != first.engine_id and engine_of(follower).trained_on == 4 and not engine_of(follower).training, "the new trainer retraining with the new learnware")
    retrained = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
    assert f":{follower.process.pid}:" in retrained.writer and retrained.epoch > checkpoint.epoch and retrained.version > checkpoint.version
    assert "hetero engine: training on 4 of 4" in follower.log()
    reply = stub.SearchLearnwares(hetero_request(world, 3))
    assert reply.search_path == "hetero"
    assert fourth in [result.learnware.id for result in reply.single_results]


def test_the_follower_serves_the_trainers_checkpoint_and_takes_training_over_when_asked_to_train(organizer_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SEARCHER_ENV.items():
        monkeypatch.setenv(name, value)
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    world = HeteroTableWorld.make("wine", tasks=3, seed=3)
    trainer = Searcher(organizer_address)
    follower = None
    try:
        wait_for(lambda: trainer.engine().trainer, "the first searcher taking the trainer lease")
        follower = Searcher(organizer_address)
        for task in range(3):
            add_usable(organizer, *world.write_learnware(task, tmp_path / "zips"))
        first = trainer.wait_for_engine()
        assert follower.wait_for_engine() == first
        assert trainer.engine().trainer and not follower.engine().trainer
        checkpoint = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
        assert (checkpoint.writer, checkpoint.version) == (trainer.hetero.lease.holder, follower.engine().checkpoint_version)
        assert follower.stub.SearchLearnwares(hetero_request(world, 0)).search_path == "hetero"

        # The compat train() path reaches the follower: it takes the lease over, trains, and the former trainer follows it.
        trained = follower.stub.TrainHeteroEngine(searcher_pb2.TrainHeteroEngineRequest(steps=20))
        second = trained.engine.engine_id
        assert second != first and trained.engine.trainer and follower.engine().engine_id == second
        retrained = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine", after_version=checkpoint.version))
        assert (retrained.writer, retrained.epoch) == (follower.hetero.lease.holder, checkpoint.epoch + 1)
        assert trainer.wait_for_engine(differs_from=first) == second
        wait_for(lambda: not trainer.engine().trainer, "the former trainer noticing that it lost the lease")
        assert trainer.stub.SearchLearnwares(hetero_request(world, 1)).search_path == "hetero"
    finally:
        trainer.stop()
        if follower is not None:
            follower.stop()
