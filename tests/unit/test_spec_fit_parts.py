"""Parts of the RKME fit: the warm-started beta QP, the Lloyd assignment, k-means++ seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwm.spec.kernels import rbf_kernel
from lwm.spec.kmeans import kmeans, kmeans_plus_plus_indices, nearest_centre
from lwm.spec.qp import solve_simplex_qp


def kernel_problem(seed: int, k: int = 40, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A beta QP as the fit poses it: K among reduced-set points, c their mean kernel to data."""
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.normal(size=(k, d)) * 1.5)
    x = torch.from_numpy(rng.normal(size=(300, d)))
    return rbf_kernel(z, z, 0.1).numpy(), rbf_kernel(z, x, 0.1).mean(1).numpy()


def objective(K: np.ndarray, c: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * b @ K @ b - c @ b)


@pytest.mark.parametrize("seed", range(6))
def test_warm_start_finds_the_cold_optimum_from_any_hint(seed: int) -> None:
    K, c = kernel_problem(seed)
    cold = solve_simplex_qp(K, c)
    support = cold > 0
    assert 0 < support.sum() < len(c)  # the optimum has zero weights: hints can be wrong both ways
    rng = np.random.default_rng(100 + seed)
    hints = {
        "exact": support,
        "everything": np.ones(len(c), dtype=bool),
        "one wrong index": np.isin(np.arange(len(c)), [int(np.argmin(cold))]),
        "random half": rng.random(len(c)) < 0.5,
        "support minus one": support & (np.arange(len(c)) != int(np.argmax(cold))),
    }
    for name, hint in hints.items():
        warm = solve_simplex_qp(K, c, support_hint=hint)
        assert np.all(warm >= 0) and warm.sum() == pytest.approx(1.0, abs=1e-12), name
        assert objective(K, c, warm) <= objective(K, c, cold) + 1e-12, name
        np.testing.assert_allclose(warm, cold, atol=1e-6, err_msg=name)


def test_nearest_centre_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    X, C = rng.normal(size=(500, 6)).astype(np.float32), rng.normal(size=(17, 6)).astype(np.float32)
    expected = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1).argmin(1)
    ignored = rng.normal(size=(len(X), 1)).astype(np.float32)
    rows = torch.from_numpy(np.hstack([X, np.ones((len(X), 1), dtype=np.float32), ignored]))  # [x, 1, anything]
    np.testing.assert_array_equal(nearest_centre(rows, torch.from_numpy(C)).numpy(), expected)


def test_kmeans_plus_plus_picks_distinct_rows_spread_over_clusters() -> None:
    rng = np.random.default_rng(8)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]])
    X = torch.from_numpy(np.repeat(centres, 100, axis=0) + rng.normal(size=(400, 2)))
    picked = kmeans_plus_plus_indices(X, 4, torch.Generator().manual_seed(0))
    assert len(set(picked.tolist())) == 4
    assert sorted(int(i) // 100 for i in picked) == [0, 1, 2, 3]  # D^2 sampling reaches every far cluster


def test_kmeans_subsampled_seeds_still_find_the_clusters() -> None:
    """More rows than the seeding subsample (20 per centre): seeds come from the subsample, Lloyd uses all rows."""
    rng = np.random.default_rng(9)
    centres = rng.normal(size=(5, 3)) * 30
    X = np.repeat(centres, 400, axis=0) + rng.normal(size=(2000, 3))
    rows = torch.from_numpy(np.hstack([X, np.ones((len(X), 2))]).astype(np.float32))  # [x, 1, an ignored column]
    found = kmeans(rows, 3, 5, torch.Generator().manual_seed(1)).numpy()
    assert found.dtype == np.float32 and found.shape == (5, 3)
    nearest = np.linalg.norm(found[:, None, :] - centres[None, :, :], axis=-1).min(0)
    assert np.all(nearest < 0.5)


def test_fit_gives_the_same_spec_on_one_and_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The data-term blocks and the Lloyd rows are shared out among threads; each block's sums are added in order."""
    from lwm.spec import rkme

    monkeypatch.setattr(rkme, "FIT_KERNEL_ENTRIES", 30 * 500)  # 500 rows a block: 6 blocks
    X = np.random.default_rng(10).normal(size=(3000, 6))
    previous = torch.get_num_threads()
    specs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            specs.append(rkme.generate_rkme_table_spec(X, reduced_set_size=30))
            assert torch.get_num_threads() == threads  # the fit gives the caller its setting back
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_array_equal(specs[0].get_z(), specs[1].get_z())
    np.testing.assert_array_equal(specs[0].get_beta(), specs[1].get_beta())


def test_single_thread_nests_and_restores_the_outer_setting() -> None:
    """A fit holds one limit for its length; the QPs and seeding inside it leave it in place."""
    from threadpoolctl import ThreadpoolController, threadpool_limits

    from lwm.spec.threads import explicit_threads, single_thread

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in ThreadpoolController().info() if pool["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        with explicit_threads():
            assert blas_threads() == {1}
            with single_thread():
                assert blas_threads() == {1}
            assert blas_threads() == {1}  # the inner one did not restore the outer's limit early
        assert blas_threads() == {2}


def test_map_on_threads_keeps_the_order_and_uses_the_calling_thread() -> None:
    import threading

    from lwm.spec.threads import explicit_threads, map_on_threads

    with explicit_threads():
        ran = map_on_threads(lambda i: (i, threading.current_thread().name), list(range(5)))
    assert [i for i, _ in ran] == list(range(5))
    assert ran[0][1] == threading.current_thread().name
