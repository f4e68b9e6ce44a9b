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


@pytest.fixture(scope="module")
def image_workflow_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_example("image_workflow.py", tmp_path_factory.mktemp("image-workflow"))


@pytest.mark.slow
def test_image_workflow_learnwares_are_usable_and_only_the_rotated_one_reads_rotated_digits(image_workflow_output: str) -> None:
    output = image_workflow_output
    assert output.count(" USABLE ") == 4, output
    assert accuracy_after("digits-rotated ", output) > 0.85
    for other in ("upright", "inverted", "mirrored"):
        assert accuracy_after(f"digits-{other} ", output) < 0.5


@pytest.mark.slow
def test_image_workflow_search_finds_the_rotated_learnware(image_workflow_output: str) -> None:
    assert "top-1 learnware: digits-rotated " in image_workflow_output, image_workflow_output


@pytest.mark.slow
def test_text_workflow_search_finds_the_users_category_and_its_learnware_is_the_best(tmp_path: Path) -> None:
    output = run_example("text_workflow.py", tmp_path)
    assert output.count(" USABLE ") == 4, output
    assert "top-1 learnware: food-reviews-coffee-tea " in output
    found = accuracy_after("food-reviews-coffee-tea ", output)
    baseline = float(re.search(r"always answering 'great' scores (\d\.\d+)", output).group(1))
    assert found > baseline + 0.05, output
    # The texts went through the market's Reuse too.
    assert "job selector over 4 learnwares" in output and accuracy_after("JobSelectorReuser", output) > baseline + 0.05, output
    assert accuracy_after("AveragingReuser", output) > baseline, output
