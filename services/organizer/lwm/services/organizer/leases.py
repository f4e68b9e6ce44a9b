"""Named leases on background work and the fenced checkpoints written under them, in the
organizer's database (the tables of migration 0005).

A lease ("hetero-trainer", ...) has one holder until it expires. Acquiring grants it when
it is free, expired or already held by the caller (a renewal); the grant is one
INSERT ... ON CONFLICT DO UPDATE ... WHERE statement, atomic on PostgreSQL (row lock) and
on SQLite (database write lock). Its epoch grows by one whenever the holder changes, so
(name, holder, epoch) is a fencing token: a checkpoint write carrying it is stored only
while that holding is the lease's latest one. The check and the write of the checkpoint's
row happen in one transaction that first locks the lease's row, so a holder that lost the
lease meanwhile cannot overwrite its successor's checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Float, String, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from lwm.services.organizer.metadata import Base, MetadataStore


class WorkLeaseRow(Base):
    __tablename__ = "work_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))  # "" once released
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)  # Unix time, the organizer's clock


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)  # 1, 2, ... per name
    writer: Mapped[str] = mapped_column(String(256))  # the fence's holder; "" for an unfenced write
    epoch: Mapped[int] = mapped_column(BigInteger)  # the fence's epoch; 0 for an unfenced write
    written_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class Lease:
    """A lease as it stands after an acquire: `granted` says whether the caller holds it."""

    name: str
    holder: str
    epoch: int
    expires_at: float
    granted: bool


@dataclass(frozen=True)
class Fence:
    """A holding of a lease, presented with a write that must only happen while it is the latest."""

    name: str
    holder: str
    epoch: int


@dataclass(frozen=True)
class CheckpointRecord:
    name: str
    object_key: str
    sha256: str
    size: int
    version: int
    writer: str
    epoch: int
    written_at: float


class StaleFence(Exception):
    """A fenced write whose holding is no longer the lease's latest."""


def _checkpoint(row: CheckpointRow) -> CheckpointRecord:
    return CheckpointRecord(row.name, row.object_key, row.sha256, row.size, row.version, row.writer, row.epoch, row.written_at)


class LeaseStore:
    """Leases and checkpoint versions, in the metadata store's database."""

    def __init__(self, metadata: MetadataStore, clock: Callable[[], float] = time.time) -> None:
        self.metadata = metadata
        self.clock = clock
        dialect = metadata.engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"leases need PostgreSQL or SQLite, not {dialect}")
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def acquire(self, name: str, holder: str, ttl_s: float, take_over: bool = False) -> Lease:
        """Grant the lease to `holder` for ttl_s seconds if it is free, expired or theirs (or always, with take_over)."""
        now = self.clock()
        insert = self._insert(WorkLeaseRow).values(name=name, holder=holder, epoch=1, expires_at=now + ttl_s)
        same_holder = WorkLeaseRow.holder == insert.excluded.holder
        statement = insert.on_conflict_do_update(
            index_elements=[WorkLeaseRow.name],
            set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at, "epoch": case((same_holder, WorkLeaseRow.epoch), else_=WorkLeaseRow.epoch + 1)},
            where=None if take_over else (same_holder | (WorkLeaseRow.expires_at <= now)),
        ).returning(WorkLeaseRow.epoch, WorkLeaseRow.expires_at)
        with self.metadata._session() as session:
            granted = session.execute(statement).first()
            session.commit()
            if granted is not None:
                return Lease(name, holder, int(granted.epoch), float(granted.expires_at), granted=True)
            row = session.get(WorkLeaseRow, name)
            assert row is not None  # the insert conflicted with it, and leases are never deleted
            return Lease(name, row.holder, row.epoch, row.expires_at, granted=False)

    def release(self, name: str, holder: str) -> bool:
        """End `holder`'s lease now (the next holder gets a new epoch); False if they did not hold it."""
        with self.metadata._session() as session:
            released = session.execute(update(WorkLeaseRow).where(WorkLeaseRow.name == name, WorkLeaseRow.holder == holder).values(holder="", expires_at=0.0).returning(WorkLeaseRow.name)).first()
            session.commit()
            return released is not None

    def get(self, name: str) -> Lease | None:
        """The lease as it stands (granted: whether it is held and unexpired now); None if never acquired."""
        with self.metadata._session() as session:
            row = session.get(WorkLeaseRow, name)
            if row is None:
                return None
            return Lease(name, row.holder, row.epoch, row.expires_at, granted=bool(row.holder) and row.expires_at > self.clock())

    def _lock_fence(self, session: Session, fence: Fence) -> None:
        """Lock the lease's row for the transaction if `fence` is its latest holding, else StaleFence.

        The no-op UPDATE takes PostgreSQL's row lock (SQLite's database write lock), so no acquire
        can change the holding before the transaction ends.
        """
        matching = (WorkLeaseRow.name == fence.name, WorkLeaseRow.holder == fence.holder, WorkLeaseRow.epoch == fence.epoch)
        if session.execute(update(WorkLeaseRow).where(*matching).values(epoch=WorkLeaseRow.epoch).returning(WorkLeaseRow.name)).first() is None:
            session.rollback()
            current = session.get(WorkLeaseRow, fence.name)
            now_held = "nobody has held it" if current is None else f"it is at epoch {current.epoch}, holder {current.holder or '(released)'!r}"
            raise StaleFence(f"lease {fence.name!r} epoch {fence.epoch} of {fence.holder!r} is no longer current ({now_held})")

    def check_fence(self, fence: Fence) -> None:
        """StaleFence unless `fence` is the lease's latest holding (a cheap early refusal; record_checkpoint checks again)."""
        with self.metadata._session() as session:
            self._lock_fence(session, fence)
            session.rollback()

    def record_checkpoint(self, name: str, object_key: str, sha256: str, size: int, fence: Fence | None) -> tuple[CheckpointRecord, str | None]:
        """Make `object_key` the checkpoint `name`'s next version: the new record and the replaced object's key.

        With a fence, StaleFence (nothing recorded) unless it is its lease's latest holding.
        """
        with self.metadata._session() as session:
            if fence is not None:
                self._lock_fence(session, fence)
            previous = session.execute(select(CheckpointRow).where(CheckpointRow.name == name).with_for_update()).scalar_one_or_none()
            row = previous or CheckpointRow(name=name, version=0)
            replaced = previous.object_key if previous is not None else None
            row.object_key, row.sha256, row.size = object_key, sha256, size
            row.version += 1
            row.writer, row.epoch = (fence.holder, fence.epoch) if fence is not None else ("", 0)
            row.written_at = self.clock()
            session.add(row)
            session.commit()
            return _checkpoint(row), replaced

    def checkpoint(self, name: str) -> CheckpointRecord | None:
        with self.metadata._session() as session:
            row = session.get(CheckpointRow, name)
            return _checkpoint(row) if row is not None else None
