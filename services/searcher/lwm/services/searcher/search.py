"""One search: validate the request, search this replica's shard, merge shard results.

A searcher holding the whole market answers SearchLearnwares as `merge_shards(query,
[search_shard(index, query)])`; in a sharded market the gateway collects SearchShard
from every replica and asks one of them to MergeSearchResults. Both go through the same
merge, so a sharded market returns what one searcher over all learnwares would.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from lwm.learnware.semantic import check_user_semantic_spec
from lwm.learnware.vocabulary import HETERO_SPEC_TYPE, USER_SPEC_TYPES
from lwm.rpc import convert
from lwm.rpc.errors import caller_input, invalid_argument
from lwm.rpc.learnware.v1 import common_pb2, searcher_pb2
from lwm.rpc.tensors import from_tensor, to_tensor
from lwm.services.searcher.index import GroupKey, LearnwareIndex
from lwm.services.searcher.stack import StackView, image_shape_of
from lwm.services.searcher.statistical import DistanceSummary, IndexSettings, UserSpec, finish, mixture_pool_size, rank
from lwm.spec.rkme import MAX_REDUCED_SET_SIZE

# Statistical specification types searched, in the reference's order of preference.
DEFAULT_MAX_SEARCH_NUM = 5
DEFAULT_MAX_RESULTS = 10


@dataclass(frozen=True)
class SearchQuery:
    """A validated search request."""

    semantic: dict[str, Any]
    within: set[str] | None  # search by id: only these learnwares
    spec_type: str | None  # None: semantic search only
    group: GroupKey | None
    user: UserSpec | None
    max_search_num: int
    max_results: int
    strategy: str

    def restricted_to(self, learnware_ids: set[str] | None) -> SearchQuery:
        """The query searching only these ids (None: no further restriction), e.g. one market's."""
        if learnware_ids is None:
            return self
        return dataclasses.replace(self, within=learnware_ids if self.within is None else self.within & learnware_ids)

    @property
    def candidate_count(self) -> int:
        """How many best candidates a shard returns: enough for the singles and the mixture pool."""
        return max(self.max_results, mixture_pool_size(self.max_search_num))


def _user_stat_spec(request: searcher_pb2.SearchLearnwaresRequest) -> tuple[str, common_pb2.StatSpec] | None:
    by_type = {convert.STAT_SPEC_ALIASES.get(spec.type, spec.type): spec for spec in request.stat_specs}
    unknown = sorted(set(by_type) - set(USER_SPEC_TYPES))
    if unknown:
        raise invalid_argument(f"unsupported statistical specification types {unknown}; supported: {list(USER_SPEC_TYPES)}")
    for spec_type in USER_SPEC_TYPES:
        if spec_type in by_type:
            return spec_type, by_type[spec_type]
    return None


def parse_query(request: searcher_pb2.SearchLearnwaresRequest, device: torch.device) -> SearchQuery:
    """Check every part of the request; bad input raises INVALID_ARGUMENT with what is wrong."""
    semantic = convert.semantic_to_dict(request.semantic_spec)
    problems = check_user_semantic_spec(semantic)
    if problems:
        raise invalid_argument("bad semantic specification: " + "; ".join(problems))
    if request.max_search_num < 0 or request.max_results < 0:
        raise invalid_argument("max_search_num and max_results must be positive")
    strategy = "auto" if request.mixture_strategy == searcher_pb2.MIXTURE_STRATEGY_AUTO else "greedy"
    common: dict[str, Any] = dict(
        semantic=semantic,
        within=set(request.learnware_ids) or None,
        max_search_num=request.max_search_num or DEFAULT_MAX_SEARCH_NUM,
        max_results=request.max_results or DEFAULT_MAX_RESULTS,
        strategy=strategy,
    )
    found = _user_stat_spec(request)
    if found is None:
        return SearchQuery(spec_type=None, group=None, user=None, **common)
    spec_type, message = found
    with caller_input():
        z = from_tensor(message.z, f"user {spec_type} z").astype(np.float64)
        beta = from_tensor(message.beta, f"user {spec_type} beta").astype(np.float64).reshape(-1)
    if z.ndim < 2 or z.shape[0] == 0 or z.shape[0] != beta.shape[0]:
        raise invalid_argument(f"user {spec_type}: z of shape {list(z.shape)} does not match beta of {beta.shape[0]} weights")
    if z.size > MAX_REDUCED_SET_SIZE:
        raise invalid_argument(f"user {spec_type}: {z.size} numbers in z, more than the {MAX_REDUCED_SET_SIZE} a specification may have")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(beta))):
        raise invalid_argument(f"user {spec_type}: z and beta must be finite (found NaN or Inf)")
    if not (np.isfinite(message.gamma) and message.gamma > 0):
        raise invalid_argument(f"user {spec_type}: gamma must be positive, got {message.gamma}")
    # An Input whose Dimension disagrees with the table spec is not an error: as in the reference, only
    # hetero search reads the Input (the gateway says why it did not apply) and the search goes on.
    with caller_input():  # an image spec's z must fit the image kernel
        user = UserSpec.make(z, beta, message.gamma, device, image_shape_of(spec_type, tuple(z.shape[1:])))
    return SearchQuery(spec_type=spec_type, group=GroupKey.of(spec_type, z, message.gamma), user=user, **common)


@dataclass
class Candidate:
    learnware: common_pb2.LearnwareInfo
    semantic_score: float = 0.0
    mmd: float = 0.0
    z: np.ndarray | None = None  # statistical search: the spec (K, ...) and its ||Phi||^2
    beta: np.ndarray | None = None
    self_term: float = 0.0


@dataclass
class ShardResult:
    shard: str
    semantic_matches: int
    fuzzy_text_match: bool
    candidates: list[Candidate]
    distances: DistanceSummary = field(default_factory=DistanceSummary)
    comparable_count: int = 0
    incomparable_groups: list[str] = field(default_factory=list)
    indexed: bool = False


class SpecSource(Protocol):
    """Where a statistical search finds stacked specs: the LearnwareIndex, or the hetero engine's space."""

    def group_keys(self, spec_type: str) -> list[GroupKey]: ...

    def view(self, key: GroupKey, learnware_ids: set[str] | None) -> StackView | None: ...


def search_shard(index: LearnwareIndex, query: SearchQuery, settings: IndexSettings, specs: SpecSource | None = None) -> ShardResult:
    """This replica's best candidates for the query (statistical: among `specs`, default the index's)."""
    specs = specs if specs is not None else index
    matches = index.semantic_search(query.semantic, query.within)

    def result(candidates: list[Candidate], **extra: Any) -> ShardResult:
        matched = len(index) if matches.scores is None else len(matches.scores)
        return ShardResult(str(index.shard), matched, matches.fuzzy, candidates, **extra)

    if query.user is None:
        infos = index.infos(index.all_ids() if matches.scores is None else matches.scores)

        def score(learnware_id: str) -> float:
            return 1.0 if matches.scores is None else matches.scores[learnware_id]

        best = heapq.nsmallest(query.max_results, infos.values(), key=lambda info: (-score(info.id), info.created_at, info.id))
        return result([Candidate(info, semantic_score=score(info.id)) for info in best])

    assert query.group is not None
    # Other groups of the searched scope only: another market's learnwares are not described.
    incomparable = [key.describe() for key in specs.group_keys(query.group.spec_type) if key != query.group and index.holds_any(key, query.within)]
    view = specs.view(query.group, None if matches.scores is None else set(matches.scores))
    if view is None:
        return result([], incomparable_groups=incomparable)
    ranked = rank(query.user, view, query.candidate_count, settings)
    infos = index.infos(view.ids[row] for row in ranked.rows)
    candidates = [
        Candidate(infos[view.ids[row]], mmd=mmd, z=view.points(row).cpu().numpy(), beta=view.spec_weights(row).cpu().numpy(), self_term=float(view.self_terms[row]))
        for row, mmd in zip(ranked.rows, ranked.mmds)
        if view.ids[row] in infos
    ]
    return result(candidates, distances=ranked.summary, comparable_count=view.group_size, incomparable_groups=incomparable, indexed=ranked.indexed)


def _text_matched(shards: list[ShardResult]) -> list[ShardResult]:
    """The reference's rule across shards: fuzzy text matches count only when no shard matched exactly."""
    exact = [shard for shard in shards if not shard.fuzzy_text_match and shard.semantic_matches > 0]
    return exact or shards


def merge_shards(query: SearchQuery, shards: list[ShardResult]) -> searcher_pb2.SearchLearnwaresResponse:
    """The final results from every shard's result (one shard: the whole market)."""
    response = searcher_pb2.SearchLearnwaresResponse()
    used = _text_matched(shards)
    candidates = [candidate for shard in used for candidate in shard.candidates]
    if query.user is None:
        response.search_path = "semantic"
        candidates.sort(key=lambda c: (-c.semantic_score, c.learnware.created_at, c.learnware.id))
        for candidate in candidates[: query.max_results]:
            response.single_results.add(learnware=candidate.learnware, score=candidate.semantic_score)
        return response

    assert query.group is not None
    response.search_path = "hetero" if query.group.spec_type == HETERO_SPEC_TYPE else "statistical"
    if not any(shard.comparable_count for shard in shards):
        others = sorted(set(itertools.chain.from_iterable(shard.incomparable_groups for shard in shards)))
        if others:  # as the reference: no result, not an error (a hetero market's user may hold other columns)
            response.messages.append(f"no learnware in the market has a {query.group.describe()} like yours; the market has: {'; '.join(others)}")
            return response
        response.messages.append(f"no USABLE learnware has a {query.group.spec_type}")
        return response
    summary = functools.reduce(DistanceSummary.merged, (shard.distances for shard in used), DistanceSummary())
    response.messages.append(f"{sum(shard.semantic_matches for shard in used)} learnwares match semantically, {summary.count} of them have a comparable {query.group.spec_type}")
    if any(shard.indexed for shard in used):
        response.messages.append("candidates shortlisted by the sketch index, then ranked by exact MMD")
    if not candidates:
        return response
    candidates.sort(key=lambda c: (c.mmd, c.learnware.id))
    points, weights = _stack_candidates(candidates)
    assert query.user is not None
    result = finish(
        query.user, points, weights, [c.self_term for c in candidates], [c.mmd for c in candidates], summary, max_search_num=query.max_search_num, strategy=query.strategy, max_results=query.max_results
    )
    for index, score in result.singles:
        response.single_results.add(learnware=candidates[index].learnware, score=score)
    if result.mixture is not None:
        response.multiple_results.add(learnwares=[candidates[i].learnware for i in result.mixture.members], weights=result.mixture.weights, score=result.mixture.score)
    return response


def _stack_candidates(candidates: list[Candidate]) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate specs as (n, K, d) points and (n, K) weights, padded with zero weights."""
    k = max(c.z.shape[0] for c in candidates if c.z is not None)
    first = candidates[0].z
    assert first is not None
    points = np.zeros((len(candidates), k, int(np.prod(first.shape[1:]))))
    weights = np.zeros((len(candidates), k))
    for row, candidate in enumerate(candidates):
        assert candidate.z is not None and candidate.beta is not None
        points[row, : candidate.z.shape[0]] = candidate.z.reshape(candidate.z.shape[0], -1)
        weights[row, : candidate.beta.shape[0]] = candidate.beta
    return torch.from_numpy(points), torch.from_numpy(weights)


def shard_to_proto(result: ShardResult, query: SearchQuery) -> searcher_pb2.ShardResult:
    message = searcher_pb2.ShardResult(
        shard=result.shard,
        semantic_matches=result.semantic_matches,
        fuzzy_text_match=result.fuzzy_text_match,
        distances=searcher_pb2.DistanceSummary(count=result.distances.count, sum=result.distances.total, min=result.distances.low, max=result.distances.high),
        comparable_count=result.comparable_count,
        incomparable_groups=result.incomparable_groups,
        indexed=result.indexed,
    )
    for candidate in result.candidates:
        item = message.candidates.add(learnware=candidate.learnware, semantic_score=candidate.semantic_score, mmd=candidate.mmd, self_term=candidate.self_term)
        if candidate.z is not None and candidate.beta is not None and query.group is not None:
            item.stat_spec.CopyFrom(common_pb2.StatSpec(type=query.group.spec_type, z=to_tensor(candidate.z), beta=to_tensor(candidate.beta), gamma=query.group.gamma))
    return message


def shard_from_proto(message: searcher_pb2.ShardResult, query: SearchQuery) -> ShardResult:
    """A shard's result sent to MergeSearchResults; candidate specs must fit the query's group."""
    candidates = []
    for item in message.candidates:
        candidate = Candidate(item.learnware, semantic_score=item.semantic_score, mmd=item.mmd, self_term=item.self_term)
        if query.group is not None:
            with caller_input():
                candidate.z = from_tensor(item.stat_spec.z, "candidate z")
                candidate.beta = from_tensor(item.stat_spec.beta, "candidate beta").reshape(-1)
            sound = np.isfinite(item.mmd) and np.isfinite(item.self_term) and np.all(np.isfinite(candidate.z)) and np.all(np.isfinite(candidate.beta))
            if candidate.z.shape[1:] != query.group.point_shape or candidate.z.shape[0] != candidate.beta.shape[0] or not sound:
                raise invalid_argument(f"shard {message.shard}: candidate {item.learnware.id} does not fit a {query.group.describe()}")
        candidates.append(candidate)
    summary = message.distances
    return ShardResult(
        shard=message.shard,
        semantic_matches=message.semantic_matches,
        fuzzy_text_match=message.fuzzy_text_match,
        candidates=candidates,
        distances=DistanceSummary(summary.count, summary.sum, summary.min, summary.max) if summary.count else DistanceSummary(),
        comparable_count=message.comparable_count,
        incomparable_groups=list(message.incomparable_groups),
        indexed=message.indexed,
    )
