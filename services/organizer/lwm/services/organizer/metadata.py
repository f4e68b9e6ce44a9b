"""Learnware metadata in SQL (SQLAlchemy 2): a SQLite file by default, PostgreSQL
(psycopg 3) in production. The schema is managed by the Alembic migrations in
./migrations, applied on start.

Every change bumps a global revision stored on the row; deleted learnwares stay
as tombstones so that the change feed (`changes_after`) can replay deletions.
Revisions come from a counter row updated in the writing transaction: its row lock
serialises writers (also across organizer processes), so revisions commit in order.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text, UniqueConstraint, create_engine, event, func, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from lwm.rpc.errors import ServiceError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FIRST_MIGRATION = "0001"  # the schema the walking skeleton made with create_all
DEFAULT_MARKET_ID = "default"


class Base(DeclarativeBase):
    pass


class LearnwareRow(Base):
    __tablename__ = "learnwares"
    __table_args__ = (UniqueConstraint("owner", "client_request_id", name="uq_learnwares_owner_client_request_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner: Mapped[str] = mapped_column(String(256), index=True, default="")
    market_id: Mapped[str] = mapped_column(String(64), index=True, default=DEFAULT_MARKET_ID, server_default=DEFAULT_MARKET_ID)
    status: Mapped[str] = mapped_column(String(16), index=True)
    semantic_spec: Mapped[str] = mapped_column(Text)  # reference dictionary, JSON
    stat_specs: Mapped[str] = mapped_column(Text)  # list of reference spec dictionaries, JSON
    check_report: Mapped[str] = mapped_column(Text, default="")  # CheckReport as proto JSON
    zip_key: Mapped[str] = mapped_column(String(256))
    zip_size: Mapped[int] = mapped_column(BigInteger)
    zip_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The id the client chose for the upload (idempotent retries); None when it gave none.
    client_request_id: Mapped[str | None] = mapped_column(String(128), nullable=True, default=None)


class CounterRow(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class LearnwareRecord:
    id: str
    owner: str
    status: str
    semantic_spec: dict[str, Any]
    stat_specs: list[dict[str, Any]]
    check_report: str
    zip_key: str
    zip_size: int
    zip_sha256: str
    created_at: float
    updated_at: float
    revision: int
    deleted: bool
    market_id: str = DEFAULT_MARKET_ID  # last, with a default: backups made before named markets lack it


def _record(row: LearnwareRow) -> LearnwareRecord:
    return LearnwareRecord(
        id=row.id,
        owner=row.owner,
        market_id=row.market_id,
        status=row.status,
        semantic_spec=json.loads(row.semantic_spec),
        stat_specs=json.loads(row.stat_specs),
        check_report=row.check_report,
        zip_key=row.zip_key,
        zip_size=row.zip_size,
        zip_sha256=row.zip_sha256,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
        deleted=row.deleted,
    )


class DuplicateRequest(Exception):
    """An add repeated the owner's client request id of an earlier add: `first` is that learnware."""

    def __init__(self, first: LearnwareRecord) -> None:
        super().__init__(f"client request id already used for learnware {first.id}")
        self.first = first


class MetadataUnavailable(ServiceError):
    """The database cannot be reached: callers see UNAVAILABLE with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, f"metadata database is unavailable: {reason}")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a database made before migrations is adopted as 0001)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "learnwares" in tables and "alembic_version" not in tables:
            command.stamp(config, FIRST_MIGRATION)
        command.upgrade(config, "head")


class MetadataStore:
    """All SQL access of the organizer. Writes are serialised so revisions are gap-free and ordered."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self._errors():
            migrate(self.engine)
        self._write_lock = threading.Lock()
        self.changed = threading.Condition()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as error:
            if error.connection_invalidated or isinstance(error.orig, _connection_error_types(self.engine)):
                raise MetadataUnavailable(str(error.orig).strip().splitlines()[0] if error.orig else str(error)) from error
            raise

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._errors(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    def latest_revision(self) -> int:
        with self._session() as session:
            return int(session.scalar(select(CounterRow.value).where(CounterRow.name == "revision")) or 0)

    def _commit_change(self, session: Session, row: LearnwareRow) -> None:
        revision = session.execute(update(CounterRow).where(CounterRow.name == "revision").values(value=CounterRow.value + 1).returning(CounterRow.value)).scalar_one()
        row.revision = int(revision)
        row.updated_at = time.time()
        session.add(row)
        session.commit()
        with self.changed:
            self.changed.notify_all()

    def add(
        self,
        *,
        learnware_id: str,
        owner: str,
        market_id: str = DEFAULT_MARKET_ID,
        status: str,
        semantic_spec: dict[str, Any],
        stat_specs: list[dict[str, Any]],
        zip_key: str,
        zip_size: int,
        zip_sha256: str,
        check_report: str = "",
        created_at: float | None = None,
        client_request_id: str = "",
    ) -> LearnwareRecord:
        """Insert a learnware; with a client_request_id this owner already used, DuplicateRequest carrying the first learnware."""
        now = time.time()
        try:
            with self._write_lock, self._session() as session:
                row = LearnwareRow(
                    id=learnware_id,
                    owner=owner,
                    market_id=market_id,
                    status=status,
                    semantic_spec=json.dumps(semantic_spec),
                    stat_specs=json.dumps(stat_specs),
                    check_report=check_report,
                    zip_key=zip_key,
                    zip_size=zip_size,
                    zip_sha256=zip_sha256,
                    created_at=created_at if created_at is not None else now,
                    updated_at=now,
                    revision=0,
                    deleted=False,
                    client_request_id=client_request_id or None,
                )
                self._commit_change(session, row)
                return _record(row)
        except IntegrityError:
            first = self.by_client_request(owner, client_request_id) if client_request_id else None
            if first is None:
                raise
            raise DuplicateRequest(first) from None

    def by_client_request(self, owner: str, client_request_id: str) -> LearnwareRecord | None:
        """The learnware (live or tombstone) this owner added with this client request id, if any."""
        with self._session() as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.owner == owner, LearnwareRow.client_request_id == client_request_id))
            return _record(row) if row is not None else None

    def exists(self, learnware_id: str) -> bool:
        """Whether a row (live or tombstone) has this id."""
        with self._session() as session:
            return (session.scalar(select(func.count()).select_from(LearnwareRow).where(LearnwareRow.id == learnware_id)) or 0) > 0

    def get(self, learnware_id: str) -> LearnwareRecord | None:
        with self._session() as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False)))
            return _record(row) if row is not None else None

    def get_many(self, learnware_ids: Sequence[str]) -> list[LearnwareRecord]:
        with self._session() as session:
            rows = session.scalars(select(LearnwareRow).where(LearnwareRow.id.in_(list(learnware_ids)), LearnwareRow.deleted.is_(False)))
            return [_record(row) for row in rows]

    def list(self, *, after_seq: int, limit: int, statuses: Iterable[str] = (), owner: str = "", market_id: str = "") -> tuple[list[tuple[int, LearnwareRecord]], int]:
        """A page of (seq, record) in upload order after `after_seq`, and the total matching count (empty owner or market_id: all)."""
        where: list[ColumnElement[bool]] = [LearnwareRow.deleted.is_(False)]
        statuses = list(statuses)
        if statuses:
            where.append(LearnwareRow.status.in_(statuses))
        if owner:
            where.append(LearnwareRow.owner == owner)
        if market_id:
            where.append(LearnwareRow.market_id == market_id)
        with self._session() as session:
            total = int(session.scalar(select(func.count()).select_from(LearnwareRow).where(*where)) or 0)
            rows = session.scalars(select(LearnwareRow).where(*where, LearnwareRow.seq > after_seq).order_by(LearnwareRow.seq).limit(limit))
            return [(row.seq, _record(row)) for row in rows], total

    def all_live(self, batch: int = 500) -> Iterator[LearnwareRecord]:
        """Every live learnware in upload order, read in batches."""
        after_seq = 0
        while True:
            page, _ = self.list(after_seq=after_seq, limit=batch)
            if not page:
                return
            yield from (record for _, record in page)
            after_seq = page[-1][0]

    def zip_keys(self) -> tuple[set[str], set[str]]:
        """(object keys of live learnwares, object keys of deleted ones)."""
        with self._session() as session:
            rows = session.execute(select(LearnwareRow.zip_key, LearnwareRow.deleted))
            live: set[str] = set()
            deleted: set[str] = set()
            for key, is_deleted in rows:
                (deleted if is_deleted else live).add(key)
            return live, deleted - live

    def update(self, learnware_id: str, *, semantic_spec: dict[str, Any] | None = None, status: str | None = None, check_report: str | None = None) -> LearnwareRecord | None:
        with self._write_lock, self._session() as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False)))
            if row is None:
                return None
            if semantic_spec is not None:
                row.semantic_spec = json.dumps(semantic_spec)
            if status is not None:
                row.status = status
            if check_report is not None:
                row.check_report = check_report
            self._commit_change(session, row)
            return _record(row)

    def mark_deleted(self, learnware_id: str) -> LearnwareRecord | None:
        """Turn the row into a tombstone (kept for the change feed); None if unknown."""
        with self._write_lock, self._session() as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False)))
            if row is None:
                return None
            row.deleted = True
            self._commit_change(session, row)
            return _record(row)

    def changes_after(self, revision: int, limit: int = 1000) -> builtins.list[LearnwareRecord]:  # `list` is a method here
        """Rows (tombstones included) changed after `revision`, oldest change first."""
        with self._session() as session:
            rows = session.scalars(select(LearnwareRow).where(LearnwareRow.revision > revision).order_by(LearnwareRow.revision).limit(limit))
            return [_record(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._session() as session:
            rows = session.execute(select(LearnwareRow.status, func.count()).where(LearnwareRow.deleted.is_(False)).group_by(LearnwareRow.status))
            return {status: int(count) for status, count in rows}


def _connection_error_types(engine: Engine) -> tuple[type[BaseException], ...]:
    """The driver's exception types that mean the server is unreachable (not a bad query)."""
    dbapi = engine.dialect.dbapi
    return (dbapi.OperationalError, dbapi.InterfaceError) if dbapi is not None else ()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
