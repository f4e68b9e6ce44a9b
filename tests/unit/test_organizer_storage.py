"""Organizer storage on the embedded backends (SQLite file + directory): migrations,
revisions, sweeper, backup/restore. The same code runs on PostgreSQL + S3 in
tests/integration/test_storage_backends.py."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lwm.client.cli import main as lwm_main
from lwm.services.organizer.backup import BackupError, backup_market, restore_market
from lwm.services.organizer.metadata import MetadataStore, MetadataUnavailable
from lwm.services.organizer.object_store import DirectoryObjectStore, sha256_file
from lwm.services.organizer.sweeper import sweep

# The learnwares table as the walking skeleton created it (before Alembic).
SKELETON_SCHEMA = """
CREATE TABLE learnwares (
    seq INTEGER NOT NULL PRIMARY KEY, id VARCHAR(64) NOT NULL, owner VARCHAR(256) NOT NULL, status VARCHAR(16) NOT NULL,
    semantic_spec TEXT NOT NULL, stat_specs TEXT NOT NULL, check_report TEXT NOT NULL, zip_key VARCHAR(256) NOT NULL,
    zip_size INTEGER NOT NULL, zip_sha256 VARCHAR(64) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    revision INTEGER NOT NULL, deleted BOOLEAN NOT NULL);
CREATE UNIQUE INDEX ix_learnwares_id ON learnwares (id);
CREATE INDEX ix_learnwares_owner ON learnwares (owner);
CREATE INDEX ix_learnwares_status ON learnwares (status);
CREATE INDEX ix_learnwares_revision ON learnwares (revision);
CREATE INDEX ix_learnwares_deleted ON learnwares (deleted);
INSERT INTO learnwares VALUES (1, 'old1', 'alice', 'USABLE', '{}', '[]', '', 'learnwares/old1.zip', 3, 'abc', 1.0, 1.0, 5, 0);
INSERT INTO learnwares VALUES (2, 'old2', 'alice', 'PENDING', '{}', '[]', '', 'learnwares/old2.zip', 3, 'abc', 1.0, 1.0, 4, 0);
"""


def store_learnware(metadata: MetadataStore, objects: DirectoryObjectStore, tmp_path: Path, learnware_id: str, payload: bytes, **fields: object):
    path = tmp_path / f"{learnware_id}.bin"
    path.write_bytes(payload)
    digest = sha256_file(path)
    key = f"learnwares/{learnware_id}.zip"
    objects.put_file(key, path, digest)
    return metadata.add(learnware_id=learnware_id, owner=str(fields.get("owner", "alice")), status=str(fields.get("status", "USABLE")), semantic_spec={"Name": {"Values": learnware_id, "Type": "String"}}, stat_specs=[{"type": "RKMETableSpecification", "gamma": 0.1}], zip_key=key, zip_size=len(payload), zip_sha256=digest, check_report=str(fields.get("check_report", "")), market_id=str(fields.get("market_id", "default")))


def test_migrations_adopt_a_skeleton_database_and_keep_its_revisions(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as connection:
        connection.executescript(SKELETON_SCHEMA)
    metadata = MetadataStore(f"sqlite:///{db}")
    assert metadata.latest_revision() == 5
    assert metadata.get("old1").owner == "alice"
    assert metadata.get("old1").market_id == "default"  # learnwares from before named markets
    added = metadata.add(learnware_id="new1", owner="bob", status="PENDING", semantic_spec={}, stat_specs=[], zip_key="learnwares/new1.zip", zip_size=1, zip_sha256="x", market_id="alpha")
    assert added.revision == 6 and added.market_id == "alpha"
    assert [record.id for _, record in metadata.list(after_seq=0, limit=10, market_id="default")[0]] == ["old1", "old2"]
    assert metadata.list(after_seq=0, limit=10, market_id="alpha")[1] == 1 and metadata.list(after_seq=0, limit=10)[1] == 3
    # A learnware left PENDING by the gateway's former in-memory queue gets a check job (0006), as does a new one.
    assert [job.state for job in metadata.jobs_of("old2")] == ["queued"] and metadata.jobs_of("old1") == []
    assert [job.state for job in metadata.jobs_of("new1")] == ["queued"]
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == ("0006",)
    MetadataStore(f"sqlite:///{db}")  # opening again is a no-op migration


def test_two_stores_on_one_database_allocate_distinct_ordered_revisions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    stores = [MetadataStore(url), MetadataStore(url)]  # as two organizer processes would

    def write(store: MetadataStore, prefix: str) -> None:
        for i in range(15):
            store.add(learnware_id=f"{prefix}{i}", owner="o", status="PENDING", semantic_spec={}, stat_specs=[], zip_key=f"k/{prefix}{i}", zip_size=1, zip_sha256="x")

    threads = [threading.Thread(target=write, args=(store, prefix)) for store, prefix in zip(stores, "ab")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    revisions = [record.revision for record in stores[0].changes_after(0)]
    assert revisions == list(range(1, 31))


def test_unreachable_database_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MetadataUnavailable, match="metadata database is unavailable"):
        MetadataStore(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite'}")


def test_sweep_removes_orphans_and_deleted_zips_but_not_live_or_young_ones(tmp_path: Path) -> None:
    metadata = MetadataStore(f"sqlite:///{tmp_path / 'm.sqlite'}")
    objects = DirectoryObjectStore(tmp_path / "objects")
    store_learnware(metadata, objects, tmp_path, "live", b"live")
    store_learnware(metadata, objects, tmp_path, "gone", b"gone")
    metadata.mark_deleted("gone")  # crash after the tombstone, before the zip was deleted
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"orphan")
    objects.put_file("learnwares/old-orphan.zip", orphan, "x")  # crash after the zip, before the row
    old = time.time() - 7200
    os.utime(objects.root / "learnwares/old-orphan.zip", (old, old))
    objects.put_file("learnwares/young-orphan.zip", orphan, "x")  # an upload in flight

    report = sweep(metadata, objects, grace_s=3600)
    assert sorted(report.removed) == ["learnwares/gone.zip", "learnwares/old-orphan.zip"]
    assert (report.kept, report.too_young) == (1, 1)
    assert {o.key for o in objects.list_objects()} == {"learnwares/live.zip", "learnwares/young-orphan.zip"}
    assert sweep(metadata, objects, grace_s=0).removed == ["learnwares/young-orphan.zip"]


def test_backup_restore_round_trip_keeps_every_learnware(tmp_path: Path) -> None:
    metadata = MetadataStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    objects = DirectoryObjectStore(tmp_path / "a-objects")
    originals = [store_learnware(metadata, objects, tmp_path, f"lw{i}", os.urandom(1000 + i), owner=f"user{i % 2}", check_report='{"status": "LEARNWARE_STATUS_USABLE"}', market_id=f"market-{i % 2}") for i in range(5)]
    metadata.mark_deleted("lw3")
    summary = backup_market(metadata, objects, tmp_path / "backup")
    assert summary.learnwares == 4
    with pytest.raises(BackupError, match="already exists"):
        backup_market(metadata, objects, tmp_path / "backup")

    target_meta = MetadataStore(f"sqlite:///{tmp_path / 'b.sqlite'}")
    target_objects = DirectoryObjectStore(tmp_path / "b-objects")
    assert restore_market(target_meta, target_objects, tmp_path / "backup").learnwares == 4
    for original in originals:
        restored = target_meta.get(original.id)
        if original.id == "lw3":
            assert restored is None
            continue
        assert (restored.owner, restored.market_id, restored.status, restored.semantic_spec, restored.stat_specs, restored.check_report, restored.created_at, restored.zip_sha256) == (
            original.owner, original.market_id, original.status, original.semantic_spec, original.stat_specs, original.check_report, original.created_at, original.zip_sha256)
        assert b"".join(target_objects.open_chunks(restored.zip_key)) == b"".join(objects.open_chunks(original.zip_key))
    again = restore_market(target_meta, target_objects, tmp_path / "backup")
    assert (again.learnwares, sorted(again.skipped)) == (0, ["lw0", "lw1", "lw2", "lw4"])


def test_restore_refuses_a_corrupt_backup(tmp_path: Path) -> None:
    metadata = MetadataStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    objects = DirectoryObjectStore(tmp_path / "a-objects")
    store_learnware(metadata, objects, tmp_path, "lw0", b"payload")
    backup_market(metadata, objects, tmp_path / "backup")
    (tmp_path / "backup" / "objects" / "learnwares" / "lw0.zip").write_bytes(b"tampered")
    target = MetadataStore(f"sqlite:///{tmp_path / 'b.sqlite'}")
    with pytest.raises(BackupError, match="corrupt"):
        restore_market(target, DirectoryObjectStore(tmp_path / "b-objects"), tmp_path / "backup")
    assert target.get("lw0") is None


def test_lwm_admin_backup_restore_and_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LWM_S3_ENDPOINT", raising=False)
    source = tmp_path / "source"
    source.mkdir()
    metadata = MetadataStore(f"sqlite:///{source / 'metadata.sqlite'}")
    objects = DirectoryObjectStore(source / "objects")
    store_learnware(metadata, objects, tmp_path, "lw0", b"zip bytes")
    assert lwm_main(["admin", "backup", str(tmp_path / "bk"), "--data-dir", str(source)]) == 0
    assert lwm_main(["admin", "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "target")]) == 0
    assert "restored 1 learnwares" in capsys.readouterr().out
    assert MetadataStore(f"sqlite:///{tmp_path / 'target' / 'metadata.sqlite'}").get("lw0").zip_sha256 == metadata.get("lw0").zip_sha256
    objects.put_file("learnwares/orphan.zip", tmp_path / "lw0.bin", "x")
    assert lwm_main(["admin", "sweep", "--grace-s", "0", "--data-dir", str(source)]) == 0
    assert "removed 1 orphan objects" in capsys.readouterr().out
    assert lwm_main(["admin", "restore", str(tmp_path / "missing"), "--data-dir", str(source)]) != 0
