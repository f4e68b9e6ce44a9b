"""Hetero reuse: mapping a user's table columns into a learnware's feature space.

The reference package (FeatureAlignLearnware) trains an MLP from a random start to
minimise the MMD between the user's mapped RKME and the learnware's. With only the two
distributions to go on, many maps fit equally well, so we build maps from the columns'
meaning and let the MMD choose among them:

1. match user columns to learnware columns by their descriptions (MiniLM sentence
   embeddings) and by their marginal distributions (weighted quantiles of the RKME
   points), one to one (Hungarian assignment), keeping the pairs above a confidence level;
2. for each level, an affine map: each matched learnware column is its user column with
   mean and deviation matched, each unmatched one is imputed from the matched ones by a
   ridge regression on the learnware's own RKME points (its conditional mean);
3. keep the map whose image of the user's RKME has the lowest MMD to the learnware's
   (in the learnware's standardised space), or, with labelled samples, the map whose
   learnware outputs fit the labels best.

Gradient steps on the map's MMD from the chosen start (the reference's training, as a
refinement) were measured on the bundled-dataset worlds of lwm.testing.hetero_world:
they raised the error on most tasks, so they are not done.
With labelled samples the aligned learnwares' outputs then become features of a simple
model fit on them (FeatureAugment), as the reference's HeteroMapAlignLearnware does,
blended with a model on the outputs alone (measured on those worlds with 50-100 labelled
rows: better than either alone, see bench/README.md, Hetero).
Models never run here: everything goes through a `RunLearnwares` callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lwm.reuse.reusers import EmbedTexts, FeatureAugmentReuser, Reuser, RunLearnwares, _labels_for, _run_checked, average, check_rows, check_task, to_labels
from lwm.spec.kernels import sq_dists, squared_mmd
from lwm.spec.rkme import DTYPE, RKMETableSpecification

QUANTILE_LEVELS = np.linspace(0.05, 0.95, 19)
# Confidence levels of a column pair's similarity (the mean of description and distribution
# similarity, each near 1 for the same column) at which candidate maps match columns.
MATCH_LEVELS = (0.5, 0.6, 0.7, 0.8)
IMPUTE_RIDGE = 1e-2  # on standardised columns
USER_SPEC_POINTS = 100
USER_SPEC_MAX_ROWS = 5_000


def described_input_count(semantic_spec: dict[str, Any] | None) -> int:
    """How many input columns a semantic spec describes (its "Input" "Dimension", else its descriptions)."""
    inputs = (semantic_spec or {}).get("Input") or {}
    return int(inputs.get("Dimension", len(inputs.get("Description") or {})))


@dataclass(frozen=True)
class WeightedTable:
    """A distribution over table rows as weighted points (an RKME's z and beta, negatives clipped)."""

    points: np.ndarray  # (n, d)
    weights: np.ndarray  # (n,), non-negative, sum 1

    @classmethod
    def from_spec(cls, spec: RKMETableSpecification) -> WeightedTable:
        weights = np.clip(spec.get_beta().astype(np.float64), 0.0, None)
        if weights.sum() <= 0:
            raise ValueError("the specification has no positive weight in beta")
        return cls(spec.get_z().astype(np.float64), weights / weights.sum())

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def mean(self) -> np.ndarray:
        return self.weights @ self.points

    def std(self) -> np.ndarray:
        spread = np.sqrt(self.weights @ (self.points - self.mean()) ** 2)
        return np.maximum(spread, 1e-6 * np.maximum(1.0, np.abs(self.mean())))

    def quantiles(self) -> np.ndarray:
        """Weighted quantiles of each column at QUANTILE_LEVELS, shape (levels, d)."""
        order = np.argsort(self.points, axis=0)
        cumulative = np.cumsum(self.weights[order], axis=0) - 0.5 * self.weights[order]
        return np.stack([np.interp(QUANTILE_LEVELS, cumulative[:, j], self.points[order[:, j], j]) for j in range(self.dim)], axis=1)


def user_table_from_rows(x: np.ndarray, gamma: float, seed: int = 0) -> WeightedTable:
    """The user's rows as an RKME like the learnwares' (same gamma), so their moments compare like for like."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] > USER_SPEC_MAX_ROWS:
        x = x[np.random.default_rng(seed).choice(x.shape[0], USER_SPEC_MAX_ROWS, replace=False)]
    spec = RKMETableSpecification(gamma=gamma, device="cpu")
    spec.generate_stat_spec_from_data(x, K=USER_SPEC_POINTS)
    return WeightedTable.from_spec(spec)


@dataclass(frozen=True)
class AffineMap:
    """x (n, d_user) -> x @ weight + bias (n, d_learnware)."""

    weight: np.ndarray  # (d_user, d_learnware)
    bias: np.ndarray  # (d_learnware,)
    matches: tuple[tuple[int, int], ...] = ()  # (user column, learnware column) pairs it was built from

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"x must have shape (n, {self.weight.shape[0]}) (the user's columns), got {x.shape}")
        return x @ self.weight + self.bias


def column_similarity(user: WeightedTable, learnware: WeightedTable, user_embeddings: np.ndarray | None, learnware_embeddings: np.ndarray | None) -> np.ndarray:
    """(d_user, d_learnware) similarities: the mean of description cosine and distribution similarity.

    Distribution similarity is exp(-W1 / scale) between the two columns' quantiles, 1 for
    identical marginals; without both sides' descriptions it is used alone.
    """
    qu, ql = user.quantiles(), learnware.quantiles()
    scale = 0.5 * (user.std()[:, None] + learnware.std()[None, :])
    distance = np.abs(qu[:, :, None] - ql[:, None, :]).mean(axis=0) / scale
    similarity = np.exp(-distance)
    if user_embeddings is None or learnware_embeddings is None:
        return similarity
    return 0.5 * (similarity + np.clip(user_embeddings @ learnware_embeddings.T, 0.0, 1.0))


def match_columns(similarity: np.ndarray, min_similarity: float) -> list[tuple[int, int]]:
    """One-to-one (user column, learnware column) pairs maximising total similarity, the weak ones dropped."""
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return [(int(u), int(l)) for u, l in zip(rows, cols) if similarity[u, l] >= min_similarity]


def initial_map(user: WeightedTable, learnware: WeightedTable, matches: Sequence[tuple[int, int]]) -> AffineMap:
    """Matched columns with moments matched; the others imputed from them (ridge on the learnware's points)."""
    mu_u, sd_u, mu_l, sd_l = user.mean(), user.std(), learnware.mean(), learnware.std()
    weight = np.zeros((user.dim, learnware.dim))
    bias = mu_l.copy()
    for u, l in matches:
        weight[u, l] = sd_l[l] / sd_u[u]
        bias[l] = mu_l[l] - mu_u[u] * weight[u, l]
    matched = [l for _, l in matches]
    unmatched = [l for l in range(learnware.dim) if l not in matched]
    if matched and unmatched:
        standard = (learnware.points - mu_l) / sd_l
        known, rest = standard[:, matched], standard[:, unmatched]
        gram = known.T @ (learnware.weights[:, None] * known) + IMPUTE_RIDGE * np.eye(len(matched))
        coef = np.linalg.solve(gram, known.T @ (learnware.weights[:, None] * rest))  # standardised matched -> standardised rest
        # rest = mu_rest + sd_rest * (coef^T standardised matched), where a matched column is (x W + b - mu) / sd.
        to_rest = (coef * sd_l[unmatched][None, :]) / sd_l[matched][:, None]
        weight[:, unmatched] = weight[:, matched] @ to_rest
        bias[unmatched] = mu_l[unmatched] + (bias[matched] - mu_l[matched]) @ to_rest
    return AffineMap(weight, bias, tuple(matches))


def standardised_mmd(feature_map: AffineMap, user: WeightedTable, learnware: WeightedTable) -> float:
    """Squared MMD between the mapped user points and the learnware's, in the learnware's standardised
    columns (so columns of any scale count alike), median-heuristic Gaussian kernel."""
    mu, sd = learnware.mean(), learnware.std()
    target = torch.from_numpy((learnware.points - mu) / sd).to(DTYPE)
    mapped = torch.from_numpy((feature_map(user.points) - mu) / sd).to(DTYPE)
    distances = sq_dists(target, target)
    gamma = 1.0 / float(distances[distances > 0].median()) if bool((distances > 0).any()) else 1.0
    return float(squared_mmd(mapped, torch.from_numpy(user.weights).to(DTYPE), target, torch.from_numpy(learnware.weights).to(DTYPE), gamma))


@dataclass(frozen=True)
class Candidate:
    feature_map: AffineMap
    mmd: float


def candidate_maps(user: WeightedTable, learnware: WeightedTable, user_embeddings: np.ndarray | None = None, learnware_embeddings: np.ndarray | None = None) -> list[Candidate]:
    """One map per distinct matching at MATCH_LEVELS, lowest MMD first."""
    if user_embeddings is not None and user_embeddings.shape[0] != user.dim:
        raise ValueError(f"got {user_embeddings.shape[0]} user column descriptions for {user.dim} columns")
    if learnware_embeddings is not None and learnware_embeddings.shape[0] != learnware.dim:
        raise ValueError(f"got {learnware_embeddings.shape[0]} learnware column descriptions for {learnware.dim} columns")
    similarity = column_similarity(user, learnware, user_embeddings, learnware_embeddings)
    candidates: dict[tuple[tuple[int, int], ...], Candidate] = {}
    for level in MATCH_LEVELS:
        matches = tuple(match_columns(similarity, level))
        if matches not in candidates:
            feature_map = initial_map(user, learnware, matches)
            candidates[matches] = Candidate(feature_map, standardised_mmd(feature_map, user, learnware))
    return sorted(candidates.values(), key=lambda c: c.mmd)


def labelled_loss(output: np.ndarray, y: np.ndarray, task: str) -> float:
    """Error rate (classification) or, for regression, the mean squared error left after fitting
    y ~ a * output + b: the linear model fit on the outputs afterwards recalibrates them anyway."""
    if task == "classification":
        return float(np.mean(to_labels(output) != y))
    values = output.reshape(output.shape[0], -1)[:, 0].astype(np.float64)
    design = np.stack([values, np.ones_like(values)], axis=1)
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(np.mean(residual**2))


@dataclass(frozen=True)
class Alignment:
    """The map chosen for one learnware, and how: by labelled loss (when labels were given) or by MMD."""

    chosen: Candidate
    labelled_loss: float | None = None


class HeteroAlignReuser(Reuser):
    """Learnwares with their own feature spaces reused on the user's columns.

    `fit` aligns each learnware (its RKME spec and, when both sides have them, the column
    descriptions) to the user's rows, then with labelled data fits FeatureAugment over the
    aligned learnwares, blended with a model on their outputs alone. `predict` returns,
    with labelled data, the blend's predictions (labels or values); without, the aligned
    learnwares' mean output (class scores or values), as the reference's HeteroMapAlignLearnware.
    """

    def __init__(
        self,
        names: Sequence[str],
        specs: Sequence[RKMETableSpecification],
        task: str,
        learnware_descriptions: Sequence[Sequence[str] | None] | None = None,
        user_descriptions: Sequence[str] | None = None,
        embed: EmbedTexts | None = None,
    ) -> None:
        super().__init__(names)
        if len(specs) != len(names):
            raise ValueError(f"hetero alignment got {len(specs)} specifications for {len(names)} learnwares")
        self.task = check_task(task)
        self.learnwares = [WeightedTable.from_spec(spec) for spec in specs]
        self.gammas = [float(spec.gamma) for spec in specs]
        self.learnware_descriptions = list(learnware_descriptions) if learnware_descriptions is not None else [None] * len(names)
        if len(self.learnware_descriptions) != len(names):
            raise ValueError(f"hetero alignment got {len(self.learnware_descriptions)} description lists for {len(names)} learnwares")
        for name, table, texts in zip(self.names, self.learnwares, self.learnware_descriptions):
            if texts is not None and len(texts) != table.dim:
                raise ValueError(f"learnware {name} describes {len(texts)} columns but its specification has {table.dim}")
        self.user_descriptions = list(user_descriptions) if user_descriptions is not None else None
        self.embed = embed
        self.alignments: list[Alignment] | None = None
        self.augment: FeatureAugmentReuser | None = None
        self.user_dim: int | None = None

    def _embeddings(self) -> tuple[np.ndarray | None, list[np.ndarray | None]]:
        """Description embeddings of the user's columns and of each learnware's (None where missing)."""
        if self.embed is None or self.user_descriptions is None:
            return None, [None] * len(self.names)
        described = [texts for texts in self.learnware_descriptions if texts is not None]
        vectors = self.embed(list(self.user_descriptions) + [t for texts in described for t in texts])
        user, offset = vectors[: len(self.user_descriptions)], len(self.user_descriptions)
        learnwares: list[np.ndarray | None] = []
        for texts in self.learnware_descriptions:
            if texts is None:
                learnwares.append(None)
            else:
                learnwares.append(vectors[offset : offset + len(texts)])
                offset += len(texts)
        return user, learnwares

    def fit(self, user: np.ndarray | RKMETableSpecification, run: RunLearnwares, x_train: np.ndarray | None = None, y_train: np.ndarray | None = None) -> None:
        """Align every learnware to the user's distribution, then, with labels, fit FeatureAugment.

        `user`: the user's rows (with x_train, made into an RKME like the learnwares') or the
        user's own RKME specification.
        """
        if (x_train is None) != (y_train is None):
            raise ValueError("labelled data needs both x_train and y_train")
        self.alignments, self.augment = None, None
        fixed: WeightedTable | None
        if isinstance(user, RKMETableSpecification):
            fixed = WeightedTable.from_spec(user)
            self.user_dim = fixed.dim
        else:
            fixed = None
            rows = self._check_user_rows(check_rows(user), fitted=False)
            self.user_dim = rows.shape[1]
        y = None
        if x_train is not None and y_train is not None:
            x_train = self._check_user_rows(check_rows(x_train, "labelled x"))
            y = _labels_for(y_train, x_train.shape[0], self.task)
            if fixed is None:
                rows = np.vstack([rows, x_train])
        if self.user_descriptions is not None and len(self.user_descriptions) != self.user_dim:
            raise ValueError(f"the user describes {len(self.user_descriptions)} columns but the data has {self.user_dim}")
        user_vectors, learnware_vectors = self._embeddings()
        user_tables: dict[float, WeightedTable] = {}
        candidates = []
        for gamma, learnware, vectors in zip(self.gammas, self.learnwares, learnware_vectors):
            if fixed is not None:
                user_tables[gamma] = fixed
            elif gamma not in user_tables:
                user_tables[gamma] = user_table_from_rows(rows, gamma)
            candidates.append(candidate_maps(user_tables[gamma], learnware, user_vectors, vectors))
        if y is None or x_train is None:
            self.alignments = [Alignment(maps[0]) for maps in candidates]
        else:
            self.alignments = self._choose_by_labels(candidates, x_train, y, run)
            self.augment = FeatureAugmentReuser(self.names, self.task, blend_outputs_only=True)
            self.augment.fit(x_train, y, self.aligned_runner(run))

    def _choose_by_labels(self, candidates: list[list[Candidate]], x_train: np.ndarray, y: np.ndarray, run: RunLearnwares) -> list[Alignment]:
        """For each learnware, the candidate whose outputs fit the labelled data best, ties to the lower MMD.

        All candidates' rows go to a learnware in one job.
        """
        jobs = [(i, np.vstack([c.feature_map(x_train) for c in maps])) for i, maps in enumerate(candidates)]
        alignments = []
        for output, maps in zip(_run_checked(run, jobs, self.names), candidates):
            losses = [labelled_loss(part, y, self.task) for part in np.split(output, len(maps))]
            best = int(np.argmin(losses))  # the first minimum: candidates are sorted by MMD
            alignments.append(Alignment(maps[best], losses[best]))
        return alignments

    def _check_user_rows(self, x: np.ndarray, fitted: bool = True) -> np.ndarray:
        if x.ndim != 2 or x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
            raise ValueError(f"hetero alignment needs a finite numeric table (n, columns), got shape {x.shape} of {x.dtype}")
        if fitted and x.shape[1] != self.user_dim:
            raise ValueError(f"x must have shape (n, {self.user_dim}) (the columns alignment was fit on), got {x.shape}")
        return x

    def aligned_runner(self, run: RunLearnwares) -> RunLearnwares:
        """`run` on user rows: each job's rows are mapped into its learnware's columns first."""
        if self.alignments is None:
            raise ValueError("hetero alignment must be fit on the user's data first")
        alignments = self.alignments
        return lambda jobs: run([(index, alignments[index].chosen.feature_map(rows)) for index, rows in jobs])

    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        if self.alignments is None:
            raise ValueError("hetero alignment must be fit on the user's data first")
        x = self._check_user_rows(check_rows(x))
        aligned = self.aligned_runner(run)
        if self.augment is not None:
            return self.augment.predict(x, aligned)
        return average(_run_checked(aligned, [(i, x) for i in range(len(self.names))], self.names), "mean")

    def describe(self) -> str:
        if self.alignments is None:
            return f"hetero alignment of {len(self.names)} learnwares (not fit)"
        parts = []
        for name, table, alignment in zip(self.names, self.learnwares, self.alignments):
            how = f"labelled loss {alignment.labelled_loss:.3g}" if alignment.labelled_loss is not None else "lowest MMD"
            parts.append(f"{name}: {len(alignment.chosen.feature_map.matches)} of its {table.dim} columns matched (by {how}, MMD {alignment.chosen.mmd:.3g})")
        then = f"; then {self.augment.describe()}" if self.augment is not None else ""
        return f"hetero alignment ({'; '.join(parts)}){then}"
