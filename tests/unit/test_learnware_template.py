"""Example learnware zips made by lwm.learnware.template."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.template import write_learnware_zip


class StandInSpec:
    """Has what the template needs from lwm.spec.RKMETableSpecification: save() and type."""

    type = "RKMETableSpecification"

    def save(self, filepath: str) -> None:
        Path(filepath).write_text(json.dumps({"type": self.type, "beta": [1.0], "z": [[0.0, 0.0, 0.0]]}))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, (X[:, 0] > 0).astype(int)


def test_classifier_zip(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    semantic = {"Data": {"Values": ["Table"], "Type": "Class"}}
    path = write_learnware_zip(
        tmp_path / "clf.zip",
        LogisticRegression().fit(X, y),
        semantic,
        StandInSpec(),
        input_shape=(3,),
        output_shape=(2,),
        requirements=["scikit-learn>=1.3", "numpy"],
    )
    archive = LearnwareArchive.from_path(path)
    assert archive.root == ""
    assert archive.config.model_class_name == "PickledModel"
    assert archive.config.model_kwargs["predict_method"] == "predict_proba"
    assert archive.config.model_kwargs["input_shape"] == [3]
    assert archive.config.stat_specs[0].class_name == "RKMETableSpecification"
    assert archive.stat_spec_json()["type"] == "RKMETableSpecification"
    assert archive.semantic_spec() == semantic
    assert archive.read("requirements.txt") == b"scikit-learn>=1.3\nnumpy\n"
    assert "model.pkl" in archive.names


def test_regressor_zip_nested_without_semantic_spec(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    path = write_learnware_zip(
        tmp_path / "reg.zip",
        LinearRegression().fit(X, X[:, 1]),
        None,
        StandInSpec(),
        input_shape=(3,),
        output_shape=(1,),
        nested_folder="my_learnware",
    )
    with zipfile.ZipFile(path) as zf:
        assert all(name.startswith("my_learnware/") for name in zf.namelist())
    archive = LearnwareArchive.from_path(path)
    assert archive.root == "my_learnware"
    assert archive.config.model_kwargs["predict_method"] == "predict"
    assert archive.config.semantic_spec_file is None
    assert "semantic_specification.json" not in archive.names
    assert archive.read("requirements.txt") == b""
