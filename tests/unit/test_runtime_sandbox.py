"""The sandboxes around learnware processes (lwm.runtime.sandbox), gVisor and bubblewrap, seen from inside real ones.

Every hostile case runs under each backend installed here; a backend that is not is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lwm.runtime.runner import LearnwareRuntimeError, ModelRunner
from lwm.runtime.sandbox import SandboxConfig, SandboxUnavailableError, gvisor_works
from lwm.testing.processes import live_processes_with

SECRET_ENV = "LWM_TEST_SERVICE_TOKEN"


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

    def holds(path, value):
        try:
            with open(path, "rb") as f:
                return str(value.encode() in f.read())
        except OSError as error:
            return f"{type(error).__name__}: {error}"

    def write(path):
        with open(path, "w") as f:
            f.write("x")

    def connect(address):
        with socket.create_connection(address, timeout=2):
            pass

    def udp(address):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(b"x", address)
            s.recvfrom(16)

    def abstract_unix(name):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect("\\0" + name)

    class Probe(BaseModel):
        def __init__(self, host_file, secret, port, udp_port=0, unix_name="", service_file="", secret_value=""):
            super().__init__(input_shape=(1,), output_shape=(1,))
            self.host_file, self.secret, self.port = host_file, secret, port
            self.udp_port, self.unix_name, self.service_file, self.secret_value = udp_port, unix_name, service_file, secret_value

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
                "read_via_symlink": attempt(lambda: open(os.path.join(here, "link_to_secret")).read()),
                "udp_host_loopback": attempt(lambda: udp(("127.0.0.1", self.udp_port))),
                "dns": attempt(lambda: socket.getaddrinfo("pypi.org", 443)),
                "abstract_unix": attempt(lambda: abstract_unix(self.unix_name)),
                "read_service_file": attempt(lambda: open(self.service_file).read()),
                "secret_in_env": str(any(self.secret_value in v for v in os.environ.values())),
                "secret_in_pid1_environ": holds("/proc/1/environ", self.secret_value),
            }
            return np.array([f"{k}={v}" for k, v in results.items()])
"""


def write_learnware(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    return folder


@pytest.fixture
def host_listeners() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, str]]:
    """A TCP, a UDP and an abstract unix socket of the service, listening on the host."""
    unix_name = f"lwm-test-{uuid.uuid4().hex}"
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        unix.bind("\0" + unix_name)
        unix.listen()
        for s in (tcp, udp, unix):
            s.setblocking(False)
        yield tcp, udp, unix, unix_name


def test_sandbox_blocks_network_reads_and_writes_outside_scratch(
    tmp_path: Path, isolation: str, host_listeners: tuple[socket.socket, socket.socket, socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_learnware(tmp_path / "lw", PROBE)
    host_file = tmp_path / "written-by-learnware.txt"
    secret = tmp_path / "service-secret.txt"  # beside the learnware folder, but not part of it
    secret.write_text("s3cret")
    (folder / "link_to_secret").symlink_to(secret)
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_ENV, token)  # a credential in the service's environment
    tcp, udp, unix, unix_name = host_listeners
    kwargs = {
        "host_file": str(host_file),
        "secret": str(secret),
        "port": tcp.getsockname()[1],
        "udp_port": udp.getsockname()[1],
        "unix_name": unix_name,
        "service_file": str(Path(__file__).resolve()),
        "secret_value": token,
    }
    with ModelRunner(folder, "Probe", kwargs, timeout_s=60, sandbox=SandboxConfig(isolation=isolation)) as runner:
        results = dict(line.split("=", 1) for line in runner.predict(np.zeros((1, 1))))
    for listener in (tcp, unix):
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the service's sockets
    with pytest.raises(BlockingIOError):
        udp.recvfrom(16)
    assert results["write_scratch"] == "ok"
    for key in ("write_learnware_dir", "write_host_file", "write_etc"):
        assert results[key].startswith(("OSError", "PermissionError")), results
        assert "Read-only file system" in results[key] or "Permission denied" in results[key], results
    assert not host_file.exists() and not (folder / "new.py").exists()
    assert results["connect_host_loopback"] != "ok" and results["connect_internet"] != "ok", results
    assert "unreachable" in results["connect_internet"].lower() or "errno" in results["connect_internet"].lower()
    assert results["uid"] != "0"
    assert results["read_shadow"] != "ok"
    assert results["read_host_secret"].startswith("FileNotFoundError"), results
    assert results["read_via_symlink"].startswith("FileNotFoundError"), results
    assert results["read_service_file"].startswith("FileNotFoundError"), results
    for key in ("udp_host_loopback", "dns", "abstract_unix"):
        assert results[key] != "ok", (key, results)
    assert results["secret_in_env"] == "False" and results["secret_in_pid1_environ"] != "True", results


def test_memory_limit_stops_the_learnware_with_a_clear_message(tmp_path: Path, isolation: str) -> None:
    folder = write_learnware(
        tmp_path / "lw",
        """
        import numpy as np
        from learnware.model import BaseModel

        class Hog(BaseModel):
            def __init__(self):
                super().__init__(input_shape=(1,), output_shape=(1,))

            def predict(self, X):
                return np.ones(8 * 1024**3 // 8)  # 8 GB
        """,
    )
    sandbox = SandboxConfig(isolation=isolation, memory_bytes=1024**3)
    runner = ModelRunner(folder, "Hog", timeout_s=30, sandbox=sandbox).start()
    with pytest.raises(LearnwareRuntimeError, match=r"ran out of memory: the sandbox allows 1 GiB") as info:
        runner.predict(np.zeros((1, 1)))
    assert info.value.error_type == "MemoryError"
    assert not runner.alive
    runner.close()


def test_cpu_time_limit_kills_busy_learnware(tmp_path: Path, isolation: str) -> None:
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
    runner = ModelRunner(folder, "Spin", timeout_s=60, sandbox=SandboxConfig(isolation=isolation, cpu_time_s=1)).start()
    with pytest.raises(LearnwareRuntimeError, match=r"killed by SIGXCPU \(it used up its CPU-time limit of 1 s\)"):
        runner.predict(np.zeros((1, 1)))
    runner.close()


@pytest.mark.parametrize(("isolation_name", "hint"), [("bwrap", "apt-get install bubblewrap"), ("gvisor", "apt-get install runsc")])
def test_missing_sandbox_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation_name: str, hint: str) -> None:
    folder = write_learnware(tmp_path / "lw", PROBE)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    sandbox = SandboxConfig(isolation=isolation_name)
    with pytest.raises(SandboxUnavailableError, match=hint):
        ModelRunner(folder, "Probe", {"host_file": "x", "secret": "x", "port": 1}, timeout_s=10, sandbox=sandbox).start()


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
    monkeypatch.setenv("LWM_SANDBOX_MAX_PROCESSES", "20")
    config = SandboxConfig.from_env()
    assert (config.isolation, config.memory_bytes, config.cpu_time_s, config.max_processes) == ("none", 512 * 1024**2, 7, 20)
    monkeypatch.setenv("LWM_SANDBOX", "")
    assert SandboxConfig.from_env().isolation == ("gvisor" if gvisor_works() else "bwrap")
    monkeypatch.setenv("LWM_SANDBOX", "gvisor")
    assert SandboxConfig.from_env().isolation == "gvisor"
    monkeypatch.setenv("LWM_SANDBOX", "chroot")
    with pytest.raises(ValueError, match="isolation must be one of"):
        SandboxConfig.from_env()


def descendants(pid: int) -> set[int]:
    """The host pids below `pid` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_fork_and_thread_floods_stop_at_the_process_limit(tmp_path: Path, isolation: str, kind: str) -> None:
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "learnwares" / "floods"
    token = f"0.0000{uuid.uuid4().int % 10**8:08d}"  # a valid extra sleep argument, unique to this test
    sandbox = SandboxConfig(isolation=isolation, max_processes=32)
    runner = ModelRunner(folder, "Model", {"kind": kind, "token": token}, timeout_s=60, sandbox=sandbox).start()
    assert runner.pid is not None
    try:
        with pytest.raises(LearnwareRuntimeError, match=r"the sandbox allows at most 32 processes and threads"):
            runner.predict(np.zeros((1, 4)))
        during = descendants(runner.pid)
        assert len(live_processes_with(token)) <= 32
        assert len(during) <= 32 + 8  # the flood, capped, plus the sandbox's own processes
    finally:
        runner.close()
    assert not live_processes_with(token)
    # gVisor's host processes (one ptrace stub per sandboxed process) end just after the sandbox.
    deadline = time.monotonic() + 30
    while (still_there := {pid for pid in during if Path(f"/proc/{pid}").exists()}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not still_there, f"processes of the sandbox outlived it: {still_there}"


def test_a_sandbox_started_by_a_thread_that_ends_keeps_running(tmp_path: Path, isolation: str) -> None:
    """A learnware started from a pool thread (a reuser's, a request's) serves after that thread is gone:
    bubblewrap's --die-with-parent follows the forking thread, not the process."""
    folder = write_learnware(
        tmp_path / "lw",
        """
        import numpy as np
        from learnware.model import BaseModel

        class Echo(BaseModel):
            def __init__(self):
                super().__init__(input_shape=(2,), output_shape=(2,))

            def predict(self, X):
                return np.asarray(X) * 2
        """,
    )
    runners: list[ModelRunner] = []
    starter = threading.Thread(target=lambda: runners.append(ModelRunner(folder, "Echo", timeout_s=60, sandbox=SandboxConfig(isolation=isolation)).start()))
    starter.start()
    starter.join()
    (runner,) = runners
    try:
        time.sleep(0.5)  # a parent-death signal would have arrived by now
        np.testing.assert_array_equal(runner.predict(np.ones((3, 2))), np.full((3, 2), 2.0))
    finally:
        runner.close()


@pytest.mark.skipif(shutil.which("runsc") is None, reason="gVisor (runsc) is not installed")
def test_processes_probing_gvisor_at_once_all_find_it(tmp_path: Path) -> None:
    """Each service (and test worker) probes gVisor when it starts; probes at the same time must not collide."""
    if not gvisor_works():
        pytest.skip("gVisor (runsc) does not work here")
    probe = "from lwm.runtime.sandbox import gvisor_works; print(gvisor_works())"
    processes = [subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    assert [process.communicate(timeout=120)[0].strip() for process in processes] == ["True"] * 4
