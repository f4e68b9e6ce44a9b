"""Starting reduced sets of the RKME specs: k-means++ seeding, Lloyd's k-means, and a canonical row order."""

from __future__ import annotations

import numpy as np
import torch

KMEANS_MAX_ITER = 10  # the RKME steps that follow make more Lloyd rounds useless (measured)


def canonical_row_order(X: np.ndarray) -> np.ndarray:
    """Row order of X (n, ...) that does not depend on the input order: sort by a fixed projection.

    Fitting rows in this order makes a spec independent of how they were shuffled.
    """
    flat = X.reshape(X.shape[0], -1)
    w = np.random.default_rng(12345).standard_normal(flat.shape[1])
    return np.argsort(flat @ w, kind="stable")


def kmeans_plus_plus_indices(X: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of k rows of X (n, d) picked by k-means++ (D^2) seeding, as a CPU int64 tensor.

    Distances are computed in float32. ``generator`` is a CPU generator and
    sampling happens on the CPU, so a seed gives the same rows on any device.
    When X has fewer than k distinct rows, duplicates are picked.
    """
    Xf = X.to(torch.float32)
    n = Xf.shape[0]
    x_sq = (Xf * Xf).sum(1)

    def sq_dist_to(i: int) -> torch.Tensor:
        return (x_sq - 2.0 * (Xf @ Xf[i]) + x_sq[i]).clamp_min_(0.0)

    picked = [int(torch.randint(n, (1,), generator=generator))]
    closest = sq_dist_to(picked[0])
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            idx = int(torch.multinomial((closest / total).cpu(), 1, generator=generator))
        else:
            idx = int(torch.randint(n, (1,), generator=generator))
        picked.append(idx)
        closest = torch.minimum(closest, sq_dist_to(idx))
    return torch.tensor(picked, dtype=torch.int64)


def kmeans(X: torch.Tensor, k: int, generator: torch.Generator, max_iter: int = KMEANS_MAX_ITER) -> torch.Tensor:
    """Lloyd's k-means from k-means++ seeds; returns (k, d) centroids in X's dtype.

    Runs in float32 (as the reference's k-means does): it only seeds Z.
    """
    Xf = X.to(torch.float32)
    x_sq = (Xf * Xf).sum(1)
    C = Xf[kmeans_plus_plus_indices(Xf, k, generator).to(Xf.device)].clone()
    assign = None
    for _ in range(max_iter):
        new_assign = (x_sq[:, None] - 2.0 * (Xf @ C.T) + (C * C).sum(1)[None, :]).argmin(1)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        counts = torch.bincount(assign, minlength=k).to(Xf.dtype)
        sums = torch.zeros_like(C).index_add_(0, assign, Xf)
        nonempty = counts > 0
        C[nonempty] = sums[nonempty] / counts[nonempty, None]  # empty clusters keep their centre
    return C.to(X.dtype)
