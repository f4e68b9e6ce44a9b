"""The spec fits' C kernels (lwm.spec.spec_kernels) against the numpy and torch path they replace."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lwm.spec import kmeans as kmeans_module
from lwm.spec import native_build, qp, rkme
from lwm.spec.kmeans import kmeans_plus_plus_indices, lloyd_assignment, nearest_centre
from lwm.spec.qp import solve_simplex_qp
from lwm.spec.spec_kernels import LLOYD_BLOCK_ROWS, SpecKernels, spec_kernels
from lwm.spec.threads import explicit_threads


@pytest.fixture
def kernels() -> SpecKernels:
    if os.environ.get("LWM_SPEC_NATIVE") == "0":
        pytest.skip("LWM_SPEC_NATIVE=0 turns the spec kernels off")
    loaded = spec_kernels()
    assert loaded is not None, "the spec kernels did not compile (see the warning in the log)"
    return loaded


def use_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback path, as on a host without a C compiler."""
    for module in (kmeans_module, rkme, qp):
        monkeypatch.setattr(module, "spec_kernels", lambda: None)


@pytest.fixture
def numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    use_numpy_path(monkeypatch)


def fit_rows(X: np.ndarray, gamma: float = 0.1) -> torch.Tensor:
    x = X.astype(np.float32)
    return torch.from_numpy(np.hstack([x, np.ones((len(x), 1), np.float32), -gamma * (x * x).sum(1, keepdims=True)]))


@pytest.mark.parametrize("n, k", [(1001, 17), (LLOYD_BLOCK_ROWS * 2 + 5, 32), (300, 100), (7, 3)])
def test_lloyd_assignment_matches_brute_force_and_index_add(kernels: SpecKernels, n: int, k: int) -> None:
    """Row and centre counts off the kernel's row group, vector and block sizes."""
    rng = np.random.default_rng(n + k)
    X, C = rng.normal(size=(n, 9)), rng.normal(size=(k, 9)).astype(np.float32)
    rows = fit_rows(X)
    assign, sums = kernels.lloyd_assignment(rows, torch.from_numpy(C))
    x = rows.numpy()[:, :9]
    np.testing.assert_array_equal(assign.numpy(), ((x[:, None, :] - C[None, :, :]) ** 2).sum(-1).argmin(1))
    expected = torch.zeros(k, rows.shape[1]).index_add_(0, assign, rows)
    np.testing.assert_allclose(sums.numpy(), expected.numpy(), rtol=1e-5, atol=1e-4)


def test_lloyd_assignment_reads_a_sample_in_place_as_its_copy(kernels: SpecKernels) -> None:
    """Sampled rows out of order, over more than one block, read through their indices (prefetched ahead)."""
    rng = np.random.default_rng(5)
    rows = fit_rows(rng.normal(size=(4000, 7)))
    sample = torch.from_numpy(rng.permutation(4000)[: LLOYD_BLOCK_ROWS + 333])
    C = torch.from_numpy(rng.normal(size=(21, 7)).astype(np.float32))
    assign, sums = kernels.lloyd_assignment(rows, C, sample)
    copy_assign, copy_sums = kernels.lloyd_assignment(rows[sample], C)
    np.testing.assert_array_equal(assign.numpy(), copy_assign.numpy())
    np.testing.assert_array_equal(sums.numpy(), copy_sums.numpy())
    with pytest.raises(IndexError, match=r"\[0, 4000\)"):
        kernels.lloyd_assignment(rows, C, torch.tensor([0, 4000]))


@pytest.mark.parametrize("path", ["kernels", "numpy"])
def test_kmeans_of_a_sample_is_kmeans_of_its_rows(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "numpy":
        use_numpy_path(monkeypatch)
    rng = np.random.default_rng(6)
    rows = fit_rows(np.repeat(rng.normal(size=(6, 4)) * 20, 300, axis=0) + rng.normal(size=(1800, 4)))
    sample = torch.from_numpy(rng.permutation(1800)[:900])
    with explicit_threads():
        in_place = kmeans_module.kmeans(rows, 4, 6, torch.Generator().manual_seed(2), sample=sample)
        copied = kmeans_module.kmeans(rows[sample], 4, 6, torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(in_place.numpy(), copied.numpy())


def test_lloyd_assignment_gives_ties_to_the_first_centre_as_argmin_does(kernels: SpecKernels) -> None:
    rng = np.random.default_rng(1)
    C = rng.normal(size=(40, 4)).astype(np.float32)
    C[[5, 21, 37]] = C[3]  # duplicates of centre 3, in other vector lanes and tiles
    rows = fit_rows(C[[3, 21, 37, 0]].astype(np.float64))
    assign, _ = kernels.lloyd_assignment(rows, torch.from_numpy(C))
    assert assign.tolist() == [3, 3, 3, 0]
    assert nearest_centre(rows, torch.from_numpy(C)).tolist() == [3, 3, 3, 0]


def test_kmeans_plus_plus_picks_the_rows_the_numpy_path_picks(kernels: SpecKernels, numpy_path: None) -> None:
    rng = np.random.default_rng(2)
    X = torch.from_numpy(np.repeat(rng.normal(size=(12, 5)) * 20, 50, axis=0) + rng.normal(size=(600, 5)))
    numpy_picks = kmeans_plus_plus_indices(X, 12, torch.Generator().manual_seed(3))
    uniforms = torch.rand(12, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    native_picks = kernels.kmeans_plus_plus(X.to(torch.float32).numpy(), uniforms)
    np.testing.assert_array_equal(native_picks, numpy_picks.numpy())
    assert sorted(int(i) // 50 for i in native_picks) == list(range(12))  # one seed in each far cluster


def test_kmeans_plus_plus_with_every_row_equal_picks_uniformly(kernels: SpecKernels) -> None:
    picked = kernels.kmeans_plus_plus(np.ones((10, 3), np.float32), np.array([0.05, 0.95, 0.5]))
    assert picked.tolist() == [0, 9, 5]


@pytest.mark.parametrize("with_kx", [True, False])
def test_data_terms_match_the_torch_kernel(kernels: SpecKernels, with_kx: bool) -> None:
    """Points off the vector width, rows off the chunk size, and exponents on both sides of the clamps."""
    rng = np.random.default_rng(4)
    gamma, d = 0.1, 7
    X = rng.normal(size=(1000, d))
    z = torch.from_numpy(np.vstack([X[:36] + 0.1, np.full((1, d), 40.0)]))  # the last point is far from every row
    rows = fit_rows(X, gamma)
    zf = z.to(torch.float32)
    z_aug = torch.cat([2 * gamma * zf, -gamma * (zf * zf).sum(1, keepdim=True), torch.ones_like(zf[:, :1])], 1)
    columns = slice(0, d + 1) if with_kx else slice(d, d + 1)
    got = kernels.data_terms(rows, z_aug, rkme.KERNEL_EXPONENT_FLOOR, columns, block_rows=300)
    kernel = torch.exp((z_aug.double() @ rows.double().T).clamp(rkme.KERNEL_EXPONENT_FLOOR, 0.0))
    expected = kernel @ rows.double()[:, columns]
    assert got.dtype == torch.float64 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=2e-5, atol=1e-30)
    assert got[-1, -1] == pytest.approx(1000 * math.exp(rkme.KERNEL_EXPONENT_FLOOR), rel=1e-5)  # the floor, not 0


def test_exp2_clamped_is_accurate_and_clamps(kernels: SpecKernels) -> None:
    x = np.linspace(-90.0, 3.0, 4096, dtype=np.float32)
    got = kernels.exp2_clamped(x, -80.0, np.empty_like(x))
    expected = np.exp2(np.clip(x.astype(np.float64), -80.0, 0.0))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 16"):
        kernels.exp2_clamped(x[:10], -80.0, np.empty(10, np.float32))


def test_fit_rows_match_the_numpy_gather(kernels: SpecKernels) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(257, 37)) * 3
    order = rng.permutation(257)
    np.testing.assert_allclose(kernels.fit_rows(X, order, 0.2), fit_rows(X[order], 0.2).numpy(), rtol=1e-6)
    out = np.zeros((257, 39), dtype=np.float32)
    assert kernels.fit_rows(X, order, 0.2, out=out) is out
    np.testing.assert_allclose(out, fit_rows(X[order], 0.2).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(257, 39\)"):
        kernels.fit_rows(X, order, 0.2, out=np.zeros((257, 38), dtype=np.float32))


@pytest.mark.parametrize("seed", range(4))
def test_simplex_qp_searches_as_the_python_search_does(kernels: SpecKernels, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same rounds, same outcome: the optimum where the Python search finds it, None where it gives up."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(60, 3)) * 1.5
    K = np.exp(-0.1 * ((z[:, None] - z[None]) ** 2).sum(-1))
    c = np.exp(-0.1 * ((z[:, None] - rng.normal(size=(300, 3))[None]) ** 2).sum(-1)).mean(1)
    cold = qp._solve(K, c)
    assert 0 < (cold > 0).sum() < 60  # zero weights: the search has to drop and add indices
    monkeypatch.setattr(qp, "spec_kernels", lambda: None)
    settled = 0
    for hint in (np.ones(60, bool), rng.random(60) < 0.5, cold > 0, (cold > 0) & (np.arange(60) != int(np.argmax(cold)))):
        got, python = kernels.simplex_qp(K, c, hint, 10), qp._warm_start(K, c, np.nonzero(hint)[0])
        assert (got is None) == (python is None)
        if got is not None:
            settled += 1
            np.testing.assert_allclose(got, cold, atol=1e-6)
            assert np.all(got >= 0) and got.sum() == pytest.approx(1.0, abs=1e-12)
    assert settled >= 1  # at least from the exact support


def test_simplex_qp_gives_up_on_a_singular_kernel_and_the_solver_still_answers(kernels: SpecKernels) -> None:
    z = np.repeat(np.random.default_rng(6).normal(size=(10, 2)), 2, axis=0)  # every point twice: K is singular
    K = np.exp(-0.5 * ((z[:, None] - z[None]) ** 2).sum(-1))
    c = K.mean(1)
    assert kernels.simplex_qp(K, c, np.ones(20, bool), 10) is None
    b = solve_simplex_qp(K, c, support_hint=np.ones(20, bool))
    assert np.all(b >= 0) and b.sum() == pytest.approx(1.0)
    assert 0.5 * b @ K @ b - c @ b <= 0.5 * np.full(20, 0.05) @ K @ np.full(20, 0.05) - c @ np.full(20, 0.05) + 1e-12


def test_fits_on_both_paths_agree(kernels: SpecKernels, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    X = np.repeat(rng.normal(size=(6, 5)) * 4, 400, axis=0) + rng.normal(size=(2400, 5))
    native = rkme.generate_rkme_table_spec(X, reduced_set_size=40)
    use_numpy_path(monkeypatch)
    fallback = rkme.generate_rkme_table_spec(X, reduced_set_size=40)
    data = rkme.RKMETableSpecification()
    data.z, data.beta = torch.from_numpy(X), torch.full((len(X),), 1 / len(X), dtype=torch.float64)
    native_mmd, fallback_mmd = native.dist(data), fallback.dist(data)
    assert native_mmd == pytest.approx(fallback_mmd, rel=1e-3)


def test_lloyd_assignment_dispatches_to_the_kernels(kernels: SpecKernels) -> None:
    rows = fit_rows(np.random.default_rng(8).normal(size=(50, 3)))
    C = rows[:4, :3].clone()
    with explicit_threads():
        assign, sums = lloyd_assignment(rows, C)
    assert assign.shape == (50,) and sums[:, 3].sum() == 50  # column 3 is the ones: the counts


def test_a_broken_compiler_leaves_the_fallback_and_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LWM_SPEC_NATIVE", "1")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("LWM_NATIVE_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="lwm.spec.native_build"):
        assert native_build.load_native_library(Path(native_build.__file__).with_name("native") / "spec_kernels.c", "spec_kernels", "LWM_SPEC_NATIVE") is None
    assert "LWM_SPEC_NATIVE=0" in caplog.text
    monkeypatch.setenv("LWM_SPEC_NATIVE", "0")
    assert native_build.load_native_library(Path("/nonexistent.c"), "x", "LWM_SPEC_NATIVE") is None  # switched off: not even tried


def test_a_compiled_library_is_reused_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("LWM_SPEC_NATIVE") == "0":
        pytest.skip("LWM_SPEC_NATIVE=0 turns the spec kernels off")
    monkeypatch.setenv("LWM_NATIVE_CACHE", str(tmp_path))
    source = Path(native_build.__file__).with_name("native") / "spec_kernels.c"
    assert native_build.load_native_library(source, "spec_kernels", "LWM_SPEC_NATIVE") is not None
    built = list(tmp_path.glob("spec_kernels-*.so"))
    assert len(built) == 1
    modified = built[0].stat().st_mtime_ns
    assert native_build.load_native_library(source, "spec_kernels", "LWM_SPEC_NATIVE") is not None
    assert built[0].stat().st_mtime_ns == modified and list(tmp_path.glob("spec_kernels-*.so")) == built
