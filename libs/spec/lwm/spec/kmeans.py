"""Starting reduced sets of the RKME specs: k-means++ seeding, Lloyd's k-means, and a canonical row order.

Both run in the table fit's C kernels when they are available (lwm.spec.spec_kernels),
else in numpy and torch.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .spec_kernels import spec_kernels
from .threads import ScratchBuffers, map_on_threads, single_thread, thread_count

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

@functools.lru_cache(maxsize=16)
def _projection(columns: int) -> np.ndarray:
    """The fixed direction of canonical_projection, for rows of ``columns`` values (making a seeded generator costs ~0.2 ms)."""
    w = np.random.default_rng(12345).standard_normal(columns)
    if not np.all(w):
        raise AssertionError("the canonical direction must have no zero entry")  # a fixed seed: never, but projections rely on it
    w.flags.writeable = False
    return w


def canonical_projection(X: np.ndarray) -> np.ndarray:
    """(n,) float64: each row of X (n, ...) projected on a fixed direction with no zero entry, so a
    projection is finite only when its row is. In the C kernels for float64 rows, else an einsum (a
    BLAS matrix-vector product would wake BLAS threads for a few microseconds of work)."""
    flat = X.reshape(X.shape[0], -1)
    w = _projection(flat.shape[1])
    kernels = spec_kernels()
    if kernels is not None and flat.dtype == np.float64:
        return kernels.project_rows(flat, w)
    projection: np.ndarray = np.einsum("ij,j->i", flat, w)
    return projection


def canonical_row_order(X: np.ndarray, projection: np.ndarray | None = None) -> np.ndarray:
    """Row order of X (n, ...) that does not depend on the input order: sort by canonical_projection
    (pass it when already computed).

    Fitting rows in this order makes a spec independent of how they were shuffled.
    """
    # Not a stable sort: rows with equal projections are equal rows (almost surely), and a stable
    # sort would only keep them in input order; numpy's default sort is 5x faster here.
    return np.argsort(canonical_projection(X) if projection is None else projection)


def kmeans_plus_plus_indices(X: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of k rows of X (n, d) picked by k-means++ (D^2) seeding, as a CPU int64 tensor.

    Runs on the CPU in float32: k small sequential passes, where per-call overhead matters
    more than arithmetic. The native kernel makes all of them in one call; the numpy path
    runs BLAS on one thread (see lwm.spec.threads) and makes a pass one matrix-vector
    product: ||x - y||^2 = [x, ||x||^2, 1] . [-2y, 1, ||y||^2].
    ``generator`` is a CPU generator that draws all k uniforms up front, so a seed gives
    the same rows on any device. When X has fewer than k distinct rows, duplicates are picked.
    """
    n, d = X.shape
    uniforms = torch.rand(k, generator=generator, dtype=torch.float64).numpy()
    kernels = spec_kernels()
    if kernels is not None:
        return torch.from_numpy(kernels.kmeans_plus_plus(X.detach().to("cpu", torch.float32).numpy(), uniforms))
    points = np.empty((n, d + 2), dtype=np.float32)
    points[:, :d] = X.detach().to("cpu", torch.float32).numpy()
    x_sq = np.einsum("ij,ij->i", points[:, :d], points[:, :d])
    points[:, d] = x_sq
    points[:, d + 1] = 1.0
    seeds = np.empty_like(points)
    np.multiply(points[:, :d], -2.0, out=seeds[:, :d])
    seeds[:, d] = 1.0
    seeds[:, d + 1] = x_sq

    def sq_dist_to(i: int, out: np.ndarray) -> np.ndarray:
        np.matmul(points, seeds[i], out=out)
        np.maximum(out, 0.0, out=out)
        return out

    picked = np.empty(k, dtype=np.int64)
    cumulative = np.empty(n)
    dist = np.empty(n, dtype=np.float32)
    with single_thread():
        picked[0] = min(int(uniforms[0] * n), n - 1)
        closest = sq_dist_to(int(picked[0]), dist).astype(np.float64)
        for j in range(1, k):
            np.add.accumulate(closest, out=cumulative)
            total = float(cumulative[-1])
            if total > 0:
                idx = int(cumulative.searchsorted(uniforms[j] * total, side="right"))
            else:
                idx = int(uniforms[j] * n)
            picked[j] = min(idx, n - 1)
            np.minimum(closest, sq_dist_to(int(picked[j]), dist), out=closest)
    return torch.from_numpy(picked)


def nearest_centre(rows: torch.Tensor, C: torch.Tensor, buffers: ScratchBuffers | None = None) -> torch.Tensor:
    """Index of the nearest row of C (k, d) for every x, where ``rows`` (n, m > d) are [x, 1, ...]
    (x = the first d columns, column d all ones, further columns ignored).

    One Lloyd assignment, CPU only. argmin_c ||x - c||^2 = argmin_c ||c||^2 - 2 x.c (||x||^2
    is the same for every c): the product of the rows with [-2c, ||c||^2, 0, ...], with no bias
    to add. numpy's argmin along rows is several times faster than torch's on the CPU. Rows go
    in blocks whose scores stay in cache, shared out among threads (lwm.spec.threads), each
    share's scores in one of ``buffers``.
    """
    k, d = C.shape
    scorer = torch.zeros(rows.shape[1], k)
    scorer[:d] = -2.0 * C.T
    scorer[d] = (C * C).sum(1)
    n = rows.shape[0]
    step = max(1, ASSIGN_SCORES_PER_BLOCK // k)
    starts = list(range(0, n, step))
    out = np.empty(n, dtype=np.int64)
    threads = thread_count()
    shares = [starts[i::threads] for i in range(min(threads, len(starts)))]
    blocks = (buffers or ScratchBuffers(torch.device("cpu"))).get(len(shares), step * k)

    def assign(share: int) -> None:
        for s in shares[share]:
            block = rows[s : s + step]
            scores = blocks[share][: block.shape[0] * k].view(block.shape[0], k)
            np.argmin(torch.mm(block, scorer, out=scores).numpy(), axis=1, out=out[s : s + step])

    map_on_threads(assign, range(len(shares)))
    return torch.from_numpy(out)


def lloyd_assignment(rows: torch.Tensor, C: torch.Tensor, buffers: ScratchBuffers | None = None, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Lloyd assignment of ``rows`` (n, m), or of rows[sample], as in nearest_centre, and the
    sums (k, m) of the rows assigned to each centre, for kmeans without the C kernels: nearest_centre
    and one index_add (index_add from a strided slice of the rows was 3.5x slower)."""
    if sample is not None:
        rows = rows[sample]
    assign = nearest_centre(rows, C, buffers)
    return assign, torch.zeros(C.shape[0], rows.shape[1]).index_add_(0, assign, rows)


def kmeans(
    rows: torch.Tensor,
    d: int,
    k: int,
    generator: torch.Generator,
    buffers: ScratchBuffers | None = None,
    max_iter: int = KMEANS_MAX_ITER,
    sample: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lloyd's k-means of the points rows[:, :d], or rows[sample, :d], from k-means++ seeds: (k, d)
    float32 CPU centroids.

    ``rows`` is a contiguous CPU float32 tensor (n, m > d) whose column d is all ones and whose
    further columns are ignored, e.g. the RKME fit's rows [x, 1, -gamma ||x||^2]: the sums of
    each cluster's rows (lloyd_assignment) hold its count in column d. The C kernels run the
    seeding and the Lloyd rounds in one call (SpecKernels.kmeans) and read ``sample`` (row
    indices) in place: a copy is megabytes of fresh pages at 100,000 rows (~2 ms of a first fit
    in a process, measured). ``buffers`` holds the numpy path's score blocks (the fit lends its
    kernel-block buffers: no fresh pages).
    Seeds come from a seeded subsample of at most SEED_ROWS_PER_CENTRE * k of the points; the
    Lloyd rounds use all of them. Float32 on the CPU (the reference's k-means is float32 too): it only
    seeds Z, and on the CPU a seed gives the same centres whatever the fit's device.
    """
    n = rows.shape[0] if sample is None else len(sample)
    if n > SEED_ROWS_PER_CENTRE * k:
        picks = torch.randperm(n, generator=generator)[: SEED_ROWS_PER_CENTRE * k]
        seed_pool = picks if sample is None else sample[picks]
    else:
        seed_pool = torch.arange(n) if sample is None else sample
    kernels = spec_kernels()
    if kernels is not None:
        uniforms = torch.rand(k, generator=generator, dtype=torch.float64).numpy()  # as kmeans_plus_plus_indices draws them
        return kernels.kmeans(rows, d, uniforms, seed_pool, sample, max_iter)[0]
    C = rows[seed_pool[kmeans_plus_plus_indices(rows[seed_pool, :d], k, generator)], :d]
    assign = None
    for _ in range(max_iter):
        new_assign, sums = lloyd_assignment(rows, C, buffers, sample)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        nonempty = sums[:, d] > 0
        C[nonempty] = sums[nonempty, :d] / sums[nonempty, d : d + 1]  # empty clusters keep their centre
    return C
