"""The checks of a learnware: semantic, archive/specification, environment, and running the model.

Any failed check makes the learnware INVALID; NONUSABLE means the checker could
not run the model for reasons that are not the learnware's fault (the sandbox
could not start, the package index was unreachable). The model only ever runs in
a sandboxed runner process (lwm.runtime), in the environment built from its
requirements.
"""

from __future__ import annotations

import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lwm.learnware.archive import LearnwareArchive, LearnwareFormatError
from lwm.learnware.semantic import check_semantic_spec
from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE, TABLE_SPEC_TYPE, TEXT_SPEC_TYPE
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2
from lwm.runtime.environment import Environment, EnvironmentBuildError, EnvironmentManager
from lwm.runtime.runner import LearnwareRuntimeError, ModelRunner, open_learnware
from lwm.runtime.sandbox import SandboxConfig
from lwm.spec import load_stat_spec

PREDICT_ROWS = 10
# The spec type that decides what random input the model gets, in the reference's order of
# preference, with what the inputs are called in the report.
INPUT_SPEC_TYPES = {TABLE_SPEC_TYPE: "rows", TEXT_SPEC_TYPE: "texts", IMAGE_SPEC_TYPE: "images"}
TEXT_CHARACTERS = np.array(list(string.ascii_letters + string.digits + string.punctuation))
TEXT_LENGTHS = (10, 1000)  # random texts have between 10 and 1000 characters, as in the reference
T = TypeVar("T")


class CheckFailed(Exception):
    """A check failed: the learnware gets `status` and the message goes in the report."""

    def __init__(self, message: str, status: common_pb2.LearnwareStatus = common_pb2.LEARNWARE_STATUS_INVALID) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class CheckRun:
    steps: list[common_pb2.CheckStep] = field(default_factory=list)
    on_step: Callable[[common_pb2.CheckStep], None] | None = None  # told of each step as it ends (progress)

    def _record(self, step: common_pb2.CheckStep) -> None:
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def step(self, name: str, check: Callable[[list[str]], T]) -> T:
        """Run one check, recording its time and notes whether it passes or raises CheckFailed.

        `check` receives a list to append notes to and returns whatever later steps need.
        """
        notes: list[str] = []
        started = time.perf_counter()
        try:
            result = check(notes)
        except CheckFailed as failure:
            notes.append(str(failure))
            self._record(common_pb2.CheckStep(name=name, passed=False, messages=notes, duration_s=time.perf_counter() - started))
            raise
        self._record(common_pb2.CheckStep(name=name, passed=True, messages=notes, duration_s=time.perf_counter() - started))
        return result


def check_learnware(
    semantic_spec: dict[str, Any],
    zip_bytes: bytes,
    *,
    timeout_s: float = 120.0,
    environments: EnvironmentManager | None = None,
    sandbox: SandboxConfig | None = None,
    on_step: Callable[[common_pb2.CheckStep], None] | None = None,
) -> common_pb2.CheckReport:
    """Run every check on a learnware and return the report with its final status.

    `environments` builds the learnware's environment (default: LWM_ENV_* settings),
    `sandbox` isolates its process (default: LWM_SANDBOX* settings), `on_step` is
    called with each step as it ends.
    """
    environments = environments if environments is not None else EnvironmentManager()
    run = CheckRun(on_step=on_step)
    dropped: list[str] = []
    try:
        run.step("semantic", lambda notes: _check_semantic(semantic_spec))
        archive = run.step("archive", lambda notes: _open_archive(zip_bytes))
        stat_specs = run.step("stat_spec", lambda notes: _load_stat_specs(archive, notes))
        environment = run.step("environment", lambda notes: _prepare_environment(environments, archive, notes))
        dropped = [d.requirement for d in environment.dropped]
        with tempfile.TemporaryDirectory(prefix="lwm-check-") as workdir:
            runner = run.step("instantiate", lambda notes: _instantiate(archive, Path(workdir), environment, timeout_s, sandbox, notes))
            try:
                input_type = run.step("shapes", lambda notes: _check_shapes(runner, semantic_spec, stat_specs))
                run.step("predict", lambda notes: _check_predict(runner, semantic_spec, input_type, notes))
            finally:
                runner.close()
        status = common_pb2.LEARNWARE_STATUS_USABLE
    except CheckFailed as failure:
        status = failure.status
    return common_pb2.CheckReport(status=status, steps=run.steps, dropped_requirements=dropped, checked_at=time.time())


def _check_semantic(semantic_spec: dict[str, Any]) -> None:
    problems = check_semantic_spec(semantic_spec)
    if problems:
        raise CheckFailed("; ".join(problems))


def _open_archive(zip_bytes: bytes) -> LearnwareArchive:
    try:
        return LearnwareArchive.from_bytes(zip_bytes)
    except LearnwareFormatError as error:
        raise CheckFailed(str(error)) from None


def _load_stat_specs(archive: LearnwareArchive, notes: list[str]) -> list[Any]:
    specs: list[Any] = []
    for entry in archive.config.stat_specs:
        try:
            spec: Any = load_stat_spec(archive.read(entry.file_name).decode())
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise CheckFailed(f"stat spec {entry.file_name}: {error}") from None
        distance = float(spec.dist(spec))
        if not np.isfinite(distance):
            raise CheckFailed(f"stat spec {entry.file_name}: the distance of the specification to itself is not finite ({distance})")
        notes.append(f"{entry.file_name}: {spec.type} with {spec.get_z().shape[0]} points")
        specs.append(spec)
    if not specs:
        raise CheckFailed("learnware.yaml names no statistical specification")
    return specs


def _prepare_environment(environments: EnvironmentManager, archive: LearnwareArchive, notes: list[str]) -> Environment:
    try:
        environment = environments.prepare(archive)
    except EnvironmentBuildError as error:
        status = common_pb2.LEARNWARE_STATUS_NONUSABLE if error.infrastructure else common_pb2.LEARNWARE_STATUS_INVALID
        raise CheckFailed(f"the environment of {archive.env_file} could not be built: {error}", status) from None
    notes.append(f"{len(environment.requirements)} requirements from {archive.env_file}; " + ("taken from the cache" if environment.cached else f"built in {environment.build_s:.1f} s"))
    notes += [f"warning: dropped requirement {dropped}" for dropped in environment.dropped]
    notes += list(environment.notes)
    return environment


def _instantiate(archive: LearnwareArchive, workdir: Path, environment: Environment, timeout_s: float, sandbox: SandboxConfig | None, notes: list[str]) -> ModelRunner:
    try:
        runner = open_learnware(archive, workdir, python=environment.python, timeout_s=timeout_s, sandbox=sandbox)
    except LearnwareRuntimeError as error:
        raise CheckFailed(f"the model could not be instantiated: {error}") from None
    except OSError as error:
        raise CheckFailed(f"the sandbox could not start: {error}", common_pb2.LEARNWARE_STATUS_NONUSABLE) from None
    notes.append(f"input_shape={runner.input_shape}, output_shape={runner.output_shape}")
    return runner


def _check_shapes(runner: ModelRunner, semantic_spec: dict[str, Any], stat_specs: list[Any]) -> str:
    """Check the model's input shape against the specifications; returns the spec type that decides the random input."""
    types = {spec.type for spec in stat_specs}
    input_type = next(t for t in INPUT_SPEC_TYPES if t in types)
    input_shape = tuple(runner.input_shape or ())
    if not input_shape and input_type != TEXT_SPEC_TYPE:  # texts are strings whatever the model declares
        raise CheckFailed("the model does not declare its input_shape")
    if _first(semantic_spec, "Data") == "Table":
        dimension = int(semantic_spec.get("Input", {}).get("Dimension", -1))
        if input_shape != (dimension,):
            raise CheckFailed(f"input shape of the model {input_shape} differs from the semantic specification's Input.Dimension {dimension}")
    for spec in stat_specs:
        # Only a table spec lives in the model's input space (image specs are 32x32 after
        # resizing, text specs are sentence embeddings), as in the reference's checker.
        if spec.type == TABLE_SPEC_TYPE and tuple(spec.get_z().shape[1:]) != input_shape:
            raise CheckFailed(f"input shape of the model {input_shape} differs from the stat spec's dimension {tuple(spec.get_z().shape[1:])}")
    return input_type


def random_inputs(input_type: str, input_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | list[str]:
    """PREDICT_ROWS random inputs for a learnware whose spec type is `input_type`, made as the reference's checker makes them.

    Table: standard normal rows of `input_shape`; image: whole-number pixel values
    0..255 of `input_shape` (as float32, which also suits models that feed torch
    directly); text: a list of strings of random printable ASCII characters.
    """
    if input_type == TABLE_SPEC_TYPE:
        return rng.standard_normal((PREDICT_ROWS, *input_shape))
    if input_type == IMAGE_SPEC_TYPE:
        return rng.integers(0, 256, size=(PREDICT_ROWS, *input_shape)).astype(np.float32)
    lengths = rng.integers(TEXT_LENGTHS[0], TEXT_LENGTHS[1] + 1, size=PREDICT_ROWS)
    return ["".join(rng.choice(TEXT_CHARACTERS, size=length)) for length in lengths]


def _check_predict(runner: ModelRunner, semantic_spec: dict[str, Any], input_type: str, notes: list[str]) -> None:
    inputs = random_inputs(input_type, tuple(runner.input_shape or ()), np.random.default_rng(0))
    try:
        outputs = runner.predict(inputs)
    except LearnwareRuntimeError as error:
        raise CheckFailed(f"prediction failed: {error}") from None
    _check_outputs(outputs, tuple(runner.output_shape or ()), semantic_spec, _first(semantic_spec, "Task"))
    notes.append(f"predict on {PREDICT_ROWS} random {INPUT_SPEC_TYPES[input_type]} gave outputs of shape {tuple(outputs.shape)}")


def _check_outputs(outputs: np.ndarray, output_shape: tuple[int, ...], semantic_spec: dict[str, Any], task: str) -> None:
    if outputs.dtype.kind not in "biuf":
        raise CheckFailed(f"predict returned {outputs.dtype} values; expected numbers (labels, scores or values)")
    if outputs.ndim == 0 or outputs.shape[0] != PREDICT_ROWS:
        raise CheckFailed(f"predict returned {outputs.shape[0] if outputs.ndim else 'a scalar'} rows for {PREDICT_ROWS} inputs")
    if outputs.ndim == 1:
        outputs = outputs.reshape(-1, 1)
    if task in ("Classification", "Regression", "Feature Extraction") or output_shape:
        if tuple(outputs.shape[1:]) != output_shape:
            raise CheckFailed(f"output shape per row {tuple(outputs.shape[1:])} differs from the model's output_shape {output_shape}")
    if task in ("Classification", "Regression"):
        dimension = int(semantic_spec.get("Output", {}).get("Dimension", -1))
        if task == "Regression" and output_shape[:1] != (dimension,):
            raise CheckFailed(f"output_shape {output_shape} differs from the semantic Output.Dimension {dimension}")
        if task == "Classification":
            if output_shape[:1] == (1,):
                labels = outputs.astype(np.float64, copy=False)
                if not np.all((labels >= 0) & (labels < dimension) & (labels == np.round(labels))):
                    raise CheckFailed(f"predicted labels must be integers in [0, {dimension}) (Output.Dimension), got {np.unique(outputs)[:10]}")
            elif output_shape[:1] != (dimension,):
                raise CheckFailed(f"output_shape {output_shape} differs from the semantic Output.Dimension {dimension}")
    if not np.all(np.isfinite(outputs.astype(np.float64, copy=False))):
        raise CheckFailed("predict returned NaN or infinite values")


def _first(semantic_spec: dict[str, Any], key: str) -> str:
    values = semantic_spec.get(key, {}).get("Values", [])
    return values[0] if isinstance(values, list) and values else ""


def semantic_problems(message: common_pb2.SemanticSpec) -> list[str]:
    return check_semantic_spec(convert.semantic_to_dict(message))
