"""Starting reduced sets of the RKME specs: k-means++ seeding, Lloyd's k-means, and a canonical row order."""

from __future__ import annotations

import numpy as np
import torch

from .threads import map_on_threads, single_thread, thread_count

# The RKME steps that follow make more Lloyd rounds nearly useless: at 10,000 x 50 three rounds
# give an MMD to the data within 5% of ten rounds (bench/spec_bench.py data).
KMEANS_MAX_ITER = 3
# k-means++ seeds are drawn from at most this many rows per centre (a seeded subsample): each
# seed costs one pass over the rows it draws from, and seeding is sequential. 10 rows per centre
# gave the same MMD to the data after the fit as 20 (within the spread over seeds, bench data).
SEED_ROWS_PER_CENTRE = 10
# Scores (row, centre) computed at once in a Lloyd assignment: 1 MB in float32, so a block's
# scores are still in the core's L2 cache when argmin reads them.
ASSIGN_SCORES_PER_BLOCK = 262_144

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
    matters more than arithmetic, so BLAS runs on one thread (see lwm.spec.threads).
    ``generator`` is a CPU generator that draws all k uniforms up front, so a seed gives
    the same rows on any device. When X has fewer than k distinct rows, duplicates are picked.
    """
    Xf = X.detach().to("cpu", torch.float32).numpy()
    n = Xf.shape[0]
    x_sq = np.einsum("ij,ij->i", Xf, Xf)
    uniforms = torch.rand(k, generator=generator, dtype=torch.float64).numpy()

    def sq_dist_to(i: int) -> np.ndarray:
        dist: np.ndarray = Xf @ Xf[i]
        dist *= -2.0
        dist += x_sq
        dist += x_sq[i]
        np.maximum(dist, 0.0, out=dist)
        return dist

    picked = np.empty(k, dtype=np.int64)
    cumulative = np.empty(n)
    with single_thread():
        picked[0] = min(int(uniforms[0] * n), n - 1)
        closest = sq_dist_to(int(picked[0])).astype(np.float64)
        for j in range(1, k):
            np.add.accumulate(closest, out=cumulative)
            total = float(cumulative[-1])
            if total > 0:
                idx = int(np.searchsorted(cumulative, uniforms[j] * total, side="right"))
            else:
                idx = int(uniforms[j] * n)
            picked[j] = min(idx, n - 1)
            np.minimum(closest, sq_dist_to(int(picked[j])), out=closest)
    return torch.from_numpy(picked)


def nearest_centre(X1: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of C (k, d) for every row x of X1 (n, d + 1), whose rows are [x, 1].

    One Lloyd assignment, CPU only. argmin_c ||x - c||^2 = argmin_c ||c||^2 - 2 x.c (||x||^2
    is the same for every c): the product of [x, 1] with [-2c, ||c||^2], with no bias to add.
    numpy's argmin along rows is several times faster than torch's on the CPU. Rows go in
    blocks whose scores stay in cache, shared out among threads (lwm.spec.threads).
    """
    scorer = torch.cat([-2.0 * C, (C * C).sum(1, keepdim=True)], 1).T
    n = X1.shape[0]
    step = max(1, ASSIGN_SCORES_PER_BLOCK // C.shape[0])
    starts = list(range(0, n, step))
    out = np.empty(n, dtype=np.int64)

    def assign(block_starts: list[int]) -> None:
        # One buffer for the share's blocks: a fresh 1 MB tensor per block costs an mmap and its page faults.
        buffer = torch.empty(step * C.shape[0])
        for s in block_starts:
            rows = X1[s : s + step]
            scores = buffer[: rows.shape[0] * C.shape[0]].view(rows.shape[0], C.shape[0])
            np.argmin(torch.mm(rows, scorer, out=scores).numpy(), axis=1, out=out[s : s + step])

    threads = thread_count()
    map_on_threads(assign, [starts[i::threads] for i in range(min(threads, len(starts)))])
    return torch.from_numpy(out)


def kmeans(X: torch.Tensor, k: int, generator: torch.Generator, max_iter: int = KMEANS_MAX_ITER) -> torch.Tensor:
    """Lloyd's k-means from k-means++ seeds; returns (k, d) centroids in X's dtype and device.

    Seeds come from a seeded subsample of at most SEED_ROWS_PER_CENTRE * k rows; the Lloyd
    rounds use all of X. Runs on the CPU in float32 (the reference's k-means is float32 too):
    it only seeds Z, and on the CPU a seed gives the same centres whatever X's device.
    """
    n, d = X.shape
    X1 = torch.ones(n, d + 1)  # rows [x, 1]: one product assigns, one index_add sums rows and counts them
    X1[:, :d] = X.detach().to("cpu", torch.float32)
    seed_pool = torch.arange(n)
    if n > SEED_ROWS_PER_CENTRE * k:
        seed_pool = torch.randperm(n, generator=generator)[: SEED_ROWS_PER_CENTRE * k]
    C = X1[seed_pool[kmeans_plus_plus_indices(X1[seed_pool, :d], k, generator)], :d]
    assign = None
    for _ in range(max_iter):
        new_assign = nearest_centre(X1, C)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros(k, d + 1).index_add_(0, assign, X1)
        nonempty = sums[:, d] > 0
        C[nonempty] = sums[nonempty, :d] / sums[nonempty, d:]  # empty clusters keep their centre
    return C.to(X.device, X.dtype)
