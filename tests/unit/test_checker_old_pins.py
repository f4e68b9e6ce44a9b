"""The checker on a learnware zip made like the reference's own workflow test zips, which pin `scikit-learn==0.22`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from lwm.checks import check_learnware
from lwm.learnware.template import write_learnware_zip
from lwm.rpc.learnware.v1 import common_pb2
from lwm.runtime.environment import EnvironmentConfig, EnvironmentManager
from lwm.spec import generate_rkme_table_spec, generate_semantic_spec

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def test_old_scikit_learn_pin_is_relaxed_and_the_learnware_is_usable(tmp_path: Path) -> None:
    """A pickled SVC on the digits with requirements `scikit-learn==0.22`, which has no wheel for this Python:
    the pin is relaxed, the report says to which version, and the model loads and predicts."""
    X, y = load_digits(return_X_y=True)
    spec = generate_semantic_spec(
        name="svm",
        description="digits",
        data_type="Table",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios=["Education"],
        license="MIT",
        input_description={"Dimension": 64, "Description": {str(i): f"pixel {i}" for i in range(64)}},
        output_description={"Dimension": 10, "Description": {str(i): f"digit {i}" for i in range(10)}},
    )
    zip_path = write_learnware_zip(
        tmp_path / "svm.zip",
        SVC(kernel="linear", probability=True).fit(X[:300], y[:300]),
        None,
        generate_rkme_table_spec(X[:300], reduced_set_size=20),
        input_shape=(64,),
        output_shape=(10,),
        requirements=["scikit-learn==0.22"],
    )
    environments = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs"))
    report = check_learnware(spec, zip_path.read_bytes(), environments=environments, timeout_s=120)
    assert report.status == common_pb2.LEARNWARE_STATUS_USABLE, report
    [env_step] = [s for s in report.steps if s.name == "environment"]
    python = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    assert any(m.startswith(f"warning: scikit-learn==0.22 has no wheel for {python}; relaxed to scikit-learn==") for m in env_step.messages), env_step.messages
    assert list(report.dropped_requirements) == []
