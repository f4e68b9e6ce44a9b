"""Starting reduced sets of the RKME specs: k-means++ seeding, Lloyd's k-means, and a canonical row order."""

from __future__ import annotations

import numpy as np
import torch

# The RKME steps that follow make more Lloyd rounds nearly useless: at 10,000 x 50 three rounds
# give an MMD to the data within 5% of ten rounds (bench/spec_bench.py data).
KMEANS_MAX_ITER = 3
# k-means++ seeds are drawn from at most this many rows per centre (a seeded subsample): each
# seed costs one pass over the rows it draws from, and seeding is sequential.
SEED_ROWS_PER_CENTRE = 20


def canonical_row_order(X: np.ndarray) -> np.ndarray:
    """Row order of X (n, ...) that does not depend on the input order: sort by a fixed projection.

    Fitting rows in this order makes a spec independent of how they were shuffled.
    The projection is an einsum: a BLAS matrix-vector product would wake BLAS threads for
    a few microseconds of work (milliseconds on a busy machine).
    """
    flat = X.reshape(X.shape[0], -1)
    w = np.random.default_rng(12345).standard_normal(flat.shape[1])
    # Not a stable sort: rows with equal projections are equal rows (almost surely), and a stable
    # sort would only keep them in input order; numpy's default sort is 5x faster here.
    return np.argsort(np.einsum("ij,j->i", flat, w))


def kmeans_plus_plus_indices(X: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of k rows of X (n, d) picked by k-means++ (D^2) seeding, as a CPU int64 tensor.

    Runs on the CPU in float32 numpy: k small sequential passes, where per-call overhead
    matters more than arithmetic (einsum, not a BLAS matrix-vector product that wakes BLAS
    threads on every call). ``generator`` is a CPU generator that draws all k uniforms up
    front, so a seed gives the same rows on any device. When X has fewer than k distinct rows, duplicates
    are picked.
    """
    Xf = X.detach().to("cpu", torch.float32).numpy()
    n = Xf.shape[0]
    x_sq = np.einsum("ij,ij->i", Xf, Xf)
    uniforms = torch.rand(k, generator=generator, dtype=torch.float64).numpy()

    def sq_dist_to(i: int) -> np.ndarray:
        dist: np.ndarray = np.maximum(x_sq - 2.0 * np.einsum("ij,j->i", Xf, Xf[i]) + x_sq[i], 0.0)
        return dist

    picked = np.empty(k, dtype=np.int64)
    picked[0] = min(int(uniforms[0] * n), n - 1)
    closest = sq_dist_to(int(picked[0]))
    for j in range(1, k):
        cumulative = np.cumsum(closest, dtype=np.float64)
        total = float(cumulative[-1])
        if total > 0:
            idx = int(np.searchsorted(cumulative, uniforms[j] * total, side="right"))
        else:
            idx = int(uniforms[j] * n)
        picked[j] = min(idx, n - 1)
        np.minimum(closest, sq_dist_to(int(picked[j])), out=closest)
    return torch.from_numpy(picked)


def nearest_centre(X: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of C (k, d) for every row of X (n, d): one Lloyd assignment, CPU only."""
    # argmin_c ||x - c||^2 = argmin_c ||c||^2 - 2 x.c (||x||^2 is the same for every c);
    # numpy's argmin along rows is several times faster than torch's on the CPU.
    scores = torch.addmm((C * C).sum(1)[None, :], X, C.T, alpha=-2.0)
    return torch.from_numpy(np.argmin(scores.numpy(), axis=1))


def kmeans(X: torch.Tensor, k: int, generator: torch.Generator, max_iter: int = KMEANS_MAX_ITER) -> torch.Tensor:
    """Lloyd's k-means from k-means++ seeds; returns (k, d) centroids in X's dtype and device.

    Seeds come from a seeded subsample of at most SEED_ROWS_PER_CENTRE * k rows; the Lloyd
    rounds use all of X. Runs on the CPU in float32 (the reference's k-means is float32 too):
    it only seeds Z, and on the CPU a seed gives the same centres whatever X's device.
    """
    Xf = X.detach().to("cpu", torch.float32)
    n = Xf.shape[0]
    seed_pool = torch.arange(n)
    if n > SEED_ROWS_PER_CENTRE * k:
        seed_pool = torch.randperm(n, generator=generator)[: SEED_ROWS_PER_CENTRE * k]
    C = Xf[seed_pool[kmeans_plus_plus_indices(Xf[seed_pool], k, generator)]].clone()
    assign = None
    for _ in range(max_iter):
        new_assign = nearest_centre(Xf, C)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        counts = torch.bincount(assign, minlength=k).to(Xf.dtype)
        sums = torch.zeros_like(C).index_add_(0, assign, Xf)
        nonempty = counts > 0
        C[nonempty] = sums[nonempty] / counts[nonempty, None]  # empty clusters keep their centre
    return C.to(X.device, X.dtype)
