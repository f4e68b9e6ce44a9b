"""RKMETableSpecification: construction, MMD math, JSON I/O, input validation."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from lwm.spec import (
    RKMETableSpecification,
    generate_rkme_table_spec,
    generate_stat_spec,
    load_stat_spec,
    mmd_to_many,
)
from lwm.spec.kernels import self_inner_products


def gaussian(n: int = 300, d: int = 4, loc: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, size=(n, d))


def make_spec(X, **kwargs) -> RKMETableSpecification:
    spec = RKMETableSpecification(device="cpu")
    spec.generate_stat_spec_from_data(X, **kwargs)
    return spec


def brute_force_mmd(z1, b1, z2, b2, gamma) -> float:
    """Squared MMD with explicit per-pair kernel values (numpy, no shortcuts)."""

    def gram(a, b):
        diff = a[:, None, :] - b[None, :, :]
        return np.exp(-gamma * (diff**2).sum(-1))

    return float(b1 @ gram(z1, z1) @ b1 - 2 * b1 @ gram(z1, z2) @ b2 + b2 @ gram(z2, z2) @ b2)


@pytest.fixture(scope="module")
def spec_a() -> RKMETableSpecification:
    return make_spec(gaussian(seed=1))


def test_shapes_and_fields(spec_a):
    assert spec_a.get_z().shape == (100, 4)
    assert spec_a.get_beta().shape == (100,)
    assert spec_a.type == "RKMETableSpecification"
    assert spec_a.num_points == 300
    assert spec_a.gamma == 0.1
    beta = spec_a.get_beta()
    assert np.all(beta >= 0)
    assert beta.sum() == pytest.approx(1.0, abs=1e-9)


def test_one_row_is_its_own_exact_embedding() -> None:
    row = np.array([[1.0, -2.0, 0.5]])
    spec = generate_rkme_table_spec(row)
    np.testing.assert_array_equal(spec.get_z(), row)
    np.testing.assert_array_equal(spec.get_beta(), [1.0])
    assert spec.dist(spec) == pytest.approx(0.0, abs=1e-12)
    assert load_stat_spec(spec.to_dict()).get_z().shape == (1, 3)


def test_self_distance_is_zero(spec_a):
    assert abs(spec_a.dist(spec_a)) < 1e-12
    assert spec_a.dist(spec_a, omit_term1=True) == pytest.approx(-spec_a.inner_prod(spec_a))


def test_distance_grows_with_separation():
    base = make_spec(gaussian(seed=1))
    dists = [base.dist(make_spec(gaussian(loc=shift, seed=2))) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(dists, dists[1:])), dists
    assert dists[0] < 0.01


def test_dist_matches_brute_force_on_tiny_data():
    X1, X2 = gaussian(n=12, d=3, seed=3), gaussian(n=9, d=3, loc=0.7, seed=4)
    s1, s2 = make_spec(X1, K=5), make_spec(X2, K=4)
    expected = brute_force_mmd(s1.get_z(), s1.get_beta(), s2.get_z(), s2.get_beta(), 0.1)
    assert s1.dist(s2) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    # reduce=False keeps the data itself: the spec is the empirical embedding.
    e1, e2 = make_spec(X1, reduce=False), make_spec(X2, reduce=False)
    uniform = brute_force_mmd(X1, np.full(12, 1 / 12), X2, np.full(9, 1 / 9), 0.1)
    assert e1.dist(e2) == pytest.approx(uniform, rel=1e-10)


def test_reduced_set_approximates_data():
    X = gaussian(n=400, d=3, seed=5)
    spec = make_spec(X)
    full = make_spec(X, reduce=False)
    assert spec.dist(full) < 1e-3


def test_small_data_shrinks_k():
    assert make_spec(gaussian(n=60, seed=6)).get_z().shape == (40, 4)
    assert make_spec(gaussian(n=2, seed=6)).get_z().shape == (1, 4)


def test_steps_never_increase_mmd_and_beat_plain_kmeans():
    X = gaussian(n=500, d=3, seed=20)
    full = make_spec(X, reduce=False)
    dists = [make_spec(X, K=20, steps=steps).dist(full) for steps in (0, 1, 3, 10)]
    assert all(later <= earlier + 1e-15 for earlier, later in zip(dists, dists[1:])), dists
    assert dists[-1] < 0.9 * dists[0], dists


def test_matches_brute_force_fit_objective():
    """The fitted spec's MMD to the data equals the one computed from full kernel matrices."""
    X = gaussian(n=40, d=2, seed=21)
    spec = make_spec(X, K=6)
    z, beta = spec.get_z(), spec.get_beta()
    uniform = np.full(len(X), 1 / len(X))
    expected = brute_force_mmd(z, beta, X, uniform, 0.1)
    assert spec.dist(make_spec(X, reduce=False)) == pytest.approx(expected, rel=1e-10)


def test_same_seed_same_spec_other_seed_close():
    X = gaussian(n=300, d=4, seed=22)
    a, b, c = make_spec(X, random_state=3), make_spec(X, random_state=3), make_spec(X, random_state=4)
    np.testing.assert_array_equal(a.get_z(), b.get_z())
    np.testing.assert_array_equal(a.get_beta(), b.get_beta())
    assert a.dist(c) < 1e-3


def test_row_permutation_gives_same_spec():
    X = gaussian(n=250, d=5, seed=7)
    perm = np.random.default_rng(8).permutation(len(X))
    s1, s2 = make_spec(X), make_spec(X[perm])
    assert abs(s1.dist(s2)) < 1e-10
    np.testing.assert_allclose(s1.get_z(), s2.get_z(), atol=1e-8)


def test_input_types_agree():
    X = gaussian(n=150, d=3, seed=9)
    ref = make_spec(X)
    for variant in (pd.DataFrame(X), torch.from_numpy(X), X.tolist()):
        assert abs(ref.dist(make_spec(variant))) < 1e-10


def test_nan_filled_with_column_mean():
    X = gaussian(n=100, d=3, seed=10)
    X_nan = X.copy()
    X_nan[[3, 7], 1] = np.nan
    X_nan[5, 2] = np.inf
    filled = X.copy()
    filled[[3, 7], 1] = np.delete(X[:, 1], [3, 7]).mean()
    filled[5, 2] = np.delete(X[:, 2], [5]).mean()
    a, b = make_spec(X_nan, reduce=False), make_spec(filled, reduce=False)
    assert abs(a.dist(b)) < 1e-12
    assert np.isnan(X_nan[3, 1])  # input not modified


def test_finite_values_whose_projection_overflows_are_kept_as_they_are():
    """The row order's projection doubles as the check for missing values; one that overflows is not a missing value."""
    from lwm.spec.rkme import table_and_row_order

    X = gaussian(n=50, d=3, seed=11)
    X[7] = 1e308
    arr, order = table_and_row_order(X)
    assert arr is X and sorted(order.tolist()) == list(range(50))


@pytest.mark.parametrize(
    "X, message",
    [
        (np.ones(10), "2-D"),
        (np.ones((0, 3)), "at least one row"),
        (np.ones((5, 0)), "at least one row"),
        (np.column_stack([np.ones(5), np.full(5, np.nan)]), "column(s) [1]"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), "numeric"),
    ],
)
def test_bad_input_raises_clear_error(X, message):
    with pytest.raises(ValueError) as err:
        make_spec(X)
    assert message in str(err.value)


def test_empty_spec_errors():
    with pytest.raises(ValueError, match="empty"):
        RKMETableSpecification().get_z()


def test_dimension_mismatch(spec_a):
    other = make_spec(gaussian(d=3, seed=11))
    with pytest.raises(ValueError, match="dimension"):
        spec_a.dist(other)


def test_json_round_trip(tmp_path, spec_a):
    other = make_spec(gaussian(loc=1.0, seed=12))
    path = tmp_path / "spec.json"
    spec_a.save(path)
    text = path.read_text()
    assert list(json.loads(text)) == ["z", "beta", "gamma", "num_points", "type"]
    loaded = RKMETableSpecification(device="cpu")  # exact equality below: same device as spec_a (the default is CUDA where there is one)
    assert loaded.load(path) is True
    assert loaded.num_points == 300 and loaded.gamma == 0.1
    np.testing.assert_array_equal(loaded.get_z(), spec_a.get_z())
    assert loaded.dist(other) == spec_a.dist(other)
    for source in (path, str(path), text, text.encode(), spec_a.to_dict()):
        assert load_stat_spec(source, device="cpu").dist(other) == spec_a.dist(other)
    assert RKMETableSpecification.from_dict(spec_a.to_dict()).dist(spec_a) == pytest.approx(0.0, abs=1e-12)


def test_load_stat_spec_rejects_other_types(spec_a):
    d = spec_a.to_dict()
    d["type"] = "RKMEVideoSpecification"
    with pytest.raises(ValueError, match="RKMEVideoSpecification.*not supported"):
        load_stat_spec(d)
    d["type"] = "RKMETextSpecification"
    with pytest.raises(ValueError, match="not an RKMETableSpecification"):
        RKMETableSpecification.from_dict(d)
    with pytest.raises(ValueError, match="beta"):
        load_stat_spec({"z": [[0.0, 1.0]], "gamma": 0.1})
    with pytest.raises(ValueError, match="2 points in z but 1"):
        load_stat_spec({"z": [[0.0], [1.0]], "beta": [1.0]})


def test_generate_stat_spec_dispatch():
    X = gaussian(n=80, d=2, seed=13)
    spec = generate_stat_spec("table", X=X, reduced_set_size=10, cuda_idx=-1)
    assert spec.get_z().shape == (10, 2)
    with pytest.raises(ValueError, match="unknown"):
        generate_stat_spec("audio", X=X)
    with pytest.raises(ValueError, match="needs data X"):
        generate_stat_spec("table")


def test_nonnegative_beta_false_runs():
    spec = make_spec(gaussian(n=120, seed=14), nonnegative_beta=False)
    assert np.all(np.isfinite(spec.get_beta()))


def test_herding_samples_follow_distribution():
    spec = make_spec(gaussian(n=400, d=2, loc=3.0, seed=15))
    samples = spec.herding(50, random_state=0)
    assert samples.shape == (50, 2)
    np.testing.assert_allclose(samples.mean(0), [3.0, 3.0], atol=0.5)
    np.testing.assert_array_equal(samples, spec.herding(50, random_state=0))


def test_mmd_to_many_matches_pairwise():
    rng = np.random.default_rng(16)
    query = make_spec(gaussian(n=100, d=3, seed=17), K=20)
    others = [make_spec(gaussian(n=n, d=3, loc=loc, seed=18 + i), K=k)
              for i, (n, loc, k) in enumerate([(90, 0.0, 20), (60, 1.0, 12), (40, 2.0, 7)])]
    k2 = max(o.get_z().shape[0] for o in others)
    Z = torch.from_numpy(rng.normal(size=(len(others), k2, 3)))  # padding rows: arbitrary points
    B = torch.zeros(len(others), k2, dtype=torch.float64)
    for i, o in enumerate(others):
        k = o.get_z().shape[0]
        Z[i, :k] = torch.from_numpy(o.get_z())
        B[i, :k] = torch.from_numpy(o.get_beta())
    z, beta = torch.from_numpy(query.get_z()), torch.from_numpy(query.get_beta())
    got = mmd_to_many(z, beta, Z, B, 0.1)
    expected = torch.tensor([query.dist(o) for o in others], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    pre = self_inner_products(Z, B, 0.1)
    torch.testing.assert_close(mmd_to_many(z, beta, Z, B, 0.1, self_terms=pre), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="dimension"):
        mmd_to_many(z[:, :2], beta, Z, B, 0.1)


def test_large_input_runs_with_subsampled_kmeans():
    """More rows than KMEANS_MAX_SAMPLES: k-means sees a sample, beta and Z steps see all rows."""
    from lwm.spec import rkme

    X = gaussian(n=3000, d=3, seed=23)
    small_cap = rkme.KMEANS_MAX_SAMPLES
    try:
        rkme.KMEANS_MAX_SAMPLES = 500
        spec = make_spec(X, K=30)
    finally:
        rkme.KMEANS_MAX_SAMPLES = small_cap
    assert spec.num_points == 3000
    assert spec.dist(make_spec(X, reduce=False)) < 1e-3


def test_device_argument_and_cuda_idx(caplog: pytest.LogCaptureFixture) -> None:
    assert RKMETableSpecification(device="cpu").device.type == "cpu"
    assert RKMETableSpecification(cuda_idx=-1).device.type == "cpu"
    # As the reference: a GPU index this machine does not have falls back to the CPU, with a warning.
    missing = torch.cuda.device_count()
    with caplog.at_level(logging.WARNING, logger="lwm.spec.device"):
        spec = generate_rkme_table_spec(gaussian(n=50, d=3, seed=1), reduced_set_size=5, cuda_idx=missing)
    assert spec.device.type == "cpu" and f"cuda_idx={missing}" in caplog.text
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            RKMETableSpecification(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    X = gaussian(n=500, d=6, seed=24)
    cpu = make_spec(X)
    gpu = RKMETableSpecification(device="cuda")
    gpu.generate_stat_spec_from_data(X)
    assert gpu.device.type == "cuda"
    assert abs(cpu.dist(gpu)) < 1e-6
    assert gpu.dist(cpu) == pytest.approx(cpu.dist(gpu), abs=1e-9)
