"""The C kernels of the spec fits on the CPU (native/spec_kernels.c), compiled for the host on first
use (lwm.spec.native_build): the row order and gather of the RKME table fit, its
k-means (seeding and Lloyd rounds in one call) and each of its states (data terms, kernel among
the points, beta by the active-set search of lwm.spec.qp, the objective and the next step's
direction); k-means++ seeding for the image spec. The loops over rows run on the kernels' own
thread pool (native/block_pool.h): one call per loop, no Python between blocks.

Without a C compiler, or with LWM_SPEC_NATIVE=0, the fits keep their numpy and torch path. The
two paths agree up to rounding (a near-tie in k-means may go the other way), so a spec is
reproducible for a seed on one machine, not bit for bit between the paths.
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .native_build import load_native_library
from .threads import thread_count

LANES = 16  # floats per vector in the kernels; centres are padded to a multiple
# Rows per block of the Lloyd assignment. Each block sums its rows apart and the blocks are added in
# order, so the centres do not depend on how many threads share the blocks.
LLOYD_BLOCK_ROWS = 1024


def _padded(count: int) -> int:
    return -(-count // LANES) * LANES


def _aligned_zeros(rows: int, columns: int) -> np.ndarray:
    """A float32 (rows, columns) array of zeros starting on a 64-byte boundary: numpy's start 16 bytes in,
    and then every vector load of the centre tables straddles two cache lines (~3% slower kernels, measured)."""
    flat = np.zeros(rows * columns + LANES, dtype=np.float32)
    skip = (-flat.ctypes.data % 64) // flat.itemsize
    return flat[skip : skip + rows * columns].reshape(rows, columns)


def _float32_rows(rows: torch.Tensor) -> np.ndarray:
    """The CPU tensor's rows as the kernels read them: contiguous float32 (a copy only when they are not)."""
    return np.ascontiguousarray(rows.numpy(), dtype=np.float32)


def _row_indices(indices: torch.Tensor, rows: int, name: str) -> np.ndarray:
    """``indices`` as contiguous int64 for the kernels, which read rows through them: IndexError unless all lie in [0, rows)."""
    index = np.ascontiguousarray(indices.numpy(), dtype=np.int64)
    if index.size and not (0 <= index.min() and index.max() < rows):
        raise IndexError(f"{name} indices must lie in [0, {rows})")
    return index


@dataclass
class FitTerms:
    """SpecKernels.fit_state's results, float64."""

    mean_k: np.ndarray  # (K,)
    mean_kx: np.ndarray | None  # (K, d), when asked for
    k_zz: np.ndarray  # (K, K)
    beta: np.ndarray | None  # (K,), when asked for and found
    objective: float | None  # beta^T k_zz beta - 2 mean_k.beta, with beta
    direction: np.ndarray | None  # (K, d), the step direction, with beta and mean_kx


class SpecKernels:
    """The compiled kernels. The loops over rows (projection, gather, Lloyd assignments, data terms)
    split the rows into blocks that the C side shares out among as many threads as
    lwm.spec.threads.thread_count() (its own thread pool, native/block_pool.h; ctypes releases the
    GIL) and add the blocks' sums in block order."""

    def __init__(self, library: ctypes.CDLL) -> None:
        i64, ptr, f32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
        self._seed = library.kmeans_plus_plus
        self._seed.argtypes = [ptr, i64, i64, i64, ptr, ptr]
        self._seed.restype = ctypes.c_int
        self._assign = library.lloyd_assign
        self._assign.argtypes = [ptr, ptr, i64, i64, i64, ptr, i64, i64, ctypes.c_int, ptr, ptr]
        self._assign.restype = ctypes.c_int
        self._kmeans = library.kmeans
        self._kmeans.argtypes = [ptr, i64, i64, ptr, i64, ptr, i64, ptr, i64, i64, i64, ctypes.c_int, ptr]
        self._kmeans.restype = i64
        self._data_terms = library.data_terms
        self._data_terms.argtypes = [ptr, i64, i64, ptr, i64, f32, i64, i64, i64, ctypes.c_int, ptr]
        self._data_terms.restype = ctypes.c_int
        self._fit_state = library.fit_state
        self._fit_state.argtypes = [ptr, i64, i64, ptr, i64, ctypes.c_double, ctypes.c_double, ctypes.c_int, i64, ctypes.c_int, ptr, i64, ctypes.c_double,
                                    ptr, ptr, ptr, ptr, ptr, ptr]
        self._fit_state.restype = ctypes.c_int
        self._exp2 = library.exp2_clamped
        self._exp2.argtypes = [ptr, i64, f32, ptr]
        self._exp2.restype = None
        self._gather_rows = library.gather_rows
        self._gather_rows.argtypes = [ptr, i64, ptr, i64, f32, ctypes.c_int, ptr]
        self._gather_rows.restype = None
        self._project_rows = library.project_rows
        self._project_rows.argtypes = [ptr, i64, i64, ptr, ctypes.c_int, ptr]
        self._project_rows.restype = None
        self._simplex_qp = library.simplex_qp
        self._simplex_qp.argtypes = [ptr, ptr, i64, ptr, i64, ptr]
        self._simplex_qp.restype = ctypes.c_int

    def kmeans_plus_plus(self, points: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Indices of the rows of points (n, d) that k-means++ picks, one per uniform in [0, 1)."""
        points = np.ascontiguousarray(points, dtype=np.float32)
        uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
        picked = np.empty(len(uniforms), dtype=np.int64)
        if self._seed(points.ctypes.data, *points.shape, len(uniforms), uniforms.ctypes.data, picked.ctypes.data) != 0:
            raise MemoryError(f"k-means++ seeding could not allocate scratch for {points.shape[0]} x {points.shape[1]} floats")
        return picked

    def fit_rows(self, X: np.ndarray, order: np.ndarray, gamma: float, out: np.ndarray | None = None) -> np.ndarray:
        """(n, d + 2) float32: the rows [x, 1, -gamma ||x||^2] of X (n, d) taken in ``order``, written to ``out`` when given."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        order = np.ascontiguousarray(order, dtype=np.int64)
        shape = (len(order), X.shape[1] + 2)
        if out is not None and not (out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous):
            raise ValueError(f"out must be a contiguous float32 array of shape {shape}")
        rows = np.empty(shape, dtype=np.float32) if out is None else out
        self._gather_rows(X.ctypes.data, X.shape[1], order.ctypes.data, len(order), gamma, thread_count(), rows.ctypes.data)
        return rows

    def project_rows(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        """(n,) float64: X (n, d) times w (d,)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        w = np.ascontiguousarray(w, dtype=np.float64)
        if w.shape != (X.shape[1],):
            raise ValueError(f"w must have shape ({X.shape[1]},), got {w.shape}")
        out = np.empty(X.shape[0])
        self._project_rows(X.ctypes.data, X.shape[0], X.shape[1], w.ctypes.data, thread_count(), out.ctypes.data)
        return out

    def lloyd_assignment(self, rows: torch.Tensor, C: torch.Tensor, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest row of C (k, d) for each of ``rows`` (m > d columns; the points are the first d),
        or for each of rows[sample] (read in place), and the sums (k, m) of the rows assigned to each centre."""
        m, (k, d) = rows.shape[1], C.shape
        index = None if sample is None else _row_indices(sample, rows.shape[0], "sample")
        n = rows.shape[0] if index is None else len(index)
        centres = np.ascontiguousarray(C.numpy(), dtype=np.float32)
        rows_np = _float32_rows(rows)
        assign = np.empty(n, dtype=np.int64)
        sums = np.empty((k, m), dtype=np.float32)
        if self._assign(rows_np.ctypes.data, None if index is None else index.ctypes.data, n, m, d, centres.ctypes.data, k, LLOYD_BLOCK_ROWS, thread_count(),
                        assign.ctypes.data, sums.ctypes.data) != 0:
            raise MemoryError(f"the Lloyd kernel could not allocate the block sums of {n} rows")
        return torch.from_numpy(assign), torch.from_numpy(sums)

    def kmeans(self, rows: torch.Tensor, d: int, uniforms: np.ndarray, seed_pool: torch.Tensor, sample: torch.Tensor | None, max_iter: int) -> tuple[torch.Tensor, int]:
        """Lloyd's k-means of rows[:, :d] (rows: (n, m > d) float32, column d all ones), or of
        rows[sample, :d], from k-means++ seeds drawn with ``uniforms`` (one per centre) among the rows
        ``seed_pool``: the (k, d) float32 centres and the number of Lloyd rounds run (at most
        ``max_iter``; fewer when an assignment repeats)."""
        rows_np = _float32_rows(rows)
        n_rows, m = rows_np.shape
        pool = _row_indices(seed_pool, n_rows, "seed_pool")
        index = None if sample is None else _row_indices(sample, n_rows, "sample")
        uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
        if len(uniforms) == 0 or len(pool) == 0:
            raise ValueError("k-means needs at least one uniform (one centre) and one row in the seed pool")
        n = n_rows if index is None else len(index)
        centres = np.empty((len(uniforms), d), dtype=np.float32)
        rounds = self._kmeans(rows_np.ctypes.data, m, d, None if index is None else index.ctypes.data, n, pool.ctypes.data, len(pool), uniforms.ctypes.data,
                              len(uniforms), max_iter, LLOYD_BLOCK_ROWS, thread_count(), centres.ctypes.data)
        if rounds < 0:
            raise MemoryError(f"k-means could not allocate its scratch for {n} rows")
        return torch.from_numpy(centres), int(rounds)

    def data_terms(self, rows: torch.Tensor, z_aug: torch.Tensor, exponent_floor: float, columns: slice, block_rows: int) -> torch.Tensor:
        """(K, width) float64: sum_i k_i * rows[i, columns] for each point, where k_i =
        exp(clamp(z_aug . rows[i], exponent_floor, 0)) is the kernel between the point and row i
        (z_aug (K, m) float32 gives the exponent as one product with a row; ``columns`` a
        contiguous slice of the m columns), summed per block of ``block_rows`` rows."""
        n, m = rows.shape
        k = z_aug.shape[0]
        first, stop, _ = columns.indices(m)
        width = stop - first
        padded = _padded(k)
        zt = _aligned_zeros(m, padded)
        zt[:, :k] = z_aug.numpy().T * np.float32(math.log2(math.e))  # exponents in log2 units: the kernel computes 2^x
        sums = np.empty((width, padded))
        floor2 = exponent_floor * math.log2(math.e)
        status = self._data_terms(_float32_rows(rows).ctypes.data, n, m, zt.ctypes.data, padded, floor2, first, width, block_rows, thread_count(), sums.ctypes.data)
        if status != 0:
            raise MemoryError(f"the data-term kernel could not allocate the block sums of {n} rows")
        return torch.from_numpy(sums[:, :k].T)

    def fit_state(
        self,
        rows: torch.Tensor,
        z: np.ndarray,
        gamma: float,
        exponent_floor: float,
        with_kx: bool,
        block_rows: int,
        support: np.ndarray | None,
        max_rounds: int,
        min_mass: float,
    ) -> FitTerms:
        """The RKME table fit's terms at the points z (K, d) float64, for its rows (n, d + 2) float32
        [x, 1, -gamma ||x||^2]: mean_x k(z_i, x), with_kx mean_x k(z_i, x) x, and the kernel among
        the points (data_terms on blocks of ``block_rows`` rows, the exponent floored at
        exponent_floor). With ``support`` (a boolean mask, the guessed support of beta), also beta
        by simplex_qp's search, the objective beta^T k_zz beta - 2 mean_k.beta and, with_kx, the
        step direction (descent_direction, with min_mass), all None when the search does not settle
        in ``max_rounds``."""
        rows_np = _float32_rows(rows)
        z = np.ascontiguousarray(z, dtype=np.float64)
        (n, m), (k, d) = rows_np.shape, z.shape
        if m != d + 2:
            raise ValueError(f"rows must have d + 2 = {d + 2} columns, got {m}")
        mean_k, k_zz, beta, objective = np.empty(k), np.empty((k, k)), np.empty(k), ctypes.c_double()
        mean_kx, direction = (np.empty((k, d)), np.empty((k, d))) if with_kx else (None, None)
        in_support = None if support is None else np.array(support, dtype=np.uint8)  # a copy: the kernel updates it
        status = self._fit_state(rows_np.ctypes.data, n, d, z.ctypes.data, k, gamma, exponent_floor, int(with_kx), block_rows, thread_count(),
                                 None if in_support is None else in_support.ctypes.data, max_rounds, min_mass, mean_k.ctypes.data,
                                 None if mean_kx is None else mean_kx.ctypes.data, k_zz.ctypes.data, beta.ctypes.data, ctypes.byref(objective),
                                 None if direction is None else direction.ctypes.data)
        if status < 0:
            raise MemoryError(f"the fit's kernels could not allocate their scratch for {k} points")
        if support is None or status != 0:
            return FitTerms(mean_k, mean_kx, k_zz, None, None, None)
        return FitTerms(mean_k, mean_kx, k_zz, beta, objective.value, direction)

    def exp2_clamped(self, exponents: np.ndarray, floor2: float, out: np.ndarray) -> np.ndarray:
        """out = 2^clamp(exponents, floor2, 0) as the data-term kernel computes its kernel values (in log2
        units): contiguous float32 arrays of one size, a multiple of LANES."""
        if not (exponents.dtype == out.dtype == np.float32 and exponents.flags.c_contiguous and out.flags.c_contiguous and exponents.size == out.size):
            raise ValueError("exponents and out must be contiguous float32 arrays of one size")
        if exponents.size % LANES:
            raise ValueError(f"the size must be a multiple of {LANES}, got {exponents.size}")
        self._exp2(exponents.ctypes.data, exponents.size, floor2, out.ctypes.data)
        return out

    def simplex_qp(self, K: np.ndarray, c: np.ndarray, support: np.ndarray, max_rounds: int) -> np.ndarray | None:
        """The optimum of the simplex QP (see lwm.spec.qp) by an active-set search from ``support``
        (a boolean mask), or None when the search does not settle in ``max_rounds`` or the kernel
        on a support is not safely positive definite (Cholesky factors; the caller then solves another way)."""
        K = np.ascontiguousarray(K, dtype=np.float64)
        c = np.ascontiguousarray(c, dtype=np.float64)
        in_support = np.array(support, dtype=np.uint8)  # a copy: the kernel updates it
        b = np.empty(len(c))
        status = self._simplex_qp(K.ctypes.data, c.ctypes.data, len(c), in_support.ctypes.data, max_rounds, b.ctypes.data)
        if status < 0:
            raise MemoryError(f"the QP kernel could not allocate a {len(c)} x {len(c)} factor")
        return b if status == 0 else None


@functools.cache
def spec_kernels() -> SpecKernels | None:
    """The compiled kernels, or None (the numpy and torch path) when disabled or no compiler works here."""
    library = load_native_library(Path(__file__).with_name("native") / "spec_kernels.c", "spec_kernels", "LWM_SPEC_NATIVE")
    return None if library is None else SpecKernels(library)
