"""The reference's learnware.tests.templates through lwm.client.compat: zips that load here and in the reference."""

from __future__ import annotations

import os
import pickle
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from lwm.client.compat import LearnwareTemplate, PickleModelTemplate, StatSpecTemplate
from lwm.learnware.archive import LearnwareArchive
from lwm.spec import generate_rkme_table_spec

REPO = Path(__file__).resolve().parents[2]


def reference_python() -> Path | None:
    """The python of a venv with the reference package: env LWM_REFERENCE_PYTHON, else bench's .bench-venv."""
    configured = os.environ.get("LWM_REFERENCE_PYTHON")
    candidate = Path(configured) if configured else REPO / ".bench-venv" / "bin" / "python"
    return candidate if candidate.exists() else None


def make_digits_zip(folder: Path, requirements: list | None = None, predict_method: str = "predict_proba") -> tuple[Path, LogisticRegression, np.ndarray]:
    """A digits classifier zipped the way the reference's test_workflow does: model.pkl and stat_spec.json files, then the template."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    model = LogisticRegression(max_iter=300).fit(X, y)
    pickle_path, spec_path = folder / "model.pkl", folder / "stat_spec.json"
    pickle_path.write_bytes(pickle.dumps(model))
    generate_rkme_table_spec(X=X, gamma=0.1, reduced_set_size=20, cuda_idx=0).save(str(spec_path))
    zip_path = folder / "digits.zip"
    LearnwareTemplate.generate_learnware_zipfile(
        learnware_zippath=str(zip_path),
        model_template=PickleModelTemplate(pickle_filepath=str(pickle_path), model_kwargs={"input_shape": (64,), "output_shape": (10,), "predict_method": predict_method}),
        stat_spec_template=StatSpecTemplate(filepath=str(spec_path), type="RKMETableSpecification"),
        requirements=requirements,
    )
    return zip_path, model, X


def test_zip_layout_follows_the_reference(tmp_path: Path) -> None:
    zip_path, model, _ = make_digits_zip(tmp_path, requirements=["scikit-learn>=1.0", ("numpy", ">=", "1.20")])
    archive = LearnwareArchive.from_path(zip_path)
    assert sorted(archive.names) == ["__init__.py", "learnware.yaml", "model.pkl", "requirements.txt", "stat_spec.json"]
    config = archive.config
    assert config.model_kwargs == {
        "input_shape": [64],
        "output_shape": [10],
        "predict_method": "predict_proba",
        "fit_method": "fit",
        "finetune_method": "finetune",
        "pickle_filename": "model.pkl",
    }
    assert [(s.module_path, s.class_name, s.file_name) for s in config.stat_specs] == [("learnware.specification", "RKMETableSpecification", "stat_spec.json")]
    assert archive.read("stat_spec.json") == (tmp_path / "stat_spec.json").read_bytes()
    assert archive.read("model.pkl") == (tmp_path / "model.pkl").read_bytes()
    assert archive.read("requirements.txt") == b"scikit-learn>=1.0\nnumpy>=1.20\n"
    assert archive.semantic_spec() is None  # the reference keeps the semantic spec outside the zip


def test_pickle_filename_names_the_model_file(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"pickled")
    (tmp_path / "spec.json").write_text("{}")
    LearnwareTemplate.generate_learnware_zipfile(
        str(tmp_path / "lw.zip"),
        PickleModelTemplate(pickle_filepath=str(tmp_path / "m.bin"), model_kwargs={"input_shape": (2,), "output_shape": (1,), "pickle_filename": "weights.pkl"}),
        StatSpecTemplate(filepath=str(tmp_path / "spec.json")),
    )
    archive = LearnwareArchive.from_path(tmp_path / "lw.zip")
    assert archive.read("weights.pkl") == b"pickled"
    assert archive.config.model_kwargs["pickle_filename"] == "weights.pkl"
    assert archive.read("requirements.txt") == b""


def test_generate_requirements_accepts_strings_and_tuples(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    LearnwareTemplate.generate_requirements(str(path), [" torch ", ("lightgbm", "~=", "4.0")])
    assert path.read_text() == "torch\nlightgbm~=4.0\n"


@pytest.mark.parametrize(
    ("requirement", "error", "match"),
    [(("numpy", "=>", "1.0"), ValueError, "operator must be one of"), (["numpy"], TypeError, "str or a \\(name, operator, version\\) tuple")],
)
def test_bad_requirements_are_refused(tmp_path: Path, requirement: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LearnwareTemplate.generate_requirements(str(tmp_path / "r.txt"), [requirement])  # type: ignore[list-item]


def test_templates_refuse_missing_shapes_and_unknown_spec_types() -> None:
    with pytest.raises(ValueError, match="must give output_shape"):
        PickleModelTemplate(pickle_filepath="model.pkl", model_kwargs={"input_shape": (3,)})
    with pytest.raises(ValueError, match="type must be one of"):
        StatSpecTemplate(filepath="spec.json", type="RKMESpec")


@pytest.mark.slow
def test_template_zip_runs_in_the_sandbox(tmp_path: Path) -> None:
    from lwm.client.reuse import load_learnware

    zip_path, model, X = make_digits_zip(tmp_path, requirements=["scikit-learn", "numpy"])
    with load_learnware(zip_path) as learnware:
        np.testing.assert_allclose(learnware.predict(X[:50]), model.predict_proba(X[:50]), rtol=1e-6)


REFERENCE_LOAD_SCRIPT = """
import sys, tempfile, zipfile
import numpy as np
from learnware.learnware import get_learnware_from_dirpath
from learnware.market import EasyStatChecker, EasySemanticChecker
from learnware.specification import generate_semantic_spec

zip_path, data_path = sys.argv[1], sys.argv[2]
semantic = generate_semantic_spec(
    name="digits", description="template zip", data_type="Table", task_type="Classification",
    library_type="Scikit-learn", scenarios="Education", license="MIT",
    input_description={"Dimension": 64, "Description": {str(i): f"pixel {i}" for i in range(64)}},
    output_description={"Dimension": 10, "Description": {str(i): f"digit {i}" for i in range(10)}},
)
with tempfile.TemporaryDirectory() as folder:
    zipfile.ZipFile(zip_path).extractall(folder)
    learnware = get_learnware_from_dirpath("template", semantic, folder, ignore_error=False)
    learnware.instantiate_model()
    status, message = EasyStatChecker()(learnware)
    assert status == 1, message
    np.save(sys.argv[3], learnware.predict(np.load(data_path)))
print("reference: USABLE")
"""


@pytest.mark.slow
def test_template_zip_loads_and_passes_the_reference_checker(tmp_path: Path) -> None:
    python = reference_python()
    if python is None:
        pytest.skip("no venv with the reference package: set LWM_REFERENCE_PYTHON or make .bench-venv (bench/reference_venv.py)")
    zip_path, model, X = make_digits_zip(tmp_path)
    np.save(tmp_path / "x.npy", X[:30])
    with tempfile.TemporaryDirectory() as home:  # the reference writes ~/.learnware on import
        result = subprocess.run(
            [str(python), "-c", REFERENCE_LOAD_SCRIPT, str(zip_path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": home},
            timeout=600,
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict_proba(X[:30]), rtol=1e-6)
