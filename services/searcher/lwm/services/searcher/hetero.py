"""The searcher's hetero engine: trained on the market's table learnwares, serving hetero searches.

`HeteroIndex` follows the same change feed as the LearnwareIndex. It keeps the
learnwares that qualify (USABLE table learnwares, classification or regression, with a
description of every input feature) and, once an engine exists, their
HeteroMapTableSpecifications in one SpecStack: the same stacked specs the homogeneous
search ranks, so hetero search has the same scores and mixtures.

A background thread owns the engine's life cycle. Of a market's searcher replicas only the
one holding the organizer's "hetero-trainer" lease trains (lwm.rpc.leases; a dead trainer's
lease lapses and another replica takes it over): it trains when at least `min_learnwares`
learnwares qualify and no engine exists, retrains once `retrain_after` qualifying
learnwares arrived since the last training started, and checkpoints each engine in the
organizer, fenced by its lease's epoch so that a trainer that lost its lease cannot
overwrite its successor's checkpoint. Every replica, the trainer included, loads the
checkpoint after the backlog (a restarted searcher does not retrain) and then polls its
version every `checkpoint_poll_s`, swapping in each newer engine. A training sees at most
`max_training_learnwares` learnwares (a stable sample); every qualifying learnware is
mapped and searched.
A new engine's specs are built beside the old ones and swapped in at once: searches
meanwhile use the old engine and never wait for training or loading.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import grpc
import numpy as np
import torch

from lwm.learnware.settings import env_float, env_int
from lwm.learnware.vocabulary import HETERO_SPEC_TYPE, TABLE_SPEC_TYPE
from lwm.rpc import convert
from lwm.rpc.errors import ServiceError, failed_precondition, invalid_argument
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc, searcher_pb2
from lwm.rpc.leases import LeaseKeeper
from lwm.rpc.tensors import from_tensor
from lwm.services.searcher.index import GroupKey
from lwm.services.searcher.search import SearchQuery
from lwm.services.searcher.stack import SpecStack, StackView
from lwm.services.searcher.statistical import UserSpec
from lwm.spec.hetero import EngineConfig, HeteroEngine, herd_training_table, hetero_search_problem, input_descriptions, train_engine
from lwm.spec.hetero.engine import HETERO_GAMMA
from lwm.spec.rkme import RKMETableSpecification

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "hetero-engine"
# One engine serves all of a deployment's named markets, so one lease covers its training.
TRAINER_LEASE = "hetero-trainer"
QUALIFYING_RULE = "USABLE table learnwares of Task Classification or Regression whose semantic Input describes every feature"


@dataclass(frozen=True)
class HeteroSettings:
    """When the engine trains; each has an LWM_HETERO_* environment variable."""

    min_learnwares: int = 3  # LWM_HETERO_MIN_LEARNWARES: train once this many learnwares qualify
    retrain_after: int = 5  # LWM_HETERO_RETRAIN_AFTER: retrain once this many new ones qualified since the last training
    steps: int = EngineConfig.steps  # LWM_HETERO_TRAIN_STEPS
    # LWM_HETERO_MAX_TRAINING_LEARNWARES: a training herds pseudo-rows from at most this many (a stable sample by
    # id hash); its steps are fixed, so more would only cost memory and herding time. Every learnware is still mapped.
    max_training_learnwares: int = 1_000
    # LWM_HETERO_TRAINER_LEASE_S: time to live of the trainer lease (renewed every third of it); a dead
    # trainer's replica takes over within about 4/3 of it.
    trainer_lease_s: float = 30.0
    checkpoint_poll_s: float = 5.0  # LWM_HETERO_CHECKPOINT_POLL_S: how often a searcher looks for a newer checkpoint

    @classmethod
    def from_env(cls) -> HeteroSettings:
        settings = cls(
            env_int("LWM_HETERO_MIN_LEARNWARES", cls.min_learnwares),
            env_int("LWM_HETERO_RETRAIN_AFTER", cls.retrain_after),
            env_int("LWM_HETERO_TRAIN_STEPS", cls.steps),
            env_int("LWM_HETERO_MAX_TRAINING_LEARNWARES", cls.max_training_learnwares),
            env_float("LWM_HETERO_TRAINER_LEASE_S", cls.trainer_lease_s),
            env_float("LWM_HETERO_CHECKPOINT_POLL_S", cls.checkpoint_poll_s),
        )
        if settings.max_training_learnwares < settings.min_learnwares:
            raise ValueError(f"LWM_HETERO_MAX_TRAINING_LEARNWARES ({settings.max_training_learnwares}) is below LWM_HETERO_MIN_LEARNWARES ({settings.min_learnwares})")
        if settings.trainer_lease_s <= 0 or settings.checkpoint_poll_s <= 0:
            raise ValueError(f"LWM_HETERO_TRAINER_LEASE_S ({settings.trainer_lease_s}) and LWM_HETERO_CHECKPOINT_POLL_S ({settings.checkpoint_poll_s}) must be positive")
        return settings


def training_sample(sources: list[HeteroSource], limit: int) -> list[HeteroSource]:
    """All sources, or `limit` of them chosen by a hash of their ids (the same learnwares stay in as the market grows)."""
    if len(sources) <= limit:
        return sources
    return heapq.nsmallest(limit, sources, key=lambda source: hashlib.blake2b(source.info.id.encode(), digest_size=8).digest())


class TrainerLeaseLost(ServiceError):
    """A training's engine was discarded: another searcher took the trainer lease over while it ran."""

    def __init__(self, engine_id: str, details: str) -> None:
        super().__init__(grpc.StatusCode.FAILED_PRECONDITION, f"hetero engine {engine_id} discarded: another searcher took the trainer lease over during its training ({details})")


@dataclass(frozen=True)
class HeteroSource:
    """A qualifying learnware: its table spec and the description of each of its columns."""

    info: common_pb2.LearnwareInfo
    table_spec: RKMETableSpecification
    descriptions: list[str]


def qualifying_source(info: common_pb2.LearnwareInfo, stat_specs: Any) -> HeteroSource | None:
    """The learnware's hetero source if it qualifies (same rule as a hetero search request), else None."""
    if info.status != common_pb2.LEARNWARE_STATUS_USABLE:
        return None
    tables = [spec for spec in stat_specs if convert.STAT_SPEC_ALIASES.get(spec.type, spec.type) == TABLE_SPEC_TYPE]
    if not tables:
        return None
    semantic = convert.semantic_to_dict(info.semantic_spec)
    try:
        z = from_tensor(tables[0].z, "z").astype(np.float64)
        beta = from_tensor(tables[0].beta, "beta").astype(np.float64).reshape(-1)
        spec = RKMETableSpecification.from_dict({"z": z, "beta": beta, "gamma": tables[0].gamma, "num_points": tables[0].num_points})
    except ValueError as error:
        log.warning("learnware %s: unusable table spec for the hetero engine (%s)", info.id, error)
        return None
    if hetero_search_problem(semantic, spec.get_z().shape[1]) is not None:
        return None
    descriptions = input_descriptions(semantic, spec.get_z().shape[1])
    assert descriptions is not None
    return HeteroSource(info, spec, descriptions)


@dataclass(frozen=True)
class HeteroSpace:
    """An engine and the hetero specs it mapped, used together."""

    engine: HeteroEngine
    stack: SpecStack
    key: GroupKey


@dataclass(frozen=True)
class SpaceSpecs:
    """The specs one search ranks: those of the engine that mapped its user, even if a new one was swapped in since."""

    space: HeteroSpace
    lock: threading.Lock  # the HeteroIndex's: its stack is written under it

    def group_keys(self, spec_type: str) -> list[GroupKey]:
        return [self.space.key] if spec_type == HETERO_SPEC_TYPE else []

    def view(self, key: GroupKey, learnware_ids: set[str] | None) -> StackView | None:
        with self.lock:
            return self.space.stack.view(learnware_ids) if key == self.space.key else None


class HeteroIndex:
    """Qualifying learnwares, the current engine and its specs; thread-safe."""

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, settings: HeteroSettings, device: torch.device) -> None:
        self.organizer = organizer
        self.settings = settings
        self.device = device
        self._sources: dict[str, HeteroSource] = {}
        self._arrived = 0  # qualifying learnwares added or changed since the current engine's training started
        self._space: HeteroSpace | None = None
        self._version = 0  # the organizer's checkpoint version of the serving engine (0: none)
        self._synced = False
        self._next_poll = 0.0  # monotonic time of the next look for a newer checkpoint
        self.training = False
        self.last_error = ""
        self._lock = threading.Lock()
        self._training = threading.Lock()  # one training at a time: the background trainer's or a train_now
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hetero-engine", daemon=True)
        self.lease = LeaseKeeper(organizer, TRAINER_LEASE, settings.trainer_lease_s, on_change=self._lease_changed)

    # ----- change feed ---------------------------------------------------
    def apply(self, change: organizer_pb2.WatchLearnwaresResponse) -> None:
        """Apply one change of the organizer's feed (before the LearnwareIndex does, so waiting for a revision covers both)."""
        source = None
        if change.kind == organizer_pb2.CHANGE_KIND_UPSERTED:
            source = qualifying_source(change.learnware, change.stat_specs)
        with self._lock:
            if change.kind == organizer_pb2.CHANGE_KIND_SYNCED:
                self._synced = True
            elif change.kind in (organizer_pb2.CHANGE_KIND_DELETED, organizer_pb2.CHANGE_KIND_UPSERTED):
                self._sources.pop(change.learnware_id, None)
                if self._space is not None:
                    self._space.stack.remove(change.learnware_id)
                if source is not None:
                    self._sources[source.info.id] = source
                    self._arrived += 1
                    if self._space is not None:
                        self._add_spec(self._space, source)
            self._wake.notify_all()

    @staticmethod
    def _add_spec(space: HeteroSpace, source: HeteroSource) -> None:
        mapped = space.engine.map_spec(source.table_spec, source.descriptions)
        space.stack.add(source.info.id, mapped.get_z(), mapped.get_beta())

    # ----- searching -----------------------------------------------------
    def hetero_query(self, query: SearchQuery) -> tuple[SearchQuery, SpaceSpecs]:
        """The homogeneous query of a table spec turned into its query in the engine's space, and the specs to rank."""
        if query.spec_type != TABLE_SPEC_TYPE or query.user is None:
            raise invalid_argument(hetero_search_problem(query.semantic, None) or "hetero search needs an RKMETableSpecification")
        dim = int(query.user.z.shape[1])
        problem = hetero_search_problem(query.semantic, dim)
        if problem is not None:
            raise invalid_argument(problem)
        with self._lock:
            space = self._space
            qualifying = len(self._sources)
        if space is None:
            raise failed_precondition(f"the hetero engine is not trained yet: {qualifying} learnwares qualify, it trains from {self.settings.min_learnwares}")
        descriptions = input_descriptions(query.semantic, dim)
        assert descriptions is not None
        table = RKMETableSpecification.from_dict({"z": query.user.z.cpu().numpy(), "beta": query.user.beta.cpu().numpy(), "gamma": query.user.gamma})
        mapped = space.engine.map_spec(table, descriptions)
        user = UserSpec.make(mapped.get_z(), mapped.get_beta(), mapped.gamma, self.device)
        return replace(query, spec_type=HETERO_SPEC_TYPE, group=space.key, user=user), SpaceSpecs(space, self._lock)

    def describe(self) -> str:
        """One line on the engine's state, for search messages."""
        with self._lock:
            space, qualifying, training = self._space, len(self._sources), self.training
        failed = f"; the last attempt failed: {self.last_error}" if self.last_error else ""
        if space is None:
            return f"hetero engine: not trained ({qualifying} learnwares qualify; training {'runs' if training else 'starts at ' + str(self.settings.min_learnwares)}){failed}"
        state = ("; retraining" if training else "") + failed
        return f"hetero engine {space.engine.engine_id} trained on {len(space.engine.learnware_ids)} learnwares, {len(space.stack)} of {qualifying} qualifying learnwares mapped{state}"

    def stats(self) -> searcher_pb2.HeteroEngineStats:
        """The serving engine, the qualifying learnwares, and whether this searcher trains."""
        trainer = self.lease.epoch() is not None
        with self._lock:
            stats = searcher_pb2.HeteroEngineStats(qualifying=len(self._sources), training=self.training, trainer=trainer, checkpoint_version=self._version)
            if self._space is not None:
                stats.engine_id, stats.trained_on = self._space.engine.engine_id, len(self._space.engine.learnware_ids)
            return stats

    # ----- engine life cycle --------------------------------------------
    def start(self) -> None:
        self.lease.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine thread and give the trainer lease up; a training in progress is abandoned with the process
        (the thread is a daemon, and the organizer writes a checkpoint atomically, so nothing is left half-written)."""
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        self._thread.join(timeout=5)
        self.lease.stop()

    def _lease_changed(self, epoch: int | None) -> None:
        if epoch is not None:
            log.info("hetero engine: this searcher is the trainer now (lease epoch %d); loading the latest checkpoint first", epoch)
            with self._lock:
                self._next_poll = 0.0  # a new trainer starts from its predecessor's last checkpoint
                self._wake.notify_all()

    def _work(self) -> str | None:
        """What the engine thread should do now: 'load' (look for a newer checkpoint), 'train' or None."""
        if not self._synced:
            return None
        if time.monotonic() >= self._next_poll:
            return "load"
        if self.lease.epoch() is None:
            return None
        if self._space is None:
            return "train" if len(self._sources) >= self.settings.min_learnwares else None
        return "train" if self._arrived >= self.settings.retrain_after else None

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                work = self._work()
                while work is None and not self._stop.is_set():
                    self._wake.wait(min(1.0, max(0.01, self._next_poll - time.monotonic())))
                    work = self._work()
                if self._stop.is_set():
                    return
                sources = list(self._sources.values())
                if work == "train" and self._space is not None and self._same_sample(sources, self._space.engine):
                    self._arrived = 0  # a capped market whose sample did not change would train the same engine again
                    continue
                self.training = work == "train"
                if self.training:
                    self._arrived = 0
            try:
                if work == "load":
                    self._load_checkpoint()
                else:
                    fence = self.lease.fence()
                    if fence is not None:  # else the lease lapsed since _work() looked
                        self._train(training_sample(sources, self.settings.max_training_learnwares), len(sources), self.settings.steps, fence)
                self.last_error = ""
            except TrainerLeaseLost as lost:
                log.warning("%s; following its checkpoints now", lost.message)
            except Exception as error:  # the thread must outlive a failed training or an unreachable organizer
                self.last_error = str(error)
                log.exception("hetero engine %s failed; retrying in 5 s", work)
                self._stop.wait(5.0)
            finally:
                with self._lock:
                    self.training = False
                    if work == "load":
                        self._next_poll = time.monotonic() + self.settings.checkpoint_poll_s

    def _same_sample(self, sources: list[HeteroSource], engine: HeteroEngine) -> bool:
        """Whether training now would use exactly the learnwares `engine` was trained on."""
        return {source.info.id for source in training_sample(sources, self.settings.max_training_learnwares)} == set(engine.learnware_ids)

    def _load_checkpoint(self) -> None:
        """Swap in the organizer's checkpoint if it is newer than the serving engine's (a cheap call when it is not)."""
        with self._lock:
            known = self._version
        try:
            reply = self.organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name=CHECKPOINT_NAME, after_version=known))
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return  # no engine trained in this market yet
            raise
        if reply.version <= known:
            return
        engine = HeteroEngine.from_bytes(reply.data, self.device)
        with self._training:  # a train_now may have installed a newer engine meanwhile
            with self._lock:
                if reply.version <= self._version:
                    return
            self._install(engine, reply.version)
        with self._lock:  # qualifying learnwares the checkpoint's training did not see count as arrivals
            trained_on = set(engine.learnware_ids)
            unseen = sum(1 for learnware_id in self._sources if learnware_id not in trained_on)
            self._arrived = unseen if len(self._sources) <= self.settings.max_training_learnwares else 0
        writer = f"written by {reply.writer}, lease epoch {reply.epoch}" if reply.writer else "unfenced"
        log.info("hetero engine %s loaded from checkpoint version %d (%s; trained on %d learnwares)", engine.engine_id, reply.version, writer, len(engine.learnware_ids))

    def train_now(self, learnware_ids: list[str], steps: int) -> tuple[HeteroEngine, str]:
        """Train an engine in the caller's thread and install it (the reference's organizer.train): the engine and a summary.

        learnware_ids: train on these (each must qualify), else on the training sample of
        every qualifying learnware. steps: 0 = the settings' steps. A background training
        in progress finishes first: trainings are serialised.
        The searcher serving the call takes the trainer lease over (a new epoch if another
        replica held it: that replica's training in progress, if any, is refused when it
        checkpoints, and it follows the checkpoints from then on). The call returns when the
        engine serves here; the other replicas load it within checkpoint_poll_s.
        """
        if steps < 0:
            raise invalid_argument(f"steps must be positive (0 = the searcher's default), got {steps}")
        with self._lock:
            if not self._synced:
                raise failed_precondition("the searcher is still loading the market from the organizer; retry shortly")
            qualifying = dict(self._sources)
        unqualified = sorted(set(learnware_ids) - set(qualifying))
        if unqualified:
            raise failed_precondition(f"learnwares {unqualified} do not qualify for the hetero engine: {QUALIFYING_RULE}")
        if not qualifying:
            raise failed_precondition(f"no learnware qualifies for the hetero engine yet: {QUALIFYING_RULE}")
        if learnware_ids:
            sources = [qualifying[learnware_id] for learnware_id in sorted(set(learnware_ids))]
        else:
            sources = training_sample(list(qualifying.values()), self.settings.max_training_learnwares)
        fence = self.lease.take_over()
        with self._lock:
            self.training = True
            self._arrived = 0
        try:
            engine, summary = self._train(sources, len(qualifying), steps or self.settings.steps, fence)
        finally:
            with self._lock:
                self.training = False
        return engine, summary

    def _train(self, sources: list[HeteroSource], qualifying: int, steps: int, fence: organizer_pb2.LeaseFence) -> tuple[HeteroEngine, str]:
        """Train on `sources` (of `qualifying` learnwares), checkpoint the engine under the trainer lease's `fence`, install it.

        FAILED_PRECONDITION, nothing installed, if the lease passed to another searcher meanwhile.
        """
        with self._training:
            started = time.perf_counter()
            config = replace(EngineConfig(), steps=steps)
            log.info("hetero engine: training on %d of %d qualifying learnwares (%d steps, lease epoch %d)", len(sources), qualifying, steps, fence.epoch)
            tables = [herd_training_table(source.table_spec, source.descriptions, config.pseudo_rows, seed=row) for row, source in enumerate(sources)]
            engine = train_engine(tables, [source.info.id for source in sources], config, self.device)
            try:
                version = self.organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name=CHECKPOINT_NAME, data=engine.to_bytes(), fence=fence)).version
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise TrainerLeaseLost(engine.engine_id, error.details() or "") from None
                raise
            self._install(engine, version)
        summary = f"hetero engine {engine.engine_id} trained on {len(sources)} of {qualifying} qualifying learnwares ({steps} steps) in {time.perf_counter() - started:.1f} s"
        log.info("%s and checkpointed as version %d", summary, version)
        return engine, summary

    def serving(self) -> HeteroEngine:
        """The engine serving hetero searches; FAILED_PRECONDITION while none is trained."""
        with self._lock:
            space, qualifying = self._space, len(self._sources)
        if space is None:
            raise failed_precondition(f"the hetero engine is not trained yet: {qualifying} learnwares qualify, it trains from {self.settings.min_learnwares} (or train it now)")
        return space.engine

    def _install(self, engine: HeteroEngine, version: int) -> None:
        """Map every source with the new engine (checkpoint `version`) beside the old space, then swap them (changes meanwhile included)."""
        with self._lock:
            sources = dict(self._sources)
        space = HeteroSpace(engine, SpecStack((engine.out_dim,), HETERO_GAMMA, self.device), GroupKey(HETERO_SPEC_TYPE, (engine.out_dim,), HETERO_GAMMA))
        for source in sources.values():
            self._add_spec(space, source)
        with self._lock:
            for learnware_id, source in self._sources.items():
                if sources.get(learnware_id) is not source:
                    self._add_spec(space, source)
            for learnware_id in set(sources) - set(self._sources):
                space.stack.remove(learnware_id)
            self._space, self._version = space, version
