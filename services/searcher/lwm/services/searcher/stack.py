"""Stacked RKME specifications of one comparable group, updated in place as learnwares come and go.

All specs of a group (same type, point shape and gamma) live in a few preallocated
tensors, so the MMD from a user's spec to every one of them is a handful of matrix
products. Rows are append-only: an update appends a new row and marks the old one
dead, so a search holding a `StackView` never sees a row change under it; dead rows
are dropped by a compaction that builds new tensors once they are a quarter of the
stack. Added specs wait in a pending list and enter the tensors together, in one
vectorised copy, when the next search takes a view (a backlog of 1M changes is one copy).

Memory per spec (the market's size is bounded by it): Gaussian-kernel groups store each
spec's mean point in float32 and its points' offsets from it and its weights in float16
(so the stored spec depends on the spec alone, not on the group or shard it is in), and a random-Fourier-feature
sketch of each spec's kernel mean embedding as int8 codes with a float32 scale, in which
MMD is a plain Euclidean distance (the index's shortlist). For 100 points in 16
dimensions that is 3,993 bytes a spec (float32 points plus float32 sketches took 9.7 KB).
The stored spec *is* the rounded one: self terms, sketches and exact MMDs are all
computed from it, so the only error is the rounding of the points' offsets from their
mean (relative 2^-11; tests/unit/test_searcher_index.py bounds its effect on MMDs).
Image groups keep float32 points (their NNGP kernel sees absolute pixel values) and no sketch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE
from lwm.services.searcher.native_kernel import native_kernels
from lwm.spec.nngp import convnet_nngp_kernel

# The kernels' arithmetic: float32 doubles their speed over float64; MMD differences that
# rank learnwares are many orders above its rounding (points are centred, so large feature
# offsets do not cost precision).
STACK_DTYPE = torch.float32
POINT_DTYPE = torch.float16  # stored points and weights of Gaussian-kernel groups
IMAGE_POINT_DTYPE = torch.float32
# Kernel entries per block of the cross-term loop, in one reused 4 MB buffer: large enough
# that two threads share each kernel call well, small enough to stay in cache (measured:
# 3x faster here than the freshly allocated 64 MB blocks of lwm.spec.kernels.mmd_to_many).
BLOCK_ENTRIES = 1_048_576
EXACT_BLOCK_ROWS = 2048  # stored specs widened to float32 at once for exact MMDs (~15 MB for 100 x 16)
SKETCH_FEATURES = 512
# The first SKETCH_HEAD features are stored apart: a first pass over every row reads them
# only (64 bytes a spec), the rest are read for the rows that pass survives.
SKETCH_HEAD = 64
SKETCH_SEED = 20240611
SKETCH_BLOCK_ROWS = 128  # specs sketched at once when new rows are completed (~13 MB of features)
PENDING_BLOCK_ROWS = 65536  # pending specs copied into the tensors at once
MIN_CAPACITY = 256
HEADROOM_FRACTION = 64  # a reallocation leaves room for 1/64 more rows: bytes per spec stay near the rows'
LOG2_E = 1.0 / math.log(2.0)
# Base-2 exponents are floored at 2^-126 (as the native kernel does): torch's exp2 of a
# float32 below -126 (a subnormal result) takes a slow path, 6x the time (measured).
EXP2_FLOOR = -126.0
COMPACT_MIN_DEAD = 256


def capacity_for(rows: int) -> int:
    return max(MIN_CAPACITY, rows + rows // HEADROOM_FRACTION)


def image_shape_of(spec_type: str, point_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The (C, H, W) of image specs, whose kernel is the ConvNet NNGP on images; None: the Gaussian kernel."""
    return point_shape if spec_type == IMAGE_SPEC_TYPE else None


class RandomFourierSketch:
    """phi(x) = sqrt(2/D) [cos(Wx), sin(Wx)] with W ~ N(0, 2 gamma I), so <phi(x), phi(y)> ~ exp(-gamma ||x - y||^2).

    A spec's sketch sum_i beta_i phi(z_i) is an unbiased random-feature estimate of its
    kernel mean embedding (Rahimi & Recht 2007): ||sketch_1 - sketch_2||^2 estimates the MMD.
    Features are interleaved (cos, sin of one frequency side by side), so any prefix of
    even length is itself such a sketch, with fewer features.
    """

    def __init__(self, dim: int, gamma: float, features: int = SKETCH_FEATURES, seed: int = SKETCH_SEED, device: torch.device | str = "cpu") -> None:
        generator = torch.Generator().manual_seed(seed)
        self.W = (torch.randn(dim, features // 2, generator=generator, dtype=torch.float64) * math.sqrt(2.0 * gamma)).to(device, STACK_DTYPE)
        self.features = 2 * (features // 2)
        self.scale = math.sqrt(2.0 / self.features)

    def embed(self, z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Sketches of specs z (..., K, d), beta (..., K) -> (..., D)."""
        projected = z.to(self.W.dtype) @ self.W
        weights = beta.to(self.W.dtype).unsqueeze(-2)
        cosines, sines = (weights @ torch.cos(projected)).squeeze(-2), (weights @ torch.sin(projected)).squeeze(-2)
        return self.scale * torch.stack([cosines, sines], dim=-1).flatten(-2)


def quantise_sketches(sketches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes (n, D) and float32 scales (n,) with sketches ~ scales[:, None] * codes (round to nearest)."""
    scales = sketches.abs().amax(1) / 127.0
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = torch.round(sketches / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return codes, scales.to(torch.float32)


def sketch_dots(codes: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
    """codes (n, D) int8 @ user (D,) -> (n,) float32: the native kernel on the CPU, else blocks in torch."""
    kernel = native_kernels() if codes.device.type == "cpu" else None
    if kernel is not None:
        return kernel.sketch_dots(codes, user)
    user = user.to(torch.float32)
    out = torch.empty(codes.shape[0], dtype=torch.float32, device=codes.device)
    step = max(1, BLOCK_ENTRIES // max(codes.shape[1], 1))
    for start in range(0, codes.shape[0], step):
        out[start : start + step] = codes[start : start + step].to(torch.float32) @ user
    return out


def gather_rows(tensor: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """tensor[rows]; on the CPU, index rows by numpy's take (2-3x faster than torch's indexing
    for thousands of scattered rows of a large tensor, measured)."""
    if isinstance(rows, slice) or tensor.device.type != "cpu":
        return tensor[rows]
    return torch.from_numpy(np.take(tensor.numpy(), rows.numpy(), axis=0))


def centre_rows(stored: torch.Tensor, offsets: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Stored points (n, K, d) plus their specs' offsets (n, d), minus the origin: float64 (n, K, d)."""
    return stored.to(torch.float64).add_((offsets.to(torch.float64) - origin)[:, None, :])


def augment_points(points: torch.Tensor, gamma: float) -> torch.Tensor:
    """[p, 1, -gamma ||p||^2] for points (..., d): the stacked side of the one-product kernel.

    Computed in float64, written into one float32 buffer (a search's 1,000 re-ranked specs:
    concatenating in float64 and casting took 4 ms more, measured).
    """
    points = points.to(torch.float64)
    d = points.shape[-1]
    out = torch.empty(*points.shape[:-1], d + 2, dtype=STACK_DTYPE, device=points.device)
    out[..., :d] = points
    out[..., d] = 1.0
    out[..., d + 1] = torch.linalg.vecdot(points, points).mul_(-gamma)
    return out


def augment_queries(z: torch.Tensor, gamma: float) -> torch.Tensor:
    """log2(e) [2 gamma z, -gamma ||z||^2, 1] for z (..., K, d): 2^<query, point> = exp(-gamma ||z - p||^2).

    Base 2 because torch's exp2 is about 3x faster than its exp on this CPU (measured).
    """
    z = z.to(torch.float64)
    return LOG2_E * torch.cat([2.0 * gamma * z, -gamma * (z * z).sum(-1, keepdim=True), torch.ones_like(z[..., :1])], dim=-1).to(STACK_DTYPE)


def cross_terms(queries: torch.Tensor, beta: torch.Tensor, augmented: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """<Phi_user, Phi_i> = sum_a sum_b beta_a w_ib exp(-gamma ||z_a - p_ib||^2) for n stacked specs.

    queries = augment_queries(z) (K, d+2) and beta (K,): the user's spec; augmented =
    augment_points(p) (n, K2, d+2) and weights (n, K2): the stacked specs, in the same
    frame (centred on the same origin). The exponent of a block of points is one matrix
    product into a reused buffer (coincident points may round to exp(1e-7)); on the CPU the
    fused native kernel does the same in one pass when it is available. Returns float64 (n,).
    """
    n, k2, width = augmented.shape
    flat = augmented.reshape(n * k2, width)
    beta = beta.to(augmented.dtype)
    kernel = native_kernels() if augmented.device.type == "cpu" else None
    if kernel is not None:
        per_point = kernel.cross_terms(flat, queries, beta)
    else:
        per_point = torch.empty(n * k2, dtype=augmented.dtype, device=augmented.device)
        step = max(1, BLOCK_ENTRIES // queries.shape[0])
        buffer = torch.empty(min(step, n * k2), queries.shape[0], dtype=augmented.dtype, device=augmented.device)
        for start in range(0, n * k2, step):
            block = buffer[: min(step, n * k2 - start)]
            torch.mm(flat[start : start + step], queries.T, out=block).clamp_min_(EXP2_FLOOR).exp2_()
            torch.mv(block, beta, out=per_point[start : start + step])
    return (per_point.reshape(n, k2) * weights.to(augmented.dtype)).sum(1).to(torch.float64)


def gaussian_self_terms(points: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """||Phi_i||^2 = w_i^T K(p_i, p_i) w_i for stacked specs, points (n, K, d) centred, weights (n, K):
    float32 (n,), by the one-product kernel of cross_terms in a batched product."""
    exponents = torch.bmm(augment_queries(points, gamma), augment_points(points, gamma).transpose(1, 2)).clamp_min_(EXP2_FLOOR).exp2_()
    w = weights.to(STACK_DTYPE)
    return (w.unsqueeze(1) @ exponents @ w.unsqueeze(2)).reshape(-1)


def nngp_cross_terms(z: torch.Tensor, beta: torch.Tensor, points: torch.Tensor, weights: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
    """<Phi_user, Phi_i> under the image specs' ConvNet NNGP kernel: z (K, C*H*W), beta (K,),
    points (n, K2, C*H*W) uncentred, weights (n, K2); float64 (n,). Not translation
    invariant, so image stacks keep their points in the data's frame."""
    n, k2 = weights.shape
    gram = convnet_nngp_kernel(z.reshape(-1, *image_shape).to(torch.float64), points.reshape(n * k2, *image_shape).to(torch.float64))
    return ((beta.to(torch.float64) @ gram).reshape(n, k2) * weights.to(torch.float64)).sum(1)


def nngp_self_terms(points: torch.Tensor, weights: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
    """||Phi_i||^2 under the ConvNet NNGP kernel for points (n, K2, C*H*W), weights (n, K2)."""
    terms = [nngp_cross_terms(p, w, p[None], w[None], image_shape)[0] for p, w in zip(points.to(torch.float64), weights.to(torch.float64))]
    return torch.stack(terms) if terms else torch.zeros(0, dtype=torch.float64, device=points.device)


@dataclass(frozen=True)
class StackView:
    """What one search reads: rows below `count` of tensors no writer touches again.

    Points are stored centred on the group's `origin` (the kernel only sees differences,
    and low precision keeps more of it near the origin); `mask` marks the rows the search
    may return (alive and, if asked, among given ids).
    """

    ids: list[str]
    origin: torch.Tensor  # (d,) float64: the frame of the kernels' float32 arithmetic
    stored_points: torch.Tensor  # (capacity, K, d): p - offset, POINT_DTYPE (images: p, float32)
    offsets: torch.Tensor  # (capacity, d) float32: each spec's mean point (images: none)
    weights: torch.Tensor  # (capacity, K), padding points weigh 0
    self_terms: torch.Tensor  # (capacity,) float32
    sketch_head: torch.Tensor  # (capacity, SKETCH_HEAD) int8 codes
    sketch_tail: torch.Tensor  # (capacity, SKETCH_FEATURES - SKETCH_HEAD) int8 codes
    sketch_scales: torch.Tensor  # (capacity,) float32: a row's sketch = scale * codes
    sketch_sq_norms: torch.Tensor  # (capacity,) float32, of the dequantised sketch
    head_sq_norms: torch.Tensor  # (capacity,) float32, of its head
    sketch: RandomFourierSketch
    mask: torch.Tensor
    count: int
    group_size: int  # alive rows, whatever the mask
    gamma: float
    image_shape: tuple[int, ...] | None  # image specs: their kernel's (C, H, W); origin 0

    def rows(self) -> torch.Tensor:
        return torch.nonzero(self.mask).reshape(-1)

    def centred(self, z: torch.Tensor) -> torch.Tensor:
        return z.to(torch.float64) - self.origin

    def points(self, row: int) -> torch.Tensor:
        """The spec's points of a row, float64 (K, d), in the data's own frame."""
        if self.image_shape is not None:
            return self.stored_points[row].to(torch.float64)
        return self.stored_points[row].to(torch.float64) + self.offsets[row].to(torch.float64)

    def spec_weights(self, row: int) -> torch.Tensor:
        """The spec's weights of a row, float64 (K,)."""
        return self.weights[row].to(torch.float64)

    def augmented(self, rows: slice | torch.Tensor) -> torch.Tensor:
        """augment_points of the rows' points centred on the origin, float32 (n, K, d + 2)."""
        return augment_points(centre_rows(gather_rows(self.stored_points, rows), self.offsets[rows], self.origin), self.gamma)


class SpecStack:
    """Growable stacked specs of one group; not thread-safe (LearnwareIndex serialises writers)."""

    def __init__(self, point_shape: tuple[int, ...], gamma: float, device: torch.device, image_shape: tuple[int, ...] | None = None) -> None:
        self.dim = int(np.prod(point_shape))
        self.gamma = gamma
        self.device = device
        self.image_shape = image_shape
        self.point_dtype = POINT_DTYPE if image_shape is None else IMAGE_POINT_DTYPE
        # The mean point of the group's first spec; 0 for images (their kernel sees positions).
        self.origin: np.ndarray | None = None if image_shape is None else np.zeros(self.dim)
        self.sketch = RandomFourierSketch(self.dim, gamma, device=device)
        self.row_of: dict[str, int] = {}
        self._pending: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # added, not yet in the tensors: points, weights, offset
        self._allocate(capacity=MIN_CAPACITY, points_per_spec=1)
        self.ids: list[str] = []
        self.count = 0
        self.complete = 0  # rows below this have their self terms and sketches

    def _allocate(self, capacity: int, points_per_spec: int) -> None:
        def zeros(*shape: int, dtype: torch.dtype = STACK_DTYPE) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=self.device)

        sketched = 0 if self.image_shape is not None else capacity  # image groups are searched exhaustively, uncentred
        self.stored_points = zeros(capacity, points_per_spec, self.dim, dtype=self.point_dtype)
        self.offsets = zeros(sketched, self.dim)
        self.weights = zeros(capacity, points_per_spec, dtype=self.point_dtype)
        self.self_terms = zeros(capacity)
        self.sketch_head = zeros(sketched, SKETCH_HEAD, dtype=torch.int8)
        self.sketch_tail = zeros(sketched, self.sketch.features - SKETCH_HEAD, dtype=torch.int8)
        self.sketch_scales = zeros(sketched)
        self.sketch_sq_norms = zeros(sketched)
        self.head_sq_norms = zeros(sketched)
        self.alive = torch.zeros(capacity, dtype=torch.bool, device=self.device)

    def _row_tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.stored_points, self.weights, self.offsets, self.self_terms, self.sketch_head, self.sketch_tail, self.sketch_scales, self.sketch_sq_norms, self.head_sq_norms)

    def __len__(self) -> int:
        return len(self.row_of) + len(self._pending)

    def __contains__(self, learnware_id: str) -> bool:
        return learnware_id in self.row_of or learnware_id in self._pending

    @property
    def nbytes(self) -> int:
        """Memory held by the stack's tensors (pending specs are counted once they are in them)."""
        return sum(t.nbytes for t in self._row_tensors()) + self.alive.nbytes

    @property
    def points_per_spec(self) -> int:
        return self.stored_points.shape[1]

    def add(self, learnware_id: str, z: np.ndarray, beta: np.ndarray) -> None:
        """Add a spec (z (K, ...), beta (K,)); replaces the id's previous one.

        It waits, already rounded to the stored precision, with the other pending specs;
        its row, self term and sketch are made with theirs when the next view is taken.
        """
        self.remove(learnware_id)
        points = np.asarray(z, dtype=np.float64).reshape(z.shape[0], -1)
        weights = np.asarray(beta, dtype=np.float64).reshape(-1)
        if self.image_shape is not None:
            self._pending[learnware_id] = (points.astype(np.float32), weights.astype(np.float32), np.zeros(0, dtype=np.float32))
            return
        if self.origin is None:
            self.origin = points.mean(0)
        offset = points.mean(0).astype(np.float32)
        self._pending[learnware_id] = ((points - offset).astype(np.float16), weights.astype(np.float16), offset)

    def _flush(self) -> None:
        """Pending specs into new rows, one vectorised copy per block of them."""
        if not self._pending:
            return
        pending = list(self._pending.items())
        self._pending = {}
        needed = self.count + len(pending)
        k = max(self.points_per_spec, max(points.shape[0] for _, (points, _, _) in pending))
        if needed > self.stored_points.shape[0] or k > self.points_per_spec:
            self._reallocate(capacity_for(len(self.row_of) + len(pending)), k)
        numpy_dtype = np.float16 if self.point_dtype == torch.float16 else np.float32
        for start in range(0, len(pending), PENDING_BLOCK_ROWS):
            block = pending[start : start + PENDING_BLOCK_ROWS]
            points = np.zeros((len(block), k, self.dim), dtype=numpy_dtype)  # padding points stay 0, with weight 0
            weights = np.zeros((len(block), k), dtype=numpy_dtype)
            for i, (_, (z, beta, _)) in enumerate(block):
                points[i, : z.shape[0]] = z
                weights[i, : beta.shape[0]] = beta
            rows = slice(self.count, self.count + len(block))
            if self.image_shape is None:
                self.offsets[rows] = torch.from_numpy(np.stack([offset for _, (_, _, offset) in block])).to(self.device)
            self.stored_points[rows, :k] = torch.from_numpy(points).to(self.device)
            self.weights[rows, :k] = torch.from_numpy(weights).to(self.device)
            self.alive[rows] = True
            for i, (learnware_id, _) in enumerate(block):
                self.row_of[learnware_id] = self.count + i
            self.ids.extend(learnware_id for learnware_id, _ in block)
            self.count += len(block)

    def complete_new_rows(self) -> None:
        """Pending specs into rows, then the self terms and sketches of the rows added since the last call."""
        self._flush()
        for start in range(self.complete, self.count, SKETCH_BLOCK_ROWS):
            new = slice(start, min(start + SKETCH_BLOCK_ROWS, self.count))
            weights = self.weights[new].to(torch.float64)
            if self.image_shape is not None:
                self.self_terms[new] = nngp_self_terms(self.stored_points[new], weights, self.image_shape).to(self.self_terms.dtype)
                continue
            points = centre_rows(self.stored_points[new], self.offsets[new], self._origin())
            self.self_terms[new] = gaussian_self_terms(points, weights, self.gamma).to(self.self_terms.dtype)
            codes, scales = quantise_sketches(self.sketch.embed(points, weights))
            self.sketch_head[new] = codes[:, :SKETCH_HEAD]
            self.sketch_tail[new] = codes[:, SKETCH_HEAD:]
            self.sketch_scales[new] = scales
            stored = scales[:, None] * codes.to(torch.float32)
            self.sketch_sq_norms[new] = (stored * stored).sum(1)
            self.head_sq_norms[new] = (stored[:, :SKETCH_HEAD] * stored[:, :SKETCH_HEAD]).sum(1)
        self.complete = self.count

    def remove(self, learnware_id: str) -> None:
        if self._pending.pop(learnware_id, None) is not None:
            return
        row = self.row_of.pop(learnware_id, None)
        if row is None:
            return
        self.alive[row] = False
        dead = self.count - len(self.row_of)
        if dead >= COMPACT_MIN_DEAD and dead * 4 >= self.count:
            self._reallocate(capacity_for(len(self.row_of)), self.points_per_spec)

    def _reallocate(self, capacity: int, points_per_spec: int) -> None:
        """New tensors holding only the alive rows (views taken earlier keep the old ones)."""
        old = self._row_tensors()
        keep = torch.nonzero(self.alive[: self.count]).reshape(-1)
        completed = int((keep < self.complete).sum())
        self._allocate(capacity, points_per_spec)
        n, k = keep.shape[0], old[0].shape[1]
        self.stored_points[:n, :k] = old[0][keep]
        self.weights[:n, :k] = old[1][keep]
        for new, kept in zip(self._row_tensors()[2:], old[2:]):
            if new.shape[0]:
                new[:n] = kept[keep]
        self.alive[:n] = True
        self.ids = [self.ids[row] for row in keep.tolist()]
        self.row_of = {learnware_id: row for row, learnware_id in enumerate(self.ids)}
        self.count = n
        self.complete = completed

    def _origin(self) -> torch.Tensor:
        return torch.as_tensor(self.origin if self.origin is not None else np.zeros(self.dim), dtype=torch.float64, device=self.device)

    def view(self, learnware_ids: set[str] | None = None) -> StackView:
        """A snapshot for one search, restricted to `learnware_ids` when given."""
        self.complete_new_rows()
        if learnware_ids is None:
            mask = self.alive[: self.count].clone()
        else:
            mask = torch.zeros(self.count, dtype=torch.bool, device=self.device)
            rows = [self.row_of[i] for i in learnware_ids if i in self.row_of]
            mask[torch.as_tensor(rows, dtype=torch.long, device=self.device)] = True
        return StackView(
            ids=self.ids,
            origin=self._origin(),
            stored_points=self.stored_points,
            offsets=self.offsets,
            weights=self.weights,
            self_terms=self.self_terms,
            sketch_head=self.sketch_head,
            sketch_tail=self.sketch_tail,
            sketch_scales=self.sketch_scales,
            sketch_sq_norms=self.sketch_sq_norms,
            head_sq_norms=self.head_sq_norms,
            sketch=self.sketch,
            mask=mask,
            count=self.count,
            group_size=len(self.row_of),
            gamma=self.gamma,
            image_shape=self.image_shape,
        )
