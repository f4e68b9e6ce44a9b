"""Fixtures for the storage tests: a real S3 server (SeaweedFS) and a real PostgreSQL on loopback.

Import the fixtures into a test module with `from storage_servers import ...`.
PostgreSQL is installed with apt-get when missing; where that is impossible the
tests that need it skip and say why.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from lwm.services.organizer.local_servers import LocalPostgres, LocalS3Server, ServerUnavailable

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


@pytest.fixture
def s3_bucket() -> str:
    """A bucket name no other test uses (the organizer creates the bucket)."""
    return f"lwm-test-{next(_names)}"
