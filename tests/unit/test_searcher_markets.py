"""Named markets in the searcher: one index holds every market, a search sees only its own market's learnwares."""

from __future__ import annotations

import numpy as np
import torch

from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, searcher_pb2
from lwm.rpc.tensors import to_tensor
from lwm.services.searcher.index import LearnwareIndex
from lwm.services.searcher.search import SearchQuery, merge_shards, parse_query, search_shard
from lwm.services.searcher.server import SearcherServicer
from lwm.services.searcher.statistical import IndexSettings

CPU = torch.device("cpu")
TABLE = "RKMETableSpecification"


def _upsert(index: LearnwareIndex, revision: int, learnware_id: str, market_id: str, z: np.ndarray, gamma: float = 0.1) -> None:
    info = common_pb2.LearnwareInfo(id=learnware_id, market_id=market_id, status=common_pb2.LEARNWARE_STATUS_USABLE, created_at=revision, semantic_spec=common_pb2.SemanticSpec(data=["Table"], name=learnware_id))
    spec = common_pb2.StatSpec(type=TABLE, z=to_tensor(z), beta=to_tensor(np.full(len(z), 1.0 / len(z))), gamma=gamma)
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=revision, learnware_id=learnware_id, learnware=info, stat_specs=[spec]))


def _index() -> LearnwareIndex:
    """Market alpha holds a0, a1 near the origin; beta holds b0 far away (and a spec of another gamma)."""
    rng = np.random.default_rng(3)
    index = LearnwareIndex("cpu")
    _upsert(index, 1, "a0", "alpha", rng.normal(size=(5, 2)))
    _upsert(index, 2, "a1", "alpha", rng.normal(size=(5, 2)) + 0.5)
    _upsert(index, 3, "b0", "beta", rng.normal(size=(5, 2)) + 40.0)
    _upsert(index, 4, "b1", "beta", rng.normal(size=(5, 2)), gamma=0.5)
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=4))
    return index


def _search(servicer: SearcherServicer, **fields: object) -> searcher_pb2.SearchLearnwaresResponse:
    """SearchLearnwares as the servicer runs it (its scoped query), errors raised as ServiceError."""
    query = servicer._query(searcher_pb2.SearchLearnwaresRequest(**fields))
    return merge_shards(query, [search_shard(servicer.index, query, servicer.settings)])


def _ids(response: searcher_pb2.SearchLearnwaresResponse) -> set[str]:
    return {result.learnware.id for result in response.single_results} | {lw.id for mixture in response.multiple_results for lw in mixture.learnwares}


def test_market_members_follow_the_change_feed() -> None:
    index = _index()
    assert index.market_members("alpha") == {"a0", "a1"}
    assert index.market_members("beta") == {"b0", "b1"}
    assert index.market_members("nobody") == set()
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_DELETED, revision=5, learnware_id="b0"))
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_DELETED, revision=6, learnware_id="b1"))
    assert index.market_members("beta") == set()
    assert index.market_members("alpha") is None  # the only market left: searches need no filter


def test_a_search_sees_only_its_market() -> None:
    servicer = SearcherServicer(_index(), IndexSettings())
    assert _ids(_search(servicer, market_id="alpha")) == {"a0", "a1"}
    assert _ids(_search(servicer, market_id="beta")) == {"b0", "b1"}
    assert _ids(_search(servicer)) == {"a0", "a1", "b0", "b1"}  # internal callers without a market see all
    assert _ids(_search(servicer, market_id="nobody")) == set()
    assert _ids(_search(servicer, market_id="beta", learnware_ids=["a0", "b0"])) == {"b0"}  # search by id stays in the market

    user = common_pb2.StatSpec(type=TABLE, z=to_tensor(np.random.default_rng(9).normal(size=(5, 2))), beta=to_tensor(np.full(5, 0.2)), gamma=0.1)
    in_alpha = _search(servicer, market_id="alpha", stat_specs=[user])
    assert in_alpha.search_path == "statistical" and _ids(in_alpha) <= {"a0", "a1"} and in_alpha.single_results
    in_beta = _search(servicer, market_id="beta", stat_specs=[user])  # b0 is far, but the only comparable learnware of beta
    assert _ids(in_beta) == {"b0"}


def test_other_markets_groups_are_not_described() -> None:
    """A search finding no comparable spec names the groups of its own market only."""
    servicer = SearcherServicer(_index(), IndexSettings())

    def user(gamma: float) -> common_pb2.StatSpec:
        return common_pb2.StatSpec(type=TABLE, z=to_tensor(np.ones((3, 2))), beta=to_tensor(np.full(3, 1 / 3)), gamma=gamma)

    assert _ids(_search(servicer, market_id="alpha", stat_specs=[user(0.5)])) == set()  # only beta has gamma 0.5
    in_alpha = _search(servicer, market_id="alpha", stat_specs=[user(0.3)])
    assert _ids(in_alpha) == set()
    assert any("gamma 0.1" in message for message in in_alpha.messages) and not any("gamma 0.5" in message for message in in_alpha.messages)
    in_beta = _search(servicer, market_id="beta", stat_specs=[user(0.3)])
    assert _ids(in_beta) == set()
    assert any("gamma 0.1" in message and "gamma 0.5" in message for message in in_beta.messages)


def test_the_hetero_path_ranks_only_the_markets_candidates() -> None:
    """A spec source other than the index (as the hetero engine's space) is restricted by the market scope too."""
    index = _index()
    space = _index()  # stands for the mapped specs of every market
    query: SearchQuery = parse_query(searcher_pb2.SearchLearnwaresRequest(stat_specs=[common_pb2.StatSpec(type=TABLE, z=to_tensor(np.zeros((3, 2))), beta=to_tensor(np.full(3, 1 / 3)), gamma=0.1)]), CPU)
    scoped = query.restricted_to(index.market_members("beta"))
    response = merge_shards(scoped, [search_shard(index, scoped, IndexSettings(), space)])
    assert _ids(response) == {"b0"}
    assert query.restricted_to(None) is query
