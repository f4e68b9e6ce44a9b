"""Learnware metadata in SQL (SQLAlchemy 2): a SQLite file by default, PostgreSQL
(psycopg 3) in production. The schema is managed by the Alembic migrations in
./migrations, applied on start.

Every change bumps a global revision stored on the row; deleted learnwares stay
as tombstones so that the change feed (`changes_after`) can replay deletions.
Revisions come from a counter row updated in the writing transaction: its row lock
serialises writers (also across organizer processes), so revisions commit in order.

Checks are durable jobs (table check_jobs): a learnware made PENDING gets a queued job
in the same transaction; checkers lease a job (claim), extend the lease while the check
runs (heartbeat) and write its outcome (complete); a lease that expires lets another
checker take the job, and after `max_check_attempts` attempts the learnware gets an
INVALID report saying so. Every job transition is a compare-and-set on (state, holder),
so only the holder of a lease can end a job and a job ends once (docs/operators.md).
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
from google.protobuf import json_format
from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text, UniqueConstraint, and_, case, create_engine, event, func, inspect, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from lwm.rpc.errors import ServiceError
from lwm.rpc.learnware.v1 import common_pb2

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FIRST_MIGRATION = "0001"  # the schema the walking skeleton made with create_all
DEFAULT_MARKET_ID = "default"
DEFAULT_MAX_CHECK_ATTEMPTS = 3
JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED = "queued", "running", "done", "failed"


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


class CheckJobRow(Base):
    __tablename__ = "check_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learnware_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(256), nullable=True, default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class CheckJob:
    id: int
    learnware_id: str
    state: str
    attempts: int
    lease_holder: str
    lease_expires_at: float
    created_at: float
    finished_at: float
    last_error: str

    @property
    def finished(self) -> bool:
        return self.state in (JOB_DONE, JOB_FAILED)


def _job(row: CheckJobRow) -> CheckJob:
    return CheckJob(
        id=row.id,
        learnware_id=row.learnware_id,
        state=row.state,
        attempts=row.attempts,
        lease_holder=row.lease_holder or "",
        lease_expires_at=row.lease_expires_at or 0.0,
        created_at=row.created_at,
        finished_at=row.finished_at or 0.0,
        last_error=row.last_error,
    )


def exhausted_report(attempts: int, last_error: str) -> str:
    """The INVALID check report (proto JSON) of a learnware whose check never finished."""
    step = common_pb2.CheckStep(name="check", passed=False, messages=[f"the check was attempted {attempts} times and never finished; last error: {last_error}"])
    return json_format.MessageToJson(common_pb2.CheckReport(status=common_pb2.LEARNWARE_STATUS_INVALID, steps=[step], checked_at=time.time()))


class LeaseLost(Exception):
    """A checker acted on a job whose lease it no longer holds (it expired and another took it, or the job ended)."""

    def __init__(self, job_id: int, holder: str) -> None:
        super().__init__(f"check job {job_id} is not leased by {holder!r} (its lease expired or the job ended)")


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

    def __init__(self, url: str, max_check_attempts: int = DEFAULT_MAX_CHECK_ATTEMPTS) -> None:
        if max_check_attempts < 1:
            raise ValueError(f"max_check_attempts must be at least 1, got {max_check_attempts}")
        self.max_check_attempts = max_check_attempts
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

    def _stage_change(self, session: Session, row: LearnwareRow) -> None:
        """Give the row the next revision (committed with the session's transaction)."""
        revision = session.execute(update(CounterRow).where(CounterRow.name == "revision").values(value=CounterRow.value + 1).returning(CounterRow.value)).scalar_one()
        row.revision = int(revision)
        row.updated_at = time.time()
        session.add(row)

    def _commit_change(self, session: Session, row: LearnwareRow) -> None:
        self._stage_change(session, row)
        session.commit()
        self._notify()

    def _notify(self) -> None:
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
        """Insert a learnware (PENDING: with its check job); with a client_request_id this owner already used, DuplicateRequest carrying the first learnware."""
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
                if status == "PENDING":
                    session.add(CheckJobRow(learnware_id=learnware_id, state=JOB_QUEUED, attempts=0, created_at=now, last_error=""))
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
                if status == "PENDING":
                    self._stage_job(session, learnware_id)
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


    # Check jobs.

    def _stage_job(self, session: Session, learnware_id: str) -> CheckJobRow:
        """A queued job for the learnware in the session's transaction; an already queued one is reused (it checks the newest state)."""
        queued = session.scalar(select(CheckJobRow).where(CheckJobRow.learnware_id == learnware_id, CheckJobRow.state == JOB_QUEUED).order_by(CheckJobRow.id).limit(1))
        if queued is not None:
            return queued
        job = CheckJobRow(learnware_id=learnware_id, state=JOB_QUEUED, attempts=0, created_at=time.time(), last_error="")
        session.add(job)
        return job

    def create_check_job(self, learnware_id: str) -> CheckJob | None:
        """Queue a check of a live learnware (None if unknown or deleted); its status stays as it is until the check ends."""
        with self._write_lock, self._session() as session:
            if session.scalar(select(LearnwareRow.seq).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False))) is None:
                return None
            job = self._stage_job(session, learnware_id)
            session.commit()
            return _job(job)

    def get_job(self, job_id: int) -> CheckJob | None:
        with self._session() as session:
            row = session.get(CheckJobRow, job_id)
            return _job(row) if row is not None else None

    def jobs_of(self, learnware_id: str) -> builtins.list[CheckJob]:
        """Every check job of a learnware, oldest first."""
        with self._session() as session:
            return [_job(row) for row in session.scalars(select(CheckJobRow).where(CheckJobRow.learnware_id == learnware_id).order_by(CheckJobRow.id))]

    def unfinished_jobs(self) -> int:
        """Check jobs queued or running."""
        with self._session() as session:
            return int(session.scalar(select(func.count()).select_from(CheckJobRow).where(CheckJobRow.state.in_([JOB_QUEUED, JOB_RUNNING]))) or 0)

    def claim_check_job(self, holder: str, lease_s: float) -> CheckJob | None:
        """Lease the oldest queued job, or a running one whose lease expired, to `holder` for lease_s seconds; None when there is none.

        Running jobs whose lease expired after their last attempt are failed first.
        """
        if not holder:
            raise ValueError("a check job's lease needs a holder name")
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        now = time.time()
        self._fail_exhausted(now)
        claimable = or_(CheckJobRow.state == JOB_QUEUED, and_(CheckJobRow.state == JOB_RUNNING, CheckJobRow.lease_expires_at < now))
        with self._session() as session:
            if session.scalar(select(CheckJobRow.id).where(claimable).limit(1)) is None:
                return None  # the common idle case: a read, no write lock taken
            # One statement: PostgreSQL skips rows other claimers hold locked; SQLite runs it under its write lock.
            pick = select(CheckJobRow.id).where(claimable, CheckJobRow.attempts < self.max_check_attempts).order_by(CheckJobRow.id).limit(1).with_for_update(skip_locked=True).scalar_subquery()
            expired_error = literal("the lease of ") + func.coalesce(CheckJobRow.lease_holder, "") + literal(" expired (the checker stopped or lost contact)")
            claimed = session.scalars(
                update(CheckJobRow)
                .where(CheckJobRow.id == pick, claimable)
                .values(
                    state=JOB_RUNNING,
                    attempts=CheckJobRow.attempts + 1,
                    lease_holder=holder,
                    lease_expires_at=now + lease_s,
                    heartbeat_at=now,
                    last_error=case((CheckJobRow.state == JOB_RUNNING, expired_error), else_=CheckJobRow.last_error),
                )
                .returning(CheckJobRow)
            ).one_or_none()
            session.commit()
            return _job(claimed) if claimed is not None else None

    def _fail_exhausted(self, now: float) -> None:
        """End running jobs whose lease expired on their last attempt: job failed, learnware INVALID with a report saying why."""
        exhausted = and_(CheckJobRow.state == JOB_RUNNING, CheckJobRow.lease_expires_at < now, CheckJobRow.attempts >= self.max_check_attempts)
        with self._session() as session:
            candidates = [_job(row) for row in session.scalars(select(CheckJobRow).where(exhausted))]
        for job in candidates:
            error = f"the lease of {job.lease_holder} expired (the checker stopped or lost contact)"
            try:
                self._end_job(job.id, job.lease_holder, JOB_FAILED, error, "INVALID", exhausted_report(job.attempts, error), only_if_expired_at=now)
            except LeaseLost:
                pass  # renewed by a late heartbeat, or ended by another organizer meanwhile

    def heartbeat_check_job(self, job_id: int, holder: str, lease_s: float) -> CheckJob:
        """Extend the holder's lease to lease_s seconds from now; LeaseLost if it no longer holds the job."""
        now = time.time()
        with self._session() as session:
            renewed = session.scalars(
                update(CheckJobRow)
                .where(CheckJobRow.id == job_id, CheckJobRow.state == JOB_RUNNING, CheckJobRow.lease_holder == holder)
                .values(lease_expires_at=now + lease_s, heartbeat_at=now)
                .returning(CheckJobRow)
            ).one_or_none()
            session.commit()
            if renewed is None:
                raise LeaseLost(job_id, holder)
            return _job(renewed)

    def complete_check_job(self, job_id: int, holder: str, status: str, check_report: str) -> tuple[CheckJob, LearnwareRecord | None]:
        """Store the check's outcome and end the job, in one transaction; LeaseLost (nothing written) unless `holder` holds the job."""
        return self._end_job(job_id, holder, JOB_DONE, "", status, check_report)

    def fail_check_attempt(self, job_id: int, holder: str, error: str) -> tuple[CheckJob, LearnwareRecord | None]:
        """The holder could not finish the check: the job is queued again, or after its last attempt failed with an INVALID report."""
        job = self.get_job(job_id)
        if job is None or job.state != JOB_RUNNING or job.lease_holder != holder:
            raise LeaseLost(job_id, holder)
        if job.attempts >= self.max_check_attempts:
            return self._end_job(job_id, holder, JOB_FAILED, error, "INVALID", exhausted_report(job.attempts, error))
        with self._session() as session:
            requeued = session.scalars(
                update(CheckJobRow)
                .where(CheckJobRow.id == job_id, CheckJobRow.state == JOB_RUNNING, CheckJobRow.lease_holder == holder)
                .values(state=JOB_QUEUED, lease_holder=None, lease_expires_at=None, last_error=error)
                .returning(CheckJobRow)
            ).one_or_none()
            session.commit()
            if requeued is None:
                raise LeaseLost(job_id, holder)
            return _job(requeued), None

    def _end_job(self, job_id: int, holder: str, state: str, error: str, status: str, check_report: str, only_if_expired_at: float | None = None) -> tuple[CheckJob, LearnwareRecord | None]:
        """Move the job held by `holder` to its end state and write the learnware's status and report, in one transaction."""
        held = and_(CheckJobRow.id == job_id, CheckJobRow.state == JOB_RUNNING, CheckJobRow.lease_holder == holder)
        if only_if_expired_at is not None:
            held = and_(held, CheckJobRow.lease_expires_at < only_if_expired_at)
        with self._write_lock, self._session() as session:
            ended = session.scalars(
                update(CheckJobRow)
                .where(held)
                .values(state=state, finished_at=time.time(), lease_expires_at=None, last_error=error or CheckJobRow.last_error)  # a done job keeps why earlier attempts failed
                .returning(CheckJobRow)
            ).one_or_none()
            if ended is None:
                session.rollback()
                raise LeaseLost(job_id, holder)
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == ended.learnware_id, LearnwareRow.deleted.is_(False)))
            if row is not None:
                row.status = status
                row.check_report = check_report
                self._stage_change(session, row)
            session.commit()
            self._notify()
            return _job(ended), _record(row) if row is not None else None

def _connection_error_types(engine: Engine) -> tuple[type[BaseException], ...]:
    """The driver's exception types that mean the server is unreachable (not a bad query)."""
    dbapi = engine.dialect.dbapi
    return (dbapi.OperationalError, dbapi.InterfaceError) if dbapi is not None else ()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
