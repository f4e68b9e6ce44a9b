"""The small quadratic program behind RKME weights.

    minimize   1/2 b^T K b - c^T b
    subject to b >= 0, sum(b) = 1

(the reference solves the same problem with qpsolvers/clarabel). K is a
Gaussian kernel matrix: symmetric PSD, often badly conditioned.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize

from .spec_kernels import spec_kernels
from .threads import single_thread

# Weight of the sum(b) = 1 row appended to the least-squares form; the
# remaining violation is removed by renormalising and by the polish step.
_EQUALITY_WEIGHT = 1e4
# Rounds of the warm-started active-set search before falling back to the cold NNLS solve.
WARM_START_ROUNDS = 10


def _jittered_cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of K + eps I with the smallest eps that works."""
    n = K.shape[0]
    scale = float(np.mean(np.diag(K))) if n else 1.0
    scale = scale if scale > 0 else 1.0
    eps = 1e-10 * scale
    for _ in range(12):
        try:
            return np.linalg.cholesky(K + eps * np.eye(n))
        except np.linalg.LinAlgError:
            eps *= 10.0
    raise np.linalg.LinAlgError("kernel matrix is not positive semi-definite")


def _objective(K: np.ndarray, c: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * b @ K @ b - c @ b)


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {b >= 0, sum(b) = 1}."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    idx = np.arange(1, v.size + 1)
    rho = np.nonzero(u - css / idx > 0)[0][-1]
    projected: np.ndarray = np.maximum(v - css[rho] / (rho + 1.0), 0.0)
    return projected


def _fista(K: np.ndarray, c: np.ndarray, b0: np.ndarray, iters: int = 5000) -> np.ndarray:
    """Accelerated projected gradient; only a fallback if NNLS fails."""
    lipschitz = max(float(np.linalg.eigvalsh(K)[-1]), 1e-12)
    b, y, t = b0.copy(), b0.copy(), 1.0
    for _ in range(iters):
        b_next = _project_simplex(y - (K @ y - c) / lipschitz)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = b_next + ((t - 1.0) / t_next) * (b_next - b)
        b, t = b_next, t_next
    return b


def _solve_on_support(K: np.ndarray, c: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The exact minimiser with b = 0 outside ``support`` (indices) and sum(b) = 1, signs unchecked.

    Returns b (n,) and the common gradient value (K b - c)_i on the support; None when the
    KKT system is singular.
    """
    m = support.size
    if m == 0:
        return None
    kkt = np.empty((m + 1, m + 1))
    kkt[:m, :m] = K if m == K.shape[0] else K.take(support, 0).take(support, 1)  # take: 3x faster than K[np.ix_(...)]
    kkt[:m, m] = 1.0
    kkt[m, :m] = 1.0
    kkt[m, m] = 0.0
    rhs = np.append(c[support], 1.0)
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(sol)):
        return None
    out = np.zeros(K.shape[0])
    out[support] = sol[:m]
    return out, -float(sol[m])


def _polish(K: np.ndarray, c: np.ndarray, support: np.ndarray) -> np.ndarray | None:
    """Exact weights on the support of an approximate solution; None if one comes out negative."""
    solved = _solve_on_support(K, c, support)
    if solved is None or np.any(solved[0] < 0):
        return None
    return solved[0]


def _warm_start(K: np.ndarray, c: np.ndarray, support: np.ndarray) -> np.ndarray | None:
    """Active-set search from a guessed support; the exact optimum, or None if it does not settle quickly.

    Each round solves exactly on the support, then drops the indices whose weight came out
    negative or, when none did, adds every index whose gradient violates optimality (one at
    a time took a round per index: nine rounds where the support grew from 90 to 99 points).
    A result is returned only when it is feasible and meets the KKT conditions, so it is
    the optimum (the problem is convex).
    """
    in_support = np.zeros(K.shape[0], dtype=bool)
    in_support[support] = True
    kernels = spec_kernels()
    if kernels is not None:
        # The same search on Cholesky factors in C: 2-4x faster at n = 100, where LAPACK's small LU and numpy's per-call costs dominate
        optimum = kernels.simplex_qp(K, c, in_support, WARM_START_ROUNDS)
        if optimum is not None:
            return optimum
    for _ in range(WARM_START_ROUNDS):
        solved = _solve_on_support(K, c, np.nonzero(in_support)[0])
        if solved is None:
            return None
        b, support_gradient = solved
        if np.any(b < 0):
            in_support &= b > 0
            continue
        gradient = K @ b - c
        violation = np.where(in_support, -np.inf, support_gradient - gradient)
        violated = violation > 1e-10 * max(1.0, float(np.abs(gradient).max()))
        if not violated.any():
            return b
        in_support |= violated
    return None


def solve_simplex_qp(K: np.ndarray, c: np.ndarray, support_hint: np.ndarray | None = None) -> np.ndarray:
    """Weights b >= 0 with sum(b) = 1 minimising 1/2 b^T K b - c^T b.

    ``support_hint`` (a boolean mask or indices) is where the optimum is expected to be
    positive, e.g. the weights of a slightly different problem solved just before: a few
    rounds of an active-set search start there, and their result is returned when it
    meets the optimality conditions (else the cold solve below runs).

    Method: write the objective as a least-squares problem through a
    (jittered) Cholesky factor K = L L^T, append the equality as a heavily
    weighted row, solve with the active-set NNLS of scipy, then polish on the
    found support. Returns float64 of shape (n,). BLAS runs single-threaded
    here: for these small matrices threads only add overhead (about 4x at
    n = 100 on a busy 2-core machine, measured).
    """
    K = np.asarray(K, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    n = K.shape[0]
    if K.shape != (n, n) or c.shape != (n,):
        raise ValueError(f"expected K (n, n) and c (n,), got {K.shape} and {c.shape}")
    if n == 1:
        return np.ones(1)
    with single_thread():
        K = 0.5 * (K + K.T)
        if support_hint is not None:
            warm = _warm_start(K, c, np.arange(n)[np.asarray(support_hint)])
            if warm is not None:
                return warm
        return _solve(K, c)


def _solve(K: np.ndarray, c: np.ndarray) -> np.ndarray:
    n = K.shape[0]
    L = _jittered_cholesky(K)
    y = scipy.linalg.solve_triangular(L, c, lower=True)
    A = np.vstack([L.T, np.full((1, n), _EQUALITY_WEIGHT)])
    rhs = np.concatenate([y, [_EQUALITY_WEIGHT]])
    try:
        b, _ = scipy.optimize.nnls(A, rhs, maxiter=50 * n)
    except RuntimeError:
        b = _fista(K, c, np.full(n, 1.0 / n))
    total = b.sum()
    b = b / total if total > 0 else np.full(n, 1.0 / n)
    polished = _polish(K, c, np.nonzero(b > 0)[0])
    if polished is not None and _objective(K, c, polished) <= _objective(K, c, b):
        b = polished
    return np.asarray(b)
