"""The sweeper: removes zips that no live learnware references.

Writes keep a learnware invisible until both its zip and its row exist (zip first,
row second on upload; tombstone first, zip second on delete), so a crash leaves at
worst an object without a live row. The sweeper deletes such objects: at once when
their row is a tombstone, and after a grace period when there is no row at all (an
upload in flight has stored its zip but not yet committed its row).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from lwm.rpc.errors import ServiceError
from lwm.services.organizer.metadata import MetadataStore
from lwm.services.organizer.object_store import ObjectStore

log = logging.getLogger(__name__)
LEARNWARE_PREFIX = "learnwares/"


@dataclass
class SweepReport:
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    too_young: int = 0  # unreferenced objects still inside the grace period


def sweep(metadata: MetadataStore, objects: ObjectStore, grace_s: float) -> SweepReport:
    """Delete objects with no live row (deleted-row objects at once, unreferenced ones older than grace_s)."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace_s)
    # Objects are listed before rows are read: a row committed after the listing still protects its object.
    listed = list(objects.list_objects(LEARNWARE_PREFIX))
    live, deleted = metadata.zip_keys()
    report = SweepReport()
    for stored in listed:
        if stored.key in live:
            report.kept += 1
        elif stored.key in deleted or stored.modified <= cutoff:
            objects.delete(stored.key)
            report.removed.append(stored.key)
        else:
            report.too_young += 1
    if report.removed:
        log.info("sweeper removed %d orphan objects", len(report.removed))
    return report


class Sweeper:
    """Runs `sweep` every interval_s seconds in a background thread until stopped."""

    def __init__(self, metadata: MetadataStore, objects: ObjectStore, interval_s: float, grace_s: float) -> None:
        self.metadata = metadata
        self.objects = objects
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sweep(self.metadata, self.objects, self.grace_s)
            except ServiceError as error:  # storage down: try again next round
                log.warning("sweep skipped: %s", error.message)
