"""Reusers: combining several learnwares' predictions on a user's data.

The reference package's JobSelector, Averaging, EnsemblePruning and FeatureAugment
reusers, shared by the reuse service and the client SDK. Models never run here:
every reuser takes a `RunLearnwares` callable that runs learnware i on some rows
(in a sandbox, in parallel across learnwares) and returns the outputs in order.

Learnware outputs follow the reference: a classifier returns class scores (n, C)
or labels (n,), a regressor values (n,) or (n, 1).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lwm.learnware.vocabulary import AVERAGING_MODES, TASKS
from lwm.spec.kernels import MAX_KERNEL_ENTRIES, sq_dists
from lwm.spec.qp import solve_simplex_qp
from lwm.spec.rkme import DTYPE, RKMETableSpecification

# A learnware the mixture weights leave out keeps this prior weight, so a row that
# clearly belongs to it is still routed there (the reference herds 5 of 1,000 samples for it).
MIN_MIXTURE_WEIGHT = 0.005
ROUTING_SAMPLE_POINTS = 500  # spec points the routing kernel's width is measured on (2,000 took 128 ms per job selector)
# Ensemble pruning tries every subset up to this many learnwares (1,023 subsets), greedy beyond.
EXHAUSTIVE_PRUNING_MAX = 10
FEATURE_AUGMENT_MAX_FOLDS = 5
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)  # the reference's
# FeatureAugment clips each column to its labelled range widened by this share of its width on each side.
COLUMN_RANGE_MARGIN = 0.5

# Runs learnware `index` on `rows` for each (index, rows) job; returns the outputs in job order.
RunLearnwares = Callable[[Sequence[tuple[int, np.ndarray]]], list[np.ndarray]]


# Sentence embeddings (unit norm, one row per text): of the user's texts for text specifications, of column descriptions for hetero alignment.
EmbedTexts = Callable[[Sequence[str]], np.ndarray]


def check_rows(x: np.ndarray, name: str = "x", texts: bool = False) -> np.ndarray:
    """x as an array of shape (n, ...) with n > 0; with `texts`, a numpy str array of n > 0 texts, shape (n,), too."""
    x = np.asarray(x)
    if texts and x.dtype.kind == "U":
        if x.ndim != 1 or x.shape[0] == 0:
            raise ValueError(f"{name} as texts must have shape (n,) with n > 0, got {x.shape}")
        return x
    if x.ndim < 2 or x.shape[0] == 0:
        also = " or be texts, a str array of shape (n,)" if texts else ""
        raise ValueError(f"{name} must have shape (n, features...) with n > 0{also}, got {x.dtype} of shape {x.shape}")
    return x


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def _run_checked(run: RunLearnwares, jobs: Sequence[tuple[int, np.ndarray]], names: Sequence[str]) -> list[np.ndarray]:
    """Run the jobs and check every output: numeric, (rows,) or (rows, k)."""
    outputs = run(jobs)
    if len(outputs) != len(jobs):
        raise RuntimeError(f"expected {len(jobs)} outputs, got {len(outputs)}")
    checked = []
    for (index, rows), out in zip(jobs, outputs):
        out = np.asarray(out)
        if out.dtype.kind not in "biuf":
            raise ValueError(f"learnware {names[index]} returned {out.dtype} outputs; reusers need numbers")
        if out.ndim not in (1, 2) or out.shape[0] != rows.shape[0]:
            raise ValueError(f"learnware {names[index]} returned shape {out.shape} for {rows.shape[0]} rows; expected ({rows.shape[0]},) or ({rows.shape[0]}, k)")
        checked.append(out)
    return checked


def to_labels(output: np.ndarray) -> np.ndarray:
    """Class labels (n,) of a classifier's output: argmax of scores (n, C > 1), else the values."""
    if output.ndim == 2 and output.shape[1] > 1:
        return output.argmax(axis=1)
    labels = output.reshape(-1)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError("a classifier's one-column output must hold integer labels")
    return labels.astype(np.int64)


def average(predictions: Sequence[np.ndarray], mode: str) -> np.ndarray:
    """AveragingReuser of the reference package.

    mean: average of the outputs (regression), vote_by_label: majority vote of the labels
    (class scores are turned into labels by argmax; ties go to the smaller label),
    vote_by_prob: mean of the softmax of the class scores.
    """
    if mode not in AVERAGING_MODES:
        raise ValueError(f"averaging mode must be one of {AVERAGING_MODES}, got {mode!r}")
    if not predictions:
        raise ValueError("averaging needs at least one learnware")
    rows = {p.shape[0] for p in predictions}
    if len(rows) != 1:
        raise ValueError(f"learnwares returned different numbers of rows: {sorted(rows)}")
    if mode == "vote_by_label":
        return _majority_vote(np.stack([to_labels(np.asarray(p)) for p in predictions], axis=1))
    columns = [np.asarray(p, dtype=np.float64).reshape(p.shape[0], -1) for p in predictions]
    widths = {c.shape[1] for c in columns}
    if len(widths) != 1:
        raise ValueError(f"{mode} needs the same output width from every learnware, got {sorted(widths)}")
    if mode == "vote_by_prob":
        return np.mean([softmax(c, axis=1) for c in columns], axis=0)
    mean = np.mean(columns, axis=0)
    return mean.reshape(-1) if widths == {1} else mean


def _majority_vote(labels: np.ndarray) -> np.ndarray:
    """Most frequent label per row of (n, m) labels; ties go to the smaller label."""
    if labels.min(initial=0) < 0:
        raise ValueError("vote_by_label needs non-negative integer labels")
    n_classes = int(labels.max(initial=0)) + 1
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(labels.shape[0]), labels.shape[1]), labels.reshape(-1)), 1)
    return counts.argmax(axis=1)


class Reuser(ABC):
    """A way to combine learnwares; `fit` (for data-dependent reusers) before `predict`."""

    def __init__(self, names: Sequence[str]) -> None:
        if not names:
            raise ValueError("reuse needs at least one learnware")
        if len(set(names)) != len(names):
            raise ValueError(f"learnwares are listed more than once: {sorted(n for n in set(names) if list(names).count(n) > 1)}")
        self.names = list(names)

    @abstractmethod
    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        """Predictions for the rows of x."""

    @abstractmethod
    def describe(self) -> str:
        """One line on what the reuser does or found, for the user."""


class AveragingReuser(Reuser):
    def __init__(self, names: Sequence[str], mode: str = "mean") -> None:
        super().__init__(names)
        if mode not in AVERAGING_MODES:
            raise ValueError(f"averaging mode must be one of {AVERAGING_MODES}, got {mode!r}")
        self.mode = mode

    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        x = check_rows(x, texts=True)
        return average(_run_checked(run, [(i, x) for i in range(len(self.names))], self.names), self.mode)

    def describe(self) -> str:
        return f"averaging ({self.mode}) over {len(self.names)} learnwares"


def routing_gamma(points: Sequence[torch.Tensor], spec_gamma: float) -> float:
    """Width of the kernel the job selector's densities use: the specs' gamma, or, where that kernel is
    wider than the points' spread, the median heuristic (1 / median squared distance between the specs'
    points, a deterministic sample of them)."""
    stacked = torch.cat(list(points))
    if stacked.shape[0] > ROUTING_SAMPLE_POINTS:
        stacked = stacked[torch.linspace(0, stacked.shape[0] - 1, ROUTING_SAMPLE_POINTS).long()]
    distances = sq_dists(stacked, stacked)
    positive = distances[distances > 0]
    if positive.numel() == 0:
        return spec_gamma
    return max(spec_gamma, 1.0 / float(positive.median()))


class JobSelectorReuser(Reuser):
    """Routes each row to the learnware whose data most likely produced it.

    The reference trains a LightGBM classifier on pseudo-samples herded from every
    learnware's RKME specification. That classifier approximates the Bayes rule
    argmax_i w_i p_i(x), and the specification already gives p_i in closed form:
    sum_j beta_ij k(z_ij, x), normalised, is the learnware's data density smoothed by
    the Gaussian kernel. So we evaluate it exactly, with no sampling and no training.
    The mixture weights w solve the same simplex QP as the reference, between the
    learnwares' specs and the user's data (or the user's own spec, when given).
    Text learnwares (RKMETextSpecification, an RKME over sentence embeddings): `embed`
    maps the user's texts into the specifications' space; the learnwares run on the texts.
    The densities use the specs' kernel unless it is wider than their points' spread
    (routing_gamma): the default gamma 0.1 on unit-norm sentence embeddings makes every
    density nearly flat, and rows went wherever the mixture weight was largest.
    """

    def __init__(
        self, names: Sequence[str], specs: Sequence[RKMETableSpecification], user_spec: RKMETableSpecification | None = None, embed: EmbedTexts | None = None
    ) -> None:
        super().__init__(names)
        self.embed = embed
        if len(specs) != len(names):
            raise ValueError(f"job selector got {len(specs)} specifications for {len(names)} learnwares")
        self.specs = list(specs)
        if any(spec.z is None or spec.beta is None for spec in self.specs):
            raise ValueError("job selector: every learnware needs a fitted specification (z and beta)")
        dims = {spec.get_z().shape[1] for spec in self.specs}
        if len(dims) != 1:
            raise ValueError(f"the learnwares' specifications have different feature dimensions {sorted(dims)}")
        self.dim = dims.pop()
        self._z = [spec.z.detach().to("cpu", DTYPE) for spec in self.specs if spec.z is not None]
        self._beta = [spec.beta.detach().to("cpu", DTYPE) for spec in self.specs if spec.beta is not None]
        for name, beta in zip(self.names, self._beta):
            if float(beta.clamp_min(0).sum()) <= 0:
                raise ValueError(f"learnware {name}'s specification has no positive weight in beta")
        self.routing_gamma = routing_gamma(self._z, max(float(spec.gamma) for spec in self.specs))
        self.weights: np.ndarray | None = None  # fixed mixture weights (user spec or fit)
        self.weights_used: np.ndarray | None = None  # those of the last select()
        if user_spec is not None:
            if user_spec.get_z().shape[1] != self.dim:
                raise ValueError(f"the user's specification has {user_spec.get_z().shape[1]} features, the learnwares' {self.dim}")
            self.weights = self._solve_weights(np.array([user_spec.inner_prod(spec) for spec in self.specs]))

    def _solve_weights(self, user_terms: np.ndarray) -> np.ndarray:
        """Mixture weights w >= 0, sum 1, minimising ||sum_i w_i Phi_i - Phi_user||^2."""
        n = len(self.specs)
        gram = np.empty((n, n))
        for i, j in itertools.combinations_with_replacement(range(n), 2):
            gram[i, j] = gram[j, i] = self.specs[i].inner_prod(self.specs[j])
        return solve_simplex_qp(gram, user_terms)

    def _table(self, x: np.ndarray) -> torch.Tensor:
        x = check_rows(x, texts=True)
        if x.dtype.kind == "U":
            if self.embed is None:
                raise ValueError("the job selector got texts, but no embedder for the learnwares' specifications (text learnwares need RKMETextSpecification)")
            x = np.asarray(self.embed(x.tolist()))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}) to match the learnwares' specifications, got {x.shape}")
        if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
            raise ValueError("the job selector needs finite numeric features in x (no NaN or inf)")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))

    def _kernel_terms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log p_i(x_r) (rows, N) and <Phi_i, Phi_x> (N,) with Phi_x the mean embedding of the rows."""
        xt = self._table(x)
        log_density = torch.empty(xt.shape[0], len(self.specs), dtype=DTYPE)
        embedding = np.empty(len(self.specs))
        # The kernel integrates to (pi / gamma)^(d/2): dividing by it makes every p_i a density.
        log_norm = 0.5 * self.dim * math.log(self.routing_gamma / math.pi)
        for i, (spec, z, beta) in enumerate(zip(self.specs, self._z, self._beta)):
            positive = beta.clamp_min(0)
            log_beta = torch.log(positive / positive.sum())
            total = 0.0
            step = max(1, MAX_KERNEL_ENTRIES // z.shape[0])
            for start in range(0, xt.shape[0], step):
                distances = sq_dists(xt[start : start + step], z)
                log_density[start : start + step, i] = torch.logsumexp(-self.routing_gamma * distances + log_beta, dim=1) + log_norm
                total += float((torch.exp(-spec.gamma * distances) @ beta).sum())
            embedding[i] = total / xt.shape[0]
        return log_density.numpy(), embedding

    def fit(self, x: np.ndarray) -> None:
        """Fix the mixture weights from these rows, e.g. all of a user's data before predicting it in blocks."""
        self.weights = self._solve_weights(self._kernel_terms(x)[1])

    def select(self, x: np.ndarray) -> np.ndarray:
        """Index of the learnware chosen for each row, shape (n,).

        Mixture weights: fixed by the user's spec or `fit`, else estimated from these rows.
        """
        if len(self.specs) == 1:
            self.weights_used = np.ones(1)
            return np.zeros(self._table(x).shape[0], dtype=np.int64)
        log_density, embedding = self._kernel_terms(x)
        self.weights_used = self.weights if self.weights is not None else self._solve_weights(embedding)
        return (log_density + np.log(np.maximum(self.weights_used, MIN_MIXTURE_WEIGHT))).argmax(axis=1)

    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        x = check_rows(x, texts=True)
        chosen = self.select(x)
        rows = [np.flatnonzero(chosen == i) for i in range(len(self.names))]
        jobs = [(i, x[r]) for i, r in enumerate(rows) if r.size]
        outputs = _run_checked(run, jobs, self.names)
        widths = {out.shape[1:] for out in outputs}
        if len(widths) != 1:
            raise ValueError(f"the chosen learnwares return outputs of different shapes {sorted(widths)}")
        result = np.zeros((x.shape[0], *widths.pop()), dtype=np.result_type(*outputs))
        for (index, _), out in zip(jobs, outputs):
            result[rows[index]] = out
        return result

    def describe(self) -> str:
        weights = ", ".join(f"{name} {w:.2f}" for name, w in zip(self.names, self.weights_used if self.weights_used is not None else []))
        return f"job selector over {len(self.names)} learnwares (mixture weights: {weights or 'not estimated'})"


def _labels_for(y: np.ndarray, x_rows: int, task: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1 or y.shape[0] != x_rows:
        raise ValueError(f"y must have shape ({x_rows},) to match the labelled x, got {y.shape}")
    if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y)):
        raise ValueError("y must hold finite numbers")
    if task == "classification":
        if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
            raise ValueError("classification labels y must be non-negative integers (class indices)")
        return y.astype(np.int64)
    return y.astype(np.float64)


def _check_label_space(outputs: Sequence[np.ndarray], y: np.ndarray, names: Sequence[str]) -> None:
    """Every learnware scores the same classes, and y uses only those."""
    widths = {name: out.shape[1] for name, out in zip(names, outputs) if out.ndim == 2 and out.shape[1] > 1}
    if len(set(widths.values())) > 1:
        raise ValueError(f"the learnwares predict different numbers of classes: {widths}")
    if widths:
        n_classes = next(iter(widths.values()))
        if y.max() >= n_classes:
            raise ValueError(f"labels in y go up to {y.max()}, but the learnwares score only {n_classes} classes (0..{n_classes - 1})")


@dataclass(frozen=True)
class PruningScore:
    """How well a subset fits the labelled data; lower is better, compared in field order."""

    loss: float  # errors (classification) or mean squared error (regression)
    margin_ratio: float  # std / mean of the vote margins (MDEP's margin objective); 0 for regression
    size: int


class EnsemblePruningReuser(Reuser):
    """Keeps the subset of learnwares whose ensemble best fits the labelled data.

    The reference searches subsets with a multi-objective evolutionary algorithm (MDEP,
    via geatpy) on error, margin distribution and size. With a handful of learnwares we
    score every subset exactly in one vectorised pass (greedy forward selection beyond
    EXHAUSTIVE_PRUNING_MAX), ranking by error, then margin ratio, then size.
    Predictions: majority vote of labels (classification; a tie goes to the class with
    the highest mean softmax score where learnwares give scores) or mean (regression).
    """

    def __init__(self, names: Sequence[str], task: str) -> None:
        super().__init__(names)
        self.task = check_task(task)
        self.selected: list[int] = list(range(len(names)))
        self.score: PruningScore | None = None
        self._n_classes = 0

    def fit(self, x: np.ndarray, y: np.ndarray, run: RunLearnwares) -> None:
        x = check_rows(x, "labelled x", texts=True)
        y = _labels_for(y, x.shape[0], self.task)
        outputs = _run_checked(run, [(i, x) for i in range(len(self.names))], self.names)
        if self.task == "classification":
            _check_label_space(outputs, y, self.names)
            self._n_classes = max([int(y.max()) + 1] + [out.shape[1] for out in outputs if out.ndim == 2 and out.shape[1] > 1])
            columns = self._votes(outputs, self.names)
        else:
            columns = np.stack([_regression_values(out, name) for out, name in zip(outputs, self.names)], axis=1)
        subsets = self._candidate_subsets(columns, y)
        scores = self._score(columns, y, subsets)
        best = min(range(len(subsets)), key=lambda s: (scores[s].loss, scores[s].margin_ratio, scores[s].size))
        self.selected = np.flatnonzero(subsets[best]).tolist()
        self.score = scores[best]

    def _votes(self, outputs: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
        """Each learnware's vote per row and class, (rows, learnwares, classes): 1 for its label,
        plus its softmax scores scaled to break ties only (all learnwares' add up to under one vote)."""
        rows = outputs[0].shape[0]
        votes = np.zeros((rows, len(outputs), self._n_classes))
        tie_break = 0.5 / len(outputs)
        for j, out in enumerate(outputs):
            labels = to_labels(out)
            if labels.min() < 0 or labels.max() >= self._n_classes:
                raise ValueError(f"learnware {names[j]} predicts labels outside 0..{self._n_classes - 1}")
            votes[np.arange(rows), j, labels] = 1.0
            if out.ndim == 2 and out.shape[1] > 1:
                votes[:, j, : out.shape[1]] += tie_break * softmax(out.astype(np.float64), axis=1)
        return votes

    def _candidate_subsets(self, columns: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = columns.shape[1]
        if n <= EXHAUSTIVE_PRUNING_MAX:
            return np.array([[(mask >> i) & 1 for i in range(n)] for mask in range(1, 2**n)], dtype=bool)
        # Greedy forward selection: add the learnware that most improves the score, keep every step.
        chosen = np.zeros(n, dtype=bool)
        steps = []
        for _ in range(n):
            trials = np.array([chosen | (np.arange(n) == j) for j in np.flatnonzero(~chosen)])
            scores = self._score(columns, y, trials)
            chosen = trials[min(range(len(trials)), key=lambda s: (scores[s].loss, scores[s].margin_ratio))]
            steps.append(chosen.copy())
        return np.array(steps)

    def _score(self, columns: np.ndarray, y: np.ndarray, subsets: np.ndarray) -> list[PruningScore]:
        """Scores of the (S, learnwares) boolean subsets on the labelled rows' values (rows, learnwares)
        or votes (rows, learnwares, classes)."""
        sizes = subsets.sum(axis=1)
        weights = subsets.astype(np.float64)
        if self.task == "regression":
            means = columns @ weights.T / sizes  # (rows, S)
            mse = ((means - y[:, None]) ** 2).mean(axis=0)
            return [PruningScore(float(mse[s]), 0.0, int(sizes[s])) for s in range(len(subsets))]
        rows = np.arange(len(y))
        errors, ratios = [], []
        step = max(1, MAX_KERNEL_ENTRIES // (len(y) * self._n_classes))
        for start in range(0, len(subsets), step):
            votes = np.einsum("sm,rmc->src", weights[start : start + step], columns)  # (S, rows, C)
            errors.append((votes.argmax(axis=2) != y[None, :]).sum(axis=1))
            true_votes = votes[:, rows, y]
            votes[:, rows, y] = -np.inf
            margins = (true_votes - votes.max(axis=2)) / sizes[start : start + step, None]
            mean = margins.mean(axis=1)
            ratios.append(np.where(mean > 0, margins.std(axis=1) / np.where(mean > 0, mean, 1.0), np.inf))
        error, ratio = np.concatenate(errors), np.concatenate(ratios)
        return [PruningScore(float(error[s]), float(ratio[s]), int(sizes[s])) for s in range(len(subsets))]

    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        if self.score is None:
            raise ValueError("ensemble pruning must be fit on labelled data first")
        x = check_rows(x, texts=True)
        outputs = _run_checked(run, [(i, x) for i in self.selected], self.names)
        if self.task == "regression":
            return average(outputs, "mean")
        return self._votes(outputs, [self.names[i] for i in self.selected]).sum(axis=1).argmax(axis=1)

    def describe(self) -> str:
        kept = ", ".join(self.names[i] for i in self.selected)
        fit = "" if self.score is None else f"; on the labelled data: {'errors' if self.task == 'classification' else 'MSE'} {self.score.loss:g}"
        return f"ensemble pruning kept {len(self.selected)} of {len(self.names)} learnwares: {kept}{fit}"


def _regression_values(output: np.ndarray, name: str) -> np.ndarray:
    if output.ndim == 2 and output.shape[1] != 1:
        raise ValueError(f"learnware {name} returned {output.shape[1]} outputs per row; regression reuse needs one")
    return output.reshape(-1).astype(np.float64)


class FeatureAugmentReuser(Reuser):
    """The learnwares' outputs become extra features of a linear model fit on the labelled data.

    As the reference: ridge with cross-validated alpha (regression) and logistic regression
    with cross-validated C (classification), the latter on standardised features, which
    makes C's grid fit the data (measured: +1 to +4 points of accuracy with 50-100 samples).
    The linear model is not extrapolated far past the labelled rows' range of a column
    (COLUMN_RANGE_MARGIN; the learnwares' outputs are not clipped): one outlying value (a
    mistyped measurement) times a large coefficient of correlated columns gave predictions
    off by 100x.

    With `blend_outputs_only`, a second model of the same kind is fit on the learnwares'
    outputs alone (it trusts them, recalibrated) and predictions are the mean of the two
    models' values or class probabilities: with 50-100 labelled rows, where the columns'
    coefficients are noisy, the blend was better than either model alone (hetero reuse).
    """

    def __init__(self, names: Sequence[str], task: str, blend_outputs_only: bool = False) -> None:
        super().__init__(names)
        self.task = check_task(task)
        self.blend_outputs_only = blend_outputs_only
        self.models: list[BaseEstimator] = []
        self._width: int | None = None
        self._column_range: tuple[np.ndarray, np.ndarray] | None = None

    def _features(self, x: np.ndarray, run: RunLearnwares) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(each model's features, the learnwares' outputs): the user's columns (clipped to the
        labelled range once fit) and the outputs side by side; with the blend, the outputs alone too."""
        x = check_rows(x)
        outputs = _run_checked(run, [(i, x) for i in range(len(self.names))], self.names)
        columns = x.reshape(x.shape[0], -1).astype(np.float64)
        output_features = np.concatenate([out.reshape(out.shape[0], -1).astype(np.float64) for out in outputs], axis=1)
        augmented = np.concatenate([columns, output_features], axis=1)
        if self._column_range is not None:
            if augmented.shape[1] != self._width:
                raise ValueError(f"x gives {augmented.shape[1]} augmented features, the model was fit on {self._width}")
            augmented[:, : columns.shape[1]] = np.clip(columns, *self._column_range)
        return ([augmented, output_features] if self.blend_outputs_only else [augmented]), outputs

    def fit(self, x: np.ndarray, y: np.ndarray, run: RunLearnwares) -> None:
        x = check_rows(x, "labelled x")
        y = _labels_for(y, x.shape[0], self.task)
        self._column_range = None
        feature_sets, outputs = self._features(x, run)
        if self.task == "classification":
            _check_label_space(outputs, y, self.names)
        self.models = [(self._classifier(y) if self.task == "classification" else RidgeCV(alphas=RIDGE_ALPHAS)).fit(features, y) for features in feature_sets]
        self._width = feature_sets[0].shape[1]
        columns = x.reshape(x.shape[0], -1).astype(np.float64)
        low, high = columns.min(axis=0), columns.max(axis=0)
        margin = COLUMN_RANGE_MARGIN * (high - low)
        self._column_range = (low - margin, high + margin)

    @staticmethod
    def _classifier(y: np.ndarray) -> BaseEstimator:
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError(f"feature augmentation needs labelled samples of at least two classes, got only class {classes[0]}")
        folds = min(FEATURE_AUGMENT_MAX_FOLDS, int(counts.min()))
        if folds < 2:  # too few samples of some class to cross-validate C
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return make_pipeline(StandardScaler(), LogisticRegressionCV(cv=folds, max_iter=1000, random_state=0))

    def predict(self, x: np.ndarray, run: RunLearnwares) -> np.ndarray:
        if not self.models:
            raise ValueError("feature augmentation must be fit on labelled data first")
        feature_sets, _ = self._features(x, run)
        if len(self.models) == 1:
            return self.models[0].predict(feature_sets[0])
        if self.task == "regression":
            return np.mean([model.predict(features) for model, features in zip(self.models, feature_sets)], axis=0)
        probabilities = np.mean([model.predict_proba(features) for model, features in zip(self.models, feature_sets)], axis=0)
        return self.models[0].classes_[probabilities.argmax(axis=1)]

    def describe(self) -> str:
        blend = " blended with a model on the outputs alone" if self.blend_outputs_only else ""
        return f"feature augmentation: {self.task} on the features plus the outputs of {len(self.names)} learnwares{blend}"


def predict_in_blocks(reuser: Reuser, x: np.ndarray, run: RunLearnwares, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(row offset, predictions) for consecutive blocks of at most `block_rows` rows (or texts)."""
    x = check_rows(x, texts=True)
    if block_rows < 1:
        raise ValueError(f"block_rows must be positive, got {block_rows}")
    for start in range(0, x.shape[0], block_rows):
        yield start, reuser.predict(x[start : start + block_rows], run)
