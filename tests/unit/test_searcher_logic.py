"""Search logic against brute force and the reference package's rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from lwm.services.searcher.semantic import semantic_search, tags_match
from lwm.services.searcher.statistical import SpecStack, dist_to_score, statistical_search
from lwm.spec.kernels import rbf_kernel, self_inner_products


def _spec(**values) -> dict:
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


def test_semantic_rules() -> None:
    learnware = _spec(Name="Customer churn", Description="churn of telecom customers", Scenario=["Business", "Financial"])
    assert tags_match(_spec(Data=["Table", "Image"], Scenario=[]), learnware)
    assert not tags_match(_spec(Data=["Image"], Scenario=[]), learnware)
    assert tags_match(_spec(Scenario=["Financial", "Health"]), learnware)
    assert not tags_match(_spec(Scenario=["Health"]), learnware)
    assert tags_match({"License": {"Values": ["Others"], "Type": "Class"}}, learnware)  # missing key, user accepts Others
    assert not tags_match({"License": {"Values": ["MIT"], "Type": "Class"}}, learnware)


def test_name_exact_then_fuzzy() -> None:
    candidates = [("a", _spec(Name="Customer churn")), ("b", _spec(Name="House prices", Description="regression of prices"))]
    assert semantic_search(_spec(Name="CHURN", Scenario=[]), candidates) == [("a", 1.0)]
    fuzzy = semantic_search(_spec(Name="custmer chrn", Scenario=[]), candidates)
    assert [h for h, _ in fuzzy] == ["a"] and 0.75 <= fuzzy[0][1] < 1.0
    assert semantic_search(_spec(Name="zzzzzz", Scenario=[]), candidates) == []
    assert [h for h, _ in semantic_search({}, candidates)] == ["a", "b"]


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


def test_dist_to_score_matches_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        dists = sorted(rng.uniform(0, 1, size=rng.integers(2, 12)).tolist())
        np.testing.assert_allclose(dist_to_score(dists), _reference_dist_to_score(dists))
    assert dist_to_score([0.3, 0.3]) == [1.0, 1.0]


def _stack(specs: list[tuple[np.ndarray, np.ndarray]], gamma: float) -> SpecStack:
    Z = torch.as_tensor(np.stack([z for z, _ in specs]))
    B = torch.as_tensor(np.stack([b for _, b in specs]))
    return SpecStack(Z=Z, B=B, self_terms=self_inner_products(Z, B, gamma), gamma=gamma)


def _brute_mmd(z1, b1, z2, b2, gamma) -> float:
    k = lambda a, c: rbf_kernel(torch.as_tensor(a), torch.as_tensor(c), gamma).numpy()  # noqa: E731
    return float(b1 @ k(z1, z1) @ b1 - 2 * b1 @ k(z1, z2) @ b2 + b2 @ k(z2, z2) @ b2)


def test_single_and_mixture_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    gamma, k, d = 0.5, 6, 2
    centers = [np.array([i * 3.0, 0.0]) for i in range(5)]
    specs = [(c + rng.normal(scale=0.3, size=(k, d)), np.full(k, 1.0 / k)) for c in centers]
    # User: half from source 1, half from source 3.
    z_user = np.vstack([specs[1][0], specs[3][0]]) + rng.normal(scale=0.05, size=(2 * k, d))
    b_user = np.full(2 * k, 1.0 / (2 * k))
    stack = _stack(specs, gamma)
    result = statistical_search(torch.as_tensor(z_user), torch.as_tensor(b_user), stack, list(range(5)), max_search_num=3, strategy="greedy", max_results=10)

    brute = [_brute_mmd(z_user, b_user, z, b, gamma) for z, b in specs]
    assert result.singles[0][0] == int(np.argmin(brute))
    assert result.mixture is not None and set(result.mixture.rows) == {1, 3}

    # Best 2-subset mixture by exhaustive search over weights on a grid agrees with the greedy one.
    best = min(
        (min(_brute_mmd(z_user, b_user, np.vstack([specs[i][0], specs[j][0]]), np.concatenate([w * specs[i][1], (1 - w) * specs[j][1]]), gamma) for w in np.linspace(0, 1, 101)), {i, j})
        for i, j in itertools.combinations(range(5), 2)
    )
    assert best[1] == {1, 3}
    np.testing.assert_allclose(sorted(result.mixture.weights), [0.5, 0.5], atol=0.1)

    auto = statistical_search(torch.as_tensor(z_user), torch.as_tensor(b_user), stack, list(range(5)), max_search_num=3, strategy="auto", max_results=10)
    assert auto.mixture is not None and set(auto.mixture.rows) == {1, 3}


def test_user_equal_to_a_learnware_gets_no_mixture() -> None:
    rng = np.random.default_rng(2)
    specs = [(rng.normal(loc=i * 4.0, size=(5, 3)), np.full(5, 0.2)) for i in range(4)]
    stack = _stack(specs, 0.1)
    result = statistical_search(torch.as_tensor(specs[2][0]), torch.as_tensor(specs[2][1]), stack, [0, 1, 2, 3], max_search_num=3, strategy="greedy", max_results=10)
    assert result.singles[0][0] == 2 and result.mixture is None
