"""Backup and restore of a market's state: every live learnware's row and zip.

A backup is a directory:
    manifest.json       format version, time, learnware count
    learnwares.jsonl    one LearnwareRecord per line (upload order)
    objects/<zip_key>   the zips, checked against the recorded SHA-256
It is written to `<dir>.partial` and renamed when complete. Restore puts each zip
(verified again) before committing its row, keeps ids, owners, statuses, check
reports and creation times, and skips learnwares the target already has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lwm.services.organizer.metadata import LearnwareRecord, MetadataStore
from lwm.services.organizer.object_store import ObjectNotFound, ObjectStore, sha256_file

log = logging.getLogger(__name__)
FORMAT = "lwm-market-backup/1"
MANIFEST = "manifest.json"
RECORDS = "learnwares.jsonl"
OBJECTS = "objects"


class BackupError(ValueError):
    pass


@dataclass
class BackupSummary:
    learnwares: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # backup: deleted meanwhile; restore: already present


def backup_market(metadata: MetadataStore, objects: ObjectStore, target: Path) -> BackupSummary:
    """Write every live learnware (row + verified zip) to the new directory `target`."""
    target = Path(target)
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new backup directory")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / OBJECTS).mkdir(parents=True)
    summary = BackupSummary()
    with open(partial / RECORDS, "w") as records:
        for record in metadata.all_live():
            path = partial / OBJECTS / record.zip_key
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                digest = _copy_object(objects, record.zip_key, path)
            except ObjectNotFound:
                if metadata.get(record.id) is None:  # deleted while the backup ran
                    summary.skipped.append(record.id)
                    continue
                raise BackupError(f"learnware {record.id} has a row but no zip ({record.zip_key})") from None
            if digest != record.zip_sha256:
                raise BackupError(f"zip of learnware {record.id} does not match its SHA-256 ({digest} != {record.zip_sha256})")
            records.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            summary.learnwares += 1
            summary.bytes += record.zip_size
    (partial / MANIFEST).write_text(json.dumps({"format": FORMAT, "created_at": time.time(), "learnwares": summary.learnwares}, indent=2))
    os.replace(partial, target)
    log.info("backed up %d learnwares (%d bytes) to %s", summary.learnwares, summary.bytes, target)
    return summary


def restore_market(metadata: MetadataStore, objects: ObjectStore, source: Path) -> BackupSummary:
    """Load a backup made by backup_market into (possibly non-empty) storage."""
    source = Path(source)
    manifest = json.loads((source / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is not a market backup of format {FORMAT} (found {manifest.get('format')!r})")
    summary = BackupSummary()
    with open(source / RECORDS) as lines:
        for line in lines:
            record = LearnwareRecord(**json.loads(line))
            if metadata.exists(record.id):
                summary.skipped.append(record.id)
                continue
            path = source / OBJECTS / record.zip_key
            digest = sha256_file(path)
            if digest != record.zip_sha256:
                raise BackupError(f"backup zip of learnware {record.id} is corrupt ({digest} != {record.zip_sha256})")
            objects.put_file(record.zip_key, path, digest)
            metadata.add(
                learnware_id=record.id,
                owner=record.owner,
                market_id=record.market_id,
                status=record.status,
                semantic_spec=record.semantic_spec,
                stat_specs=record.stat_specs,
                zip_key=record.zip_key,
                zip_size=record.zip_size,
                zip_sha256=record.zip_sha256,
                check_report=record.check_report,
                created_at=record.created_at,
            )
            summary.learnwares += 1
            summary.bytes += record.zip_size
    if summary.learnwares + len(summary.skipped) != manifest["learnwares"]:
        raise BackupError(f"{source} lists {manifest['learnwares']} learnwares but {RECORDS} holds {summary.learnwares + len(summary.skipped)}")
    log.info("restored %d learnwares from %s (%d already present)", summary.learnwares, source, len(summary.skipped))
    return summary


def _copy_object(objects: ObjectStore, key: str, path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for chunk in objects.open_chunks(key):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
