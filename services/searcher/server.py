"""Searcher service: semantic + statistical search over an index that follows the organizer."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import torch

from lwm.rpc import convert
from lwm.rpc.errors import ServiceError, grpc_errors, invalid_argument, unimplemented
from lwm.rpc.learnware.v1 import organizer_pb2_grpc, searcher_pb2, searcher_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.rpc.tensors import from_tensor
from lwm.services.searcher.index import IndexedLearnware, IndexedSpec, IndexFollower, LearnwareIndex
from lwm.services.searcher.semantic import semantic_search
from lwm.services.searcher.statistical import statistical_search
from lwm.spec import check_user_semantic_spec

log = logging.getLogger(__name__)
# Statistical specification types searched, in the reference's order of preference.
STAT_SPEC_TYPES = ("RKMETableSpecification", "RKMEImageSpecification", "RKMETextSpecification")
DEFAULT_MAX_SEARCH_NUM = 5
DEFAULT_MAX_RESULTS = 10
SYNC_WAIT_S = 10.0


def _user_spec(request: searcher_pb2.SearchLearnwaresRequest) -> tuple[str, IndexedSpec] | None:
    by_type = {spec.type: spec for spec in request.stat_specs}
    unknown = sorted(set(by_type) - set(STAT_SPEC_TYPES) - set(convert.STAT_SPEC_ALIASES))
    if unknown:
        raise invalid_argument(f"unsupported statistical specification types {unknown}; supported: {list(STAT_SPEC_TYPES)}")
    for alias, name in convert.STAT_SPEC_ALIASES.items():
        if alias in by_type:
            by_type.setdefault(name, by_type.pop(alias))
    for spec_type in STAT_SPEC_TYPES:
        if spec_type in by_type:
            message = by_type[spec_type]
            z = from_tensor(message.z, "user stat spec z").astype(np.float64)
            beta = from_tensor(message.beta, "user stat spec beta").astype(np.float64).reshape(-1)
            if z.ndim < 2 or z.shape[0] == 0 or z.shape[0] != beta.shape[0]:
                raise invalid_argument(f"user {spec_type}: z of shape {z.shape} does not match beta of {beta.shape[0]} weights")
            if not (np.all(np.isfinite(z)) and np.all(np.isfinite(beta))):
                raise invalid_argument(f"user {spec_type}: z and beta must be finite (found NaN or Inf)")
            if not message.gamma > 0:
                raise invalid_argument(f"user {spec_type}: gamma must be positive, got {message.gamma}")
            return spec_type, IndexedSpec(z, beta, message.gamma)
    return None


@grpc_errors
class SearcherServicer(searcher_pb2_grpc.SearcherServiceServicer):
    def __init__(self, index: LearnwareIndex) -> None:
        self.index = index

    def SearchLearnwares(self, request: searcher_pb2.SearchLearnwaresRequest, context: grpc.ServicerContext) -> searcher_pb2.SearchLearnwaresResponse:
        if request.mode == searcher_pb2.SEARCH_MODE_HETERO:
            raise unimplemented("hetero search (the heterogeneous-table engine)")
        if not self.index.wait_for(request.min_revision, SYNC_WAIT_S):
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the search index is still loading from the organizer; retry shortly")
        user_semantic = convert.semantic_to_dict(request.semantic_spec)
        problems = check_user_semantic_spec(user_semantic)
        if problems:
            raise invalid_argument("bad semantic specification: " + "; ".join(problems))
        max_search_num = request.max_search_num or DEFAULT_MAX_SEARCH_NUM
        max_results = request.max_results or DEFAULT_MAX_RESULTS
        if max_search_num < 0 or max_results < 0:
            raise invalid_argument("max_search_num and max_results must be positive")
        user_spec = _user_spec(request)

        entries = self.index.entries()
        if request.learnware_ids:
            wanted = set(request.learnware_ids)
            entries = [e for e in entries if e.info.id in wanted]
        matched = semantic_search(user_semantic, [(e, e.semantic) for e in entries])
        response = searcher_pb2.SearchLearnwaresResponse()
        if user_spec is None:
            response.search_path = "semantic"
            for entry, score in matched[:max_results]:
                response.single_results.add(learnware=entry.info, score=score)
            return response

        spec_type, spec = user_spec
        response.search_path = "statistical"
        group = self.index.group(spec.group_key(spec_type))
        matched_ids = {entry.info.id for entry, _ in matched}
        if group is None:
            response.messages.append(f"no USABLE learnware has a {spec_type} of dimension {spec.z.shape[1:]} and gamma {spec.gamma}")
            return response
        rows = [row for row, lid in enumerate(group.ids) if lid in matched_ids]
        response.messages.append(f"{len(matched)} learnwares match semantically, {len(rows)} of them have a comparable {spec_type}")
        device = group.stack.Z.device
        result = statistical_search(
            torch.as_tensor(spec.z.reshape(spec.z.shape[0], -1), device=device),
            torch.as_tensor(spec.beta, device=device),
            group.stack,
            rows,
            max_search_num=max_search_num,
            strategy="auto" if request.mixture_strategy == searcher_pb2.MIXTURE_STRATEGY_AUTO else "greedy",
            max_results=max_results,
        )
        by_id: dict[str, IndexedLearnware] = {e.info.id: e for e, _ in matched}
        for row, score in result.singles:
            response.single_results.add(learnware=by_id[group.ids[row]].info, score=score)
        if result.mixture is not None:
            response.multiple_results.add(
                learnwares=[by_id[group.ids[row]].info for row in result.mixture.rows],
                weights=result.mixture.weights,
                score=result.mixture.score,
            )
        return response

    def GetIndexStats(self, request: searcher_pb2.GetIndexStatsRequest, context: grpc.ServicerContext) -> searcher_pb2.GetIndexStatsResponse:
        count, by_type = self.index.stats()
        return searcher_pb2.GetIndexStatsResponse(learnware_count=count, stat_spec_counts=by_type, revision=self.index.revision, synced=self.index.synced)


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", device: str | None = None) -> tuple[Server, IndexFollower]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    index = LearnwareIndex(device)
    follower = IndexFollower(organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address)), index)
    server = Server("searcher", port, host)
    server.add(searcher_pb2_grpc.add_SearcherServiceServicer_to_server, SearcherServicer(index), [searcher_pb2.DESCRIPTOR.services_by_name["SearcherService"].full_name])
    return server, follower
