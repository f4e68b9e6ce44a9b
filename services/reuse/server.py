"""Reuse service: runs learnwares (in separate sandboxed processes) and combines their predictions."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import grpc
import numpy as np

from lwm.rpc.errors import grpc_errors, invalid_argument, unimplemented
from lwm.rpc.learnware.v1 import organizer_pb2_grpc, reuse_pb2, reuse_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.rpc.tensors import from_tensor, to_tensor
from lwm.runtime.runner import LearnwareRuntimeError
from lwm.services.reuse.reusers import average
from lwm.services.reuse.runners import RunnerPool

log = logging.getLogger(__name__)
AVERAGING_MODE_NAMES = {
    reuse_pb2.AVERAGING_MODE_UNSPECIFIED: "mean",
    reuse_pb2.AVERAGING_MODE_MEAN: "mean",
    reuse_pb2.AVERAGING_MODE_VOTE_BY_LABEL: "vote_by_label",
    reuse_pb2.AVERAGING_MODE_VOTE_BY_PROB: "vote_by_prob",
}


@grpc_errors
class ReuseServicer(reuse_pb2_grpc.ReuseServiceServicer):
    def __init__(self, pool: RunnerPool, parallelism: int = 4) -> None:
        self.pool = pool
        self._executor = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="reuse-predict")

    def _predict(self, learnware_id: str, x: np.ndarray) -> np.ndarray:
        try:
            return self.pool.predict(learnware_id, x)
        except LearnwareRuntimeError as error:
            raise invalid_argument(f"learnware {learnware_id} failed to predict on the given data: {error}") from None

    def _predict_all(self, learnware_ids: list[str], x: np.ndarray) -> list[np.ndarray]:
        """Predictions of every learnware, run in parallel (one child process each)."""
        return list(self._executor.map(lambda lid: self._predict(lid, x), learnware_ids))

    def Predict(self, request: reuse_pb2.PredictRequest, context: grpc.ServicerContext) -> reuse_pb2.PredictResponse:
        if not request.learnware_id:
            raise invalid_argument("learnware_id is empty")
        x = from_tensor(request.x, "x")
        return reuse_pb2.PredictResponse(predictions=to_tensor(self._predict(request.learnware_id, x)))

    def Reuse(self, request: reuse_pb2.ReuseRequest, context: grpc.ServicerContext) -> reuse_pb2.ReuseResponse:
        if not request.learnware_ids:
            raise invalid_argument("learnware_ids is empty")
        if len(set(request.learnware_ids)) != len(request.learnware_ids):
            raise invalid_argument("learnware_ids contains duplicates")
        x = from_tensor(request.x, "x")
        if x.ndim < 2 or x.shape[0] == 0:
            raise invalid_argument(f"x must have shape (n, ...) with n > 0, got {x.shape}")
        method = request.WhichOneof("method")
        if method == "averaging":
            mode = AVERAGING_MODE_NAMES[request.averaging.mode]
            predictions = self._predict_all(list(request.learnware_ids), x)
            return reuse_pb2.ReuseResponse(predictions=to_tensor(average(predictions, mode)), messages=[f"averaging ({mode}) over {len(predictions)} learnwares"])
        if method is None:
            raise invalid_argument("choose a reuse method (job_selector, averaging, ensemble_pruning, feature_augment, hetero_align)")
        raise unimplemented(f"the {method} reuser")

    def ReuseStream(self, request: reuse_pb2.ReuseStreamRequest, context: grpc.ServicerContext) -> Iterator[reuse_pb2.ReuseStreamResponse]:
        raise unimplemented("streamed reuse (ReuseStream)")
        yield  # pragma: no cover - makes this a generator like the other streaming RPCs


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", timeout_s: float = 120.0) -> tuple[Server, RunnerPool]:
    pool = RunnerPool(organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address)), timeout_s=timeout_s)
    server = Server("reuse", port, host)
    server.add(reuse_pb2_grpc.add_ReuseServiceServicer_to_server, ReuseServicer(pool), [reuse_pb2.DESCRIPTOR.services_by_name["ReuseService"].full_name])
    return server, pool
