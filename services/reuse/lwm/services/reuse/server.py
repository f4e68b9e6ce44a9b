"""Reuse service: runs learnwares (in separate sandboxed processes) and combines their predictions."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from lwm.learnware.semantic import input_descriptions
from lwm.learnware.vocabulary import FEATURE_REUSE_METHODS, REUSE_METHODS
from lwm.reuse.align import HeteroAlignReuser, described_input_count
from lwm.reuse.reusers import AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser, JobSelectorReuser, Reuser, RunLearnwares, check_rows, predict_in_blocks
from lwm.rpc import convert
from lwm.rpc.errors import caller_input, failed_precondition, grpc_errors, invalid_argument
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc, reuse_pb2, reuse_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.rpc.tensors import from_tensor, to_tensor
from lwm.runtime.runner import LearnwareRuntimeError
from lwm.services.reuse.runners import RunnerPool
from lwm.spec.rkme import RKMETableSpecification
from lwm.spec.text import RKMETextSpecification, check_embedder, embed_sentences

log = logging.getLogger(__name__)
# AVERAGING_MODE_UNSPECIFIED averages (the reference's default mode).
AVERAGING_MODE_NAMES = {value: name for name, value in convert.AVERAGING_MODE_VALUES.items()} | {reuse_pb2.AVERAGING_MODE_UNSPECIFIED: "mean"}
TASK_NAMES = {value: name for name, value in convert.TASK_KIND_VALUES.items()}
DEFAULT_BLOCK_ROWS = 10_000
TEXT_METHODS = ", ".join(method for method in REUSE_METHODS if method not in FEATURE_REUSE_METHODS)


def _task(kind: reuse_pb2.TaskKind, method: str) -> str:
    if kind not in TASK_NAMES:
        raise invalid_argument(f"{method} needs task set to TASK_KIND_CLASSIFICATION or TASK_KIND_REGRESSION")
    return TASK_NAMES[kind]


def _spec_class(texts: bool) -> type[RKMETableSpecification]:
    """The specification the job selector routes by: over sentence embeddings for texts, else over the columns."""
    return RKMETextSpecification if texts else RKMETableSpecification


def _parse_spec(message: common_pb2.StatSpec, whose: str, spec_class: type[RKMETableSpecification]) -> RKMETableSpecification:
    """Raises ValueError for a malformed specification or a text one this service cannot embed texts for."""
    spec = spec_class.from_dict(convert.stat_spec_from_proto(message), device="cpu")
    if isinstance(spec, RKMETextSpecification):
        check_embedder(spec, whose)
    return spec


def _user_spec(message: common_pb2.StatSpec, spec_class: type[RKMETableSpecification]) -> RKMETableSpecification:
    try:
        return _parse_spec(message, "the user's", spec_class)
    except ValueError as error:
        raise invalid_argument(f"the user's specification: {error}") from None


@grpc_errors
class ReuseServicer(reuse_pb2_grpc.ReuseServiceServicer):
    def __init__(self, pool: RunnerPool, organizer: organizer_pb2_grpc.OrganizerServiceStub, parallelism: int = 4) -> None:
        self.pool = pool
        self.organizer = organizer
        self._executor = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="reuse-predict")

    def _predict(self, learnware_id: str, x: np.ndarray) -> np.ndarray:
        try:
            return self.pool.predict(learnware_id, x)
        except LearnwareRuntimeError as error:
            raise invalid_argument(f"learnware {learnware_id} failed to predict on the given data: {error}") from None

    def _runner(self, learnware_ids: Sequence[str]) -> RunLearnwares:
        """Runs each job on its learnware's warm runner, the jobs in parallel."""

        def run(jobs: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
            return list(self._executor.map(lambda job: self._predict(learnware_ids[job[0]], job[1]), jobs))

        return run

    def _stat_specs(self, learnware_ids: Sequence[str], method: str, spec_class: type[RKMETableSpecification] = RKMETableSpecification) -> list[RKMETableSpecification]:
        """Each learnware's specification of the given class (FAILED_PRECONDITION if one has none or an unusable one)."""
        reply = self.organizer.GetStatSpecs(organizer_pb2.GetStatSpecsRequest(learnware_ids=learnware_ids))
        specs = []
        for entry in reply.learnwares:
            found = [s for s in entry.stat_specs if s.type == spec_class.type]
            if not found:
                kinds = sorted(s.type for s in entry.stat_specs) or ["none"]
                raise failed_precondition(f"{method} needs an {spec_class.type} of every learnware; {entry.learnware_id} has {', '.join(kinds)}")
            try:
                specs.append(_parse_spec(found[0], f"learnware {entry.learnware_id}'s", spec_class))
            except ValueError as error:
                raise failed_precondition(f"{method}: {error}") from None
        return specs

    def _prepare(self, request: reuse_pb2.ReuseRequest) -> tuple[Reuser, np.ndarray, RunLearnwares]:
        """Validate the request, warm the learnwares' runners and fit the reuser; returns it with x."""
        ids = list(request.learnware_ids)
        if not ids:
            raise invalid_argument("learnware_ids is empty")
        if len(set(ids)) != len(ids):
            raise invalid_argument("learnware_ids contains duplicates")
        with caller_input():
            x = check_rows(from_tensor(request.x, "x"), texts=True)
        texts = x.dtype.kind == "U"
        method = request.WhichOneof("method")
        if method is None:
            raise invalid_argument(f"choose a reuse method ({', '.join(REUSE_METHODS)})")
        if texts and method in FEATURE_REUSE_METHODS:
            raise invalid_argument(f"{method} needs numeric columns in x (it fits a model on the user's features), but x holds texts; reuse text learnwares with {TEXT_METHODS}")
        list(self._executor.map(self.pool.acquire, ids))  # USABLE check and parallel cold starts
        run = self._runner(ids)
        reuser: Reuser
        if method == "averaging":
            reuser = AveragingReuser(ids, AVERAGING_MODE_NAMES[request.averaging.mode])
        elif method == "job_selector":
            params = request.job_selector
            spec_class = _spec_class(texts)
            user_spec = _user_spec(params.user_spec, spec_class) if params.HasField("user_spec") else None
            specs = self._stat_specs(ids, "the job selector", spec_class)
            with caller_input():  # the user's spec or x must fit the learnwares' specs
                reuser = JobSelectorReuser(ids, specs, user_spec, embed_sentences if texts else None)
                if user_spec is None:
                    reuser.fit(x)
        elif method == "hetero_align":
            reuser = self._hetero_align(ids, x, request.hetero_align, run)
        else:
            params = getattr(request, method)
            if not params.HasField("train"):
                raise invalid_argument(f"{method} needs labelled data (train.x, train.y)")
            task = _task(params.task, method)
            with caller_input():
                train_x = from_tensor(params.train.x, "train.x")
            if (train_x.dtype.kind == "U") != texts:
                raise invalid_argument(f"train.x and x must both be texts or both numbers, got {train_x.dtype} and {x.dtype}")
            reuser = EnsemblePruningReuser(ids, task) if method == "ensemble_pruning" else FeatureAugmentReuser(ids, task)
            with caller_input():  # the labels must fit x and the learnwares' outputs
                reuser.fit(train_x, from_tensor(params.train.y, "train.y"), run)
        return reuser, x, run

    def _hetero_align(self, ids: list[str], x: np.ndarray, params: reuse_pb2.HeteroAlignParams, run: RunLearnwares) -> HeteroAlignReuser:
        """Align each learnware to the user's columns (descriptions from the semantic specs), fit on the labels if any."""
        task = _task(params.task, "hetero_align")
        specs = self._stat_specs(ids, "hetero alignment")
        semantic = [convert.semantic_to_dict(self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=i)).learnware.semantic_spec) for i in ids]
        learnware_texts = [input_descriptions(spec, table.get_z().shape[1]) for spec, table in zip(semantic, specs)]
        user_semantic = convert.semantic_to_dict(params.user_semantic_spec)
        described = described_input_count(user_semantic)
        if described and described != x.shape[1]:
            raise invalid_argument(f"the user's semantic spec describes {described} input columns but x has {x.shape[1]}")
        user_texts = input_descriptions(user_semantic, x.shape[1])
        reuser = HeteroAlignReuser(ids, specs, task, learnware_texts, user_texts, embed_sentences)
        with caller_input():  # the labelled data must fit x
            if params.HasField("train"):
                reuser.fit(x, run, from_tensor(params.train.x, "train.x"), from_tensor(params.train.y, "train.y"))
            else:
                reuser.fit(x, run)
        return reuser

    def Predict(self, request: reuse_pb2.PredictRequest, context: grpc.ServicerContext) -> reuse_pb2.PredictResponse:
        if not request.learnware_id:
            raise invalid_argument("learnware_id is empty")
        with caller_input():
            x = from_tensor(request.x, "x")
        return reuse_pb2.PredictResponse(predictions=to_tensor(self._predict(request.learnware_id, x)))

    def Reuse(self, request: reuse_pb2.ReuseRequest, context: grpc.ServicerContext) -> reuse_pb2.ReuseResponse:
        reuser, x, run = self._prepare(request)
        with caller_input():  # the reuser checks x against what it was fit on (e.g. the user's spec, train.x)
            predictions = reuser.predict(x, run)
        return reuse_pb2.ReuseResponse(predictions=to_tensor(predictions), messages=[reuser.describe()])

    def ReuseStream(self, request: reuse_pb2.ReuseStreamRequest, context: grpc.ServicerContext) -> Iterator[reuse_pb2.ReuseStreamResponse]:
        if request.block_rows < 0:
            raise invalid_argument(f"block_rows must be positive, got {request.block_rows}")
        reuser, x, run = self._prepare(request.reuse)
        total = x.shape[0]
        with caller_input():  # as in Reuse
            for offset, predictions in predict_in_blocks(reuser, x, run, request.block_rows or DEFAULT_BLOCK_ROWS):
                done = offset + predictions.shape[0]
                yield reuse_pb2.ReuseStreamResponse(row_offset=offset, predictions=to_tensor(predictions), rows_done=done, rows_total=total, messages=[reuser.describe()] if offset == 0 else [])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", timeout_s: float = 120.0) -> tuple[Server, ReuseServicer]:
    """The reuse server and its servicer; call servicer.close() after stopping the server."""
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    servicer = ReuseServicer(RunnerPool(organizer, timeout_s=timeout_s), organizer)
    server = Server("reuse", port, host)
    server.add(reuse_pb2_grpc.add_ReuseServiceServicer_to_server, servicer, [reuse_pb2.DESCRIPTOR.services_by_name["ReuseService"].full_name])
    return server, servicer
