"""Learnware metadata in SQL (SQLAlchemy 2; SQLite file by default).

Every change bumps a global revision stored on the row; deleted learnwares stay
as tombstones so that the change feed (`changes_after`) can replay deletions.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import Boolean, Float, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class LearnwareRow(Base):
    __tablename__ = "learnwares"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner: Mapped[str] = mapped_column(String(256), index=True, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    semantic_spec: Mapped[str] = mapped_column(Text)  # reference dictionary, JSON
    stat_specs: Mapped[str] = mapped_column(Text)  # list of reference spec dictionaries, JSON
    check_report: Mapped[str] = mapped_column(Text, default="")  # CheckReport as proto JSON
    zip_key: Mapped[str] = mapped_column(String(256))
    zip_size: Mapped[int] = mapped_column(Integer)
    zip_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(Integer, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


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


def _record(row: LearnwareRow) -> LearnwareRecord:
    return LearnwareRecord(
        id=row.id,
        owner=row.owner,
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


class MetadataStore:
    """All SQL access of the organizer. Writes are serialised so revisions are gap-free and ordered."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._write_lock = threading.Lock()
        self.changed = threading.Condition()

    def close(self) -> None:
        self.engine.dispose()

    def latest_revision(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.coalesce(func.max(LearnwareRow.revision), 0))) or 0)

    def _commit_change(self, session: Session, row: LearnwareRow) -> None:
        row.revision = int(session.scalar(select(func.coalesce(func.max(LearnwareRow.revision), 0))) or 0) + 1
        row.updated_at = time.time()
        session.add(row)
        session.commit()
        with self.changed:
            self.changed.notify_all()

    def add(self, *, learnware_id: str, owner: str, status: str, semantic_spec: dict[str, Any], stat_specs: list[dict[str, Any]], zip_key: str, zip_size: int, zip_sha256: str) -> LearnwareRecord:
        now = time.time()
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            row = LearnwareRow(
                id=learnware_id,
                owner=owner,
                status=status,
                semantic_spec=json.dumps(semantic_spec),
                stat_specs=json.dumps(stat_specs),
                check_report="",
                zip_key=zip_key,
                zip_size=zip_size,
                zip_sha256=zip_sha256,
                created_at=now,
                updated_at=now,
                revision=0,
                deleted=False,
            )
            self._commit_change(session, row)
            return _record(row)

    def get(self, learnware_id: str) -> LearnwareRecord | None:
        with Session(self.engine) as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False)))
            return _record(row) if row is not None else None

    def get_many(self, learnware_ids: Sequence[str]) -> list[LearnwareRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(select(LearnwareRow).where(LearnwareRow.id.in_(list(learnware_ids)), LearnwareRow.deleted.is_(False)))
            return [_record(row) for row in rows]

    def list(self, *, after_seq: int, limit: int, statuses: Iterable[str] = (), owner: str = "") -> tuple[list[tuple[int, LearnwareRecord]], int]:
        """A page of (seq, record) in upload order after `after_seq`, and the total matching count."""
        where = [LearnwareRow.deleted.is_(False)]
        statuses = list(statuses)
        if statuses:
            where.append(LearnwareRow.status.in_(statuses))
        if owner:
            where.append(LearnwareRow.owner == owner)
        with Session(self.engine) as session:
            total = int(session.scalar(select(func.count()).select_from(LearnwareRow).where(*where)) or 0)
            rows = session.scalars(select(LearnwareRow).where(*where, LearnwareRow.seq > after_seq).order_by(LearnwareRow.seq).limit(limit))
            return [(row.seq, _record(row)) for row in rows], total

    def update(self, learnware_id: str, *, semantic_spec: dict[str, Any] | None = None, status: str | None = None, check_report: str | None = None) -> LearnwareRecord | None:
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
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
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            row = session.scalar(select(LearnwareRow).where(LearnwareRow.id == learnware_id, LearnwareRow.deleted.is_(False)))
            if row is None:
                return None
            row.deleted = True
            self._commit_change(session, row)
            return _record(row)

    def changes_after(self, revision: int, limit: int = 1000) -> list[LearnwareRecord]:
        """Rows (tombstones included) changed after `revision`, oldest change first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(LearnwareRow).where(LearnwareRow.revision > revision).order_by(LearnwareRow.revision).limit(limit))
            return [_record(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.execute(select(LearnwareRow.status, func.count()).where(LearnwareRow.deleted.is_(False)).group_by(LearnwareRow.status))
            return {status: int(count) for status, count in rows}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
