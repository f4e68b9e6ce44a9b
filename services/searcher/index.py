"""The searcher's in-memory index of USABLE learnwares, fed by the organizer's change feed."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import torch

from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.tensors import from_tensor
from lwm.services.searcher.statistical import SpecStack
from lwm.spec.kernels import self_inner_products

log = logging.getLogger(__name__)
# Specs are comparable only with the same type, point shape and kernel.
GroupKey = tuple[str, tuple[int, ...], float]


@dataclass
class IndexedSpec:
    z: np.ndarray
    beta: np.ndarray
    gamma: float

    def group_key(self, spec_type: str) -> GroupKey:
        return (spec_type, tuple(self.z.shape[1:]), round(self.gamma, 12))


@dataclass
class IndexedLearnware:
    info: common_pb2.LearnwareInfo
    semantic: dict[str, Any]
    specs: dict[str, IndexedSpec]


@dataclass
class Group:
    ids: list[str]
    stack: SpecStack


class LearnwareIndex:
    """Thread-safe map id -> learnware, plus spec stacks rebuilt lazily after changes."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self._entries: dict[str, IndexedLearnware] = {}
        self._groups: dict[GroupKey, Group] = {}
        self._dirty: set[GroupKey] = set()
        self._lock = threading.Lock()
        self._applied = threading.Condition(self._lock)
        self.revision = 0
        self.synced = False

    def apply(self, change: organizer_pb2.WatchLearnwaresResponse) -> None:
        with self._lock:
            if change.kind == organizer_pb2.CHANGE_KIND_SYNCED:
                self.synced = True
            elif change.kind == organizer_pb2.CHANGE_KIND_DELETED or change.learnware.status != common_pb2.LEARNWARE_STATUS_USABLE:
                self._remove(change.learnware_id)
            elif change.kind == organizer_pb2.CHANGE_KIND_UPSERTED:
                self._remove(change.learnware_id)
                self._insert(change.learnware, change.stat_specs)
            self.revision = max(self.revision, change.revision)
            self._applied.notify_all()

    def _remove(self, learnware_id: str) -> None:
        entry = self._entries.pop(learnware_id, None)
        if entry is not None:
            self._dirty.update(spec.group_key(t) for t, spec in entry.specs.items())

    def _insert(self, info: common_pb2.LearnwareInfo, stat_specs: Any) -> None:
        specs: dict[str, IndexedSpec] = {}
        for message in stat_specs:
            try:
                spec = IndexedSpec(from_tensor(message.z).astype(np.float64), from_tensor(message.beta).astype(np.float64).reshape(-1), message.gamma)
            except ValueError as error:
                log.warning("learnware %s: unusable %s (%s); indexed without it", info.id, message.type, error)
                continue
            specs[message.type] = spec
            self._dirty.add(spec.group_key(message.type))
        self._entries[info.id] = IndexedLearnware(info=info, semantic=convert.semantic_to_dict(info.semantic_spec), specs=specs)

    def wait_for(self, revision: int, timeout_s: float) -> bool:
        """Block until the index has applied `revision` (and the backlog); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not (self.synced and self.revision >= revision):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._applied.wait(left)
            return True

    def entries(self) -> list[IndexedLearnware]:
        with self._lock:
            return list(self._entries.values())

    def group(self, key: GroupKey) -> Group | None:
        """The stacked specs of one group, rebuilt if learnwares changed since the last call."""
        with self._lock:
            if key in self._dirty:
                self._rebuild(key)
            return self._groups.get(key)

    def _rebuild(self, key: GroupKey) -> None:
        self._dirty.discard(key)
        members = [(lid, entry.specs[key[0]]) for lid, entry in self._entries.items() if key[0] in entry.specs and entry.specs[key[0]].group_key(key[0]) == key]
        if not members:
            self._groups.pop(key, None)
            return
        k = max(spec.z.shape[0] for _, spec in members)
        shape = members[0][1].z.shape[1:]
        Z = np.zeros((len(members), k, *shape))
        B = np.zeros((len(members), k))
        for row, (_, spec) in enumerate(members):
            Z[row, : spec.z.shape[0]] = spec.z
            B[row, : spec.beta.shape[0]] = spec.beta
        Zt = torch.as_tensor(Z.reshape(len(members), k, -1), device=self.device)
        Bt = torch.as_tensor(B, device=self.device)
        stack = SpecStack(Z=Zt, B=Bt, self_terms=self_inner_products(Zt, Bt, key[2]), gamma=key[2])
        self._groups[key] = Group(ids=[lid for lid, _ in members], stack=stack)

    def stats(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            counts: dict[str, int] = {}
            for entry in self._entries.values():
                for spec_type in entry.specs:
                    counts[spec_type] = counts.get(spec_type, 0) + 1
            return len(self._entries), counts


class IndexFollower:
    """Keeps a LearnwareIndex current from the organizer's WatchLearnwares stream, reconnecting on failure."""

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, index: LearnwareIndex) -> None:
        self.organizer = organizer
        self.index = index
        self._stop = threading.Event()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name="index-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._call = self.organizer.WatchLearnwares(organizer_pb2.WatchLearnwaresRequest(after_revision=self.index.revision))
                for change in self._call:
                    self.index.apply(change)
                    backoff = 0.1
            except grpc.RpcError as error:
                if self._stop.is_set():
                    return
                log.warning("change feed interrupted (%s); reconnecting in %.1f s", error.code(), backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
