"""Gateway: the public Market API, composing organizer, checker, searcher and reuse."""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from lwm.learnware.semantic import hetero_search_problem
from lwm.learnware.vocabulary import TABLE_SPEC_TYPE
from lwm.rpc import convert
from lwm.rpc.auth import MARKET_POLICY
from lwm.rpc.deadlines import STEP_TIMED_OUT, time_to_pass_on_s
from lwm.rpc.errors import ServiceError, failed_precondition, grpc_errors, invalid_argument
from lwm.rpc.interceptors import current_principal
from lwm.rpc.learnware.v1 import (
    checker_pb2,
    checker_pb2_grpc,
    common_pb2,
    market_pb2,
    market_pb2_grpc,
    organizer_pb2,
    organizer_pb2_grpc,
    reuse_pb2,
    reuse_pb2_grpc,
    searcher_pb2,
    searcher_pb2_grpc,
)
from lwm.rpc.server import Server, channel

log = logging.getLogger(__name__)
DEFAULT_MARKET_ID = "default"
MARKET_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def market_id_of(requested: str) -> str:
    """The named market a request addresses (empty: the default market); INVALID_ARGUMENT for a bad name."""
    if not requested:
        return DEFAULT_MARKET_ID
    if not MARKET_ID.fullmatch(requested):
        raise invalid_argument(f"bad market_id {requested[:80]!r}: use 1 to 64 letters, digits, '-', '_' or '.'")
    return requested


@dataclass
class Backends:
    organizer: str
    checker: str
    # One searcher address, or comma-separated addresses of replicas that each hold a shard of the market.
    searcher: str
    reuse: str


# Longest single WaitCheckJob call; a caller without a deadline waits in such slices until the check ends.
CHECK_WAIT_SLICE_S = 20.0
# Pause between WaitCheckJob calls that the organizer answered at once (too many waiting callers).
CHECK_POLL_S = 1.0


def wait_for_check(organizer: organizer_pb2_grpc.OrganizerServiceStub, job_id: int) -> common_pb2.LearnwareInfo:
    """The learnware once its check job has ended; DEADLINE_EXCEEDED when the caller's time runs out first (the job goes on)."""
    started = time.monotonic()

    def caller_out_of_time() -> ServiceError:
        waited = time.monotonic() - started
        return ServiceError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"checker.CheckLearnware {STEP_TIMED_OUT} {waited:.1f} s (the time the caller had left); the check goes on: GetLearnware shows its result (check job {job_id})",
        )

    while True:
        left = time_to_pass_on_s()
        if left is not None and left < 0.05:
            raise caller_out_of_time()
        # Ask the organizer to answer well before the call's own deadline, so that running out is seen here.
        wait_s = CHECK_WAIT_SLICE_S if left is None else min(CHECK_WAIT_SLICE_S, 0.8 * left)
        asked = time.monotonic()
        try:
            reply = organizer.WaitCheckJob(organizer_pb2.WaitCheckJobRequest(job_id=job_id, wait_s=wait_s))
        except grpc.RpcError as error:
            # A busy organizer answered after the caller's last moment: that is the caller's deadline, not a fault.
            if left is not None and isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise caller_out_of_time() from None
            raise
        if reply.job.state in (organizer_pb2.CHECK_JOB_STATE_DONE, organizer_pb2.CHECK_JOB_STATE_FAILED):
            if not reply.HasField("learnware"):
                raise ServiceError(grpc.StatusCode.NOT_FOUND, f"learnware {reply.job.learnware_id} was deleted while it was checked")
            return reply.learnware
        if time.monotonic() - asked < wait_s / 2:  # the organizer had no thread to wait with: poll
            time.sleep(min(CHECK_POLL_S, wait_s))


@grpc_errors
class MarketServicer(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, backends: Backends, kind: market_pb2.MarketKind = market_pb2.MARKET_KIND_EASY) -> None:
        self.organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(backends.organizer))
        self.checker = checker_pb2_grpc.CheckerServiceStub(channel(backends.checker))
        self.searchers = [searcher_pb2_grpc.SearcherServiceStub(channel(address.strip())) for address in backends.searcher.split(",")]
        self._merges = itertools.count()
        self.reuse = reuse_pb2_grpc.ReuseServiceStub(channel(backends.reuse))
        self.kind = kind

    def _check_semantic(self, spec: common_pb2.SemanticSpec) -> None:
        reply = self.checker.CheckSemanticSpec(checker_pb2.CheckSemanticSpecRequest(semantic_spec=spec))
        if not reply.valid:
            raise invalid_argument("invalid semantic specification: " + "; ".join(reply.problems))

    def AddLearnware(self, request_iterator: Iterator[market_pb2.MarketAddLearnwareRequest], context: grpc.ServicerContext) -> market_pb2.MarketAddLearnwareResponse:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise invalid_argument("the first message of AddLearnware must carry the metadata (semantic spec)")
        metadata = first.metadata
        market_id = market_id_of(metadata.market_id)
        self._check_semantic(metadata.semantic_spec)
        owner = current_principal().name

        def forward() -> Iterator[organizer_pb2.AddLearnwareRequest]:
            yield organizer_pb2.AddLearnwareRequest(
                metadata=organizer_pb2.AddLearnwareMetadata(semantic_spec=metadata.semantic_spec, owner=owner, zip_size=metadata.zip_size, market_id=market_id, client_request_id=metadata.client_request_id)
            )
            for message in request_iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise invalid_argument("after the metadata, AddLearnware accepts only chunks")
                yield organizer_pb2.AddLearnwareRequest(chunk=message.chunk)

        # The organizer stores the learnware and queues its check job in one transaction; checkers pull the job.
        reply = self.organizer.AddLearnware(forward())
        added = reply.learnware
        if metadata.wait_for_check and not reply.replayed:  # a replayed upload is already checked, or being checked
            checked = wait_for_check(self.organizer, reply.check_job_id)
            return market_pb2.MarketAddLearnwareResponse(learnware=checked, revision=checked.revision)
        return market_pb2.MarketAddLearnwareResponse(learnware=added, revision=added.revision)

    def _require_owner(self, learnware_id: str) -> None:
        """PERMISSION_DENIED unless the caller owns the learnware or is an admin."""
        principal = current_principal()
        owner = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=learnware_id)).learnware.owner
        if not principal.may_change(owner):
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"learnware {learnware_id} belongs to {owner!r}: only its owner or an admin may change it")

    def GetLearnware(self, request: market_pb2.MarketGetLearnwareRequest, context: grpc.ServicerContext) -> market_pb2.MarketGetLearnwareResponse:
        info = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=request.learnware_id)).learnware
        return market_pb2.MarketGetLearnwareResponse(learnware=info)

    def ListLearnwares(self, request: market_pb2.MarketListLearnwaresRequest, context: grpc.ServicerContext) -> market_pb2.MarketListLearnwaresResponse:
        principal = current_principal()
        owner = request.owner if principal.is_admin else principal.name  # users list their own learnwares
        market_id = market_id_of(request.market_id)
        page = self.organizer.ListLearnwares(organizer_pb2.ListLearnwaresRequest(page=request.page, statuses=request.statuses, owner=owner, market_id=market_id))
        return market_pb2.MarketListLearnwaresResponse(learnwares=page.learnwares, next_page_token=page.next_page_token, total=page.total)

    def UpdateLearnware(self, request: market_pb2.MarketUpdateLearnwareRequest, context: grpc.ServicerContext) -> market_pb2.MarketUpdateLearnwareResponse:
        self._require_owner(request.learnware_id)
        self._check_semantic(request.semantic_spec)
        # PENDING again, with a check job queued in the same transaction: the new spec must agree with the model again.
        updated = self.organizer.UpdateLearnware(organizer_pb2.UpdateLearnwareRequest(learnware_id=request.learnware_id, semantic_spec=request.semantic_spec, status=common_pb2.LEARNWARE_STATUS_PENDING)).learnware
        return market_pb2.MarketUpdateLearnwareResponse(learnware=updated, revision=updated.revision)

    def DeleteLearnware(self, request: market_pb2.MarketDeleteLearnwareRequest, context: grpc.ServicerContext) -> market_pb2.MarketDeleteLearnwareResponse:
        self._require_owner(request.learnware_id)
        reply = self.organizer.DeleteLearnware(organizer_pb2.DeleteLearnwareRequest(learnware_id=request.learnware_id))
        return market_pb2.MarketDeleteLearnwareResponse(revision=reply.revision)

    def DownloadLearnware(self, request: market_pb2.MarketDownloadLearnwareRequest, context: grpc.ServicerContext) -> Iterator[market_pb2.MarketDownloadLearnwareResponse]:
        for reply in self.organizer.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=request.learnware_id)):
            yield market_pb2.MarketDownloadLearnwareResponse(chunk=reply.chunk)

    def _search(self, search: searcher_pb2.SearchLearnwaresRequest) -> searcher_pb2.SearchLearnwaresResponse:
        """One searcher holds the market; or every shard's replica answers and one of them (in turn) merges."""
        if len(self.searchers) == 1:
            return self.searchers[0].SearchLearnwares(search)
        calls = [searcher.SearchShard.future(searcher_pb2.SearchShardRequest(search=search)) for searcher in self.searchers]
        shards = [call.result().result for call in calls]
        merger = self.searchers[next(self._merges) % len(self.searchers)]
        return merger.MergeSearchResults(searcher_pb2.MergeSearchResultsRequest(search=search, shards=shards)).result

    def _hetero_problem(self, search: searcher_pb2.SearchLearnwaresRequest) -> str | None:
        """Why this search cannot take the hetero path (None: it can)."""
        if len(self.searchers) > 1:
            return "hetero search needs one searcher holding the whole market; this market is sharded"
        tables = [spec for spec in search.stat_specs if convert.STAT_SPEC_ALIASES.get(spec.type, spec.type) == TABLE_SPEC_TYPE]
        table_dim = int(tables[0].z.shape[1]) if tables and len(tables[0].z.shape) == 2 else None
        return hetero_search_problem(convert.semantic_to_dict(search.semantic_spec), table_dim)

    def _hetero_or_homogeneous(self, search: searcher_pb2.SearchLearnwaresRequest) -> searcher_pb2.SearchLearnwaresResponse:
        """A Hetero market's search: hetero when the request qualifies and the engine is trained, else homogeneous, saying why."""
        problem = self._hetero_problem(search)
        if problem is None:
            search.mode = searcher_pb2.SEARCH_MODE_HETERO
            try:
                reply = self.searchers[0].SearchLearnwares(search)
                reply.messages.insert(0, "hetero search: the request has a table specification and a description of each of its features")
                return reply
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:  # e.g. the engine is not trained yet
                    raise
                problem = error.details()
        search.mode = searcher_pb2.SEARCH_MODE_HOMOGENEOUS
        reply = self._search(search)
        reply.messages.insert(0, f"homogeneous search instead of hetero search: {problem}")
        return reply

    def SearchLearnware(self, request: market_pb2.MarketSearchLearnwareRequest, context: grpc.ServicerContext) -> market_pb2.MarketSearchLearnwareResponse:
        search = searcher_pb2.SearchLearnwaresRequest(
            semantic_spec=request.semantic_spec,
            stat_specs=request.stat_specs,
            max_search_num=request.max_search_num,
            mixture_strategy=request.mixture_strategy,
            mode=request.mode,
            max_results=request.max_results,
            learnware_ids=request.learnware_ids,
            min_revision=request.min_revision,
            market_id=market_id_of(request.market_id),
        )
        if self.kind == market_pb2.MARKET_KIND_HETERO and request.mode != searcher_pb2.SEARCH_MODE_HOMOGENEOUS:
            reply = self._hetero_or_homogeneous(search)
        elif request.mode == searcher_pb2.SEARCH_MODE_HETERO:
            raise failed_precondition("hetero search needs a Hetero market (lwm serve with LWM_MARKET_KIND=hetero); this is an Easy market")
        else:
            reply = self._search(search)
        return market_pb2.MarketSearchLearnwareResponse(single_results=reply.single_results, multiple_results=reply.multiple_results, search_path=reply.search_path, messages=reply.messages)

    def Predict(self, request: market_pb2.MarketPredictRequest, context: grpc.ServicerContext) -> market_pb2.MarketPredictResponse:
        reply = self.reuse.Predict(reuse_pb2.PredictRequest(learnware_id=request.learnware_id, x=request.x))
        return market_pb2.MarketPredictResponse(predictions=reply.predictions)

    def Reuse(self, request: market_pb2.MarketReuseRequest, context: grpc.ServicerContext) -> market_pb2.MarketReuseResponse:
        reply = self.reuse.Reuse(request.reuse)
        return market_pb2.MarketReuseResponse(predictions=reply.predictions, messages=reply.messages)

    def ReuseStream(self, request: market_pb2.MarketReuseStreamRequest, context: grpc.ServicerContext) -> Iterator[market_pb2.MarketReuseStreamResponse]:
        for block in self.reuse.ReuseStream(request.reuse):
            yield market_pb2.MarketReuseStreamResponse(block=block)

    def RecheckLearnware(self, request: market_pb2.MarketRecheckLearnwareRequest, context: grpc.ServicerContext) -> market_pb2.MarketRecheckLearnwareResponse:
        info = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=request.learnware_id)).learnware
        job = self.organizer.CreateCheckJob(organizer_pb2.CreateCheckJobRequest(learnware_id=info.id)).job
        if request.wait_for_check:
            checked = wait_for_check(self.organizer, job.id)
            return market_pb2.MarketRecheckLearnwareResponse(learnware=checked, revision=checked.revision)
        return market_pb2.MarketRecheckLearnwareResponse(learnware=info)

    def _hetero_searcher(self) -> searcher_pb2_grpc.SearcherServiceStub:
        if self.kind != market_pb2.MARKET_KIND_HETERO:
            raise failed_precondition("the hetero engine is part of a Hetero market (lwm serve with LWM_MARKET_KIND=hetero); this is an Easy market")
        if len(self.searchers) > 1:
            raise failed_precondition("the hetero engine needs one searcher holding the whole market; this market is sharded")
        return self.searchers[0]

    def TrainHeteroEngine(self, request: market_pb2.MarketTrainHeteroEngineRequest, context: grpc.ServicerContext) -> market_pb2.MarketTrainHeteroEngineResponse:
        return market_pb2.MarketTrainHeteroEngineResponse(trained=self._hetero_searcher().TrainHeteroEngine(request.train))

    def GetHeteroEngine(self, request: market_pb2.MarketGetHeteroEngineRequest, context: grpc.ServicerContext) -> market_pb2.MarketGetHeteroEngineResponse:
        return market_pb2.MarketGetHeteroEngineResponse(engine=self._hetero_searcher().GetHeteroEngine(searcher_pb2.GetHeteroEngineRequest()))

    def GetMarketInfo(self, request: market_pb2.MarketGetMarketInfoRequest, context: grpc.ServicerContext) -> market_pb2.MarketGetMarketInfoResponse:
        market_id = market_id_of(request.market_id)
        counts = {}
        for value, name in convert.STATUS_NAMES.items():
            if value:
                page = self.organizer.ListLearnwares(organizer_pb2.ListLearnwaresRequest(page=common_pb2.PageRequest(page_size=1), statuses=[value], market_id=market_id))
                counts[name] = page.total
        info = market_pb2.MarketGetMarketInfoResponse(kind=self.kind, version=importlib.metadata.version("lwm-gateway-service"), learnware_counts=counts, market_id=market_id)
        if self.kind == market_pb2.MARKET_KIND_HETERO and len(self.searchers) == 1:
            stats = self.searchers[0].GetIndexStats(searcher_pb2.GetIndexStatsRequest())
            if stats.HasField("hetero"):
                info.hetero_engine.CopyFrom(stats.hetero)
        return info

    def ClearMarket(self, request: market_pb2.MarketClearMarketRequest, context: grpc.ServicerContext) -> market_pb2.MarketClearMarketResponse:
        market_id = market_id_of(request.market_id)
        members: list[common_pb2.LearnwareInfo] = []
        token = ""
        while True:
            page = self.organizer.ListLearnwares(organizer_pb2.ListLearnwaresRequest(page=common_pb2.PageRequest(page_size=1000, page_token=token), market_id=market_id))
            members.extend(page.learnwares)
            token = page.next_page_token
            if not token:
                break
        principal = current_principal()
        # A market has no owner record: its owner is whoever owns all of its learnwares.
        others = sorted({info.owner for info in members if not principal.may_change(info.owner)})
        if others:
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"market {market_id!r} holds learnwares of {others}: only an admin or the owner of all of its learnwares may clear it")
        deleted = []
        revision = 0
        for info in members:
            try:
                revision = max(revision, self.organizer.DeleteLearnware(organizer_pb2.DeleteLearnwareRequest(learnware_id=info.id)).revision)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:  # deleted meanwhile by its owner
                    continue
                raise
            deleted.append(info.id)
        log.info("cleared market %s: %d learnwares deleted", market_id, len(deleted))
        return market_pb2.MarketClearMarketResponse(deleted_ids=deleted, revision=revision)


def build_server(backends: Backends, port: int, host: str = "127.0.0.1", kind: market_pb2.MarketKind = market_pb2.MARKET_KIND_EASY) -> tuple[Server, MarketServicer]:
    servicer = MarketServicer(backends, kind)
    server = Server("gateway", port, host, public_policy=MARKET_POLICY)
    server.add(market_pb2_grpc.add_MarketServiceServicer_to_server, servicer, [market_pb2.DESCRIPTOR.services_by_name["MarketService"].full_name])
    return server, servicer
