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
from threadpoolctl import ThreadpoolController

# Weight of the sum(b) = 1 row appended to the least-squares form; the
# remaining violation is removed by renormalising and by the polish step.
_EQUALITY_WEIGHT = 1e4
# Found once: threadpool_limits() looks the BLAS libraries up again on every call (~5 ms,
# more than the solve; a search solves dozens of these QPs).
_THREADPOOLS = ThreadpoolController()


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


def _polish(K: np.ndarray, c: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Solve the KKT system exactly on ``support`` (indices); None if that gives a negative weight.

    Returns the weights and the common gradient value (K b - c)_i on the support.
    """
    m = support.size
    if m == 0:
        return None
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = K[np.ix_(support, support)]
    kkt[:m, m] = 1.0
    kkt[m, :m] = 1.0
    rhs = np.concatenate([c[support], [1.0]])
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(sol)) or np.any(sol[:m] < 0):
        return None
    out = np.zeros(K.shape[0])
    out[support] = sol[:m]
    return out, -float(sol[m])


def _is_optimal(K: np.ndarray, c: np.ndarray, b: np.ndarray, support_gradient: float) -> bool:
    """KKT check for weights that are exact on their support: no weight outside it would lower the objective."""
    gradient = K @ b - c
    outside = np.ones(b.size, dtype=bool)
    outside[b > 0] = False
    tolerance = 1e-10 * max(1.0, float(np.abs(gradient).max()))
    return bool(np.all(gradient[outside] >= support_gradient - tolerance))


def solve_simplex_qp(K: np.ndarray, c: np.ndarray, support_hint: np.ndarray | None = None) -> np.ndarray:
    """Weights b >= 0 with sum(b) = 1 minimising 1/2 b^T K b - c^T b.

    ``support_hint`` (a boolean mask or indices) is where the optimum is expected to be
    positive, e.g. the weights of a slightly different problem solved just before: when the
    exact solution on it meets the optimality conditions it is returned without the NNLS
    below (one small linear solve instead of an active-set search).

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
    with _THREADPOOLS.limit(limits=1):
        K = 0.5 * (K + K.T)
        if support_hint is not None:
            hinted = _polish(K, c, np.arange(n)[np.asarray(support_hint)])
            if hinted is not None and _is_optimal(K, c, *hinted):
                return hinted[0]
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
    if polished is not None and _objective(K, c, polished[0]) <= _objective(K, c, b):
        b = polished[0]
    return np.asarray(b)
