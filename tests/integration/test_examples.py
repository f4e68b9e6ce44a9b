"""The examples in examples/, each run as a user runs it: a script that starts its own market (`lwm serve --all`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TIMEOUT_S = 540

pytestmark = pytest.mark.integration


def run_example(name: str, work_dir: Path) -> str:
    """Run examples/<name> with its market under work_dir; returns its output, failing the test if it fails.

    The example runs in its own process group, so a timeout also stops the market it started.
    """
    process = subprocess.Popen([sys.executable, str(EXAMPLES / name), "--work-dir", str(work_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=EXAMPLE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{name} did not finish in {EXAMPLE_TIMEOUT_S} s; its output:\n{output[-6000:]}")
    assert process.returncode == 0, f"{name} exited with {process.returncode}; its output:\n{output[-6000:]}"
    assert re.search(r"market stopped \(exit code 0\)", output), output[-3000:]
    return output


def accuracy_after(label: str, output: str) -> float:
    match = re.search(re.escape(label) + r".*?accuracy (\d\.\d+)", output)
    assert match, f"no accuracy for {label!r} in:\n{output[-3000:]}"
    return float(match.group(1))


@pytest.mark.slow
def test_table_workflow_finds_the_users_regions_and_reuse_beats_own_model(tmp_path: Path) -> None:
    output = run_example("table_workflow.py", tmp_path)
    assert output.count(" USABLE ") == 6, output
    assert "found regions [2, 5] (the user's: [2, 5])" in output
    job_selector = accuracy_after("JobSelectorReuser", output)
    own_model = accuracy_after("a model trained on the 60 labelled rows alone", output)
    assert job_selector > 0.9 and job_selector > own_model, output
    assert accuracy_after("feature_augment", output) > 0.85
    assert "local predictions agree with the market's" in output
