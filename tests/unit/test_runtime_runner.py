"""Running learnware models in a child process (lwm.runtime.runner)."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.template import write_learnware_zip
from lwm.runtime.runner import LearnwareRuntimeError, LearnwareTimeoutError, ModelRunner, open_learnware
from lwm.runtime.sandbox import SandboxConfig
from lwm.testing.processes import live_processes_with


def write_learnware(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def live_processes_in_group(pgid: int) -> list[int]:
    """Pids of the group's processes that are not zombies (PID 1 may reap orphans a little late)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            pids.append(int(entry.name))
    return pids


def eventually(condition: Callable[[], object], timeout_s: float = 10.0) -> bool:
    """Whether `condition()` becomes true within the timeout (output and processes of a loaded machine lag)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class StandInSpec:
    type = "RKMETableSpecification"

    def save(self, filepath: str) -> None:
        Path(filepath).write_text(json.dumps({"type": self.type}))


def test_sklearn_learnware_zip_predicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    zip_path = write_learnware_zip(
        tmp_path / "lw.zip", model, None, StandInSpec(), input_shape=(4,), output_shape=(2,), nested_folder="lw",
        requirements=[f"scikit-learn=={sklearn.__version__}"],
    )
    archive = LearnwareArchive.from_path(zip_path)
    # open_learnware builds the learnware's own environment from its requirements.txt (uv, cached).
    with open_learnware(archive, tmp_path / "work", timeout_s=30) as runner:
        assert runner.input_shape == (4,)
        assert runner.output_shape == (2,)
        scores = runner.predict(X[:7])
        np.testing.assert_allclose(scores, model.predict_proba(X[:7]))
        runner.fit(X, 1 - y)  # fit runs in the child, on its own copy of the model
        np.testing.assert_allclose(runner.predict(X[:7]), model.predict_proba(X[:7])[:, ::-1], atol=1e-6)
        pgid = runner.pid
    assert pgid is not None and not live_processes_in_group(pgid)
    assert not runner.alive


def test_printing_learnware_does_not_corrupt_protocol(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        {
            "__init__.py": """
                import sys
                import numpy as np
                from learnware.model import BaseModel, TorchModel
                print("hello at import")
                try:
                    input()  # stdin is /dev/null in the child, not the protocol pipe
                except EOFError:
                    pass

                class Noisy(BaseModel):
                    def __init__(self, scale):
                        print("hello from __init__")
                        super().__init__(input_shape=(2,), output_shape=(2,))
                        self.scale = scale

                    def predict(self, X):
                        print("x" * 10000)
                        sys.stdout.flush()
                        return X * self.scale
            """
        },
    )
    with ModelRunner(folder, "Noisy", {"scale": 3.0}, timeout_s=20) as runner:
        X = np.arange(6, dtype=np.float32).reshape(3, 2)
        out = runner.predict(X)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, X * 3)
        np.testing.assert_array_equal(runner.predict(X), X * 3)
        assert eventually(lambda: "hello from __init__" in runner.stderr_tail()), runner.stderr_tail()


def test_import_error_names_missing_module(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        {"__init__.py": "import surely_not_installed_pkg_xyz\nclass M: pass\n"},
    )
    runner = ModelRunner(folder, "M", timeout_s=20)
    with pytest.raises(LearnwareRuntimeError, match="surely_not_installed_pkg_xyz") as info:
        runner.start()
    assert info.value.error_type == "ModuleNotFoundError"
    assert not runner.alive


def test_missing_class_is_reported(tmp_path: Path) -> None:
    folder = write_learnware(tmp_path / "lw", {"__init__.py": "class Other: pass\n"})
    with pytest.raises(LearnwareRuntimeError, match="no class 'Wanted'"):
        ModelRunner(folder, "Wanted", timeout_s=20).start()


def test_timeout_kills_process_group(tmp_path: Path) -> None:
    marker = f"lwm-test-grandchild-{uuid.uuid4().hex}"
    folder = write_learnware(
        tmp_path / "lw",
        {
            "__init__.py": """
                import subprocess, sys, time
                from learnware.model import BaseModel

                class Sleepy(BaseModel):
                    def __init__(self, marker):
                        super().__init__(input_shape=(1,), output_shape=(1,))
                        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])

                    def predict(self, X):
                        time.sleep(600)
            """
        },
    )
    # bubblewrap: its processes are host processes with their command lines (gVisor's are not;
    # test_runtime_sandbox.py checks that its processes end too).
    runner = ModelRunner(folder, "Sleepy", {"marker": marker}, timeout_s=60, sandbox=SandboxConfig(isolation="bwrap")).start()
    runner.timeout_s = 1.5  # only for predict: a loaded machine may take longer to start the runner
    pgid = runner.pid
    assert pgid is not None
    assert eventually(lambda: live_processes_with(marker))  # the grandchild was started
    started = time.monotonic()
    with pytest.raises(LearnwareTimeoutError, match="did not finish within 1.5 s"):
        runner.predict(np.zeros((1, 1)))
    assert time.monotonic() - started < 10
    assert not runner.alive
    # The child and its grandchild were both killed (PID 1 may reap orphans a little late, and a
    # killed process stays in the group until it is reaped).
    assert eventually(lambda: not live_processes_with(marker)), live_processes_with(marker)
    assert eventually(lambda: not live_processes_in_group(pgid)), live_processes_in_group(pgid)
    runner.close()


def test_relative_imports_across_modules(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        {
            "__init__.py": """
                from learnware.model.base import BaseModel
                from .helpers import shift
                from .nets.core import double

                class Model(BaseModel):
                    def __init__(self, input_shape, output_shape):
                        super().__init__(input_shape=input_shape, output_shape=output_shape)

                    def predict(self, X):
                        return double(shift(X))
            """,
            "helpers.py": "def shift(X):\n    return X + 1\n",
            "nets/__init__.py": "",
            "nets/core.py": "from ..helpers import shift\n\ndef double(X):\n    return shift(X) * 2 - 2\n",
        },
    )
    kwargs = {"input_shape": (3,), "output_shape": (3,)}
    with ModelRunner(folder, "Model", kwargs, timeout_s=20) as runner:
        assert runner.input_shape == (3,)  # tuples stay tuples through the protocol
        np.testing.assert_array_equal(runner.predict(np.array([[1, 2, 3]])), [[4, 6, 8]])


def test_model_module_other_than_init(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        {
            "nets/model.py": """
                from learnware.model import BaseModel
                from .layers import relu

                class Net(BaseModel):
                    def __init__(self):
                        super().__init__(input_shape=(2,), output_shape=(2,))

                    def predict(self, X):
                        return relu(X)
            """,
            "nets/layers.py": "def relu(X):\n    return X.clip(min=0)\n",
        },
    )
    with ModelRunner(folder, "Net", module_path="nets/model.py", timeout_s=20) as runner:
        np.testing.assert_array_equal(runner.predict(np.array([[-1.0, 2.0]])), [[0.0, 2.0]])


def test_model_errors_keep_runner_alive(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        {
            "__init__.py": """
                import os
                from learnware.model import BaseModel

                class Picky(BaseModel):
                    def __init__(self):
                        super().__init__(input_shape=(2,), output_shape=(1,))

                    def predict(self, X):
                        if X.shape[1] != 2:
                            raise ValueError(f"expected 2 features, got {X.shape[1]}")
                        if X[0, 0] < 0:
                            print("about to crash")
                            os._exit(3)
                        return {"not": "an array"} if X[0, 0] > 100 else X.sum(axis=1)
            """
        },
    )
    with ModelRunner(folder, "Picky", timeout_s=20) as runner:
        with pytest.raises(LearnwareRuntimeError, match="expected 2 features, got 3") as info:
            runner.predict(np.zeros((4, 3)))
        assert info.value.error_type == "ValueError"
        with pytest.raises(LearnwareRuntimeError, match="expected a numeric or string array"):
            runner.predict(np.full((1, 2), 1000.0))
        with pytest.raises(LearnwareRuntimeError, match="NotImplementedError: Picky does not implement fit"):
            runner.fit(np.zeros((4, 2)), np.zeros(4))
        runner.ping()
        np.testing.assert_array_equal(runner.predict(np.ones((2, 2))), [2.0, 2.0])
        with pytest.raises(LearnwareRuntimeError, match="(?s)exited with code 3.*about to crash"):
            runner.predict(np.full((1, 2), -1.0))
        assert not runner.alive


def test_child_gets_no_secrets_from_parent_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_TEST_SECRET", "s3cret")
    folder = write_learnware(
        tmp_path / "lw",
        {
            "__init__.py": """
                import os
                import numpy as np
                from learnware.model import BaseModel

                class EnvProbe(BaseModel):
                    def __init__(self):
                        super().__init__(input_shape=(1,), output_shape=(1,))

                    def predict(self, X):
                        return np.array([os.environ.get("LWM_TEST_SECRET", ""), os.getcwd()])
            """
        },
    )
    with ModelRunner(folder, "EnvProbe", timeout_s=20) as runner:
        secret, cwd = runner.predict(np.zeros((1, 1)))
    assert secret == ""
    assert not cwd.startswith(str(folder)) and not Path(cwd).exists()  # scratch dir, removed on close
