"""The searcher's in-memory index of USABLE learnwares, fed by the organizer's change feed.

Each change is applied incrementally: the learnware's semantic spec goes into the
inverted SemanticIndex, each statistical spec into the SpecStack of its group (type,
point shape, gamma). A searcher replica may own one shard of the market (learnware
ids hashed into `count` shards); it then indexes only its own learnwares but still
follows every revision, so waiting for a revision means the same on every replica.
One index holds every named market; a search is scoped to one by `market_members`.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import torch

from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.tensors import from_tensor
from lwm.services.searcher.semantic import SemanticIndex, SemanticMatches
from lwm.services.searcher.stack import SpecStack, StackView, image_shape_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupKey:
    """Specs are comparable only with the same type, point shape and kernel."""

    spec_type: str
    point_shape: tuple[int, ...]
    gamma: float

    @classmethod
    def of(cls, spec_type: str, z: np.ndarray, gamma: float) -> GroupKey:
        return cls(spec_type, tuple(int(s) for s in z.shape[1:]), round(float(gamma), 12))

    def describe(self) -> str:
        return f"{self.spec_type} of point shape {list(self.point_shape)} and gamma {self.gamma:g}"


@dataclass(frozen=True)
class Shard:
    """This replica's part of the market: learnware ids whose CRC-32 is `index` modulo `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/n', e.g. '0/2'."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"searcher shard must look like 'i/n' (e.g. 0/2), got {text!r}") from None
        if not 0 <= index < count:
            raise ValueError(f"searcher shard {text!r}: need 0 <= i < n")
        return cls(index, count)

    def owns(self, learnware_id: str) -> bool:
        return zlib.crc32(learnware_id.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE_MARKET = Shard(0, 1)


@dataclass
class IndexedLearnware:
    info: common_pb2.LearnwareInfo
    groups: list[GroupKey]


class LearnwareIndex:
    """Thread-safe: the follower thread applies changes while searches read snapshots."""

    def __init__(self, device: str = "cpu", shard: Shard = WHOLE_MARKET) -> None:
        self.device = torch.device(device)
        self.shard = shard
        self._entries: dict[str, IndexedLearnware] = {}
        self._groups: dict[GroupKey, SpecStack] = {}
        self._semantic = SemanticIndex()
        self._markets: dict[str, set[str]] = {}  # market id -> ids of its indexed learnwares
        self._lock = threading.Lock()
        self._applied = threading.Condition(self._lock)
        self.revision = 0
        self.synced = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def apply(self, change: organizer_pb2.WatchLearnwaresResponse) -> None:
        with self._lock:
            if change.kind == organizer_pb2.CHANGE_KIND_SYNCED:
                for stack in self._groups.values():  # the backlog's sketches, before the first search
                    stack.complete_new_rows()
                self.synced = True
            elif change.kind == organizer_pb2.CHANGE_KIND_DELETED or change.learnware.status != common_pb2.LEARNWARE_STATUS_USABLE:
                self._remove(change.learnware_id)
            elif change.kind == organizer_pb2.CHANGE_KIND_UPSERTED and self.shard.owns(change.learnware_id):
                self._remove(change.learnware_id)
                self._insert(change.learnware, change.stat_specs)
            self.revision = max(self.revision, change.revision)
            self._applied.notify_all()

    def _remove(self, learnware_id: str) -> None:
        entry = self._entries.pop(learnware_id, None)
        if entry is None:
            return
        self._semantic.remove(learnware_id)
        members = self._markets[entry.info.market_id]
        members.discard(learnware_id)
        if not members:
            del self._markets[entry.info.market_id]
        for key in entry.groups:
            self._groups[key].remove(learnware_id)
            if len(self._groups[key]) == 0:
                del self._groups[key]

    def _insert(self, info: common_pb2.LearnwareInfo, stat_specs: Iterable[common_pb2.StatSpec]) -> None:
        groups = []
        for message in stat_specs:
            try:
                z = from_tensor(message.z, "z").astype(np.float64)
                beta = from_tensor(message.beta, "beta").astype(np.float64).reshape(-1)
                if z.ndim < 2 or z.shape[0] != beta.shape[0] or not (np.all(np.isfinite(z)) and np.all(np.isfinite(beta))):
                    raise ValueError(f"z of shape {z.shape} with {beta.shape[0]} finite weights expected")
            except ValueError as error:
                log.warning("learnware %s: unusable %s (%s); indexed without it", info.id, message.type, error)
                continue
            key = GroupKey.of(convert.STAT_SPEC_ALIASES.get(message.type, message.type), z, message.gamma)
            if key not in self._groups:
                self._groups[key] = SpecStack(key.point_shape, key.gamma, self.device, image_shape_of(key.spec_type, key.point_shape))
            self._groups[key].add(info.id, z, beta)
            groups.append(key)
        # A copy: the change's own sub-message would keep the whole change alive, spec tensors included (~13 KB a learnware).
        kept = common_pb2.LearnwareInfo()
        kept.CopyFrom(info)
        self._entries[info.id] = IndexedLearnware(info=kept, groups=groups)
        self._markets.setdefault(info.market_id, set()).add(info.id)
        self._semantic.add(info.id, convert.semantic_to_dict(info.semantic_spec))

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

    def market_members(self, market_id: str) -> set[str] | None:
        """Ids of one market's learnwares; None when the index holds no other market's (nothing to filter)."""
        with self._lock:
            members = self._markets.get(market_id, set())
            return None if len(members) == len(self._entries) else set(members)

    def holds_any(self, key: GroupKey, learnware_ids: set[str] | None) -> bool:
        """Whether the group has a spec of one of the ids (of any learnware when None)."""
        with self._lock:
            stack = self._groups.get(key)
            if stack is None or learnware_ids is None:
                return stack is not None
            return any(i in stack for i in learnware_ids)

    def semantic_search(self, user: dict[str, Any], within: set[str] | None) -> SemanticMatches:
        with self._lock:
            return self._semantic.search(user, within)

    def infos(self, learnware_ids: Iterable[str]) -> dict[str, common_pb2.LearnwareInfo]:
        """Metadata of those of the ids still in the index."""
        with self._lock:
            return {i: self._entries[i].info for i in learnware_ids if i in self._entries}

    def all_ids(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def group_keys(self, spec_type: str) -> list[GroupKey]:
        with self._lock:
            return [key for key in self._groups if key.spec_type == spec_type]

    def view(self, key: GroupKey, learnware_ids: set[str] | None) -> StackView | None:
        """A search snapshot of one group, restricted to `learnware_ids` when given."""
        with self._lock:
            stack = self._groups.get(key)
            return None if stack is None else stack.view(learnware_ids)

    def stats(self) -> tuple[int, dict[str, int], int]:
        """Learnwares, learnwares per spec type, and bytes held by the spec stacks."""
        with self._lock:
            counts: dict[str, int] = {}
            for key, stack in self._groups.items():
                counts[key.spec_type] = counts.get(key.spec_type, 0) + len(stack)
            return len(self._entries), counts, sum(stack.nbytes for stack in self._groups.values())


class IndexFollower:
    """Keeps a LearnwareIndex current from the organizer's WatchLearnwares stream, reconnecting on failure."""

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, index: LearnwareIndex, before_apply: Callable[[organizer_pb2.WatchLearnwaresResponse], None] | None = None) -> None:
        self.organizer = organizer
        self.index = index
        # Another follower of the feed (the hetero engine), fed each change before the index
        # applies it, so waiting for a revision of the index covers it too.
        self.before_apply = before_apply
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
                    if self.before_apply is not None:
                        self.before_apply(change)
                    self.index.apply(change)
                    backoff = 0.1
            except grpc.RpcError as error:
                if self._stop.is_set():
                    return
                log.warning("change feed interrupted (%s); reconnecting in %.1f s", error.code(), backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
