"""Missed mixtures analysed, for bench/search_bench.py: better fits than the true pair, or search failures? And what the user gets.

For each two-source user and each searcher's returned mixture (or, where none was
returned, the top-1 single learnware, which is what the user would then reuse):

- fit: the exact squared MMD (float64 numpy, from the learnwares' specs as made, not
  the index's stored copies) between the user's spec and the mixture with optimal
  weights, against the true pair with optimal weights. Both weightings solve the
  searcher's own QP (lwm.spec.qp.solve_simplex_qp: w >= 0, sum w = 1, minimising
  ||sum_i w_i Phi_i - Phi_user||^2); ours and the reference both weight their final
  mixture by that QP, so (a) is the MMD each searcher reported up to rounding.
- use: the accuracy of reusing it on the user's labelled rows. The world's clusters
  are the classes (a row's label is the cluster it was drawn from); each learnware's
  model labels a row with the nearest of its own clusters' centres (what a classifier
  trained on its data learns: it knows no other class). The mixture is reused with the
  product's JobSelectorReuser (lwm.reuse: each row goes to the member of highest
  weighted spec density, mixture weights from the user's spec), the models running
  in this process (they are the bench's own functions, not uploaded code). The same
  reuser scores every searcher's mixtures, the true pair (oracle) and ours' top-1.
- pool: where the true sources rank among all learnwares by single MMD to the user
  (float64, exact): a searcher seeks mixtures among its best `pool` single learnwares
  (ours 100, the reference 25 at max_search_num 5), so a source ranked beyond that
  cannot be found whatever the mixture strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def inner_products(Za: Sequence[np.ndarray], Ba: Sequence[np.ndarray], Zb: Sequence[np.ndarray], Bb: Sequence[np.ndarray], gamma: float) -> np.ndarray:
    """<Phi_a_i, Phi_b_j> for specs a_i = (Za[i], Ba[i]) and b_j, shape (len(Za), len(Zb))."""
    out = np.empty((len(Za), len(Zb)))
    for i, (za, ba) in enumerate(zip(Za, Ba)):
        for j, (zb, bb) in enumerate(zip(Zb, Bb)):
            sq = (za * za).sum(1)[:, None] + (zb * zb).sum(1)[None, :] - 2.0 * za @ zb.T
            out[i, j] = ba @ np.exp(-gamma * np.maximum(sq, 0.0)) @ bb
    return out


CHUNK_SPECS = 1000  # learnwares per block of kernel entries (100 x 1000 x 100 float64: 80 MB)


def _kernel_sums(points: np.ndarray, beta: np.ndarray, z: np.ndarray, gamma: float) -> np.ndarray:
    """sum_k beta[i, k] k(points[i, k], z_j) for every spec i and point z_j, shape (n, m); points (n, K, d), z (m, d)."""
    flat = points.reshape(-1, points.shape[-1])
    sq = (flat * flat).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * flat @ z.T  # one matrix product, (n K, m)
    kernel = np.exp(-gamma * np.maximum(sq, 0.0)).reshape(*points.shape[:2], -1)
    sums: np.ndarray = (beta[:, None, :] @ kernel)[:, 0]
    return sums


def single_mmds(Z: np.ndarray, B: np.ndarray, self_terms: np.ndarray, user_z: np.ndarray, user_beta: np.ndarray, gamma: float) -> np.ndarray:
    """Squared MMD from the user's spec to every learnware's, float64, shape (n,)."""
    cross = np.concatenate([_kernel_sums(Z[start : start + CHUNK_SPECS], B[start : start + CHUNK_SPECS], user_z, gamma) @ user_beta for start in range(0, len(Z), CHUNK_SPECS)])
    user_term = float(_kernel_sums(user_z[None], user_beta[None], user_z, gamma)[0] @ user_beta)
    return user_term - 2.0 * cross + self_terms


def self_terms_of(Z: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """||Phi_i||^2 of every learnware's spec, float64, shape (n,)."""
    out = np.empty(len(Z))
    for start in range(0, len(Z), CHUNK_SPECS):
        points, beta = Z[start : start + CHUNK_SPECS], B[start : start + CHUNK_SPECS]
        norms = (points * points).sum(-1)
        sq = norms[:, :, None] + norms[:, None, :] - 2.0 * points @ points.transpose(0, 2, 1)
        out[start : start + len(points)] = ((beta[:, None, :] @ np.exp(-gamma * np.maximum(sq, 0.0)))[:, 0] * beta).sum(1)
    return out


def mixture_fit(members: Sequence[int], Z: np.ndarray, B: np.ndarray, user_z: np.ndarray, user_beta: np.ndarray, gamma: float) -> tuple[np.ndarray, float]:
    """Optimal simplex weights of the members' specs for the user's spec, and the squared MMD of that mixture."""
    from lwm.spec.qp import solve_simplex_qp

    specs_Z, specs_B = [Z[m] for m in members], [B[m] for m in members]
    gram = inner_products(specs_Z, specs_B, specs_Z, specs_B, gamma)
    cross = inner_products(specs_Z, specs_B, [user_z], [user_beta], gamma)[:, 0]
    user_term = float(inner_products([user_z], [user_beta], [user_z], [user_beta], gamma)[0, 0])
    weights = solve_simplex_qp(gram, cross) if len(members) > 1 else np.ones(1)
    return weights, float(user_term - 2.0 * weights @ cross + weights @ gram @ weights)


def nearest_own_centre(centers: np.ndarray, own_clusters: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A learnware's model: for each row, the label (cluster index) of the nearest of its own clusters' centres."""

    def predict(x: np.ndarray) -> np.ndarray:
        own = centers[own_clusters]
        sq = (x * x).sum(1)[:, None] + (own * own).sum(1)[None, :] - 2.0 * x @ own.T
        labels: np.ndarray = own_clusters[np.argmin(sq, axis=1)]
        return labels

    return predict


def reuse_accuracy(members: Sequence[int], Z: np.ndarray, B: np.ndarray, learnware_clusters: Sequence[np.ndarray], centers: np.ndarray, user_z: np.ndarray, user_beta: np.ndarray, x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Accuracy on (x, y) of the members reused by the product's job selector, mixture weights from the user's spec."""
    import torch

    from lwm.reuse.reusers import JobSelectorReuser
    from lwm.spec import RKMETableSpecification

    def spec(z: np.ndarray, beta: np.ndarray) -> RKMETableSpecification:
        made = RKMETableSpecification(gamma=gamma, device="cpu")
        made.z, made.beta = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64)), torch.from_numpy(np.ascontiguousarray(beta, dtype=np.float64))
        return made

    models = [nearest_own_centre(centers, learnware_clusters[m]) for m in members]
    reuser = JobSelectorReuser([f"lw{m}" for m in members], [spec(Z[m], B[m]) for m in members], user_spec=spec(user_z, user_beta))
    predicted = reuser.predict(x, lambda jobs: [models[i](rows) for i, rows in jobs])
    return float(np.mean(predicted == y))


@dataclass
class MixtureUser:
    """A two-source user as the analysis needs it: spec, labelled rows, true sources and the true pair's fit."""

    z: np.ndarray
    beta: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sources: list[int]
    pair_mmd: float = float("nan")
    pair_accuracy: float = float("nan")
    source_rank: int = -1  # the worse-ranked source's place (0: best) among all learnwares by single MMD


@dataclass
class Outcome:
    """What one searcher's choice gave one user."""

    hit: bool  # both sources among the members
    no_mixture: bool  # the searcher returned no mixture; members = its top-1 single
    mmd: float
    accuracy: float


class MixtureAnalysis:
    """The analysis of one market: the learnwares' specs and clusters, and the world's centres."""

    def __init__(self, Z: np.ndarray, B: np.ndarray, learnware_clusters: Sequence[np.ndarray], centers: np.ndarray, gamma: float) -> None:
        self.Z, self.B, self.clusters, self.centers, self.gamma = Z, B, learnware_clusters, centers, gamma
        self.self_terms = self_terms_of(Z, B, gamma)

    def prepare(self, user: MixtureUser) -> MixtureUser:
        """The user with its true pair's fit, the true pair's (oracle) reuse accuracy and its sources' ranks."""
        singles = single_mmds(self.Z, self.B, self.self_terms, user.z, user.beta, self.gamma)
        user.source_rank = max(int((singles < singles[source]).sum()) for source in user.sources)
        user.pair_mmd = mixture_fit(user.sources, self.Z, self.B, user.z, user.beta, self.gamma)[1]
        user.pair_accuracy = self.accuracy(user.sources, user)
        return user

    def accuracy(self, members: Sequence[int], user: MixtureUser) -> float:
        return reuse_accuracy(members, self.Z, self.B, self.clusters, self.centers, user.z, user.beta, user.x, user.y, self.gamma)

    def outcome(self, user: MixtureUser, mixture: Sequence[int], top1: int) -> Outcome:
        members = list(mixture) or [top1]
        return Outcome(set(user.sources) <= set(members), not mixture, mixture_fit(members, self.Z, self.B, user.z, user.beta, self.gamma)[1], self.accuracy(members, user))


LEGEND = (
    "MMD^2 to the user's spec of the returned mixture with QP weights (a; where no mixture was returned, of the top-1 single: 'none') "
    "against the true pair with QP weights (b); misses split by a <= b (a better fit than the true pair) and a > b (a search failure by MMD); "
    "out of pool: misses with a source ranked beyond the searcher's mixture pool by single MMD (ours 100, the reference 25); "
    "reuse acc: mean accuracy on the user's labels of the choice reused by the job selector, pair acc: of the true pair (oracle), same users"
)
HEADER = (
    f"{'mixtures of two-source users':<34} {'users':>5} {'recall':>6} {'misses':>6} {'a<=b':>5} {'a>b':>4} {'none':>4} "
    f"{'out of pool':>11} {'median a/b':>10} {'reuse acc':>9} {'pair acc':>8}"
)


def report(name: str, users: Sequence[MixtureUser], outcomes: Sequence[Outcome], pool: int | None) -> str:
    """One row: recall; misses whose returned MMD^2 (a) is at most the true pair's (b) and above it, and of the misses
    those with no mixture returned (the top-1 single counted as the choice) and those with a source beyond the best
    `pool` singles (pool None: a single learnware's row); median a/b over the misses; mean reuse accuracy of the choice, and of the true pairs of the same users."""
    misses = [(u, o) for u, o in zip(users, outcomes) if not o.hit]
    better = sum(o.mmd <= u.pair_mmd for u, o in misses)
    ratio = float(np.median([o.mmd / u.pair_mmd for u, o in misses])) if misses else float("nan")
    return (
        f"{name:<34} {len(users):>5} {np.mean([o.hit for o in outcomes]):>6.2f} {len(misses):>6} {better:>5} {len(misses) - better:>4} "
        f"{sum(o.no_mixture for _, o in misses):>4} {sum(u.source_rank >= pool for u, _ in misses) if pool else '-':>11} {ratio:>10.3f} {np.mean([o.accuracy for o in outcomes]):>9.3f} {np.mean([u.pair_accuracy for u in users]):>8.3f}"
    )
