"""Searcher service: semantic + statistical search over an index that follows the organizer."""

from __future__ import annotations

import logging

import grpc
import torch

from lwm.rpc.deadlines import serving_time_left_s
from lwm.rpc.errors import ServiceError, failed_precondition, grpc_errors
from lwm.rpc.learnware.v1 import organizer_pb2_grpc, searcher_pb2, searcher_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.services.searcher.hetero import HeteroIndex, HeteroSettings
from lwm.services.searcher.index import WHOLE_MARKET, IndexFollower, LearnwareIndex, Shard
from lwm.services.searcher.native_kernel import native_kernels
from lwm.services.searcher.search import SearchQuery, SpecSource, merge_shards, parse_query, search_shard, shard_from_proto, shard_to_proto
from lwm.services.searcher.statistical import IndexSettings

log = logging.getLogger(__name__)
SYNC_WAIT_S = 10.0


@grpc_errors
class SearcherServicer(searcher_pb2_grpc.SearcherServiceServicer):
    def __init__(self, index: LearnwareIndex, settings: IndexSettings, hetero: HeteroIndex | None = None) -> None:
        self.index = index
        self.settings = settings
        # None in an Easy market and on a replica holding a shard (an engine per shard would make incomparable spaces).
        self.hetero = hetero

    def _query(self, request: searcher_pb2.SearchLearnwaresRequest) -> SearchQuery:
        """The validated query, scoped to its market once the index has caught up with the caller's writes."""
        query = parse_query(request, self.index.device)
        self._wait_for(request.min_revision)
        return query.restricted_to(self.index.market_members(request.market_id)) if request.market_id else query

    def _wait_for(self, min_revision: int) -> None:
        """Return once the index has loaded the organizer's backlog and applied min_revision; UNAVAILABLE after SYNC_WAIT_S.

        A caller with less time left stops waiting when its deadline passes (its call has failed then: no thread waits for nobody).
        """
        left = serving_time_left_s()
        bound_by_caller = left is not None and left < SYNC_WAIT_S
        if self.index.wait_for(min_revision, left if left is not None and bound_by_caller else SYNC_WAIT_S):
            return
        if bound_by_caller:
            raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, f"the search index has not applied organizer revision {min_revision} before the caller's deadline (it is at {self.index.revision})")
        if not self.index.synced:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the search index is still loading from the organizer; retry shortly")
        raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"the search index has not applied organizer revision {min_revision} within {SYNC_WAIT_S:g} s (it is at {self.index.revision}); retry shortly")

    def SearchLearnwares(self, request: searcher_pb2.SearchLearnwaresRequest, context: grpc.ServicerContext) -> searcher_pb2.SearchLearnwaresResponse:
        query = self._query(request)
        specs: SpecSource | None = None
        if request.mode == searcher_pb2.SEARCH_MODE_HETERO:
            if self.hetero is None:
                raise failed_precondition("this searcher has no hetero engine (an Easy market, or a replica holding a shard)")
            query, specs = self.hetero.hetero_query(query)
        response = merge_shards(query, [search_shard(self.index, query, self.settings, specs)])
        if self.hetero is not None and request.mode == searcher_pb2.SEARCH_MODE_HETERO:
            response.messages.append(self.hetero.describe())
        return response

    def SearchShard(self, request: searcher_pb2.SearchShardRequest, context: grpc.ServicerContext) -> searcher_pb2.SearchShardResponse:
        if request.search.mode == searcher_pb2.SEARCH_MODE_HETERO:
            raise failed_precondition("hetero search is not sharded: it needs a searcher holding the whole market")
        query = self._query(request.search)
        return searcher_pb2.SearchShardResponse(result=shard_to_proto(search_shard(self.index, query, self.settings), query))

    def MergeSearchResults(self, request: searcher_pb2.MergeSearchResultsRequest, context: grpc.ServicerContext) -> searcher_pb2.MergeSearchResultsResponse:
        query = parse_query(request.search, self.index.device)
        return searcher_pb2.MergeSearchResultsResponse(result=merge_shards(query, [shard_from_proto(shard, query) for shard in request.shards]))

    def _hetero_engine(self) -> HeteroIndex:
        if self.hetero is None:
            raise failed_precondition("this searcher has no hetero engine (an Easy market, or a replica holding a shard)")
        return self.hetero

    def TrainHeteroEngine(self, request: searcher_pb2.TrainHeteroEngineRequest, context: grpc.ServicerContext) -> searcher_pb2.TrainHeteroEngineResponse:
        hetero = self._hetero_engine()
        self._wait_for(request.min_revision)
        engine, summary = hetero.train_now(list(request.learnware_ids), request.steps)
        return searcher_pb2.TrainHeteroEngineResponse(engine=hetero.stats(), checkpoint=engine.to_bytes(), messages=[summary])

    def GetHeteroEngine(self, request: searcher_pb2.GetHeteroEngineRequest, context: grpc.ServicerContext) -> searcher_pb2.GetHeteroEngineResponse:
        hetero = self._hetero_engine()
        engine = hetero.serving()
        return searcher_pb2.GetHeteroEngineResponse(engine=hetero.stats(), checkpoint=engine.to_bytes())

    def GetIndexStats(self, request: searcher_pb2.GetIndexStatsRequest, context: grpc.ServicerContext) -> searcher_pb2.GetIndexStatsResponse:
        count, by_type, nbytes = self.index.stats()
        response = searcher_pb2.GetIndexStatsResponse(
            learnware_count=count, stat_spec_counts=by_type, revision=self.index.revision, synced=self.index.synced, shard=str(self.index.shard), index_bytes=nbytes
        )
        if self.hetero is not None:
            response.hetero.CopyFrom(self.hetero.stats())
        return response


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", device: str | None = None, shard: Shard = WHOLE_MARKET, hetero: bool = False) -> tuple[Server, IndexFollower, HeteroIndex | None]:
    """The searcher, its index's follower and, in a Hetero market, its hetero engine (not on a shard replica); the caller starts and stops them."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        native_kernels()  # compile or load them now rather than in the first search
    index = LearnwareIndex(device, shard)
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    engine = HeteroIndex(organizer, HeteroSettings.from_env(), index.device) if hetero and shard == WHOLE_MARKET else None
    follower = IndexFollower(organizer, index, before_apply=None if engine is None else engine.apply)
    server = Server("searcher", port, host)
    server.add(searcher_pb2_grpc.add_SearcherServiceServicer_to_server, SearcherServicer(index, IndexSettings.from_env(), engine), [searcher_pb2.DESCRIPTOR.services_by_name["SearcherService"].full_name])
    return server, follower, engine
