"""The checker's checks on real learnware zips, run in real environments and sandboxes (lwm.checks)."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from fixtures.learnwares import build_learnware_zip, semantic_spec

from lwm.checks import PREDICT_ROWS, CheckFailed, check_learnware
from lwm.checks.checks import _check_outputs, random_inputs
from lwm.rpc.learnware.v1 import common_pb2
from lwm.runtime.environment import EnvironmentConfig, EnvironmentManager
from lwm.runtime.sandbox import SandboxConfig
from lwm.spec import IMAGE_SPEC_TYPE, TABLE_SPEC_TYPE, TEXT_SPEC_TYPE, RKMEImageSpecification, RKMETextSpecification, generate_semantic_spec, load_stat_spec
from lwm.testing.processes import live_processes_with

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
USABLE, INVALID, NONUSABLE = (
    common_pb2.LEARNWARE_STATUS_USABLE,
    common_pb2.LEARNWARE_STATUS_INVALID,
    common_pb2.LEARNWARE_STATUS_NONUSABLE,
)


@pytest.fixture(scope="module")
def environments() -> EnvironmentManager:
    """The environment cache the markets of the other tests use: each requirement set is built once per run."""
    return EnvironmentManager(EnvironmentConfig.from_env())


def check(zip_path: Path, environments: EnvironmentManager, **kwargs) -> common_pb2.CheckReport:
    return check_learnware(semantic_spec(), zip_path.read_bytes(), environments=environments, timeout_s=kwargs.pop("timeout_s", 60), **kwargs)


def failure(report: common_pb2.CheckReport) -> tuple[str, str]:
    """(name, messages) of the step that failed."""
    [step] = [s for s in report.steps if not s.passed]
    return step.name, "\n".join(step.messages)


@pytest.mark.parametrize("name", ["scores", "relative_imports"])
def test_passing_learnwares_are_usable(name: str, tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip(name, tmp_path), environments)
    assert report.status == USABLE, report
    assert [s.name for s in report.steps] == ["semantic", "archive", "stat_spec", "environment", "instantiate", "shapes", "predict"]
    assert all(s.passed for s in report.steps) and not report.dropped_requirements
    assert report.checked_at > 0


def test_files_nested_in_one_folder_pass(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("scores", tmp_path, nested_folder="my-learnware"), environments)
    assert report.status == USABLE, report


def test_missing_module_is_invalid_and_named(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("missing_module", tmp_path), environments)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "instantiate"
    assert "No module named 'lwm_fixture_module_that_does_not_exist'" in messages


def test_socket_is_blocked(tmp_path: Path, environments: EnvironmentManager) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        zip_path = build_learnware_zip("opens_socket", tmp_path, kwargs={"port": listener.getsockname()[1]})
        report = check(zip_path, environments)
        with pytest.raises(BlockingIOError):
            listener.accept()  # the learnware never reached the market's loopback
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "instantiate" and ("Connection refused" in messages or "Network is unreachable" in messages), messages


def test_writing_outside_scratch_is_blocked(tmp_path: Path, environments: EnvironmentManager) -> None:
    planted = tmp_path / "planted-by-learnware.txt"
    report = check(build_learnware_zip("writes_outside", tmp_path, kwargs={"host_path": str(planted)}), environments)
    assert report.status == INVALID
    step, messages = failure(report)
    # EROFS under bubblewrap; gVisor checks permissions first (the sandbox uid owns nothing there): EACCES.
    assert step == "instantiate" and "patched.py" in messages
    assert "Read-only file system" in messages or "Permission denied" in messages
    assert not planted.exists()


def test_allocating_10gb_is_killed_with_a_clear_message(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("allocates_10gb", tmp_path), environments, sandbox=SandboxConfig(memory_bytes=2 * 1024**3))
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "predict" and "ran out of memory: the sandbox allows 2 GiB" in messages and "was stopped" in messages


def test_sleeping_forever_times_out(tmp_path: Path, environments: EnvironmentManager) -> None:
    # The limit bounds the sandbox's start and the model's load too: long enough for those on a busy machine.
    report = check(build_learnware_zip("sleeps_forever", tmp_path), environments, timeout_s=10)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "predict" and "did not finish within 10 s; its process group was killed" in messages


def test_missing_stat_spec_is_invalid(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("scores", tmp_path, with_stat_spec=False), environments)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "archive" and "rkme.json is missing" in messages


def test_windows_only_requirement_is_dropped_with_a_warning(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("scores", tmp_path, requirements="numpy\npywin32\n"), environments)
    assert report.status == USABLE, report
    assert list(report.dropped_requirements) == ["pywin32"]
    [env_step] = [s for s in report.steps if s.name == "environment"]
    assert any(m.startswith("warning: dropped requirement pywin32 (no distribution for this platform") for m in env_step.messages)


def test_requirement_that_cannot_install_fails_with_the_installer_message(tmp_path: Path, environments: EnvironmentManager) -> None:
    report = check(build_learnware_zip("scores", tmp_path, requirements="numpy\nsix==0.0.1\n"), environments)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "environment" and "six==0.0.1" in messages


def test_semantic_problems_are_all_listed(tmp_path: Path, environments: EnvironmentManager) -> None:
    spec = semantic_spec()
    del spec["Data"]
    spec["License"]["Values"] = ["Not-A-License"]
    spec["Name"]["Values"] = ""
    report = check_learnware(spec, build_learnware_zip("scores", tmp_path).read_bytes(), environments=environments)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "semantic"
    assert "Data" in messages and "Not-A-License" in messages and "Name" in messages


@pytest.mark.slow  # four full checks; test_runtime_sandbox.py covers the same floods quickly
@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_fork_and_thread_floods_are_invalid_and_name_the_limit(
    tmp_path: Path, environments: EnvironmentManager, isolation: str, kind: str
) -> None:
    token = f"0.0000{uuid.uuid4().int % 10**8:08d}"  # a valid extra `sleep` argument, unique to this test
    zip_path = build_learnware_zip("floods", tmp_path, kwargs={"kind": kind, "token": token})
    report = check(zip_path, environments, sandbox=SandboxConfig(isolation=isolation))
    assert report.status == INVALID
    _, messages = failure(report)
    assert "the sandbox allows at most 64 processes and threads" in messages, messages
    assert not live_processes_with(token)  # none of the flood outlived the check


def test_sandbox_that_cannot_start_is_not_the_learnware_fault(tmp_path: Path, environments: EnvironmentManager, monkeypatch: pytest.MonkeyPatch) -> None:
    zip_path = build_learnware_zip("scores", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-sandbox-here"))
    report = check(zip_path, environments)
    assert report.status == NONUSABLE
    step, messages = failure(report)
    sandbox_program = "runsc" if SandboxConfig().isolation == "gvisor" else "bubblewrap"
    assert step == "instantiate" and sandbox_program in messages


@pytest.mark.parametrize(
    ("outputs", "output_shape", "message"),
    [
        (np.full((10, 2), 0.5), (2,), None),
        (np.array([0, 1] * 5), (1,), None),
        (np.array([0, 2] * 5), (1,), "integers in \\[0, 2\\)"),
        (np.array([0.5] * 10), (1,), "integers in \\[0, 2\\)"),
        (np.full((10, 3), 0.5), (3,), "differs from the semantic Output.Dimension 2"),
        (np.full((10, 2), np.nan), (2,), "NaN or infinite"),
        (np.array(["a"] * 10), (1,), "expected numbers"),
        (np.full((9, 2), 0.5), (2,), "9 rows for 10 inputs"),
    ],
)
def test_classification_outputs(outputs: np.ndarray, output_shape: tuple[int, ...], message: str | None) -> None:
    if message is None:
        _check_outputs(outputs, output_shape, semantic_spec(), "Classification")
    else:
        with pytest.raises(CheckFailed, match=message):
            _check_outputs(outputs, output_shape, semantic_spec(), "Classification")


def test_random_inputs_follow_the_spec_type() -> None:
    rng = np.random.default_rng(1)
    rows = random_inputs(TABLE_SPEC_TYPE, (4,), rng)
    assert isinstance(rows, np.ndarray) and rows.shape == (PREDICT_ROWS, 4) and rows.dtype == np.float64 and rows.min() < 0
    images = random_inputs(IMAGE_SPEC_TYPE, (3, 8, 8), rng)
    assert isinstance(images, np.ndarray) and images.shape == (PREDICT_ROWS, 3, 8, 8)
    assert images.min() >= 0 and images.max() <= 255 and np.all(images == np.round(images)) and images.max() > 200
    texts = random_inputs(TEXT_SPEC_TYPE, (), rng)
    assert isinstance(texts, list) and len(texts) == PREDICT_ROWS and all(isinstance(t, str) and 10 <= len(t) <= 1000 for t in texts)
    assert len(set(texts)) == PREDICT_ROWS


def semantic_spec_of(data_type: str) -> dict:
    return generate_semantic_spec(
        name=f"fixture {data_type.lower()} learnware",
        description="A small learnware used by the tests.",
        data_type=data_type,
        task_type="Classification",
        library_type="Others",
        scenarios=["Business"],
        license="MIT",
        output_description={"Dimension": 2, "Description": {"0": "score of class 0", "1": "score of class 1"}},
    )


def image_spec(tmp_path: Path) -> RKMEImageSpecification:
    spec = RKMEImageSpecification()
    spec.generate_stat_spec_from_data(np.random.default_rng(0).integers(0, 256, size=(20, 1, 8, 8)).astype(np.float32), K=5, steps=2)
    return spec


@functools.cache
def _text_spec_json() -> str:
    """Made once, by `lwm spec text` in its own process: the sentence embedder stays out of the test process,
    where it once made a later runtime test lose track of a sandboxed grandchild (cause not found)."""
    with tempfile.TemporaryDirectory() as folder:
        sentences, spec_path = Path(folder) / "sentences.txt", Path(folder) / "text_spec.json"
        sentences.write_text("".join(f"This is example sentence number {i} about the weather.\n" for i in range(20)))
        subprocess.run([sys.executable, "-m", "lwm.client.cli", "spec", "text", str(sentences), "-o", str(spec_path)], check=True, capture_output=True)
        return spec_path.read_text()


def text_spec(tmp_path: Path) -> RKMETextSpecification:
    spec = load_stat_spec(_text_spec_json())
    assert isinstance(spec, RKMETextSpecification)
    return spec


@pytest.mark.parametrize(("fixture", "data_type", "make_spec", "inputs"), [("image_pixels", "Image", image_spec, "images"), ("text_strings", "Text", text_spec, "texts")])
def test_image_and_text_learnwares_get_inputs_of_their_kind(fixture: str, data_type: str, make_spec, inputs: str, tmp_path: Path, environments: EnvironmentManager) -> None:
    """The fixture models refuse anything but pixel values 0..255 of their shape, or a list of str."""
    zip_path = build_learnware_zip(fixture, tmp_path, stat_spec=make_spec(tmp_path))
    report = check_learnware(semantic_spec_of(data_type), zip_path.read_bytes(), environments=environments, timeout_s=60)
    assert report.status == USABLE, report
    [predict] = [s for s in report.steps if s.name == "predict"]
    assert f"predict on {PREDICT_ROWS} random {inputs} gave outputs of shape ({PREDICT_ROWS}, 2)" in predict.messages


def test_text_learnware_with_wrong_output_dimension_is_invalid(tmp_path: Path, environments: EnvironmentManager) -> None:
    spec = semantic_spec_of("Text")
    spec["Output"] = {"Dimension": 3, "Description": {str(i): f"score of class {i}" for i in range(3)}}
    report = check_learnware(spec, build_learnware_zip("text_strings", tmp_path, stat_spec=text_spec(tmp_path)).read_bytes(), environments=environments, timeout_s=60)
    assert report.status == INVALID
    step, messages = failure(report)
    assert step == "predict" and "differs from the semantic Output.Dimension 3" in messages

