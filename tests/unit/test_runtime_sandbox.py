"""The bubblewrap sandbox around learnware processes (lwm.runtime.sandbox) seen from inside a real one."""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lwm.runtime.runner import LearnwareRuntimeError, ModelRunner
from lwm.runtime.sandbox import SandboxConfig, SandboxUnavailableError

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

PROBE = """
    import os, socket
    import numpy as np
    from learnware.model import BaseModel

    def attempt(action):
        try:
            action()
            return "ok"
        except Exception as error:
            return f"{type(error).__name__}: {error}"

    def write(path):
        with open(path, "w") as f:
            f.write("x")

    def connect(address):
        with socket.create_connection(address, timeout=2):
            pass

    class Probe(BaseModel):
        def __init__(self, host_file, secret, port):
            super().__init__(input_shape=(1,), output_shape=(1,))
            self.host_file, self.secret, self.port = host_file, secret, port

        def predict(self, X):
            here = os.path.dirname(os.path.abspath(__file__))
            results = {
                "uid": str(os.getuid()),
                "write_scratch": attempt(lambda: write("in_scratch.txt")),
                "write_learnware_dir": attempt(lambda: write(os.path.join(here, "new.py"))),
                "write_host_file": attempt(lambda: write(self.host_file)),
                "write_etc": attempt(lambda: write("/etc/lwm-test")),
                "read_shadow": attempt(lambda: open("/etc/shadow").read()),
                "connect_host_loopback": attempt(lambda: connect(("127.0.0.1", self.port))),
                "connect_internet": attempt(lambda: connect(("1.1.1.1", 53))),
                "read_host_secret": attempt(lambda: open(self.secret).read()),
            }
            return np.array([f"{k}={v}" for k, v in results.items()])
"""


def write_learnware(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    return folder


def test_sandbox_blocks_network_and_writes_outside_scratch(tmp_path: Path) -> None:
    folder = write_learnware(tmp_path / "lw", PROBE)
    host_file = tmp_path / "written-by-learnware.txt"
    secret = tmp_path / "service-secret.txt"  # beside the learnware folder, but not part of it
    secret.write_text("s3cret")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        with ModelRunner(folder, "Probe", {"host_file": str(host_file), "secret": str(secret), "port": port}, timeout_s=30) as runner:
            results = dict(line.split("=", 1) for line in runner.predict(np.zeros((1, 1))))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the service's loopback
    assert results["write_scratch"] == "ok"
    for key in ("write_learnware_dir", "write_host_file", "write_etc"):
        assert results[key].startswith("OSError") and "Read-only file system" in results[key], results
    assert not host_file.exists() and not (folder / "new.py").exists()
    assert results["connect_host_loopback"] != "ok" and results["connect_internet"] != "ok", results
    assert "unreachable" in results["connect_internet"].lower() or "errno" in results["connect_internet"].lower()
    assert results["uid"] != "0"
    assert results["read_shadow"] != "ok"
    assert results["read_host_secret"].startswith("FileNotFoundError"), results


def test_memory_limit_stops_the_learnware_with_a_clear_message(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        """
        import numpy as np
        from learnware.model import BaseModel

        class Hog(BaseModel):
            def __init__(self):
                super().__init__(input_shape=(1,), output_shape=(1,))

            def predict(self, X):
                return np.ones(10 * 1024**3 // 8)  # 10 GB
        """,
    )
    sandbox = SandboxConfig(memory_bytes=1024**3)
    runner = ModelRunner(folder, "Hog", timeout_s=30, sandbox=sandbox).start()
    with pytest.raises(LearnwareRuntimeError, match=r"ran out of memory: the sandbox allows 1 GiB") as info:
        runner.predict(np.zeros((1, 1)))
    assert info.value.error_type == "MemoryError"
    assert not runner.alive
    runner.close()


def test_cpu_time_limit_kills_busy_learnware(tmp_path: Path) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        """
        from learnware.model import BaseModel

        class Spin(BaseModel):
            def __init__(self):
                super().__init__(input_shape=(1,), output_shape=(1,))

            def predict(self, X):
                while True:
                    pass
        """,
    )
    runner = ModelRunner(folder, "Spin", timeout_s=60, sandbox=SandboxConfig(cpu_time_s=1)).start()
    with pytest.raises(LearnwareRuntimeError, match=r"killed by SIGXCPU \(it used up its CPU-time limit of 1 s\)"):
        runner.predict(np.zeros((1, 1)))
    runner.close()


def test_missing_bubblewrap_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_learnware(tmp_path / "lw", PROBE)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        ModelRunner(folder, "Probe", {"host_file": "x", "secret": "x", "port": 1}, timeout_s=10).start()


def test_unsandboxed_mode_is_explicit(tmp_path: Path) -> None:
    folder = write_learnware(tmp_path / "lw", PROBE)
    sandbox = SandboxConfig(isolation="none")
    with ModelRunner(folder, "Probe", {"host_file": str(tmp_path / "f"), "secret": "x", "port": 1}, timeout_s=30, sandbox=sandbox) as runner:
        results = dict(line.split("=", 1) for line in runner.predict(np.zeros((1, 1))))
    assert results["write_host_file"] == "ok"  # no isolation at all: for development only
    assert results["uid"] == str(os.getuid())


def test_sandbox_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_SANDBOX", "none")
    monkeypatch.setenv("LWM_SANDBOX_MEMORY_MB", "512")
    monkeypatch.setenv("LWM_SANDBOX_CPU_S", "7")
    config = SandboxConfig.from_env()
    assert (config.isolation, config.memory_bytes, config.cpu_time_s) == ("none", 512 * 1024**2, 7)
    monkeypatch.setenv("LWM_SANDBOX", "chroot")
    with pytest.raises(ValueError, match="isolation must be one of"):
        SandboxConfig.from_env()
