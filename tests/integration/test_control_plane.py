"""The control plane as separate processes on loopback, on PostgreSQL and the S3 server:
1 organizer, 2 checkers, 2 searchers, 1 reuse and 2 gateways. Uploads are spread over both
gateways while a checker (in the middle of a check) and a gateway are SIGKILLed and
restarted: every learnware the organizer stored ends checked exactly once, counted from
its check jobs, and none is lost; a client's upload through one gateway is found at once
by its search through the other."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import sqlalchemy as sa
from organizer_testing import postgres, s3_server  # noqa: F401 - fixtures

from lwm.client import MarketClient
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, market_pb2_grpc
from lwm.rpc.server import wait_until_serving
from lwm.spec import RKMETableSpecification
from lwm.testing.local_servers import LocalPostgres, LocalS3Server
from lwm.testing.processes import ServiceProcess, start_control_plane
from lwm.testing.synthetic import TableWorld

# Eight processes start (about 3 minutes on a loaded 2-core machine): make test-all only. The
# organizer's job semantics are tested unmarked in test_check_jobs.py and test_checker_workers.py.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
STARTUP_S = 180.0
# Short leases so the killed checker's job passes on quickly; heartbeats come every lease / 3.
LEASE_S = "8"


@dataclass
class Plane:
    organizer: ServiceProcess
    checkers: list[ServiceProcess]
    gateways: list[ServiceProcess]
    db_url: str
    folder: Path


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, postgres: LocalPostgres, s3_server: LocalS3Server) -> Iterator[Plane]:
    folder = tmp_path_factory.mktemp("plane")
    db_url = postgres.create_database("lwm_control_plane")
    env = {**s3_server.env("control-plane"), "LWM_DB_URL": db_url, "LWM_CHECK_LEASE_S": LEASE_S, "LWM_CHECK_WORKERS": "2", "LWM_CHECK_POLL_S": "0.5", "LWM_LOG_LEVEL": "INFO"}
    services = start_control_plane(env, folder / "data", folder / "logs", gateways=2, checkers=2, searchers=2, timeout_s=STARTUP_S)
    try:
        organizer, checkers, gateways = services[0], services[1:3], services[-2:]
        yield Plane(organizer, checkers, gateways, db_url, folder)
    finally:
        for service in reversed(services):
            service.stop()


def upload(gateways: list[str], first: int, zip_bytes: bytes, semantic: dict, request_id: str, give_up_s: float = 90.0) -> common_pb2.LearnwareInfo:
    """Upload through gateways[first], else the other one (same client_request_id), until one acknowledges it."""
    deadline = time.monotonic() + give_up_s
    attempt = 0
    while True:
        address = gateways[(first + attempt) % len(gateways)]
        metadata = market_pb2.MarketAddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic), client_request_id=request_id)
        requests = [market_pb2.MarketAddLearnwareRequest(metadata=metadata), market_pb2.MarketAddLearnwareRequest(chunk=common_pb2.Chunk(data=zip_bytes))]
        try:
            with grpc.insecure_channel(address) as channel:
                reply: market_pb2.MarketAddLearnwareResponse = market_pb2_grpc.MarketServiceStub(channel).AddLearnware(iter(requests), timeout=30)
                return reply.learnware
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED) or time.monotonic() > deadline:
                raise
        attempt += 1
        time.sleep(0.2)


def running_jobs_of(engine: sa.Engine, pid: int) -> list[int]:
    """Check jobs leased by a worker of the checker process `pid` (holders are host:pid:instance:worker)."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id FROM check_jobs WHERE state = 'running' AND lease_holder LIKE :holder"), {"holder": f"%:{pid}:%"})
        return [row[0] for row in rows]


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("uploads", [8, 30])
def test_uploads_survive_a_killed_checker_and_gateway_and_each_is_checked_once(plane: Plane, uploads: int) -> None:
    world = TableWorld.make(tasks=2, seed=17)
    zip_path, semantic = world.write_learnware(0, plane.folder)
    zip_bytes = zip_path.read_bytes()
    gateways = [g.address for g in plane.gateways]
    engine = sa.create_engine(plane.db_url)
    prefix = f"kill-{uploads}-"
    acknowledged: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        info = upload(gateways, i % 2, zip_bytes, semantic, f"{prefix}{i}")
        with lock:
            acknowledged.append(info.id)

    checker, gateway = plane.checkers[0], plane.gateways[1]
    assert checker.process is not None
    killed_pid = checker.process.pid
    with ThreadPoolExecutor(max_workers=3) as pool:
        # A third of the uploads, and more until checker 0 has leased a job (checker 1 may have taken the first ones).
        sent = 0
        while sent < uploads - 2 and (sent < uploads // 3 or not running_jobs_of(engine, killed_pid)):
            batch = range(sent, min(sent + 3, uploads - 2))
            list(pool.map(one, batch))
            sent = batch.stop
        # Mid-way: checker 0 is in the middle of a check, gateway 1 takes uploads; both die.
        wait_for(lambda: running_jobs_of(engine, killed_pid), 120, "checker 0 to lease a job")
        later = [pool.submit(one, i) for i in range(sent, uploads)]
        checker.kill()
        gateway.kill()
        interrupted = running_jobs_of(engine, killed_pid)  # leases of the dead checker: checks it did not finish
        time.sleep(1.0)
        checker.start()
        gateway.start()
        for future in later:
            future.result()
    wait_until_serving(gateway.address, timeout_s=STARTUP_S)
    wait_until_serving(checker.address, timeout_s=STARTUP_S)

    mine = "SELECT id FROM learnwares WHERE client_request_id LIKE :prefix"

    def all_checked() -> bool:
        with engine.connect() as connection:
            return connection.execute(sa.text(f"SELECT count(*) FROM check_jobs WHERE state IN ('queued', 'running') AND learnware_id IN ({mine})"), {"prefix": prefix + "%"}).scalar_one() == 0

    wait_for(all_checked, 60 + 20 * uploads, "every check job to end")
    with engine.connect() as connection:
        learnwares = dict(connection.execute(sa.text(f"SELECT id, status FROM learnwares WHERE NOT deleted AND id IN ({mine})"), {"prefix": prefix + "%"}).all())
        jobs = connection.execute(sa.text(f"SELECT id, learnware_id, state, attempts, last_error FROM check_jobs WHERE learnware_id IN ({mine})"), {"prefix": prefix + "%"}).all()
    engine.dispose()

    assert len(acknowledged) == uploads and len(set(acknowledged)) == uploads  # retries through the other gateway stored nothing twice
    assert set(learnwares) == set(acknowledged)  # none lost, none extra
    assert set(learnwares.values()) == {"USABLE"}
    assert sorted(job.learnware_id for job in jobs) == sorted(acknowledged) and {job.state for job in jobs} == {"done"}  # each checked exactly once
    # The jobs checker 0 held when it died were finished by another lease.
    taken_over = [job for job in jobs if job.id in interrupted]
    assert taken_over and all(job.attempts == 2 and f":{killed_pid}:" in job.last_error and "expired" in job.last_error for job in taken_over), taken_over


def test_an_upload_through_one_gateway_is_found_at_once_through_the_other(plane: Plane) -> None:
    world = TableWorld.make(tasks=2, seed=23)
    zip_path, semantic = world.write_learnware(1, plane.folder)
    x, _ = world.sample(1, 200, np.random.default_rng(1))
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    with MarketClient(plane.gateways[0].address, token="", tls_ca="") as through_a:
        added = through_a.add_learnware(zip_path, semantic, wait=True)
        assert added.status == "USABLE"
        with MarketClient(plane.gateways[1].address, token="", tls_ca="", seen_revision=through_a.seen_revision) as through_b:
            found = through_b.search_learnware({}, spec).get_single_results()
    assert [result.learnware.id for result in found] == [added.id]
