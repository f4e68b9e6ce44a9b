"""Gaussian-kernel and MMD math shared by the RKME specifications (batched torch).

Kernel: k(x, y) = exp(-gamma * ||x - y||^2).
An RKME spec (z, beta) represents Phi = sum_i beta_i k(z_i, .) in the RKHS; the
squared MMD between two specs is ||Phi1 - Phi2||^2.
"""

from __future__ import annotations

import torch

# Upper bound on the number of kernel entries materialised at once by the
# chunked helpers (about 64 MB in float64).
MAX_KERNEL_ENTRIES = 8_000_000


def sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, shape (..., n, m), clamped at 0.

    Uses ||a||^2 - 2 a.b + ||b||^2 (one matrix product), like the reference.
    Works for 2-D inputs and for batches (..., n, d) x (..., m, d).
    """
    a_sq = (a * a).sum(-1, keepdim=True)
    b_sq = (b * b).sum(-1, keepdim=True).transpose(-1, -2)
    d = a_sq - 2.0 * (a @ b.transpose(-1, -2)) + b_sq
    return d.clamp_min_(0.0)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
    """Gaussian kernel matrix exp(-gamma * ||a_i - b_j||^2), shape (..., n, m)."""
    return torch.exp(-gamma * sq_dists(a, b))


def rkhs_inner_product(
    z1: torch.Tensor, beta1: torch.Tensor, z2: torch.Tensor, beta2: torch.Tensor, gamma: float
) -> torch.Tensor:
    """<Phi1, Phi2> = beta1^T K(z1, z2) beta2 as a 0-d tensor."""
    return beta1 @ rbf_kernel(z1, z2, gamma) @ beta2


def squared_mmd(
    z1: torch.Tensor, beta1: torch.Tensor, z2: torch.Tensor, beta2: torch.Tensor, gamma: float
) -> torch.Tensor:
    """||Phi1 - Phi2||^2 for two specs as a 0-d tensor (not clamped, like the reference)."""
    t11 = rkhs_inner_product(z1, beta1, z1, beta1, gamma)
    t12 = rkhs_inner_product(z1, beta1, z2, beta2, gamma)
    t22 = rkhs_inner_product(z2, beta2, z2, beta2, gamma)
    return t11 - 2.0 * t12 + t22


def _chunk_size(n: int, entries_per_item: int) -> int:
    return max(1, min(n, MAX_KERNEL_ENTRIES // max(1, entries_per_item)))


def self_inner_products(Z: torch.Tensor, B: torch.Tensor, gamma: float) -> torch.Tensor:
    """||Phi_n||^2 = B_n^T K(Z_n, Z_n) B_n for N stacked specs.

    Z: (N, K2, d), B: (N, K2) -> (N,). A search index can compute this once
    per stored spec and pass it to :func:`mmd_to_many`.
    """
    if Z.dim() != 3 or B.dim() != 2 or Z.shape[:2] != B.shape:
        raise ValueError(f"expected Z (N, K2, d) and B (N, K2), got {tuple(Z.shape)} and {tuple(B.shape)}")
    n, k2, _ = Z.shape
    out = torch.empty(n, dtype=Z.dtype, device=Z.device)
    step = _chunk_size(n, k2 * k2)
    for s in range(0, n, step):
        z, b = Z[s : s + step], B[s : s + step]
        kzz = rbf_kernel(z, z, gamma)  # (c, K2, K2)
        out[s : s + step] = (b.unsqueeze(1) @ kzz @ b.unsqueeze(2)).reshape(-1)
    return out


def mmd_to_many(
    z: torch.Tensor,
    beta: torch.Tensor,
    Z: torch.Tensor,
    B: torch.Tensor,
    gamma: float,
    self_terms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared MMD from one spec (z (K, d), beta (K,)) to N stacked specs.

    Z: (N, K2, d), B: (N, K2); specs with fewer than K2 points are padded
    with beta = 0 (any finite z), which contributes nothing. ``self_terms``
    may hold precomputed :func:`self_inner_products` (N,) for Z, B.
    Returns (N,) in the dtype of the inputs.
    """
    if z.dim() != 2 or beta.dim() != 1 or z.shape[0] != beta.shape[0]:
        raise ValueError(f"expected z (K, d) and beta (K,), got {tuple(z.shape)} and {tuple(beta.shape)}")
    if Z.dim() != 3 or B.dim() != 2 or Z.shape[:2] != B.shape:
        raise ValueError(f"expected Z (N, K2, d) and B (N, K2), got {tuple(Z.shape)} and {tuple(B.shape)}")
    if Z.shape[2] != z.shape[1]:
        raise ValueError(f"feature dimension mismatch: query has d={z.shape[1]}, stacked specs have d={Z.shape[2]}")
    n, k2, d = Z.shape
    k = z.shape[0]
    t11 = rkhs_inner_product(z, beta, z, beta, gamma)
    t22 = self_inner_products(Z, B, gamma) if self_terms is None else self_terms
    cross = torch.empty(n, dtype=Z.dtype, device=Z.device)
    step = _chunk_size(n, k * k2)
    for s in range(0, n, step):
        zc, bc = Z[s : s + step], B[s : s + step]
        c = zc.shape[0]
        kc = rbf_kernel(z, zc.reshape(c * k2, d), gamma)  # (K, c*K2)
        cross[s : s + step] = ((beta @ kc).reshape(c, k2) * bc).sum(1)
    return t11 - 2.0 * cross + t22
