"""Stacked RKME specifications of one comparable group, updated in place as learnwares come and go.

All specs of a group (same type, point shape and gamma) live in a few preallocated
tensors, so the MMD from a user's spec to every one of them is a handful of matrix
products. Rows are append-only: an update appends a new row and marks the old one
dead, so a search holding a `StackView` never sees a row change under it; dead rows
are dropped by a compaction that builds new tensors once they are a quarter of the
stack. Each row also carries a random-Fourier-feature sketch of its kernel mean
embedding, in which MMD is a plain Euclidean distance (the index's shortlist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE
from lwm.services.searcher.native_kernel import native_cross_terms
from lwm.spec.kernels import self_inner_products
from lwm.spec.nngp import convnet_nngp_kernel

# float32 halves memory (100k specs of 100 x 16 points: 720 MB) and doubles kernel speed;
# MMD differences that rank learnwares are many orders above its rounding (points are
# stored centred, so large feature offsets do not cost precision).
STACK_DTYPE = torch.float32
# Kernel entries per block of the cross-term loop, in one reused 4 MB buffer: large enough
# that two threads share each kernel call well, small enough to stay in cache (measured:
# 3x faster here than the freshly allocated 64 MB blocks of lwm.spec.kernels.mmd_to_many).
BLOCK_ENTRIES = 1_048_576
SKETCH_FEATURES = 512
SKETCH_SEED = 20240611
SKETCH_BLOCK_ROWS = 128  # specs sketched at once when new rows are completed (~13 MB of features)
MIN_CAPACITY = 256
LOG2_E = 1.0 / math.log(2.0)
COMPACT_MIN_DEAD = 256


def image_shape_of(spec_type: str, point_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The (C, H, W) of image specs, whose kernel is the ConvNet NNGP on images; None: the Gaussian kernel."""
    return point_shape if spec_type == IMAGE_SPEC_TYPE else None


class RandomFourierSketch:
    """phi(x) = sqrt(2/D) [cos(Wx), sin(Wx)] with W ~ N(0, 2 gamma I), so <phi(x), phi(y)> ~ exp(-gamma ||x - y||^2).

    A spec's sketch sum_i beta_i phi(z_i) is an unbiased random-feature estimate of its
    kernel mean embedding (Rahimi & Recht 2007): ||sketch_1 - sketch_2||^2 estimates the MMD.
    """

    def __init__(self, dim: int, gamma: float, features: int = SKETCH_FEATURES, seed: int = SKETCH_SEED, device: torch.device | str = "cpu") -> None:
        generator = torch.Generator().manual_seed(seed)
        self.W = (torch.randn(dim, features // 2, generator=generator, dtype=torch.float64) * math.sqrt(2.0 * gamma)).to(device, STACK_DTYPE)
        self.scale = math.sqrt(2.0 / (2 * (features // 2)))

    def embed(self, z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Sketches of specs z (..., K, d), beta (..., K) -> (..., D)."""
        projected = z.to(self.W.dtype) @ self.W
        features = torch.cat([torch.cos(projected), torch.sin(projected)], dim=-1)
        return self.scale * (beta.to(self.W.dtype).unsqueeze(-2) @ features).squeeze(-2)


def augment_points(points: torch.Tensor, gamma: float) -> torch.Tensor:
    """[p, 1, -gamma ||p||^2] for points (..., d): the stacked side of the one-product kernel."""
    points = points.to(torch.float64)
    ones = torch.ones_like(points[..., :1])
    return torch.cat([points, ones, -gamma * (points * points).sum(-1, keepdim=True)], dim=-1).to(STACK_DTYPE)


def augment_queries(z: torch.Tensor, gamma: float) -> torch.Tensor:
    """log2(e) [2 gamma z, -gamma ||z||^2, 1] for z (K, d): 2^<query, point> = exp(-gamma ||z - p||^2).

    Base 2 because torch's exp2 is about 3x faster than its exp on this CPU (measured).
    """
    z = z.to(torch.float64)
    return LOG2_E * torch.cat([2.0 * gamma * z, -gamma * (z * z).sum(-1, keepdim=True), torch.ones_like(z[:, :1])], dim=-1).to(STACK_DTYPE)


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
    kernel = native_cross_terms() if augmented.device.type == "cpu" else None
    if kernel is not None:
        per_point = kernel(flat, queries, beta)
    else:
        per_point = torch.empty(n * k2, dtype=augmented.dtype, device=augmented.device)
        step = max(1, BLOCK_ENTRIES // queries.shape[0])
        buffer = torch.empty(min(step, n * k2), queries.shape[0], dtype=augmented.dtype, device=augmented.device)
        for start in range(0, n * k2, step):
            block = buffer[: min(step, n * k2 - start)]
            torch.mm(flat[start : start + step], queries.T, out=block).exp2_()
            torch.mv(block, beta, out=per_point[start : start + step])
    return (per_point.reshape(n, k2) * weights).sum(1).to(torch.float64)


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
    and float32 keeps their precision near the origin); `mask` marks the rows the search
    may return (alive and, if asked, among given ids).
    """

    ids: list[str]
    origin: torch.Tensor  # (d,) float64
    augmented: torch.Tensor  # (capacity, K, d + 2): augment_points(p - origin)
    weights: torch.Tensor
    self_terms: torch.Tensor
    sketches: torch.Tensor
    sketch_sq_norms: torch.Tensor
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
        return self.augmented[row, :, :-2].to(torch.float64) + self.origin


class SpecStack:
    """Growable stacked specs of one group; not thread-safe (LearnwareIndex serialises writers)."""

    def __init__(self, point_shape: tuple[int, ...], gamma: float, device: torch.device, image_shape: tuple[int, ...] | None = None) -> None:
        self.dim = int(np.prod(point_shape))
        self.gamma = gamma
        self.device = device
        self.image_shape = image_shape
        # The mean point of the group's first spec; 0 for images (their kernel sees positions).
        self.origin: torch.Tensor | None = None if image_shape is None else torch.zeros(self.dim, dtype=torch.float64, device=device)
        self.sketch = RandomFourierSketch(self.dim, gamma, device=device)
        self.row_of: dict[str, int] = {}
        self._allocate(capacity=MIN_CAPACITY, points_per_spec=1)
        self.ids: list[str] = []
        self.count = 0
        self.complete = 0  # rows below this have their self terms and sketches

    def _allocate(self, capacity: int, points_per_spec: int) -> None:
        def zeros(*shape: int, dtype: torch.dtype = STACK_DTYPE) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=self.device)

        self.augmented = zeros(capacity, points_per_spec, self.dim + 2)
        self.weights = zeros(capacity, points_per_spec)
        self.self_terms = zeros(capacity, dtype=torch.float64)
        self.sketches = zeros(capacity, 2 * self.sketch.W.shape[1])
        self.sketch_sq_norms = zeros(capacity)
        self.alive = torch.zeros(capacity, dtype=torch.bool, device=self.device)

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def nbytes(self) -> int:
        """Memory held by the stack's tensors."""
        return sum(t.nbytes for t in (self.augmented, self.weights, self.self_terms, self.sketches, self.sketch_sq_norms, self.alive))

    @property
    def points_per_spec(self) -> int:
        return self.augmented.shape[1]

    def add(self, learnware_id: str, z: np.ndarray, beta: np.ndarray) -> None:
        """Append a spec (z (K, ...), beta (K,)); replaces the id's previous row.

        Its self term and sketch are computed with those of other new rows, in one batch,
        when the next search takes a view (a backlog of 100k changes then costs seconds).
        """
        self.remove(learnware_id)
        k = z.shape[0]
        points = torch.as_tensor(z.reshape(k, -1), dtype=torch.float64, device=self.device)
        if self.origin is None:
            self.origin = points.mean(0)
        full = self.count == self.augmented.shape[0]
        if full or k > self.points_per_spec:
            self._reallocate(max(MIN_CAPACITY, 2 * len(self)) if full else self.augmented.shape[0], max(k, self.points_per_spec))
        row = self.count
        centred = points - self.origin
        self.augmented[row, :k, :-2] = centred  # as augment_points(); padding points stay 0, with weight 0
        self.augmented[row, :k, -2] = 1.0
        self.augmented[row, :k, -1] = -self.gamma * (centred * centred).sum(1)
        self.weights[row, :k] = torch.as_tensor(beta, dtype=STACK_DTYPE, device=self.device)
        self.alive[row] = True
        self.ids.append(learnware_id)
        self.row_of[learnware_id] = row
        self.count += 1

    def complete_new_rows(self) -> None:
        """Self terms and sketches of the rows added since the last call."""
        for start in range(self.complete, self.count, SKETCH_BLOCK_ROWS):
            new = slice(start, min(start + SKETCH_BLOCK_ROWS, self.count))
            points, weights = self.augmented[new, :, :-2], self.weights[new]
            if self.image_shape is not None:
                self.self_terms[new] = nngp_self_terms(points, weights, self.image_shape)
                continue  # image groups are always searched exhaustively: no sketches
            self.self_terms[new] = self_inner_products(points.to(torch.float64), weights.to(torch.float64), self.gamma)
            self.sketches[new] = self.sketch.embed(points, weights)
            self.sketch_sq_norms[new] = (self.sketches[new] * self.sketches[new]).sum(1)
        self.complete = self.count

    def remove(self, learnware_id: str) -> None:
        row = self.row_of.pop(learnware_id, None)
        if row is None:
            return
        self.alive[row] = False
        dead = self.count - len(self.row_of)
        if dead >= COMPACT_MIN_DEAD and dead * 4 >= self.count:
            self._reallocate(max(MIN_CAPACITY, 2 * len(self)), self.points_per_spec)

    def _reallocate(self, capacity: int, points_per_spec: int) -> None:
        """New tensors holding only the alive rows (views taken earlier keep the old ones)."""
        self.complete_new_rows()
        old = (self.augmented, self.weights, self.self_terms, self.sketches, self.sketch_sq_norms)
        keep = torch.nonzero(self.alive[: self.count]).reshape(-1)
        self._allocate(capacity, points_per_spec)
        n, k = keep.shape[0], old[0].shape[1]
        self.augmented[:n, :k] = old[0][keep]
        self.weights[:n, :k] = old[1][keep]
        self.self_terms[:n] = old[2][keep]
        self.sketches[:n] = old[3][keep]
        self.sketch_sq_norms[:n] = old[4][keep]
        self.alive[:n] = True
        self.ids = [self.ids[row] for row in keep.tolist()]
        self.row_of = {learnware_id: row for row, learnware_id in enumerate(self.ids)}
        self.count = self.complete = n

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
            origin=self.origin if self.origin is not None else torch.zeros(self.dim, dtype=torch.float64, device=self.device),
            augmented=self.augmented,
            weights=self.weights,
            self_terms=self.self_terms,
            sketches=self.sketches,
            sketch_sq_norms=self.sketch_sq_norms,
            sketch=self.sketch,
            mask=mask,
            count=self.count,
            group_size=len(self),
            gamma=self.gamma,
            image_shape=self.image_shape,
        )
