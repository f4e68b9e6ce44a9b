"""Combining the predictions of several learnwares (the reference package's reusers)."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

AVERAGING_MODES = ("mean", "vote_by_label", "vote_by_prob")


def average(predictions: list[np.ndarray], mode: str) -> np.ndarray:
    """AveragingReuser of the reference package.

    mean: average of the outputs (regression), vote_by_label: majority vote of the labels
    (class scores are turned into labels by argmax), vote_by_prob: mean of the softmax of
    the class scores.
    """
    if mode not in AVERAGING_MODES:
        raise ValueError(f"averaging mode must be one of {AVERAGING_MODES}, got {mode!r}")
    if not predictions:
        raise ValueError("averaging needs at least one learnware")
    rows = {p.shape[0] for p in predictions}
    if len(rows) != 1:
        raise ValueError(f"learnwares returned different numbers of rows: {sorted(rows)}")
    columns = []
    for pred in predictions:
        pred = np.asarray(pred, dtype=np.float64)
        if pred.ndim == 1:
            pred = pred.reshape(-1, 1)
        elif mode == "vote_by_label" and pred.shape[1] > 1:
            pred = pred.argmax(axis=1).reshape(-1, 1)
        elif mode == "vote_by_prob":
            pred = softmax(pred, axis=-1)
        columns.append(pred)
    if mode == "vote_by_prob":
        widths = {c.shape[1] for c in columns}
        if len(widths) != 1:
            raise ValueError(f"vote_by_prob needs the same number of classes from every learnware, got {sorted(widths)}")
        return np.mean(columns, axis=0)
    stacked = np.concatenate(columns, axis=1)
    if mode == "mean":
        return stacked.mean(axis=1)
    labels = stacked.astype(np.int64)
    if labels.min(initial=0) < 0:
        raise ValueError("vote_by_label needs non-negative integer labels")
    return np.array([np.bincount(row).argmax() for row in labels])
