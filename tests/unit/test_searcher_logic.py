"""Search logic against brute force and the reference package's rules."""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import numpy as np
import pytest
import torch

from lwm.services.searcher import stack as stack_module
from lwm.services.searcher.native_kernel import native_kernels
from lwm.services.searcher.semantic import SemanticIndex
from lwm.services.searcher.stack import SpecStack, StackView, augment_points, augment_queries, cross_terms, quantise_sketches, sketch_dots
from lwm.services.searcher.statistical import DistanceSummary, IndexSettings, UserSpec, finish, rank
from lwm.spec.kernels import rbf_kernel

CPU = torch.device("cpu")


def _spec(**values: Any) -> dict:
    spec = {
        "Data": {"Values": ["Table"], "Type": "Class"},
        "Task": {"Values": ["Classification"], "Type": "Class"},
        "Scenario": {"Values": ["Business"], "Type": "Tag"},
        "Name": {"Values": "", "Type": "String"},
        "Description": {"Values": "", "Type": "String"},
    }
    for key, value in values.items():
        spec[key] = {"Values": value, "Type": spec.get(key, {"Type": "Class"})["Type"]}
    return spec


def _brute_force_tags_match(user: dict, learnware: dict) -> bool:
    """The reference's EasyFuzzSemanticSearcher._match_semantic_spec_tag, transcribed."""
    for key, entry in user.items():
        wanted = entry.get("Values", "")
        if len(wanted) == 0:
            continue
        if key not in learnware:
            if "Others" in wanted:
                continue
            return False
        have = learnware[key].get("Values", "")
        if key not in ("Name", "Description"):
            if len(have) == 0:
                return False
            if entry["Type"] in ("Class", "Optional"):
                if isinstance(have, list):
                    have = have[0]
                if have not in wanted:
                    return False
            elif entry["Type"] == "Tag":
                if not (set(wanted) & set(have)):
                    return False
    return True


def _index(specs: dict[str, dict]) -> SemanticIndex:
    index = SemanticIndex()
    for learnware_id, spec in specs.items():
        index.add(learnware_id, spec)
    return index


def test_semantic_index_equals_brute_force_on_random_specs() -> None:
    rng = np.random.default_rng(0)
    choices = {"Data": ["Table", "Image", "Text"], "Task": ["Classification", "Regression"], "Library": ["Scikit-learn", "PyTorch", "Others"], "License": ["MIT", "Apache-2.0", "Others"]}
    scenarios = ["Business", "Financial", "Health", "Nature"]

    def random_learnware() -> dict:
        spec = _spec(Scenario=list(rng.choice(scenarios, size=rng.integers(1, 3), replace=False)))
        for key, values in choices.items():
            if rng.random() < 0.8:  # some learnwares lack a key entirely
                spec[key] = {"Values": [str(rng.choice(values))], "Type": "Class"}
        return spec

    def random_user() -> dict:
        user = {}
        for key, values in choices.items():
            user[key] = {"Values": list(rng.choice(values, size=rng.integers(0, 3), replace=False)), "Type": "Class"}
        user["Scenario"] = {"Values": list(rng.choice(scenarios, size=rng.integers(0, 3), replace=False)), "Type": "Tag"}
        return user

    learnwares = {f"lw{i}": random_learnware() for i in range(60)}
    index = _index(learnwares)
    for i in range(5):  # replaced and removed learnwares leave no trace in the postings
        learnwares[f"lw{i}"] = random_learnware()
        index.add(f"lw{i}", learnwares[f"lw{i}"])
    for i in range(5, 10):
        del learnwares[f"lw{i}"]
        index.remove(f"lw{i}")
    for _ in range(200):
        user = random_user()
        expected = {i for i, spec in learnwares.items() if _brute_force_tags_match(user, spec)}
        found = index.search(user)
        assert set(learnwares if found.scores is None else found.scores) == expected, user
        assert index.search(user, within={"lw20", "lw21", "nope"}).scores.keys() == expected & {"lw20", "lw21"}


def test_semantic_rules() -> None:
    index = _index({"a": _spec(Name="Customer churn", Description="churn of telecom customers", Scenario=["Business", "Financial"])})
    assert index.search(_spec(Data=["Table", "Image"], Scenario=[])).scores == {"a": 1.0}
    assert index.search(_spec(Data=["Image"], Scenario=[])).scores == {}
    assert index.search(_spec(Scenario=["Financial", "Health"])).scores == {"a": 1.0}
    assert index.search(_spec(Scenario=["Health"])).scores == {}
    assert index.search({"License": {"Values": ["Others"], "Type": "Class"}}).scores == {"a": 1.0}  # missing key, user accepts Others
    assert index.search({"License": {"Values": ["MIT"], "Type": "Class"}}).scores == {}
    assert index.search({}).scores is None  # no constraint: everything


def test_name_exact_then_fuzzy() -> None:
    index = _index({"a": _spec(Name="Customer churn"), "b": _spec(Name="House prices", Description="regression of prices")})
    exact = index.search(_spec(Name="CHURN", Scenario=[]))
    assert exact.scores == {"a": 1.0} and not exact.fuzzy
    fuzzy = index.search(_spec(Name="custmer chrn", Scenario=[]))
    assert list(fuzzy.scores) == ["a"] and 0.75 <= fuzzy.scores["a"] < 1.0 and fuzzy.fuzzy
    assert index.search(_spec(Name="zzzzzz", Scenario=[])).scores == {}


def _reference_dist_to_score(dist_list, dist_ratio=0.1, min_score=0.92, improve_score=0.7):
    # Transcribed from learnware 0.4 EasyStatSearcher._convert_dist_to_score for comparison.
    min_dist, max_dist = min(dist_list), max(dist_list)
    if min_dist == max_dist:
        return [1 for _ in dist_list]
    avg_dist = sum(dist_list) / len(dist_list)
    dist_epsilon = avg_dist * dist_ratio
    max_score = (max_dist - min_dist) / (max_dist - dist_epsilon)
    if min_dist < dist_epsilon:
        dist_epsilon = min_dist
    elif max_score < min_score:
        dist_epsilon = max_dist - (max_dist - min_dist) / min_score
    out = []
    for dist in dist_list:
        score = (max_dist - dist) / (max_dist - dist_epsilon)
        if score < improve_score:
            score = min(math.sqrt(score), improve_score)
        out.append(score)
    return out


def test_scores_match_reference_and_summaries_merge() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        dists = sorted(rng.uniform(0, 1, size=rng.integers(2, 12)).tolist())
        np.testing.assert_allclose(DistanceSummary.of(dists).scores(dists), _reference_dist_to_score(dists))
        split = int(rng.integers(0, len(dists)))
        merged = DistanceSummary.of(dists[:split]).merged(DistanceSummary.of(dists[split:]))
        np.testing.assert_allclose(merged.scores(dists), _reference_dist_to_score(dists))
    assert DistanceSummary.of([0.3, 0.3]).scores([0.3, 0.3]) == [1.0, 1.0]


def _stack(specs: list[tuple[np.ndarray, np.ndarray]], gamma: float) -> SpecStack:
    stack = SpecStack(specs[0][0].shape[1:], gamma, CPU)
    for i, (z, beta) in enumerate(specs):
        stack.add(f"lw{i}", z, beta)
    return stack


def _brute_mmd(z1: np.ndarray, b1: np.ndarray, z2: np.ndarray, b2: np.ndarray, gamma: float) -> float:
    def k(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return rbf_kernel(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(c, dtype=torch.float64), gamma).numpy()

    return float(b1 @ k(z1, z1) @ b1 - 2 * b1 @ k(z1, z2) @ b2 + b2 @ k(z2, z2) @ b2)


def _assert_within_rounding(found: list[float], rows: list[int], view: StackView, z_user: np.ndarray, b_user: np.ndarray, specs: list[tuple[np.ndarray, np.ndarray]], gamma: float) -> None:
    """Each found MMD^2 is the exact one to the stored (rounded) spec, so by the triangle inequality
    |MMD(user, stored) - MMD(user, spec)| <= ||Phi_stored - Phi_spec|| (computed here in float64),
    plus float32 kernel arithmetic; and the rounding itself is float16's (2^-11 of the offsets)."""
    for mmd, row in zip(found, rows):
        z, b = specs[row]
        stored_z, stored_b = view.points(row)[: len(z)].numpy(), view.spec_weights(row)[: len(b)].numpy()
        rounding = math.sqrt(max(_brute_mmd(z, b, stored_z, stored_b, gamma), 0.0))
        assert rounding <= 2.0**-11 * (math.sqrt(2 * gamma) * np.abs(b).sum() * np.linalg.norm(z - z.mean(0), axis=1).max() + np.abs(b).sum()) + 1e-9
        exact = _brute_mmd(z_user, b_user, z, b, gamma)
        assert abs(math.sqrt(max(mmd, 0.0)) - math.sqrt(exact)) <= rounding + 1e-5, (row, mmd, exact, rounding)


def _search(user: UserSpec, stack: SpecStack, strategy: str, settings: IndexSettings = IndexSettings(), keep: int = 100):
    view = stack.view()
    ranked = rank(user, view, keep, settings)
    points = torch.stack([view.points(row) for row in ranked.rows])
    self_terms = view.self_terms[ranked.rows].tolist()
    result = finish(user, points, view.weights[ranked.rows], self_terms, ranked.mmds, ranked.summary, max_search_num=3, strategy=strategy, max_results=10)
    return ranked, result


@pytest.fixture(params=["native", "torch"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on the fused native kernel (a C compiler is on every supported host) and on the torch path."""
    if request.param == "native":
        if os.environ.get("LWM_SEARCH_NATIVE") == "0":
            pytest.skip("LWM_SEARCH_NATIVE=0 turns the native kernel off")
        assert native_kernels() is not None, "the native kernel did not compile (see the warning in the log)"
    else:
        monkeypatch.setattr(stack_module, "native_kernels", lambda: None)
    return request.param


@pytest.mark.parametrize("specs, points_per_spec, queries, dim", [(5, 4, 7, 3), (37, 3, 1, 2), (3, 50, 130, 300), (0, 4, 5, 3)])
def test_cross_terms_equal_the_kernel(kernel_path: str, specs: int, points_per_spec: int, queries: int, dim: int) -> None:
    """Point counts and query counts off the kernel's vector and unroll widths, and a wide table."""
    rng = np.random.default_rng(3)
    z, beta = rng.normal(size=(queries, dim)) * 0.2, rng.random(queries)
    points = rng.normal(size=(specs, points_per_spec, dim)) * 0.2
    weights = rng.random((specs, points_per_spec))
    gamma = 0.3 / dim
    queries_t = augment_queries(torch.as_tensor(z), gamma)
    got = cross_terms(queries_t, torch.as_tensor(beta), augment_points(torch.as_tensor(points), gamma), torch.as_tensor(weights, dtype=torch.float32)).numpy()
    expected = [beta @ rbf_kernel(torch.as_tensor(z), torch.as_tensor(points[i]), gamma).numpy() @ weights[i] for i in range(specs)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("rows, width", [(37, 64), (5, 448), (3, 37), (0, 64)])
def test_sketch_dots_equal_the_float_products(kernel_path: str, rows: int, width: int) -> None:
    """int8 codes times the user's sketch, whose int16 rounding costs at most 2^-15 of its largest entry per feature."""
    rng = np.random.default_rng(6)
    sketches = torch.as_tensor(rng.normal(size=(rows, width)), dtype=torch.float32)
    codes, scales = quantise_sketches(sketches)
    assert torch.all((scales[:, None] * codes.to(torch.float32) - sketches).abs() <= scales[:, None] / 2 * (1 + 1e-6))
    user = torch.as_tensor(rng.normal(size=width), dtype=torch.float32)
    expected = codes.to(torch.float64) @ user.to(torch.float64)
    bound = codes.to(torch.float64).abs().sum(1) * float(user.abs().max()) * 2.0**-15 + 1e-3
    assert torch.all((sketch_dots(codes, user).to(torch.float64) - expected).abs() <= bound)


def test_cross_terms_of_far_points_are_zero(kernel_path: str) -> None:
    """Exponents far below float32's range (2^-1000) give 0, not garbage from the exponent bits."""
    z = torch.zeros(4, 2, dtype=torch.float64)
    points = torch.full((3, 2, 2), 100.0, dtype=torch.float64)
    got = cross_terms(augment_queries(z, 1.0), torch.ones(4, dtype=torch.float64), augment_points(points, 1.0), torch.ones(3, 2))
    assert got.abs().max().item() < 1e-30


def test_cross_terms_leave_the_threads_subnormals_alone(kernel_path: str) -> None:
    """The native kernel flushes subnormals only while it runs: afterwards, on the thread that called it
    (one chunk of points runs on the caller), float arithmetic keeps its subnormal results."""
    z = torch.zeros(4, 2, dtype=torch.float64)
    points = torch.full((1, 2, 2), 100.0, dtype=torch.float64)
    cross_terms(augment_queries(z, 1.0), torch.ones(4, dtype=torch.float64), augment_points(points, 1.0), torch.ones(1, 2))
    assert np.float32(1e-38) / np.float32(1e3) > 0
    assert (torch.tensor([1e-38], dtype=torch.float32) / 1e3).item() > 0


def test_far_from_zero_features_keep_their_precision() -> None:
    """Points are stored as offsets from their spec's mean: an offset of 1e4 in every feature costs no precision."""
    rng = np.random.default_rng(5)
    specs = [(rng.normal(loc=i, size=(6, 3)), np.full(6, 1 / 6)) for i in range(4)]
    z = rng.normal(loc=1.5, size=(9, 3))
    mmds = []
    for offset in (0.0, 1e4):
        stack = _stack([(s + offset, b) for s, b in specs], 0.1)
        ranked = rank(UserSpec.make(z + offset, np.full(9, 1 / 9), 0.1, CPU), stack.view(), 4, IndexSettings())
        mmds.append(dict(zip(ranked.rows, ranked.mmds)))
        _assert_within_rounding(ranked.mmds, ranked.rows, stack.view(), z + offset, np.full(9, 1 / 9), [(s + offset, b) for s, b in specs], 0.1)
    # Offsets from each spec's own mean are stored, so the far-off copy rounds (almost) alike.
    np.testing.assert_allclose([mmds[0][i] for i in range(4)], [mmds[1][i] for i in range(4)], rtol=1e-3)


def _market(rng: np.random.Generator, k: int = 6, d: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    centers = [np.array([i * 3.0, 0.0]) for i in range(5)]
    return [(c + rng.normal(scale=0.3, size=(k, d)), np.full(k, 1.0 / k)) for c in centers]


@pytest.mark.parametrize("strategy", ["greedy", "auto"])
def test_single_and_mixture_against_brute_force(strategy: str) -> None:
    rng = np.random.default_rng(1)
    gamma = 0.5
    specs = _market(rng)
    # User: half from source 1, half from source 3.
    z_user = np.vstack([specs[1][0], specs[3][0]]) + rng.normal(scale=0.05, size=(12, 2))
    b_user = np.full(12, 1.0 / 12)
    user = UserSpec.make(z_user, b_user, gamma, CPU)
    stack = _stack(specs, gamma)
    ranked, result = _search(user, stack, strategy)

    brute = [_brute_mmd(z_user, b_user, z, b, gamma) for z, b in specs]
    assert ranked.rows == list(np.argsort(brute))
    _assert_within_rounding(ranked.mmds, ranked.rows, stack.view(), z_user, b_user, specs, gamma)
    assert result.mixture is not None
    scores = DistanceSummary.of(brute + [result.mixture.mmd]).scores(sorted(brute))
    np.testing.assert_allclose([score for _, score in result.singles], [s for s in scores if s >= 0.6], rtol=1e-4)

    # The mixture is the known two sources, as the best 2-subset by exhaustive search over a weight grid.
    assert {ranked.rows[i] for i in result.mixture.members} == {1, 3}
    best = min(
        (min(_brute_mmd(z_user, b_user, np.vstack([specs[i][0], specs[j][0]]), np.concatenate([w * specs[i][1], (1 - w) * specs[j][1]]), gamma) for w in np.linspace(0, 1, 101)), {i, j})
        for i, j in itertools.combinations(range(5), 2)
    )
    assert best[1] == {1, 3} and result.mixture.mmd <= best[0] + 1e-6
    np.testing.assert_allclose(sorted(result.mixture.weights), [0.5, 0.5], atol=0.1)


def test_user_equal_to_a_learnware_gets_no_mixture() -> None:
    rng = np.random.default_rng(2)
    specs = [(rng.normal(loc=i * 4.0, size=(5, 3)), np.full(5, 0.2)) for i in range(4)]
    user = UserSpec.make(specs[2][0], specs[2][1], 0.1, CPU)
    for strategy in ("greedy", "auto"):
        ranked, result = _search(user, _stack(specs, 0.1), strategy)
        assert ranked.rows[0] == 2 and result.mixture is None


def test_indexed_search_reranks_exactly() -> None:
    """With the sketch shortlist, the returned MMDs are exact and the best learnware is found."""
    rng = np.random.default_rng(4)
    centers = rng.normal(scale=3.0, size=(40, 4))
    specs = [(centers[i] + rng.normal(size=(20, 4)), np.full(20, 0.05)) for i in range(40)]
    stack = _stack(specs, 0.1)
    for source in range(0, 40, 5):
        z = centers[source] + rng.normal(size=(30, 4))
        user = UserSpec.make(z, np.full(30, 1 / 30), 0.1, CPU)
        exhaustive, _ = _search(user, stack, "greedy")
        indexed, _ = _search(user, stack, "greedy", IndexSettings(min_rows=0, shortlist=8), keep=5)
        assert indexed.indexed and not exhaustive.indexed
        assert indexed.rows[0] == exhaustive.rows[0] == source
        exact = dict(zip(exhaustive.rows, exhaustive.mmds))
        np.testing.assert_allclose(indexed.mmds, [exact[row] for row in indexed.rows], rtol=1e-6)
        assert indexed.summary.count == exhaustive.summary.count == 40
        assert indexed.summary.low == pytest.approx(exhaustive.summary.low)


def test_two_pass_shortlist_finds_the_exhaustive_best() -> None:
    """Heads of the sketches over every row, whole sketches on the `coarse` best, exact MMD on the
    `shortlist` best: on a market of mixtures of shared clusters, the exhaustive best for every user."""
    rng = np.random.default_rng(7)
    centers = rng.normal(scale=2.0, size=(12, 5))

    def spec(clusters: np.ndarray, weights: np.ndarray, points: int = 24) -> tuple[np.ndarray, np.ndarray]:
        owner = rng.choice(len(clusters), size=points, p=weights)
        return centers[clusters[owner]] + rng.normal(scale=0.7, size=(points, 5)), np.full(points, 1.0 / points)

    sources = [(rng.choice(12, size=3, replace=False), rng.dirichlet(np.ones(3))) for _ in range(600)]
    specs = [spec(clusters, weights) for clusters, weights in sources]
    stack = _stack(specs, 0.1)
    settings = IndexSettings(min_rows=0, shortlist=20, coarse=100)
    for source in range(0, 600, 30):
        z, beta = spec(*sources[source], points=60)
        user = UserSpec.make(z, beta, 0.1, CPU)
        exhaustive = rank(user, stack.view(), 5, IndexSettings())
        indexed = rank(user, stack.view(), 5, settings)
        assert indexed.indexed and not exhaustive.indexed
        assert indexed.rows[0] == exhaustive.rows[0]
        exact = dict(zip(exhaustive.rows, exhaustive.mmds))
        np.testing.assert_allclose([indexed.mmds[0]], [exact[indexed.rows[0]]], rtol=1e-6)
        assert indexed.summary.count == exhaustive.summary.count == 600
        assert indexed.summary.low == pytest.approx(exhaustive.summary.low)


def test_image_specs_are_ranked_and_mixed_under_their_nngp_kernel() -> None:
    """Image groups use the ConvNet NNGP kernel of RKMEImageSpecification (not the Gaussian one), exhaustively, uncentred."""
    from lwm.spec.image import RKMEImageSpecification

    rng = np.random.default_rng(11)
    shape = (3, 8, 8)
    specs = [(rng.normal(loc=0.5 * i, size=(5, *shape)), rng.dirichlet(np.ones(5))) for i in range(4)]
    stack = SpecStack(shape, 0.1, CPU, image_shape=shape)
    for i, (z, beta) in enumerate(specs):
        stack.add(f"lw{i}", z, beta)
    user_z, user_beta = np.concatenate([specs[1][0], specs[2][0]]), np.concatenate([specs[1][1], specs[2][1]]) / 2

    def image_spec(z: np.ndarray, beta: np.ndarray) -> RKMEImageSpecification:
        return RKMEImageSpecification.from_dict({"type": "RKMEImageSpecification", "z": z.tolist(), "beta": beta.tolist(), "num_points": 10})

    user_spec = image_spec(user_z, user_beta)
    expected = [user_spec.dist(image_spec(z, beta)) for z, beta in specs]
    ranked, result = _search(UserSpec.make(user_z, user_beta, 0.1, CPU, image_shape=shape), stack, "greedy", IndexSettings(min_rows=0))
    assert not ranked.indexed
    np.testing.assert_allclose(sorted(ranked.mmds), sorted(expected), rtol=1e-6)
    assert {ranked.rows[0], ranked.rows[1]} == {1, 2}
    assert result.mixture is not None
    weighted = {ranked.rows[m] for m, weight in zip(result.mixture.members, result.mixture.weights) if weight > 1e-3}
    assert weighted == {1, 2}
