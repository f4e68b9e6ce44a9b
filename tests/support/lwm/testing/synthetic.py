"""Synthetic table worlds: real scikit-learn learnwares on generated data, for the demo, tests and benchmarks.

Every task draws its rows from its own region of feature space and labels them with a
concept that is partly shared and partly its own, so the learnware trained on a region
is the right one for users whose data come from there, and the others still help a little.
A classification world labels rows by the argmax of the concept's scores, a regression
world (one output) by the score itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from lwm.learnware.template import write_learnware_zip
from lwm.spec import RKMETableSpecification, generate_semantic_spec

SCENARIOS = ["Business", "Financial", "Health", "Industry", "Nature", "Education"]


@dataclass
class TableWorld:
    dim: int
    n_classes: int  # 1 for regression
    centers: np.ndarray  # (tasks, dim)
    concepts: np.ndarray  # (tasks, dim, n_classes)
    seed: int
    task: str = "classification"

    @classmethod
    def make(cls, tasks: int = 6, dim: int = 8, n_classes: int = 3, separation: float = 4.0, task_specific: float = 0.3, seed: int = 0, task: str = "classification") -> TableWorld:
        """Regions far apart; each task's concept is a shared one plus its own part.

        Centers lie where the shared concept is 0, so every region holds all classes.
        `task` is "classification" or "regression" (which has one output, n_classes is ignored).
        """
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression, got {task!r}")
        n_classes = 1 if task == "regression" else n_classes
        rng = np.random.default_rng(seed)
        shared = rng.normal(size=(dim, n_classes))
        null_space = np.linalg.svd(shared.T)[2][n_classes:]  # directions orthogonal to the concept
        centers = rng.normal(scale=separation, size=(tasks, null_space.shape[0])) @ null_space
        concepts = shared + task_specific * rng.normal(size=(tasks, dim, n_classes))
        return cls(dim, n_classes, centers, concepts, seed, task)

    def sample(self, task: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Rows of one task's region with their labels (classification) or targets (regression)."""
        x = self.centers[task] + rng.normal(size=(n, self.dim))
        logits = (x - self.centers[task]) @ self.concepts[task] + 0.3 * rng.normal(size=(n, self.n_classes))
        return x, logits[:, 0] if self.task == "regression" else logits.argmax(axis=1)

    def sample_mixture(self, tasks: list[int], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.sample(task, n // len(tasks), rng) for task in tasks]
        return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def semantic_spec(self, task: int) -> dict:
        regression = self.task == "regression"
        return generate_semantic_spec(
            name=f"demo-table-{task}",
            description=f"Ridge regression for region {task} of the demo table world." if regression else f"Logistic regression for region {task} of the demo table world ({self.n_classes} classes).",
            data_type="Table",
            task_type="Regression" if regression else "Classification",
            library_type="Scikit-learn",
            scenarios=[SCENARIOS[task % len(SCENARIOS)]],
            license="MIT",
            input_description={"Dimension": self.dim, "Description": {str(i): f"feature {i}" for i in range(self.dim)}},
            output_description={"Dimension": 1, "Description": {"0": "target"}} if regression else {"Dimension": self.n_classes, "Description": {str(i): f"score of class {i}" for i in range(self.n_classes)}},
        )

    def write_learnware(self, task: int, out_dir: Path, n_train: int = 600) -> tuple[Path, dict]:
        """Train the task's model, build its RKME spec and zip; returns (zip path, semantic spec)."""
        rng = np.random.default_rng(self.seed * 1000 + task)
        x, y = self.sample(task, n_train, rng)
        model = Ridge(alpha=1.0).fit(x, y) if self.task == "regression" else LogisticRegression(max_iter=1000).fit(x, y)
        spec = RKMETableSpecification()
        spec.generate_stat_spec_from_data(x)
        semantic = self.semantic_spec(task)
        path = write_learnware_zip(Path(out_dir) / f"learnware-{task}.zip", model, semantic, spec, input_shape=(self.dim,), output_shape=(self.n_classes,), requirements=["scikit-learn", "numpy"])
        return path, semantic
