"""The searcher's index: incremental stacks, the change feed's semantics, shards that merge exactly."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch

from lwm.rpc.errors import ServiceError
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, searcher_pb2
from lwm.rpc.tensors import to_tensor
from lwm.services.searcher.index import LearnwareIndex, Shard
from lwm.services.searcher.search import merge_shards, parse_query, search_shard, shard_from_proto, shard_to_proto
from lwm.services.searcher.stack import COMPACT_MIN_DEAD, MIN_CAPACITY, SpecStack
from lwm.services.searcher.statistical import IndexSettings

CPU = torch.device("cpu")
TABLE = "RKMETableSpecification"


def _stat_spec(z: np.ndarray, beta: np.ndarray | None = None, gamma: float = 0.1, spec_type: str = TABLE) -> common_pb2.StatSpec:
    beta = np.full(len(z), 1.0 / len(z)) if beta is None else beta
    return common_pb2.StatSpec(type=spec_type, z=to_tensor(z), beta=to_tensor(beta), gamma=gamma)


def _upsert(index: LearnwareIndex, revision: int, learnware_id: str, z: np.ndarray, name: str = "", status: int = common_pb2.LEARNWARE_STATUS_USABLE, scenario: str = "Business") -> None:
    info = common_pb2.LearnwareInfo(id=learnware_id, status=status, created_at=revision, semantic_spec=common_pb2.SemanticSpec(data=["Table"], scenario=[scenario], name=name))
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=revision, learnware_id=learnware_id, learnware=info, stat_specs=[_stat_spec(z)]))


def _delete(index: LearnwareIndex, revision: int, learnware_id: str) -> None:
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_DELETED, revision=revision, learnware_id=learnware_id))


def _synced(index: LearnwareIndex, revision: int) -> LearnwareIndex:
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=revision))
    return index


def _request(z: np.ndarray | None = None, **fields) -> searcher_pb2.SearchLearnwaresRequest:
    request = searcher_pb2.SearchLearnwaresRequest(**fields)
    if z is not None:
        request.stat_specs.append(_stat_spec(z))
    return request


def _search(index: LearnwareIndex, request: searcher_pb2.SearchLearnwaresRequest, settings: IndexSettings = IndexSettings()) -> searcher_pb2.SearchLearnwaresResponse:
    query = parse_query(request, CPU)
    return merge_shards(query, [search_shard(index, query, settings)])


def _ids(response: searcher_pb2.SearchLearnwaresResponse) -> list[str]:
    return [result.learnware.id for result in response.single_results]


def test_stack_updates_in_place_and_views_are_snapshots() -> None:
    rng = np.random.default_rng(0)
    stack = SpecStack((3,), 0.1, CPU)
    specs = {f"lw{i}": rng.normal(size=(4 + i % 3, 3)) for i in range(MIN_CAPACITY + 10)}  # grows past one allocation
    for learnware_id, z in specs.items():
        stack.add(learnware_id, z, np.full(len(z), 1.0 / len(z)))
    before = stack.view()
    assert before.count == len(stack) == len(specs) and before.stored_points.shape[1] == 6

    stack.add("lw0", rng.normal(size=(9, 3)), np.full(9, 1 / 9))  # an update with more points re-pads the stack
    stack.remove("lw1")
    after = stack.view()
    assert len(stack) == len(specs) - 1 and after.stored_points.shape[1] == 9
    assert before.mask.all() and before.ids[0] == "lw0"  # the earlier snapshot did not change
    alive = {after.ids[row] for row in after.rows().tolist()}
    assert "lw1" not in alive and "lw0" in alive and len(alive) == len(stack)
    restricted = stack.view({"lw2", "lw3", "lw1", "unknown"})
    assert {restricted.ids[row] for row in restricted.rows().tolist()} == {"lw2", "lw3"}

    # Rows keep their specs through a compaction (deleted rows are dropped once they are many).
    for i in range(2, 2 + COMPACT_MIN_DEAD):
        stack.remove(f"lw{i}")
    compacted = stack.view()
    assert compacted.count < after.count and int(compacted.mask.sum()) == len(stack) == len(specs) - 1 - COMPACT_MIN_DEAD
    for row in compacted.rows().tolist():
        learnware_id = compacted.ids[row]
        z = specs[learnware_id] if learnware_id != "lw0" else compacted.points(row)[:9].numpy()
        # Stored as float16 offsets from the spec's mean: within their rounding.
        offsets = z - z.mean(0)
        np.testing.assert_allclose(compacted.points(row)[: len(z)].numpy(), z, rtol=0, atol=2.0**-11 * np.abs(offsets).max() + 1e-6)
        assert float(compacted.weights[row, len(z) :].abs().sum()) == 0.0


def test_pending_specs_enter_the_stack_together_and_honour_updates_and_removals() -> None:
    rng = np.random.default_rng(3)
    stack = SpecStack((2,), 0.1, CPU)
    first = stack.view()
    specs = {f"lw{i}": rng.normal(size=(3, 2)) for i in range(5)}
    for learnware_id, z in specs.items():
        stack.add(learnware_id, z, np.full(3, 1 / 3))
    stack.add("lw1", rng.normal(size=(7, 2)) + 5.0, np.full(7, 1 / 7))  # an update while pending
    stack.remove("lw2")  # a removal while pending
    assert len(stack) == 4 and "lw1" in stack and "lw2" not in stack and first.count == 0
    view = stack.view()
    assert view.count == 4 and {view.ids[row] for row in view.rows().tolist()} == {"lw0", "lw1", "lw3", "lw4"}
    row = view.ids.index("lw1")
    assert view.points(row).shape == (7, 2) and float(view.points(row)[:, 0].mean()) > 3.0
    assert float(view.spec_weights(row).sum()) == pytest.approx(1.0, abs=1e-3)
    assert torch.all(view.self_terms[: view.count] > 0)


def test_change_feed_semantics() -> None:
    rng = np.random.default_rng(1)
    index = LearnwareIndex("cpu")
    _upsert(index, 1, "a", rng.normal(size=(5, 3)))
    _upsert(index, 2, "b", rng.normal(size=(5, 3)))
    assert not index.wait_for(0, timeout_s=0.01), "not synced before the backlog is in"
    _synced(index, 2)
    assert index.wait_for(2, timeout_s=0.01) and len(index) == 2
    _upsert(index, 3, "b", rng.normal(size=(5, 3)), status=common_pb2.LEARNWARE_STATUS_PENDING)
    assert len(index) == 1, "a learnware that is no longer USABLE leaves the index"
    _delete(index, 4, "a")
    assert len(index) == 0 and index.stats()[:2] == (0, {}) and index.revision == 4


def test_deleted_learnware_leaves_results_at_once() -> None:
    rng = np.random.default_rng(2)
    index = LearnwareIndex("cpu")
    for i in range(6):
        _upsert(index, i + 1, f"lw{i}", rng.normal(loc=3 * i, size=(8, 2)))
    _synced(index, 6)
    user = rng.normal(loc=6, size=(20, 2))
    assert _ids(_search(index, _request(user)))[0] == "lw2"
    _delete(index, 7, "lw2")
    assert "lw2" not in _ids(_search(index, _request(user)))


def _market(shard: Shard, specs: list[np.ndarray]) -> LearnwareIndex:
    index = LearnwareIndex("cpu", shard)
    for i, z in enumerate(specs):
        _upsert(index, i + 1, f"lw{i:03d}", z, name=f"model {i}" if i != 7 else "special churn model", scenario=["Business", "Health"][i % 2])
    return _synced(index, len(specs))


@pytest.mark.parametrize(
    "request_fields",
    [
        dict(with_spec=True),
        dict(with_spec=True, mixture_strategy=searcher_pb2.MIXTURE_STRATEGY_AUTO),
        dict(with_spec=True, semantic_spec=common_pb2.SemanticSpec(scenario=["Health"])),
        dict(with_spec=True, semantic_spec=common_pb2.SemanticSpec(name="churn")),  # exact in one shard only
        dict(with_spec=True, semantic_spec=common_pb2.SemanticSpec(name="modl")),  # fuzzy everywhere
        dict(semantic_spec=common_pb2.SemanticSpec(name="churn")),
        dict(semantic_spec=common_pb2.SemanticSpec(scenario=["Business"]), max_results=4),
        dict(with_spec=True, learnware_ids=["lw001", "lw004", "lw009", "lw020"]),
    ],
)
@pytest.mark.parametrize("settings", [IndexSettings(), IndexSettings(min_rows=0, shortlist=5)])
def test_two_shards_merge_to_the_whole_market(request_fields: dict, settings: IndexSettings) -> None:
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=3.0, size=(8, 4))
    specs = [np.vstack([centers[i % 8] + rng.normal(size=(6, 4)), centers[(3 * i + 1) % 8] + rng.normal(size=(6, 4))]) for i in range(30)]
    shards = [_market(Shard(0, 2), specs), _market(Shard(1, 2), specs)]
    whole = _market(Shard(0, 1), specs)
    assert 0 < len(shards[0]) < len(whole) and len(shards[0]) + len(shards[1]) == len(whole)

    with_spec = request_fields.pop("with_spec", False)
    user = np.vstack([centers[2] + rng.normal(size=(15, 4)), centers[5] + rng.normal(size=(15, 4))])
    request = _request(user if with_spec else None, **request_fields)
    query = parse_query(request, CPU)
    expected = merge_shards(query, [search_shard(whole, query, settings)])
    # As the gateway does it: each shard's result travels as a message to the merging replica.
    parts = [shard_from_proto(shard_to_proto(search_shard(shard, query, settings), query), query) for shard in shards]
    merged = merge_shards(query, parts)

    assert _ids(merged) == _ids(expected) and _ids(expected)
    np.testing.assert_allclose([r.score for r in merged.single_results], [r.score for r in expected.single_results], rtol=1e-6)
    assert [[lw.id for lw in m.learnwares] for m in merged.multiple_results] == [[lw.id for lw in m.learnwares] for m in expected.multiple_results]
    for got, want in zip(merged.multiple_results, expected.multiple_results):
        np.testing.assert_allclose(got.weights, want.weights, atol=1e-5)
        assert got.score == pytest.approx(want.score, rel=1e-6)
    assert merged.search_path == expected.search_path and list(merged.messages) == list(expected.messages)


def _invalid(index: LearnwareIndex, request: searcher_pb2.SearchLearnwaresRequest) -> str:
    with pytest.raises(ServiceError) as error:
        _search(index, request)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return error.value.message


def test_bad_user_specs_are_invalid_arguments_and_incomparable_ones_find_nothing() -> None:
    rng = np.random.default_rng(4)
    index = _market(Shard(0, 1), [rng.normal(size=(6, 4)) for _ in range(5)])
    other_width = _search(index, _request(rng.normal(size=(10, 7))))  # the reference's answer: nothing, with why
    assert not other_width.single_results and not other_width.multiple_results
    assert any("like yours" in message and "[4]" in message for message in other_width.messages), other_width.messages
    other_gamma = _search(index, searcher_pb2.SearchLearnwaresRequest(stat_specs=[_stat_spec(rng.normal(size=(10, 4)), gamma=0.5)]))
    assert not other_gamma.single_results and any("gamma" in message for message in other_gamma.messages), other_gamma.messages
    with_nan = rng.normal(size=(10, 4))
    with_nan[3, 1] = np.nan
    assert "NaN" in _invalid(index, _request(with_nan))
    assert "unsupported" in _invalid(index, searcher_pb2.SearchLearnwaresRequest(stat_specs=[_stat_spec(rng.normal(size=(10, 4)), spec_type="GaussianSpecification")]))
    assert "beta" in _invalid(index, searcher_pb2.SearchLearnwaresRequest(stat_specs=[_stat_spec(rng.normal(size=(10, 4)), beta=np.ones(3))]))
    assert "gamma" in _invalid(index, searcher_pb2.SearchLearnwaresRequest(stat_specs=[_stat_spec(rng.normal(size=(10, 4)), gamma=-1.0)]))
    declared = _request(rng.normal(size=(10, 4)), semantic_spec=common_pb2.SemanticSpec(input=common_pb2.FeatureDescription(dimension=5)))
    assert _search(index, declared).single_results  # only hetero search reads the Input (the reference's answer)
    assert "Data" in _invalid(index, _request(semantic_spec=common_pb2.SemanticSpec(data=["Spreadsheet"])))
    # A market without any learnware of that type is not the user's fault: an empty answer.
    empty = _synced(LearnwareIndex("cpu"), 0)
    response = _search(empty, _request(rng.normal(size=(10, 4))))
    assert not response.single_results and response.messages
