"""MarketClient: the Python SDK over the gateway's Market API."""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf import json_format

from lwm.client.errors import MarketError, from_rpc_error, require_distribution
from lwm.client.retry import NO_RETRY, RetryPolicy, call_with_retry
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, market_pb2_grpc, reuse_pb2, searcher_pb2
from lwm.rpc.server import market_channel
from lwm.rpc.tensors import from_tensor, to_tensor

if TYPE_CHECKING:
    from lwm.client.reuse import LocalLearnware

UPLOAD_CHUNK_BYTES = 1024 * 1024
# The user's data: an array of numbers, or texts (a list or numpy array of str) for text learnwares.
UserData = np.ndarray | Sequence[str]
DEFAULT_MARKET = "127.0.0.1:50051"
DEFAULT_MARKET_ID = "default"
# Seconds each RPC may take by default: quick metadata calls, searches, calls that run
# models, and uploads that wait for the check (which may build an environment).
DEFAULT_TIMEOUTS_S: dict[str, float] = {
    "GetLearnware": 30.0,
    "ListLearnwares": 30.0,
    "UpdateLearnware": 30.0,
    "DeleteLearnware": 30.0,
    "GetMarketInfo": 30.0,
    "ClearMarket": 600.0,
    "SearchLearnware": 120.0,
    "Predict": 300.0,
    "Reuse": 600.0,
    "ReuseStream": 600.0,
    "DownloadLearnware": 600.0,
    "AddLearnware": 1800.0,
    "RecheckLearnware": 1800.0,
    "TrainHeteroEngine": 1800.0,
    "GetHeteroEngine": 120.0,
}
# Calls that change nothing (or whose repetition changes nothing): retried on UNAVAILABLE.
# AddLearnware is too: each upload carries a client_request_id, so the market stores a
# retried upload once. Update and delete are not (a retried delete could report NOT_FOUND
# for its own success).
IDEMPOTENT_METHODS = frozenset({"AddLearnware", "GetLearnware", "ListLearnwares", "GetMarketInfo", "SearchLearnware", "Predict", "Reuse", "ReuseStream", "DownloadLearnware", "GetHeteroEngine"})


@dataclass(frozen=True)
class HeteroEngineCheckpoint:
    """A Hetero market's engine: its id, how many learnwares it was trained on, its checkpoint (lwm.spec.hetero.HeteroEngine.from_bytes)."""

    engine_id: str
    trained_on: int
    checkpoint: bytes
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Learnware:
    id: str
    status: str
    semantic_spec: dict[str, Any]
    owner: str = ""
    stat_spec_types: tuple[str, ...] = ()
    check_report: dict[str, Any] = field(default_factory=dict)
    zip_size: int = 0
    zip_sha256: str = ""
    market_id: str = DEFAULT_MARKET_ID
    # Organizer revision of the learnware's last change.
    revision: int = 0

    @property
    def name(self) -> str:
        return str(self.semantic_spec.get("Name", {}).get("Values", ""))

    @classmethod
    def from_proto(cls, info: common_pb2.LearnwareInfo) -> Learnware:
        return cls(
            id=info.id,
            status=convert.STATUS_NAMES[info.status],
            semantic_spec=convert.semantic_to_dict(info.semantic_spec),
            owner=info.owner,
            stat_spec_types=tuple(info.stat_spec_types),
            check_report=json_format.MessageToDict(info.check_report) if info.HasField("check_report") else {},
            zip_size=info.zip_size,
            zip_sha256=info.zip_sha256,
            market_id=info.market_id,
            revision=info.revision,
        )


@dataclass(frozen=True)
class SingleResult:
    learnware: Learnware
    score: float


@dataclass(frozen=True)
class MixtureResult:
    learnwares: tuple[Learnware, ...]
    weights: tuple[float, ...]
    score: float


@dataclass(frozen=True)
class ReuseResult:
    predictions: np.ndarray
    messages: tuple[str, ...]


@dataclass(frozen=True)
class SearchResults:
    single_results: tuple[SingleResult, ...]
    multiple_results: tuple[MixtureResult, ...]
    search_path: str
    messages: tuple[str, ...]

    def get_single_results(self) -> list[SingleResult]:
        return list(self.single_results)

    def get_multiple_results(self) -> list[MixtureResult]:
        return list(self.multiple_results)


def _stat_spec_dict(spec: Any) -> dict[str, Any]:
    """Accept a spec object (with to_dict), a reference spec dictionary, or a path to its JSON file."""
    if hasattr(spec, "to_dict"):
        as_dict: dict[str, Any] = spec.to_dict()
        return as_dict
    if isinstance(spec, dict):
        return spec
    from_file: dict[str, Any] = json.loads(Path(spec).read_text())
    return from_file


class MarketClient:
    """Talks to a market's gateway.

    Errors are raised as MarketError subclasses (lwm.client.errors) with the server's
    message. Idempotent calls are retried on UNAVAILABLE as `retry` says.
    """

    def __init__(
        self,
        address: str = DEFAULT_MARKET,
        timeout_s: float | None = None,
        token: str | None = None,
        tls_ca: str | None = None,
        *,
        timeouts: Mapping[str, float] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        market_id: str = DEFAULT_MARKET_ID,
        seen_revision: int = 0,
    ) -> None:
        """timeout_s: one timeout for every call, instead of DEFAULT_TIMEOUTS_S; timeouts: per RPC name
        (e.g. {"SearchLearnware": 10}); token: API token (default env LWM_TOKEN); tls_ca: CA bundle path
        or "system" for TLS (default env LWM_TLS_CA); market_id: the named market on the server that
        uploads, lists, searches, market_info and clear_market address (learnware ids are global, so
        calls taking an id reach a learnware of any market); seen_revision: the `seen_revision` of another
        client (e.g. in another process of the same user), so that this one's searches see that client's writes too."""
        self.address = address
        self.market_id = market_id
        self.timeouts = dict(DEFAULT_TIMEOUTS_S) if timeout_s is None else dict.fromkeys(DEFAULT_TIMEOUTS_S, timeout_s)
        self.timeouts.update(timeouts or {})
        self.retry = retry
        self._rng = random.Random()
        token = os.environ.get("LWM_TOKEN", "") if token is None else token
        tls_ca = os.environ.get("LWM_TLS_CA", "") if tls_ca is None else tls_ca
        self._channel = market_channel(address, token, tls_ca)
        self._stub = market_pb2_grpc.MarketServiceStub(self._channel)
        # Highest organizer revision of this client's writes: sent with searches (read-your-writes on any gateway replica).
        self._revision_lock = threading.Lock()
        self._seen_revision = seen_revision

    @property
    def seen_revision(self) -> int:
        """The highest organizer revision among this client's write responses (0 before its first write)."""
        return self._seen_revision

    def _saw(self, revision: int) -> None:
        with self._revision_lock:
            self._seen_revision = max(self._seen_revision, revision)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> MarketClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry_policy(self, method: str) -> RetryPolicy:
        return self.retry if method in IDEMPOTENT_METHODS else NO_RETRY

    def _call(self, method: str, request: Any) -> Any:
        """One call (retried as _retry_policy says); `request` may be a function making the request, called once per attempt."""
        make = request if callable(request) else lambda: request
        try:
            return call_with_retry(lambda: getattr(self._stub, method)(make(), timeout=self.timeouts[method]), self._retry_policy(method), method, self._rng)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _stream(self, method: str, request: Any) -> Iterator[Any]:
        """The replies of a server-streaming call; retried on UNAVAILABLE only until the first reply arrives."""

        def first_reply() -> tuple[Any, Iterator[Any]]:
            replies = getattr(self._stub, method)(request, timeout=self.timeouts[method])
            return next(replies, None), replies

        try:
            first, replies = call_with_retry(first_reply, self._retry_policy(method), method, self._rng)
            if first is None:
                return
            yield first
            yield from replies
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def add_learnware(self, zip_path: str | os.PathLike[str], semantic_spec: dict[str, Any], wait: bool = True, progress: Callable[[int], None] | None = None) -> Learnware:
        """Upload a learnware zip; with wait=True returns after the market has checked it.

        `progress(bytes_sent)` is called after each chunk (from the start again if the upload is retried).
        The upload carries a new client_request_id, reused when it is retried on UNAVAILABLE: the
        market stores it once even when a response was lost.
        """
        zip_path = Path(zip_path)
        spec = convert.semantic_from_dict(semantic_spec)
        request_id = uuid.uuid4().hex

        def requests() -> Iterator[market_pb2.MarketAddLearnwareRequest]:
            metadata = market_pb2.MarketAddLearnwareMetadata(semantic_spec=spec, zip_size=zip_path.stat().st_size, wait_for_check=wait, market_id=self.market_id, client_request_id=request_id)
            yield market_pb2.MarketAddLearnwareRequest(metadata=metadata)
            sent = 0
            with open(zip_path, "rb") as handle:
                while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                    yield market_pb2.MarketAddLearnwareRequest(chunk=common_pb2.Chunk(data=chunk))
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent)

        reply = self._call("AddLearnware", requests)
        self._saw(reply.revision)
        return Learnware.from_proto(reply.learnware)

    def get_learnware(self, learnware_id: str) -> Learnware:
        """The learnware as it is now; later searches see at least this state (e.g. the end of a check)."""
        learnware = Learnware.from_proto(self._call("GetLearnware", market_pb2.MarketGetLearnwareRequest(learnware_id=learnware_id)).learnware)
        self._saw(learnware.revision)
        return learnware

    def wait_until_checked(self, learnware_id: str, timeout_s: float = 600.0, poll_s: float = 0.2) -> Learnware:
        """The learnware once the market's check has decided (no longer PENDING); TimeoutError after timeout_s.

        For uploads made with wait=False, e.g. several checked in parallel.
        """
        deadline = time.monotonic() + timeout_s
        while (learnware := self.get_learnware(learnware_id)).status == "PENDING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"learnware {learnware_id} is still PENDING after {timeout_s:g} s")
            time.sleep(poll_s)
        return learnware

    def list_learnwares(self, statuses: Sequence[str] = (), page_size: int = 100) -> Iterator[Learnware]:
        """Every learnware of the market (optionally only some statuses), fetched page by page."""
        token = ""
        while True:
            request = market_pb2.MarketListLearnwaresRequest(
                page=common_pb2.PageRequest(page_size=page_size, page_token=token), statuses=[convert.STATUS_VALUES[s.upper()] for s in statuses], market_id=self.market_id
            )
            page = self._call("ListLearnwares", request)
            for info in page.learnwares:
                yield Learnware.from_proto(info)
            token = page.next_page_token
            if not token:
                return

    def update_learnware(self, learnware_id: str, semantic_spec: dict[str, Any]) -> Learnware:
        request = market_pb2.MarketUpdateLearnwareRequest(learnware_id=learnware_id, semantic_spec=convert.semantic_from_dict(semantic_spec))
        reply = self._call("UpdateLearnware", request)
        self._saw(reply.revision)
        return Learnware.from_proto(reply.learnware)

    def delete_learnware(self, learnware_id: str) -> None:
        self._saw(self._call("DeleteLearnware", market_pb2.MarketDeleteLearnwareRequest(learnware_id=learnware_id)).revision)

    def download(self, learnware_id: str, path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> Path:
        """Save a learnware's zip to `path` (written to a temporary name first); `progress(bytes_received)` after each chunk."""
        path = Path(path)
        partial = path.with_name(path.name + ".part")
        try:
            with open(partial, "wb") as out:
                for reply in self._stream("DownloadLearnware", market_pb2.MarketDownloadLearnwareRequest(learnware_id=learnware_id)):
                    out.write(reply.chunk.data)
                    if progress is not None:
                        progress(out.tell())
        except MarketError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        return path

    def search_learnware(self, semantic_spec: dict[str, Any] | None = None, stat_spec: Any = None, *, max_search_num: int = 5, mixture_strategy: str = "greedy", max_results: int = 10) -> SearchResults:
        """Search by semantic spec and, optionally, a statistical spec made from the user's data."""
        request = market_pb2.MarketSearchLearnwareRequest(
            semantic_spec=convert.semantic_from_dict(semantic_spec or {}),
            max_search_num=max_search_num,
            mixture_strategy=searcher_pb2.MIXTURE_STRATEGY_AUTO if mixture_strategy == "auto" else searcher_pb2.MIXTURE_STRATEGY_GREEDY,
            max_results=max_results,
            market_id=self.market_id,
            min_revision=self._seen_revision,
        )
        if stat_spec is not None:
            request.stat_specs.append(convert.stat_spec_to_proto(_stat_spec_dict(stat_spec)))
        reply = self._call("SearchLearnware", request)
        return SearchResults(
            single_results=tuple(SingleResult(Learnware.from_proto(r.learnware), r.score) for r in reply.single_results),
            multiple_results=tuple(MixtureResult(tuple(Learnware.from_proto(i) for i in m.learnwares), tuple(m.weights), m.score) for m in reply.multiple_results),
            search_path=reply.search_path,
            messages=tuple(reply.messages),
        )

    def predict(self, learnware_id: str, x: UserData) -> np.ndarray:
        """The learnware's predictions on x (rows of numbers, or a list of texts), run in the market's sandbox."""
        reply = self._call("Predict", market_pb2.MarketPredictRequest(learnware_id=learnware_id, x=_data_tensor(x, "x")))
        return from_tensor(reply.predictions, "predictions")

    def reuse_averaging(self, learnware_ids: Sequence[str], x: UserData, mode: str = "mean") -> np.ndarray:
        """AveragingReuser on the market: mode is mean, vote_by_label or vote_by_prob."""
        if mode not in convert.AVERAGING_MODE_VALUES:
            raise ValueError(f"mode must be one of {sorted(convert.AVERAGING_MODE_VALUES)}, got {mode!r}")
        reuse = reuse_pb2.ReuseRequest(learnware_ids=list(learnware_ids), x=_data_tensor(x, "x"), averaging=reuse_pb2.AveragingParams(mode=convert.AVERAGING_MODE_VALUES[mode]))
        reply = self._call("Reuse", market_pb2.MarketReuseRequest(reuse=reuse))
        return from_tensor(reply.predictions, "predictions")

    def reuse(
        self,
        learnware_ids: Sequence[str],
        x: UserData,
        method: str,
        *,
        mode: str = "mean",
        task: str | None = None,
        train_x: UserData | None = None,
        train_y: np.ndarray | None = None,
        user_spec: Any = None,
        user_semantic_spec: dict[str, Any] | None = None,
        block_rows: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReuseResult:
        """Reuse learnwares on the market: predictions stream back in blocks of `block_rows` rows.

        method: job_selector (optional `user_spec`, a spec object, dictionary or JSON path),
        averaging (`mode`: mean, vote_by_label or vote_by_prob), ensemble_pruning or
        feature_augment (`task`: classification or regression, labelled `train_x`, `train_y`),
        hetero_align (`task`, optional labelled data, `user_semantic_spec` whose "Input"
        describes the columns of x: learnwares with other columns are aligned to them).
        `progress(rows_done, rows_total)` is called after each block.
        x (and train_x) may be texts, a list of str, for text learnwares: job_selector (with an
        RKMETextSpecification as `user_spec`, or none), averaging and ensemble_pruning take them.
        """
        request = reuse_pb2.ReuseRequest(learnware_ids=list(learnware_ids), x=_data_tensor(x, "x"))
        if method == "job_selector":
            request.job_selector.SetInParent()
            if user_spec is not None:
                request.job_selector.user_spec.CopyFrom(convert.stat_spec_to_proto(_stat_spec_dict(user_spec)))
        elif method == "averaging":
            if mode not in convert.AVERAGING_MODE_VALUES:
                raise ValueError(f"mode must be one of {sorted(convert.AVERAGING_MODE_VALUES)}, got {mode!r}")
            request.averaging.mode = convert.AVERAGING_MODE_VALUES[mode]
        elif method in ("ensemble_pruning", "feature_augment", "hetero_align"):
            if task not in convert.TASK_KIND_VALUES:
                raise ValueError(f"{method} needs task classification or regression, got {task!r}")
            if (train_x is None or train_y is None) and method != "hetero_align":
                raise ValueError(f"{method} needs labelled data: train_x and train_y")
            params = getattr(request, method)
            params.task = convert.TASK_KIND_VALUES[task]
            if train_x is not None and train_y is not None:
                params.train.x.CopyFrom(_data_tensor(train_x, "train_x"))
                params.train.y.CopyFrom(to_tensor(np.asarray(train_y)))
            if method == "hetero_align" and user_semantic_spec is not None:
                params.user_semantic_spec.CopyFrom(convert.semantic_from_dict(user_semantic_spec))
        else:
            raise ValueError(f"method must be job_selector, averaging, ensemble_pruning, feature_augment or hetero_align, got {method!r}")
        stream = market_pb2.MarketReuseStreamRequest(reuse=reuse_pb2.ReuseStreamRequest(reuse=request, block_rows=block_rows))
        blocks: list[np.ndarray] = []
        messages: list[str] = []
        for reply in self._stream("ReuseStream", stream):
            blocks.append(from_tensor(reply.block.predictions, "predictions"))
            messages.extend(reply.block.messages)
            if progress is not None:
                progress(reply.block.rows_done, reply.block.rows_total)
        return ReuseResult(np.concatenate(blocks), tuple(messages))

    def load_learnware(self, learnware_id: str, timeout_s: float = 120.0) -> LocalLearnware:
        """Download a learnware and start its model in a local sandbox (see lwm.client.reuse); close it when done."""
        require_distribution("lwm.runtime", "'lwm-client[local]'", "running a learnware on this machine")
        from lwm.client.reuse import load_learnware  # imports torch (specs): only when used

        with tempfile.TemporaryDirectory(prefix="lwm-download-") as folder:
            return load_learnware(self.download(learnware_id, Path(folder) / f"{learnware_id}.zip"), learnware_id, timeout_s)

    def train_hetero_engine(self, learnware_ids: Sequence[str] = (), steps: int = 0) -> HeteroEngineCheckpoint:
        """Train a Hetero market's engine now; returns once it serves searches.

        learnware_ids: train on these (each must qualify, else FailedPreconditionError naming
        them), default every qualifying learnware. steps: 0 = the market's setting.
        """
        request = market_pb2.MarketTrainHeteroEngineRequest(train=searcher_pb2.TrainHeteroEngineRequest(learnware_ids=list(learnware_ids), steps=steps, min_revision=self._seen_revision))
        trained = self._call("TrainHeteroEngine", request).trained
        return HeteroEngineCheckpoint(trained.engine.engine_id, int(trained.engine.trained_on), trained.checkpoint, tuple(trained.messages))

    def get_hetero_engine(self) -> HeteroEngineCheckpoint:
        """The engine serving a Hetero market's searches (FailedPreconditionError while none is trained)."""
        engine = self._call("GetHeteroEngine", market_pb2.MarketGetHeteroEngineRequest()).engine
        return HeteroEngineCheckpoint(engine.engine.engine_id, int(engine.engine.trained_on), engine.checkpoint, ())

    def market_info(self) -> dict[str, Any]:
        reply = self._call("GetMarketInfo", market_pb2.MarketGetMarketInfoRequest(market_id=self.market_id))
        return {
            "kind": market_pb2.MarketKind.Name(reply.kind).removeprefix("MARKET_KIND_"),
            "version": reply.version,
            "market_id": reply.market_id,
            "learnware_counts": dict(reply.learnware_counts),
        }

    def clear_market(self) -> list[str]:
        """Delete every learnware of this client's market (other markets keep theirs); the ids deleted.

        Needs an admin token, or a user token owning every learnware of the market (PermissionDeniedError otherwise).
        """
        reply = self._call("ClearMarket", market_pb2.MarketClearMarketRequest(market_id=self.market_id))
        self._saw(reply.revision)
        return list(reply.deleted_ids)


def _data_tensor(x: UserData, name: str) -> common_pb2.Tensor:
    """The user's rows or texts as a Tensor; a lone string is refused (it would be one text of shape ())."""
    if isinstance(x, str):
        raise ValueError(f"{name} is a single string; pass texts as a list of str")
    return to_tensor(np.asarray(x))
