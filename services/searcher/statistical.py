"""RKME statistical search: single learnwares ranked by MMD and mixtures (greedy / auto).

Scores follow the reference package's EasyStatSearcher: distances are turned into
min-max scores, single results under 0.6 are dropped (at least one is kept), and a
mixture is returned only when its MMD beats the best single learnware's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lwm.spec.kernels import mmd_to_many, rbf_kernel, rkhs_inner_product
from lwm.spec.qp import solve_simplex_qp

FILTER_SCORE = 0.6
AUTO_WEIGHT_CUTOFF = 0.98
AUTO_MIN_WEIGHT = 1e-3
GREEDY_DECAY_RATE = 0.95


@dataclass
class SpecStack:
    """Specs of one type, point shape and gamma, stacked for batched kernels.

    Z: (N, K, d) padded with beta = 0 rows; B: (N, K); self_terms: ||Phi_n||^2 (N,).
    """

    Z: torch.Tensor
    B: torch.Tensor
    self_terms: torch.Tensor
    gamma: float


@dataclass
class Mixture:
    rows: list[int]
    weights: list[float]
    score: float


@dataclass
class StatResult:
    # (row in the stack, score), best first
    singles: list[tuple[int, float]]
    mixture: Mixture | None


def dist_to_score(dists: list[float], dist_ratio: float = 0.1, min_score: float = 0.92, improve_score: float = 0.7) -> list[float]:
    """The reference's conversion of sorted MMD distances to scores in [0, 1]."""
    if not dists:
        return []
    low, high = min(dists), max(dists)
    if low == high:
        return [1.0 for _ in dists]
    epsilon = sum(dists) / len(dists) * dist_ratio
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


def cross_inner_products(stack: SpecStack, rows: list[int]) -> torch.Tensor:
    """Gram matrix <Phi_i, Phi_j> over the given rows of the stack, (R, R)."""
    Z, B = stack.Z[rows], stack.B[rows]
    r, k, d = Z.shape
    kernel = rbf_kernel(Z.reshape(r * k, d), Z.reshape(r * k, d), stack.gamma).reshape(r, k, r, k)
    return torch.einsum("ik,ikjl,jl->ij", B, kernel, B)


def user_inner_products(z: torch.Tensor, beta: torch.Tensor, stack: SpecStack, rows: list[int]) -> torch.Tensor:
    """<Phi_user, Phi_i> for the given rows, (R,)."""
    Z, B = stack.Z[rows], stack.B[rows]
    r, k, d = Z.shape
    return ((beta @ rbf_kernel(z, Z.reshape(r * k, d), stack.gamma)).reshape(r, k) * B).sum(1)


def _mixture_mmd(gram: np.ndarray, cross: np.ndarray, user_term: float, subset: list[int]) -> tuple[np.ndarray, float]:
    weights = solve_simplex_qp(gram[np.ix_(subset, subset)], cross[subset])
    mmd = float(user_term + weights @ gram[np.ix_(subset, subset)] @ weights - 2.0 * weights @ cross[subset])
    return weights, mmd


def _greedy(gram: np.ndarray, cross: np.ndarray, user_term: float, max_num: int) -> tuple[list[int], np.ndarray, float | None]:
    chosen: list[int] = []
    weights, best = np.ones(0), None
    for _ in range(min(max_num, len(cross))):
        trials = [(_mixture_mmd(gram, cross, user_term, chosen + [i]), i) for i in range(len(cross)) if i not in chosen]
        (trial_weights, trial_mmd), index = min(trials, key=lambda t: t[0][1])
        if best is not None and trial_mmd > best * GREEDY_DECAY_RATE:
            break
        chosen.append(index)
        weights, best = trial_weights, trial_mmd
    return chosen, weights, best


def _auto(gram: np.ndarray, cross: np.ndarray, user_term: float, max_num: int) -> tuple[list[int], np.ndarray, float | None]:
    all_weights = solve_simplex_qp(gram, cross)
    order = list(np.argsort(-all_weights, kind="stable"))
    # Largest weights until they cover the cutoff. (The reference stops *before* the one that
    # crosses it, which drops the second source of an even two-source user.)
    chosen, total = [], 0.0
    for index in order:
        if all_weights[index] < AUTO_MIN_WEIGHT:
            break
        chosen.append(int(index))
        total += all_weights[index]
        if total >= AUTO_WEIGHT_CUTOFF:
            break
    if len(chosen) <= 1:
        return [int(order[0])], np.ones(1), None
    chosen = chosen[:max_num]
    weights, mmd = _mixture_mmd(gram, cross, user_term, chosen)
    return chosen, weights, mmd


def statistical_search(z: torch.Tensor, beta: torch.Tensor, stack: SpecStack, rows: list[int], *, max_search_num: int, strategy: str, max_results: int) -> StatResult:
    """Rank the given rows of the stack against the user's spec (z, beta)."""
    if not rows:
        return StatResult([], None)
    index = torch.as_tensor(rows, device=stack.Z.device)
    dists = mmd_to_many(z, beta, stack.Z[index], stack.B[index], stack.gamma, stack.self_terms[index]).cpu().numpy()
    finite = np.isfinite(dists)
    order = [i for i in np.argsort(dists, kind="stable") if finite[i]]
    if not order:
        return StatResult([], None)
    sorted_rows = [rows[i] for i in order]
    sorted_dists = [float(dists[i]) for i in order]

    mixture_rows: list[int] = []
    mixture_weights = np.ones(0)
    mixture_dist: float | None = None
    shortlist = sorted_rows[: max_search_num * max_search_num]
    if sorted_dists[0] > 0 and len(shortlist) > 1 and max_search_num > 1:
        gram = cross_inner_products(stack, shortlist).cpu().numpy()
        cross = user_inner_products(z, beta, stack, shortlist).cpu().numpy()
        user_term = float(rkhs_inner_product(z, beta, z, beta, stack.gamma))
        pick = _auto if strategy == "auto" else _greedy
        chosen, mixture_weights, mixture_dist = pick(gram, cross, user_term, max_search_num)
        mixture_rows = [shortlist[i] for i in chosen]
        if len(mixture_rows) <= 1 or mixture_dist is None or mixture_dist >= sorted_dists[0]:
            mixture_rows, mixture_dist = [], None

    if mixture_dist is None:
        scores = dist_to_score(sorted_dists)
        mixture = None
    else:
        merged = dist_to_score(sorted_dists + [mixture_dist])
        scores, mixture_score = merged[:-1], merged[-1]
        mixture = Mixture(mixture_rows, [float(w) for w in mixture_weights], mixture_score)

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
    singles = list(zip(sorted_rows[: len(scores)], scores))[: max_results or None]
    return StatResult(singles, mixture)
