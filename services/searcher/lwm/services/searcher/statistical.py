"""RKME statistical search: rank a shard's specs by MMD, then single results and mixtures.

Two stages, so that shards of the market can be searched apart and merged exactly:

1. `rank` (per shard): the exact squared MMD from the user's spec to the candidate
   specs, either exhaustively or, above a size threshold, by exact MMD on a shortlist
   from the specs' random-feature sketches (a first pass over every row reads the
   sketches' first SKETCH_HEAD features, the best `coarse` rows are then ranked by the
   whole sketch); returns the best rows and a summary of all the distances (count, sum,
   min, max: what the score conversion needs).
2. `finish` (on the merged candidates): scores as the reference package's
   EasyStatSearcher converts them (min-max with its epsilon rule; results under 0.6
   dropped, at least one kept), and a mixture by the `greedy` or `auto` strategy,
   returned only when its MMD beats the best single learnware's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from lwm.learnware.settings import env_int
from lwm.services.searcher.stack import EXACT_BLOCK_ROWS, SKETCH_HEAD, StackView, augment_points, augment_queries, cross_terms, gather_rows, nngp_cross_terms, sketch_dots
from lwm.spec.kernels import rkhs_inner_product
from lwm.spec.qp import solve_simplex_qp

FILTER_SCORE = 0.6
AUTO_WEIGHT_CUTOFF = 0.98
AUTO_MIN_WEIGHT = 1e-3
GREEDY_DECAY_RATE = 0.95
GREEDY_EXACT_TRIALS = 3
AUTO_MAX_ITERATIONS = 100
# Mixtures are sought among the best MIXTURE_POOL_FACTOR * max_search_num^2 single
# learnwares. The reference takes max_search_num^2: on bench/search_bench.py's 1k market
# that finds both sources of a two-source user for 0.75 of users, 4x that for 0.95 (greedy, 60 users).
MIXTURE_POOL_FACTOR = 4
# A best single MMD this small relative to ||Phi_user||^2 is the user's own distribution:
# no mixture can beat it by more than rounding.
EXACT_MATCH_RTOL = 1e-6


@dataclass(frozen=True)
class IndexSettings:
    """Exhaustive search below `min_rows` candidate specs; above, the `coarse` best rows by the
    sketches' heads, the `shortlist` best of those by whole sketches, exact MMD on the shortlist."""

    min_rows: int = 10_000
    shortlist: int = 1_000
    coarse: int = 20_000

    @classmethod
    def from_env(cls) -> IndexSettings:
        """LWM_SEARCH_INDEX_MIN_ROWS, LWM_SEARCH_SHORTLIST and LWM_SEARCH_COARSE, else the defaults."""
        return cls(
            env_int("LWM_SEARCH_INDEX_MIN_ROWS", cls.min_rows, minimum=0),
            env_int("LWM_SEARCH_SHORTLIST", cls.shortlist, minimum=1),
            env_int("LWM_SEARCH_COARSE", cls.coarse, minimum=1),
        )


@dataclass(frozen=True)
class UserSpec:
    z: torch.Tensor  # (K, d) float64
    beta: torch.Tensor  # (K,) float64
    gamma: float
    self_term: float  # ||Phi_user||^2
    image_shape: tuple[int, ...] | None = None  # image specs: the NNGP kernel's (C, H, W)

    @classmethod
    def make(cls, z: np.ndarray, beta: np.ndarray, gamma: float, device: torch.device, image_shape: tuple[int, ...] | None = None) -> UserSpec:
        zt = torch.as_tensor(z.reshape(z.shape[0], -1), dtype=torch.float64, device=device)
        bt = torch.as_tensor(beta, dtype=torch.float64, device=device)
        if image_shape is not None:
            self_term = float(nngp_cross_terms(zt, bt, zt[None], bt[None], image_shape)[0])
        else:
            self_term = float(rkhs_inner_product(zt, bt, zt, bt, gamma))
        return cls(zt, bt, gamma, self_term, image_shape)


@dataclass(frozen=True)
class DistanceSummary:
    """Count, sum, min and max of a list of MMDs: all the reference's score conversion uses of it."""

    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    @classmethod
    def of(cls, dists: torch.Tensor | np.ndarray | list[float]) -> DistanceSummary:
        """Of the finite values among `dists` (summed in float64; a tensor is read in its own dtype)."""
        values = dists if isinstance(dists, torch.Tensor) else torch.as_tensor(dists, dtype=torch.float64)
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            return cls()
        return cls(int(values.numel()), float(values.sum(dtype=torch.float64)), float(values.min()), float(values.max()))

    def merged(self, other: DistanceSummary) -> DistanceSummary:
        return DistanceSummary(self.count + other.count, self.total + other.total, min(self.low, other.low), max(self.high, other.high))

    def scores(self, dists: list[float], dist_ratio: float = 0.1, min_score: float = 0.92, improve_score: float = 0.7) -> list[float]:
        """The reference's conversion of MMDs to scores in [0, 1], relative to this summary's list."""
        if self.count == 0:
            return []
        low, high = self.low, self.high
        if low == high:
            return [1.0 for _ in dists]
        epsilon = self.total / self.count * dist_ratio
        top_score = (high - low) / (high - epsilon)
        if low < epsilon:
            epsilon = low
        elif top_score < min_score:
            epsilon = high - (high - low) / min_score
        scores = []
        for dist in dists:
            score = (high - dist) / (high - epsilon)
            if score < improve_score:
                score = min(math.sqrt(max(score, 0.0)), improve_score)
            scores.append(score)
        return scores


@dataclass
class Ranked:
    """One shard's best rows (by exact MMD, ascending) and the summary of all its distances."""

    rows: list[int]
    mmds: list[float]
    summary: DistanceSummary
    indexed: bool


def exact_mmds(user: UserSpec, view: StackView, rows: torch.Tensor | None) -> torch.Tensor:
    """Squared MMD to the given rows of the view (None: rows 0..count-1), float64, a block of rows at a time."""
    total = view.count if rows is None else rows.numel()
    queries = None if view.image_shape is not None else augment_queries(view.centred(user.z), view.gamma)
    parts = []
    for start in range(0, total, EXACT_BLOCK_ROWS):
        selected: slice | torch.Tensor = slice(start, min(start + EXACT_BLOCK_ROWS, total)) if rows is None else rows[start : start + EXACT_BLOCK_ROWS]
        if view.image_shape is not None:
            cross = nngp_cross_terms(user.z, user.beta, view.stored_points[selected], view.weights[selected], view.image_shape)
        else:
            assert queries is not None
            cross = cross_terms(queries, user.beta, view.augmented(selected), view.weights[selected])
        parts.append(user.self_term - 2.0 * cross + view.self_terms[selected])
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=view.self_terms.device)


def _best(rows: torch.Tensor, mmds: torch.Tensor, keep: int) -> tuple[list[int], list[float]]:
    finite = torch.isfinite(mmds)
    rows, mmds = rows[finite], mmds[finite]
    top = torch.topk(mmds, min(keep, mmds.numel()), largest=False, sorted=True)
    return rows[top.indices].tolist(), top.values.tolist()


def _smallest(values: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the `keep` smallest values, in no order (numpy's linear-time partition on the CPU)."""
    if keep >= values.numel():
        return torch.arange(values.numel(), device=values.device)
    if values.device.type == "cpu":
        return torch.from_numpy(np.argpartition(values.numpy(), keep - 1)[:keep])
    return torch.topk(values, keep, largest=False, sorted=False).indices


def rank(user: UserSpec, view: StackView, keep: int, settings: IndexSettings) -> Ranked:
    """The `keep` rows of the view closest to the user's spec, with the summary of all distances."""
    wanted = int(np.count_nonzero(view.mask.cpu().numpy()))
    if wanted == 0:
        return Ranked([], [], DistanceSummary(), indexed=False)
    if wanted < settings.min_rows or view.image_shape is not None:
        rows = view.rows()
        # Most rows wanted: compute them all in place rather than copy the wanted ones out.
        dense = 2 * rows.numel() >= view.count
        mmds = exact_mmds(user, view, None)[rows] if dense else exact_mmds(user, view, rows)
        best_rows, best = _best(rows, mmds, keep)
        return Ranked(best_rows, best, DistanceSummary.of(mmds), indexed=False)

    count = view.count
    user_sketch = view.sketch.embed(view.centred(user.z), user.beta)
    head, tail = user_sketch[:SKETCH_HEAD], user_sketch[SKETCH_HEAD:]
    head_dots = view.sketch_scales[:count] * sketch_dots(view.sketch_head[:count], head)
    # The head alone estimates the MMD from SKETCH_HEAD of the sketch's features: scaled to be unbiased.
    estimates = (view.head_sq_norms[:count] - 2.0 * head_dots + float(head @ head)) * (view.sketch.features / SKETCH_HEAD)
    estimates = torch.where(view.mask, estimates, torch.inf)
    # Sorted: the gathers below then read the stacks in address order.
    coarse = torch.sort(_smallest(estimates, min(max(settings.coarse, settings.shortlist, keep), wanted))).values
    whole = view.sketch_sq_norms[coarse] - 2.0 * (head_dots[coarse] + view.sketch_scales[coarse] * sketch_dots(gather_rows(view.sketch_tail, coarse), tail)) + float(user_sketch @ user_sketch)
    estimates[coarse] = whole
    shortlist = torch.sort(coarse[_smallest(whole, min(max(settings.shortlist, keep), coarse.numel()))]).values
    exact = exact_mmds(user, view, shortlist)
    best_rows, best = _best(shortlist, exact, keep)
    # MMDs outside the shortlist are estimated by their sketches (unbiased); the minimum is an exact one.
    estimates[shortlist] = torch.inf
    exact_summary = DistanceSummary.of(exact)
    summary = replace(exact_summary.merged(DistanceSummary.of(estimates)), low=exact_summary.low)
    return Ranked(best_rows, best, summary, indexed=True)


class CandidateGram:
    """<Phi_i, Phi_j> among mixture candidates, a row computed only when a candidate joins a mixture.

    Both strategies only ever need the rows of the learnwares in the mixture (and the
    diagonal, the self terms), so a pool of a hundred candidates costs a few rows.
    """

    def __init__(self, centred: torch.Tensor, weights: torch.Tensor, self_terms: np.ndarray, gamma: float, image_shape: tuple[int, ...] | None = None) -> None:
        self.centred = centred
        self.weights = weights
        # The Gaussian kernel's one-product form; image specs use their NNGP kernel on `centred` instead.
        self.augmented = augment_points(centred, gamma) if image_shape is None else None
        self.gamma = gamma
        self.image_shape = image_shape
        self.diagonal = self_terms
        self.matrix = np.full((len(self_terms), len(self_terms)), np.nan)
        np.fill_diagonal(self.matrix, self_terms)
        self._done: set[int] = set()

    def rows(self, members: list[int]) -> np.ndarray:
        """gram[members, :]"""
        for i in members:
            if i not in self._done:
                if self.augmented is None:
                    assert self.image_shape is not None
                    row = nngp_cross_terms(self.centred[i], self.weights[i], self.centred, self.weights, self.image_shape).cpu().numpy()
                else:
                    queries = augment_queries(self.centred[i], self.gamma)
                    row = cross_terms(queries, self.weights[i], self.augmented, self.weights.to(self.augmented.dtype)).cpu().numpy()
                row[i] = self.diagonal[i]
                self.matrix[i, :] = row
                self.matrix[:, i] = row
                self._done.add(i)
        return self.matrix[members]

    def block(self, members: list[int]) -> np.ndarray:
        """gram[members][:, members]; the rows of all but the last member suffice (the diagonal is known)."""
        self.rows(members[:-1])
        return self.matrix[np.ix_(members, members)]


def _mixture_mmd(gram: CandidateGram, cross: np.ndarray, user_term: float, members: list[int]) -> tuple[np.ndarray, float]:
    """Optimal simplex weights of the members and the squared MMD of their mixture to the user."""
    block = gram.block(members)
    weights = solve_simplex_qp(block, cross[members])
    return weights, float(user_term + weights @ block @ weights - 2.0 * weights @ cross[members])


def _greedy(gram: CandidateGram, cross: np.ndarray, user_term: float, max_num: int) -> tuple[list[int], np.ndarray, float | None]:
    """Add the candidate whose (re-weighted) mixture has the lowest MMD, while it lowers it by 5% or more.

    Every candidate is screened by the best mixture along the line from the current mixture
    to it (closed form); the best screened ones get their exact re-weighted MMD.
    """
    singles = user_term - 2.0 * cross + gram.diagonal
    chosen = [int(np.argmin(singles))]
    weights, best = np.ones(1), float(singles[chosen[0]])
    while len(chosen) < min(max_num, len(cross)):
        rows = gram.rows(chosen)
        mix_cross = weights @ rows  # <Phi_mix, Phi_j>
        mix_norm = float(mix_cross[chosen] @ weights)
        # ||(1 - t) Phi_mix + t Phi_j - Phi_user||^2 = best + 2 t slope_j + t^2 curvature_j, t in [0, 1]
        slope = (mix_cross - mix_norm) - (cross - float(weights @ cross[chosen]))
        curvature = np.maximum(gram.diagonal - 2.0 * mix_cross + mix_norm, 1e-300)
        t = np.clip(-slope / curvature, 0.0, 1.0)
        screened = best + 2.0 * t * slope + t * t * curvature
        screened[chosen] = np.inf
        trials = [(_mixture_mmd(gram, cross, user_term, chosen + [int(j)]), int(j)) for j in np.argsort(screened, kind="stable")[:GREEDY_EXACT_TRIALS] if np.isfinite(screened[j])]
        if not trials:
            break
        (trial_weights, trial_mmd), index = min(trials, key=lambda trial: trial[0][1])
        if trial_mmd > best * GREEDY_DECAY_RATE:
            break
        chosen.append(index)
        weights, best = trial_weights, trial_mmd
    return chosen, weights, best


def _pool_weights(gram: CandidateGram, cross: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The simplex QP over every candidate (min ||sum_i w_i Phi_i - Phi_user||^2), by column generation.

    Fully corrective Frank-Wolfe: solve on a support, add the candidate with the most
    negative gradient, drop zero weights; stop when no candidate's gradient is below the
    support's (the KKT conditions). Needs gram rows of the support only.
    """
    support = [int(np.argmin(gram.diagonal / 2.0 - cross))]
    weights = np.ones(1)
    tolerance = 1e-7 * float(np.max(gram.diagonal))  # the float32 rows' rounding
    for _ in range(AUTO_MAX_ITERATIONS):
        gradient = weights @ gram.rows(support) - cross
        entering = int(np.argmin(gradient))
        if entering in support or gradient[entering] >= float(weights @ gradient[support]) - tolerance:
            break
        support.append(entering)
        weights = solve_simplex_qp(gram.block(support), cross[support])
        keep = weights > 0
        support = [member for member, kept in zip(support, keep) if kept]
        weights = weights[keep] / weights[keep].sum()
    return support, weights


def _auto(gram: CandidateGram, cross: np.ndarray, user_term: float, max_num: int) -> tuple[list[int], np.ndarray, float | None]:
    support, pool_weights = _pool_weights(gram, cross)
    order = np.argsort(-pool_weights, kind="stable")
    # Largest weights until they cover the cutoff. (The reference stops *before* the one that
    # crosses it, which drops the second source of an even two-source user.)
    chosen, total = [], 0.0
    for position in order:
        if pool_weights[position] < AUTO_MIN_WEIGHT:
            break
        chosen.append(support[position])
        total += pool_weights[position]
        if total >= AUTO_WEIGHT_CUTOFF:
            break
    if len(chosen) <= 1:
        return [support[int(order[0])]], np.ones(1), None
    weights, mmd = _mixture_mmd(gram, cross, user_term, chosen[:max_num])
    return chosen[:max_num], weights, mmd


@dataclass
class Mixture:
    members: list[int]  # indices into the candidates
    weights: list[float]
    mmd: float
    score: float = 0.0


@dataclass
class StatResult:
    singles: list[tuple[int, float]]  # (candidate index, score), best first
    mixture: Mixture | None


def mixture_pool_size(max_search_num: int) -> int:
    return MIXTURE_POOL_FACTOR * max_search_num * max_search_num


def find_mixture(user: UserSpec, points: torch.Tensor, weights: torch.Tensor, self_terms: np.ndarray, mmds: np.ndarray, *, max_search_num: int, strategy: str) -> Mixture | None:
    """The mixture of candidate specs (points (n, K, d), weights (n, K), their self terms and
    MMDs to the user) chosen by the strategy, if any."""
    # The candidates' points come stacked on the CPU (merge_shards) while a CUDA searcher's user is on CUDA.
    origin = 0.0 if user.image_shape is not None else ((user.beta @ user.z) / user.beta.sum()).to(points.device)
    gram = CandidateGram(points.to(torch.float64) - origin, weights, self_terms, user.gamma, user.image_shape)
    cross = (user.self_term + self_terms - mmds) / 2.0  # <Phi_user, Phi_i>, from the MMDs
    pick = _auto if strategy == "auto" else _greedy
    members, mixture_weights, mmd = pick(gram, cross, user.self_term, max_search_num)
    if len(members) <= 1 or mmd is None:
        return None
    return Mixture(members, [float(w) for w in mixture_weights], mmd)


def finish(user: UserSpec, points: torch.Tensor, weights: torch.Tensor, self_terms: list[float], mmds: list[float], summary: DistanceSummary, *, max_search_num: int, strategy: str, max_results: int) -> StatResult:
    """Singles and mixture over candidates sorted by MMD: their specs (points (n, K, d) and
    weights (n, K), any frame), self terms and MMDs, scored against `summary` of all MMDs."""
    if not mmds:
        return StatResult([], None)
    mixture = None
    pool = min(len(mmds), mixture_pool_size(max_search_num))
    if mmds[0] > EXACT_MATCH_RTOL * user.self_term and pool > 1 and max_search_num > 1:
        mixture = find_mixture(user, points[:pool], weights[:pool], np.asarray(self_terms[:pool]), np.asarray(mmds[:pool]), max_search_num=max_search_num, strategy=strategy)
        if mixture is not None and mixture.mmd >= mmds[0]:
            mixture = None
    if mixture is not None:
        summary = summary.merged(DistanceSummary.of([mixture.mmd]))
        mixture.score = summary.scores([mixture.mmd])[0]
    scores = summary.scores(mmds)

    keep = 1
    while keep < len(scores) and scores[keep] >= FILTER_SCORE:
        keep += 1
    scores = scores[:keep]
    if len(scores) == 1 and scores[0] < FILTER_SCORE:
        # As the reference: lift a lone result to 0.6 and scale the mixture score alike.
        ratio = 100.0 if abs(scores[0]) < 1e-5 else FILTER_SCORE / scores[0]
        scores[0] = FILTER_SCORE
        if mixture is not None:
            mixture.score = min(1.0, mixture.score * ratio)
    return StatResult(list(enumerate(scores))[:max_results], mixture)
