"""The spec fits' C kernels (lwm.spec.spec_kernels) against the numpy and torch path they replace."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from lwm.spec import kmeans as kmeans_module
from lwm.spec import native_build, qp, rkme
from lwm.spec.kernels import rbf_kernel
from lwm.spec.kmeans import kmeans_plus_plus_indices, nearest_centre
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
    """Rows over several blocks of the input passes (1,024 rows), shared out among threads."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2500, 37)) * 3
    order = rng.permutation(2500)
    np.testing.assert_allclose(kernels.fit_rows(X, order, 0.2), fit_rows(X[order], 0.2).numpy(), rtol=1e-6)
    out = np.zeros((2500, 39), dtype=np.float32)
    assert kernels.fit_rows(X, order, 0.2, out=out) is out
    np.testing.assert_allclose(out, fit_rows(X[order], 0.2).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(2500, 39\)"):
        kernels.fit_rows(X, order, 0.2, out=np.zeros((2500, 38), dtype=np.float32))


def test_projection_of_the_input_matches_numpy_and_flags_missing_values(kernels: SpecKernels) -> None:
    rng = np.random.default_rng(9)
    X, w = rng.normal(size=(3001, 13)), rng.normal(size=13)
    np.testing.assert_allclose(kernels.project_rows(X, w), X @ w, rtol=1e-12, atol=1e-12)
    for bad in (np.nan, np.inf, -np.inf):
        Y = X.copy()
        Y[2999, 4] = bad
        assert np.isfinite(kernels.project_rows(Y, w)).tolist() == [True] * 2999 + [False, True]
    with pytest.raises(ValueError, match=r"shape \(13,\)"):
        kernels.project_rows(X, w[:5])


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's thread count in this thread, which the kernels' block loops take as theirs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def block_loop_results(kernels: SpecKernels) -> list[np.ndarray]:
    """The results of every kernel that shares blocks out among threads, on fixed data (several blocks each)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5000, 6)) * 2
    rows = fit_rows(X)
    z = X[:: 250] + 0.1
    zf = torch.from_numpy(z.astype(np.float32))
    z_aug = torch.cat([0.2 * zf, -0.1 * (zf * zf).sum(1, keepdim=True), torch.ones_like(zf[:, :1])], 1)
    assign, sums = kernels.lloyd_assignment(rows, zf[:, :6])
    centres, rounds = kernels.kmeans(rows, 6, np.linspace(0.05, 0.95, 20), torch.arange(0, 5000, 7), torch.arange(1, 5000, 2), 3)
    terms = kernels.fit_state(rows, z, 0.1, rkme.KERNEL_EXPONENT_FLOOR, True, 700, np.ones(20, bool), 10, rkme.MIN_STEP_KERNEL_MASS)
    assert terms.beta is not None and terms.mean_kx is not None and terms.direction is not None
    return [assign.numpy(), sums.numpy(), centres.numpy(), np.array([rounds]), kernels.data_terms(rows, z_aug, rkme.KERNEL_EXPONENT_FLOOR, slice(0, 7), 700).numpy(),
            terms.mean_k, terms.mean_kx, terms.beta, np.array([terms.objective]), terms.direction, kernels.fit_rows(X, np.arange(5000)[::-1].copy(), 0.1),
            kernels.project_rows(X, np.arange(6.0))]


def assert_all_equal(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_block_loops_give_the_same_bits_on_any_thread_count(kernels: SpecKernels) -> None:
    """Blocks go to whichever thread asks first; each block's results are its own and are added in block order."""
    with torch_threads(1):
        expected = block_loop_results(kernels)
    for count in (2, 3, 8):
        with torch_threads(count):
            assert_all_equal(block_loop_results(kernels), expected)


def test_block_loops_of_concurrent_callers_stay_apart(kernels: SpecKernels) -> None:
    """One loop runs on the pool at a time; a caller that finds it busy runs its blocks alone: every caller gets its own results."""
    with torch_threads(1):
        expected = block_loop_results(kernels)
    failures: list[BaseException] = []

    def caller() -> None:
        try:
            with torch_threads(2):
                for _ in range(5):
                    assert_all_equal(block_loop_results(kernels), expected)
        except BaseException as error:  # reported by the test thread below
            failures.append(error)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in callers), "a block loop did not finish"
    assert not failures, failures[0]


def pool_threads() -> int:
    """This process's threads of the kernels' pool (native/block_pool.h names them)."""
    names = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task")]
    return names.count("lwm-spec-pool")


def _results_in_a_forked_child(kernels: SpecKernels, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with torch_threads(2):
        got = block_loop_results(kernels)
    results.put((got, pool_threads()))


def test_a_forked_child_makes_its_own_pool(kernels: SpecKernels) -> None:
    """A child forked after the pool started inherits none of its threads (pthread_atfork): its loops start new ones."""
    with torch_threads(2):
        expected = block_loop_results(kernels)
    assert pool_threads() >= 1
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    child = context.Process(target=_results_in_a_forked_child, args=(kernels, results))
    child.start()
    try:
        got, child_pool_threads = results.get(timeout=120)
        assert_all_equal(got, expected)
        assert child_pool_threads == 1  # a worker of its own: of the parent's it only inherited a record
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def test_kmeans_finds_the_centres_the_numpy_path_finds(kernels: SpecKernels, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(15)
    rows = fit_rows(np.repeat(rng.normal(size=(8, 5)) * 10, 400, axis=0) + rng.normal(size=(3200, 5)))
    sample = torch.from_numpy(rng.permutation(3200)[:2500])
    with explicit_threads():
        native = kmeans_module.kmeans(rows, 5, 12, torch.Generator().manual_seed(4), sample=sample)
        use_numpy_path(monkeypatch)
        fallback = kmeans_module.kmeans(rows, 5, 12, torch.Generator().manual_seed(4), sample=sample)
    np.testing.assert_allclose(native.numpy(), fallback.numpy(), rtol=1e-5, atol=1e-5)


def test_fit_state_matches_the_torch_path(kernels: SpecKernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data terms, the kernel among the points and beta of one C call against the torch path's."""
    rng = np.random.default_rng(12)
    X = np.repeat(rng.normal(size=(5, 7)) * 3, 300, axis=0) + rng.normal(size=(1500, 7))
    fit = rkme._ReducedSetFit(X, np.arange(1500), 0.1, True, torch.device("cpu"))
    z = torch.from_numpy(np.vstack([X[::50] + 0.2, np.full((1, 7), 40.0)]))  # the last point is far from every row
    terms = kernels.fit_state(fit.rows, z.numpy(), 0.1, rkme.KERNEL_EXPONENT_FLOOR, True, 400, np.ones(31, bool), 10, rkme.MIN_STEP_KERNEL_MASS)
    no_kx = kernels.fit_state(fit.rows, z.numpy(), 0.1, rkme.KERNEL_EXPONENT_FLOOR, False, 400, None, 10, rkme.MIN_STEP_KERNEL_MASS)
    monkeypatch.setattr(rkme, "spec_kernels", lambda: None)
    monkeypatch.setattr(qp, "spec_kernels", lambda: None)
    with explicit_threads():
        state = fit.state(z)
    assert terms.mean_kx is not None and terms.beta is not None
    np.testing.assert_allclose(terms.mean_k, state.mean_k.numpy(), rtol=2e-5, atol=1e-30)
    assert state.mean_kx is not None
    np.testing.assert_allclose(terms.mean_kx, state.mean_kx.numpy(), rtol=2e-5, atol=1e-12)
    np.testing.assert_allclose(terms.k_zz, rbf_kernel(z, z, 0.1).numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(terms.beta, state.beta.numpy(), atol=1e-6)
    assert terms.objective == pytest.approx(float(terms.beta @ terms.k_zz @ terms.beta - 2 * terms.mean_k @ terms.beta), rel=1e-12)
    assert terms.objective == pytest.approx(state.objective, rel=1e-6)
    same_terms = rkme._FitState(z, torch.from_numpy(terms.beta), torch.from_numpy(terms.k_zz), torch.from_numpy(terms.mean_k), torch.from_numpy(terms.mean_kx), 0.0)
    assert terms.direction is not None
    np.testing.assert_allclose(terms.direction, rkme._ReducedSetFit.descent_direction(same_terms).numpy(), rtol=1e-10, atol=1e-12)  # the torch path's
    assert not terms.direction[-1].any()  # no kernel mass reaches the far point: no step
    assert no_kx.mean_kx is None and no_kx.beta is None and no_kx.direction is None
    np.testing.assert_array_equal(no_kx.mean_k, terms.mean_k)


def test_fit_state_leaves_an_unsettled_qp_to_the_caller(kernels: SpecKernels) -> None:
    X = np.repeat(np.random.default_rng(13).normal(size=(10, 2)), 30, axis=0)
    fit = rkme._ReducedSetFit(X, np.arange(300), 0.5, True, torch.device("cpu"))
    z = np.repeat(X[::30], 2, axis=0)  # every point twice: the kernel among them is singular
    assert kernels.fit_state(fit.rows, z, 0.5, rkme.KERNEL_EXPONENT_FLOOR, True, 100, np.ones(20, bool), 10, rkme.MIN_STEP_KERNEL_MASS).beta is None
    with explicit_threads():
        state = fit.state(torch.from_numpy(z))  # the Python solver answers instead
    assert np.all(state.beta.numpy() >= 0) and float(state.beta.sum()) == pytest.approx(1.0)


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
