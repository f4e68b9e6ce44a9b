"""Warm model runners for the reuse service, one per learnware, reused across requests."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from lwm.learnware.archive import LearnwareArchive
from lwm.rpc.errors import failed_precondition
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.runtime.runner import ModelRunner, open_learnware


class _Warm:
    def __init__(self, runner: ModelRunner, workdir: Path, sha256: str) -> None:
        self.runner = runner
        self.workdir = workdir
        self.sha256 = sha256
        self.lock = threading.Lock()  # one call at a time per child process

    def close(self) -> None:
        self.runner.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RunnerPool:
    """Keeps up to `capacity` learnwares' runners alive (least recently used are closed).

    A runner is replaced when its learnware's zip changed or its process died (e.g. killed
    after a timeout). Each learnware is started at most once at a time, however many
    requests ask for it together.
    """

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, capacity: int = 16, timeout_s: float = 120.0) -> None:
        self.organizer = organizer
        self.capacity = capacity
        self.timeout_s = timeout_s
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._starting: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def predict(self, learnware_id: str, x: np.ndarray) -> np.ndarray:
        warm = self.acquire(learnware_id)
        with warm.lock:
            return warm.runner.predict(x)

    def acquire(self, learnware_id: str) -> _Warm:
        """The learnware's running model, started if needed; FAILED_PRECONDITION unless it is USABLE."""
        info = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=learnware_id)).learnware
        if info.status != common_pb2.LEARNWARE_STATUS_USABLE:
            raise failed_precondition(f"learnware {learnware_id} is not USABLE (status {common_pb2.LearnwareStatus.Name(info.status)})")
        with self._lock:
            start_lock = self._starting.setdefault(learnware_id, threading.Lock())
        with start_lock:
            with self._lock:
                warm = self._warm.get(learnware_id)
                if warm is not None and warm.sha256 == info.zip_sha256 and warm.runner.alive:
                    self._warm.move_to_end(learnware_id)
                    return warm
            fresh = self._start(learnware_id, info.zip_sha256)
            evicted: list[_Warm] = []
            with self._lock:
                old = self._warm.pop(learnware_id, None)
                if old is not None:
                    evicted.append(old)
                self._warm[learnware_id] = fresh
                while len(self._warm) > self.capacity:
                    evicted.append(self._warm.popitem(last=False)[1])
        for warm in evicted:
            with warm.lock:
                warm.close()
        return fresh

    def _start(self, learnware_id: str, sha256: str) -> _Warm:
        zip_bytes = b"".join(r.chunk.data for r in self.organizer.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=learnware_id)))
        workdir = Path(tempfile.mkdtemp(prefix=f"lwm-reuse-{learnware_id}-"))
        try:
            runner = open_learnware(LearnwareArchive.from_bytes(zip_bytes), workdir, timeout_s=self.timeout_s)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return _Warm(runner, workdir, sha256)

    def close(self) -> None:
        with self._lock:
            warms, self._warm = list(self._warm.values()), OrderedDict()
        for warm in warms:
            warm.close()
