"""The organizer on its production backends (PostgreSQL + S3 via SeaweedFS) and on the
embedded ones (SQLite + directory): round trips with multipart zips and checksums,
crash consistency under SIGKILL, backup/restore, and an S3 outage."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from organizer_testing import (  # noqa: F401 - fixtures
    Backend,
    OrganizerProcess,
    download_sha256,
    live_ids,
    padded_zip,
    pg_url,
    postgres,
    s3_bucket,
    s3_server,
    upload,
    upload_reply,
)

from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import channel
from lwm.services.organizer.object_store import MULTIPART_PART_BYTES
from lwm.services.organizer.server import build_server
from lwm.testing.local_servers import LocalS3Server
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite-directory", "postgres-s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    data_dir = tmp_path / "organizer-data"
    if request.param == "sqlite-directory":
        return Backend(request.param, data_dir, "", {})
    s3: LocalS3Server = request.getfixturevalue("s3_server")
    return Backend(request.param, data_dir, request.getfixturevalue("pg_url"), s3.env(request.getfixturevalue("s3_bucket")))


@pytest.fixture(scope="module")
def learnware_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return TableWorld.make(tasks=2, seed=5).write_learnware(0, tmp_path_factory.mktemp("zips"))


def test_organizer_round_trip_with_multipart_zip_and_checksums(backend: Backend, learnware_zip: tuple[Path, dict], tmp_path: Path) -> None:
    zip_path, semantic = learnware_zip
    big = padded_zip(zip_path, tmp_path / "big.zip", MULTIPART_PART_BYTES + 3 * 1024 * 1024)
    server, _sweeper = build_server(backend.organizer_config(), 0)
    server.start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        small_info = upload(stub, zip_path, semantic)
        big_info = upload(stub, big, semantic, owner="bob")
        assert big_info.zip_size == big.stat().st_size
        assert download_sha256(stub, big_info.id) == big_info.zip_sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
        assert download_sha256(stub, small_info.id) == small_info.zip_sha256
        assert set(live_ids(stub)) == {small_info.id, big_info.id}
        # Named markets (migration 0003): an upload without a market is in "default"; lists filter by market.
        assert small_info.market_id == "default"
        assert stub.ListLearnwares(organizer_pb2.ListLearnwaresRequest(market_id="default"), timeout=30).total == 2
        assert stub.ListLearnwares(organizer_pb2.ListLearnwaresRequest(market_id="other"), timeout=30).total == 0
        assert {o.key for o in backend.objects()} == {f"learnwares/{small_info.id}.zip", f"learnwares/{big_info.id}.zip"}

        # A stored zip that no longer matches its checksum is never handed out as good.
        metadata, objects = backend.organizer_config().open_storage()
        objects.put_file(f"learnwares/{small_info.id}.zip", big, "tampered")
        with pytest.raises(grpc.RpcError) as error:
            download_sha256(stub, small_info.id)
        assert error.value.code() == grpc.StatusCode.DATA_LOSS

        stub.DeleteLearnware(organizer_pb2.DeleteLearnwareRequest(learnware_id=big_info.id), timeout=30)
        assert {o.key for o in backend.objects()} == {f"learnwares/{small_info.id}.zip"}
        with pytest.raises(grpc.RpcError) as error:
            stub.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=big_info.id), timeout=30)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()


@dataclass
class WriteLog:
    """What clients were told: acknowledged uploads (id -> sha256) and deletions."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    uploaded: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    delete_cut: set[str] = field(default_factory=set)  # deletion sent, no answer: either outcome is right
    failures: int = 0


def hammer(address: str, zip_path: Path, semantic: dict, log: WriteLog, stop: threading.Event, seed: int) -> None:
    """Upload, and delete some of what this client uploaded, until the organizer dies."""
    rng = random.Random(seed)
    stub = organizer_pb2_grpc.OrganizerServiceStub(channel(address))
    mine: list[str] = []
    while not stop.is_set():
        try:
            if mine and rng.random() < 0.3:
                victim = mine.pop(rng.randrange(len(mine)))
                with log.lock:
                    log.delete_cut.add(victim)
                stub.DeleteLearnware(organizer_pb2.DeleteLearnwareRequest(learnware_id=victim), timeout=30)
                with log.lock:
                    log.delete_cut.discard(victim)
                    log.deleted.add(victim)
            else:
                info = upload(stub, zip_path, semantic, timeout=30)
                mine.append(info.id)
                with log.lock:
                    log.uploaded[info.id] = info.zip_sha256
        except grpc.RpcError:
            with log.lock:
                log.failures += 1
            return


# The SQLite/directory variant runs in `make test-all`: the same crash path on the embedded storage.
@pytest.mark.parametrize("backend", [pytest.param("sqlite-directory", marks=pytest.mark.slow), "postgres-s3"], indirect=True)
def test_sigkill_mid_writes_loses_nothing_acknowledged_and_sweeper_cleans_up(backend: Backend, learnware_zip: tuple[Path, dict], tmp_path: Path) -> None:
    zip_path, semantic = learnware_zip
    organizer = OrganizerProcess(backend, tmp_path / "organizer.log").start()
    log = WriteLog()
    stop = threading.Event()
    try:
        for round_ in range(2):  # two crashes, the second on top of the first one's leftovers
            clients = [threading.Thread(target=hammer, args=(organizer.address, zip_path, semantic, log, stop, 10 * round_ + i)) for i in range(4)]
            for client in clients:
                client.start()
            deadline = time.monotonic() + 60
            while len(log.uploaded) < 8 * (round_ + 1) and time.monotonic() < deadline:
                time.sleep(0.02)
            organizer.kill()  # in the middle of uploads and deletes
            for client in clients:
                client.join(timeout=60)
            organizer.start()

        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer.address))
        visible = live_ids(stub)
        acknowledged = set(log.uploaded) - log.deleted - log.delete_cut
        assert acknowledged <= set(visible), f"acknowledged learnwares lost: {acknowledged - set(visible)}"
        assert not (log.deleted & set(visible)), f"acknowledged deletions came back: {log.deleted & set(visible)}"
        for learnware_id, info in visible.items():  # nothing half-visible: every row has its intact zip
            assert download_sha256(stub, learnware_id) == info.zip_sha256
            if learnware_id in log.uploaded:
                assert info.zip_sha256 == log.uploaded[learnware_id]
        assert len(log.uploaded) >= 16, "too few uploads were acknowledged to test anything"
    finally:
        stop.set()
        organizer.stop()

    before = {o.key for o in backend.objects()}
    live_keys = {f"learnwares/{i}.zip" for i in visible}
    assert live_keys <= before
    sweep = subprocess.run([sys.executable, "-m", "lwm.client.cli", "admin", "sweep", "--grace-s", "0", "--data-dir", str(backend.data_dir)] + (["--db-url", backend.db_url] if backend.db_url else []),
                           env={**os.environ, **backend.env}, capture_output=True, text=True, timeout=120)
    assert sweep.returncode == 0, sweep.stderr
    assert {o.key for o in backend.objects()} == live_keys
    print(f"{backend.name}: {len(log.uploaded)} uploads and {len(log.deleted)} deletions acknowledged, {log.failures} calls cut by SIGKILL, "
          f"{len(before - live_keys)} orphan zips swept: {sweep.stdout.strip()}")


def test_backup_on_postgres_s3_restores_into_a_fresh_market(s3_server: LocalS3Server, postgres, learnware_zip: tuple[Path, dict], tmp_path: Path) -> None:
    zip_path, semantic = learnware_zip
    source = Backend("source", tmp_path / "source", postgres.create_database("lwm_backup_source"), s3_server.env("lwm-backup-source"))
    target = Backend("target", tmp_path / "target", postgres.create_database("lwm_backup_target"), s3_server.env("lwm-backup-target"))
    server, _ = build_server(source.organizer_config(), 0)
    server.start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        infos = [upload(stub, zip_path, semantic, owner=f"user{i}") for i in range(3)]
        stub.UpdateLearnware(organizer_pb2.UpdateLearnwareRequest(learnware_id=infos[0].id, status=common_pb2.LEARNWARE_STATUS_USABLE), timeout=30)
    finally:
        server.stop()

    def admin(backend: Backend, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "lwm.client.cli", "admin", *args, "--data-dir", str(backend.data_dir), "--db-url", backend.db_url], env={**os.environ, **backend.env}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "backed up 3 learnwares" in admin(source, "backup", str(tmp_path / "backup"))
    assert "restored 3 learnwares" in admin(target, "restore", str(tmp_path / "backup"))
    server, _ = build_server(target.organizer_config(), 0)
    server.start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        restored = live_ids(stub)
        assert set(restored) == {info.id for info in infos}
        for info in infos:
            assert (restored[info.id].owner, restored[info.id].zip_sha256) == (info.owner, info.zip_sha256)
            assert download_sha256(stub, info.id) == info.zip_sha256
        assert restored[infos[0].id].status == common_pb2.LEARNWARE_STATUS_USABLE
    finally:
        server.stop()


def test_s3_outage_gives_unavailable_and_recovers(tmp_path: Path, pg_url: str, learnware_zip: tuple[Path, dict]) -> None:
    zip_path, semantic = learnware_zip
    s3 = LocalS3Server(tmp_path / "s3").start()  # our own server: this test stops it
    backend = Backend("outage", tmp_path / "organizer", pg_url, s3.env())
    server, _ = build_server(backend.organizer_config(), 0)
    server.start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        before = upload(stub, zip_path, semantic)
        s3.stop()
        for call in (lambda: upload(stub, zip_path, semantic), lambda: download_sha256(stub, before.id)):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "object storage is unavailable" in error.value.details()
        assert set(live_ids(stub)) == {before.id}  # the failed upload left no row
        s3.start()
        after = upload(stub, zip_path, semantic)
        assert download_sha256(stub, before.id) == before.zip_sha256
        assert download_sha256(stub, after.id) == after.zip_sha256
    finally:
        server.stop()
        s3.stop()


def test_an_upload_repeated_with_its_client_request_id_is_stored_once(backend: Backend, learnware_zip: tuple[Path, dict]) -> None:
    zip_path, semantic = learnware_zip
    server, _sweeper = build_server(backend.organizer_config(), 0)
    server.start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        first = upload_reply(stub, zip_path, semantic, client_request_id="upload-1")
        assert not first.replayed
        again = upload_reply(stub, zip_path, semantic, client_request_id="upload-1")
        assert again.replayed and again.learnware.id == first.learnware.id
        # Concurrent repeats (a retry racing the first attempt) also end with the first learnware only.
        with ThreadPoolExecutor(4) as pool:
            racing = list(pool.map(lambda _: upload_reply(stub, zip_path, semantic, client_request_id="upload-2"), range(4)))
        assert len({reply.learnware.id for reply in racing}) == 1 and sum(not reply.replayed for reply in racing) == 1
        # The id is scoped to its owner; no id means a new learnware each time.
        bobs = upload_reply(stub, zip_path, semantic, owner="bob", client_request_id="upload-1")
        plain = [upload_reply(stub, zip_path, semantic).learnware.id for _ in range(2)]
        assert not bobs.replayed and bobs.learnware.id != first.learnware.id and plain[0] != plain[1]
        expected = {first.learnware.id, racing[0].learnware.id, bobs.learnware.id, *plain}
        assert set(live_ids(stub)) == expected
        assert {o.key for o in backend.objects()} == {f"learnwares/{learnware_id}.zip" for learnware_id in expected}

        stub.DeleteLearnware(organizer_pb2.DeleteLearnwareRequest(learnware_id=first.learnware.id), timeout=30)
        with pytest.raises(grpc.RpcError) as error:
            upload_reply(stub, zip_path, semantic, client_request_id="upload-1")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND and first.learnware.id in (error.value.details() or "")
        with pytest.raises(grpc.RpcError) as error:
            upload_reply(stub, zip_path, semantic, client_request_id="x" * 129)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "client_request_id" in (error.value.details() or "")
    finally:
        server.stop()
