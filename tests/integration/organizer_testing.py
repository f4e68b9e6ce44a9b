"""Fixtures and helpers of the organizer tests: a real S3 server (SeaweedFS) and a real
PostgreSQL on loopback, storage backends, an organizer child process, upload/download calls.

Import what a test module needs with `from organizer_testing import ...`.
PostgreSQL is installed with apt-get when missing; where that is impossible the
tests that need it skip and say why.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import wait_until_serving
from lwm.services.organizer.object_store import StoredObject
from lwm.services.organizer.server import OrganizerConfig
from lwm.testing.local_servers import LocalPostgres, LocalS3Server, ServerUnavailable, free_port

CHUNK = 256 * 1024

_names = itertools.count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    try:
        server = LocalS3Server(tmp_path_factory.mktemp("s3")).start()
    except ServerUnavailable as error:
        pytest.skip(f"no S3 server: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    # Not under pytest's tmp dir: the server runs as the `postgres` user, which cannot enter root's 0700 dirs.
    base = Path(tempfile.mkdtemp(prefix="lwm-pg-"))
    try:
        server = LocalPostgres(base).start()
    except ServerUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"no PostgreSQL: {error}")
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: LocalPostgres) -> str:
    """SQLAlchemy URL of a new empty database."""
    return postgres.create_database(f"lwm_test_{next(_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata database of a test run twice: embedded SQLite, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def s3_bucket() -> str:
    """A bucket name no other test uses (the organizer creates the bucket)."""
    return f"lwm-test-{next(_names)}"


@dataclass
class Backend:
    name: str
    data_dir: Path
    db_url: str
    env: dict[str, str] = field(default_factory=dict)

    def organizer_config(self) -> OrganizerConfig:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return OrganizerConfig.from_env(self.data_dir, self.db_url)
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)

    def objects(self) -> list[StoredObject]:
        return list(self.organizer_config().open_storage()[1].list_objects("learnwares/"))


def upload_reply(stub: organizer_pb2_grpc.OrganizerServiceStub, zip_path: Path, semantic: dict, owner: str = "alice", timeout: float = 60, client_request_id: str = "") -> organizer_pb2.AddLearnwareResponse:
    def requests() -> Iterator[organizer_pb2.AddLearnwareRequest]:
        metadata = organizer_pb2.AddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic), owner=owner, zip_size=zip_path.stat().st_size, client_request_id=client_request_id)
        yield organizer_pb2.AddLearnwareRequest(metadata=metadata)
        with open(zip_path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield organizer_pb2.AddLearnwareRequest(chunk=common_pb2.Chunk(data=chunk))

    reply: organizer_pb2.AddLearnwareResponse = stub.AddLearnware(requests(), timeout=timeout)
    return reply


def upload(stub: organizer_pb2_grpc.OrganizerServiceStub, zip_path: Path, semantic: dict, owner: str = "alice", timeout: float = 60) -> common_pb2.LearnwareInfo:
    return upload_reply(stub, zip_path, semantic, owner, timeout).learnware


def download_sha256(stub: organizer_pb2_grpc.OrganizerServiceStub, learnware_id: str) -> str:
    digest = hashlib.sha256()
    for reply in stub.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=learnware_id), timeout=60):
        digest.update(reply.chunk.data)
    return digest.hexdigest()


def live_ids(stub: organizer_pb2_grpc.OrganizerServiceStub) -> dict[str, common_pb2.LearnwareInfo]:
    found: dict[str, common_pb2.LearnwareInfo] = {}
    token = ""
    while True:
        page = stub.ListLearnwares(organizer_pb2.ListLearnwaresRequest(page=common_pb2.PageRequest(page_size=1000, page_token=token)), timeout=30)
        found.update((info.id, info) for info in page.learnwares)
        token = page.next_page_token
        if not token:
            return found


def padded_zip(source: Path, target: Path, padding_bytes: int) -> Path:
    """The learnware zip plus an incompressible file, to exceed one multipart part."""
    shutil.copy(source, target)
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("padding.bin", random.Random(1).randbytes(padding_bytes))
    return target


class OrganizerProcess:
    """`lwm serve organizer` as a child process, so that it can be SIGKILLed."""

    def __init__(self, backend: Backend, log_path: Path) -> None:
        self.backend = backend
        self.log_path = log_path
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OrganizerProcess:
        args = [sys.executable, "-m", "lwm.client.cli", "serve", "organizer", "--port", str(self.port), "--data-dir", str(self.backend.data_dir)]
        if self.backend.db_url:
            args += ["--db-url", self.backend.db_url]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.backend.env, "LWM_SWEEP_INTERVAL_S": "3600"})
        wait_until_serving(self.address, timeout_s=180)  # imports take minutes on a loaded 2-core machine
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None
