"""Learnwares as plain functions, run the way the reusers' `run` callback runs sandboxed ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Model = Callable[[np.ndarray], np.ndarray]


class Runner:
    """Stands in for the sandboxed runners: learnware i is models[i]; records every job's row count."""

    def __init__(self, models: Sequence[Model]) -> None:
        self.models = list(models)
        self.jobs: list[tuple[int, int]] = []

    def __call__(self, jobs: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        self.jobs.extend((i, rows.shape[0]) for i, rows in jobs)
        return [self.models[i](rows) for i, rows in jobs]
