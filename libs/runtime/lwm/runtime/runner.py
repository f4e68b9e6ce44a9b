"""Run a learnware's model in a sandboxed child process and call it over pipes.

The child is `sandbox_root/lwm_runner.py`, started in its own process group
inside the sandbox of `SandboxConfig` (bubblewrap by default, see sandbox.py)
with a scratch directory as cwd, HOME and TMPDIR and a minimal environment (no
service secrets). Every call has a deadline; on timeout the whole process group
is killed. A call that runs out of the sandbox's memory stops the child too.
"""

from __future__ import annotations

import concurrent.futures
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lwm.learnware.archive import LearnwareArchive, extract_archive

from .environment import default_environments
from .framing import FramingError, pack_frame, read_frame, to_wire_array
from .sandbox import (
    SANDBOX_ROOT,
    SCRATCH_IN_SANDBOX,
    SandboxConfig,
    bwrap_command,
    gvisor_command,
    prepare_scratch,
    python_roots,
    resource_limits_command,
    sandbox_env,
)

RUNNER_SCRIPT = SANDBOX_ROOT / "lwm_runner.py"
STDERR_TAIL_BYTES = 64 * 1024
# Variables passed through to the child; everything else in our environment stays out.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_CHUNK = 1024 * 1024


class LearnwareRuntimeError(RuntimeError):
    """The learnware's model failed, crashed, timed out or broke the protocol."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        child_traceback: str | None = None,
        stderr_tail: str = "",
    ):
        super().__init__(message)
        self.error_type = error_type
        self.child_traceback = child_traceback
        self.stderr_tail = stderr_tail


class LearnwareTimeoutError(LearnwareRuntimeError):
    """A call to the learnware did not finish in time; its process group was killed."""


def build_child_command(python: str) -> list[str]:
    """The command line that starts the child runner (before any sandbox wrapper).

    `-B`: never write .pyc files; `-u`: unbuffered output; `-I`: ignore PYTHON*
    variables and the user site; `-S`: no site-packages (and so no .pth code of
    installed packages) until the runner has dropped its privileges and calls site.main().
    """
    return [python, "-B", "-u", "-I", "-S", str(RUNNER_SCRIPT)]


def build_child_env(scratch_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for the child: a few passed-through variables, scratch as HOME/TMPDIR."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update({"HOME": str(scratch_dir), "TMPDIR": str(scratch_dir)})
    env.update(extra or {})
    return env


class _StderrTail(threading.Thread):
    """Drains the child's stderr (which also gets its stdout), keeping the last bytes."""

    def __init__(self, fd: int):
        super().__init__(daemon=True, name="lwm-runner-stderr")
        self._fd = fd
        self._buf = bytearray()
        self._lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._buf += data
                del self._buf[:-STDERR_TAIL_BYTES]

    def text(self) -> str:
        with self._lock:
            return self._buf.decode("utf-8", errors="replace")


class ChildProcess:
    """A started runner process as ModelRunner sees it: two fds for frames, plus its life cycle.

    Implemented by LocalChild (a plain or bubblewrapped process) and by
    docker_sandbox.DockerChild (a container).
    """

    send_fd: int
    recv_fd: int

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def exited(self) -> bool:
        raise NotImplementedError

    def await_exit(self, timeout_s: float) -> None:
        """Wait up to timeout_s for the process to exit on its own."""
        raise NotImplementedError

    def kill(self) -> None:
        """Kill the process and everything it started; release its resources. Idempotent."""
        raise NotImplementedError

    def exit_description(self) -> str:
        """How it ended, e.g. "exited with code 3" or "was killed by SIGKILL"."""
        raise NotImplementedError

    def output_tail(self) -> str:
        """The last output it wrote to stderr or stdout."""
        raise NotImplementedError


# bubblewrap's --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that forked it
# ends, so a runner started from a short-lived thread (a request's or a pool's) would be
# killed with it. Every local child is therefore forked by this one thread, which lives as
# long as the process.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lwm-sandbox-spawner")


class LocalChild(ChildProcess):
    """The runner as a local process (under bubblewrap or not) in its own process group, talking over pipes."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], sandbox: SandboxConfig):
        self._sandbox = sandbox
        self._proc = _SPAWNER.submit(
            subprocess.Popen,
            resource_limits_command(sandbox) + command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # own process group, killed as a whole
        ).result()
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self.send_fd = self._proc.stdin.fileno()
        self.recv_fd = self._proc.stdout.fileno()
        os.set_blocking(self.send_fd, False)
        os.set_blocking(self.recv_fd, False)
        self._stderr = _StderrTail(self._proc.stderr.fileno())
        self._stderr.start()

    @property
    def pid(self) -> int | None:
        """The child's pid, which is also its process group id."""
        return self._proc.pid

    def exited(self) -> bool:
        return self._proc.returncode is not None

    def await_exit(self, timeout_s: float) -> None:
        """Wait without reaping the child, so its group id stays valid for killpg."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
            time.sleep(0.01)

    def kill(self) -> None:
        proc = self._proc
        if proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        pipes = [proc.stdin, proc.stdout]
        self._stderr.join(timeout=2.0)
        # A grandchild that left the group may still hold stderr; then leave it to the GC.
        if not self._stderr.is_alive():
            pipes.append(proc.stderr)
        for pipe in pipes:
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def exit_description(self) -> str:
        code = self._proc.returncode
        # bubblewrap and runsc exit with 128 + N when the sandboxed process died of signal N.
        if code is not None and self._sandbox.isolation in ("bwrap", "gvisor") and code > 128:
            code = 128 - code
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"was killed by {name}{self._sandbox.describe_signal(name)}"
        return f"exited with code {code}"

    def output_tail(self) -> str:
        return self._stderr.text()


class ModelRunner:
    """A learnware model served by a child process; use as a context manager.

    `learnware_dir` is the extracted learnware folder, `class_name`/`kwargs` come
    from learnware.yaml. `timeout_s` bounds each call (start included);
    `python` is the interpreter of the learnware's environment (see
    environment.py); `sandbox` the isolation and limits (default: from LWM_SANDBOX* variables).
    """

    def __init__(
        self,
        learnware_dir: Path,
        class_name: str,
        kwargs: dict | None = None,
        python: str = sys.executable,
        timeout_s: float = 60,
        *,
        module_path: str = "__init__.py",
        env: Mapping[str, str] | None = None,
        sandbox: SandboxConfig | None = None,
    ):
        self.learnware_dir = Path(learnware_dir).resolve()
        self.class_name = class_name
        self.kwargs = dict(kwargs or {})
        self.python = python
        self.timeout_s = timeout_s
        self.module_path = module_path
        self.extra_env = dict(env or {})
        self.sandbox = sandbox if sandbox is not None else SandboxConfig.from_env()
        self._child: ChildProcess | None = None
        self._scratch: Path | None = None
        self._private: Path | None = None  # the sandbox's own files (gVisor's bundle and state), not visible inside
        self._shapes: tuple[Any, Any] | None = None  # (input_shape, output_shape) once loaded
        self._started = False
        self._lock = threading.Lock()  # one request/reply exchange at a time

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> ModelRunner:
        """Start the child and load the model in it."""
        if self._started:
            raise RuntimeError("this ModelRunner was already started")
        if not self.learnware_dir.is_dir():
            raise FileNotFoundError(f"learnware folder not found: {self.learnware_dir}")
        self._started = True
        self._scratch = Path(tempfile.mkdtemp(prefix="lwm_runner_"))
        try:
            prepare_scratch(self.sandbox, self._scratch)
            self._child = self._spawn(self._scratch)
            reply, _ = self._call(
                "load",
                {
                    "learnware_dir": str(self.learnware_dir),
                    "class_name": self.class_name,
                    "kwargs": self.kwargs,
                    "module_path": self.module_path,
                },
            )
        except BaseException:
            self.close()
            raise
        self._shapes = (_as_shape(reply.get("input_shape")), _as_shape(reply.get("output_shape")))
        return self

    def _spawn(self, scratch: Path) -> ChildProcess:
        command = build_child_command(self.python)
        read_only: list[Path | str] = [*python_roots(self.python), SANDBOX_ROOT, self.learnware_dir]
        if self.sandbox.isolation == "docker":
            from .docker_sandbox import DockerChild  # the docker SDK is only needed for this backend

            env = build_child_env(Path(SCRATCH_IN_SANDBOX), self.extra_env)
            return DockerChild(self.sandbox, command, read_only=read_only, scratch=scratch, env=env, timeout_s=self.timeout_s)
        if self.sandbox.isolation == "gvisor":
            self._private = Path(tempfile.mkdtemp(prefix="lwm_gvisor_"))
            env = build_child_env(Path(SCRATCH_IN_SANDBOX), self.extra_env)
            container_id = f"lwm-{uuid.uuid4().hex}"
            command = gvisor_command(
                self.sandbox, command, read_only=read_only, scratch=scratch, env=env, bundle=self._private, container_id=container_id
            )
            # runsc itself gets only PATH: the sandboxed process's environment is in the bundle.
            return LocalChild(command, scratch, {"PATH": os.environ.get("PATH", os.defpath)}, self.sandbox)
        scratch_seen_by_child = scratch
        if self.sandbox.isolation == "bwrap":
            command = bwrap_command(self.sandbox, command, read_only=read_only, scratch=scratch)
            scratch_seen_by_child = Path(SCRATCH_IN_SANDBOX)
        env = build_child_env(scratch_seen_by_child, {**self.extra_env, **sandbox_env(self.sandbox)})
        return LocalChild(command, scratch, env, self.sandbox)

    def close(self) -> None:
        """Ask the child to exit, then kill it with everything it started and remove the scratch dir."""
        if self._child is not None and not self._child.exited():
            try:
                self._call("shutdown", {}, timeout_s=min(self.timeout_s, 5.0))
                self._child.await_exit(2.0)
            except LearnwareRuntimeError:
                pass
            self._kill()
        for folder in (self._scratch, self._private):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._scratch = self._private = None

    def __enter__(self) -> ModelRunner:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- model calls -------------------------------------------------------------

    @property
    def input_shape(self) -> Any:
        """The model's `input_shape` as it reported it at load (lists turned into tuples)."""
        if self._shapes is None:
            raise LearnwareRuntimeError("the learnware model is not loaded; call start() first")
        return self._shapes[0]

    @property
    def output_shape(self) -> Any:
        """The model's `output_shape` as it reported it at load (lists turned into tuples)."""
        if self._shapes is None:
            raise LearnwareRuntimeError("the learnware model is not loaded; call start() first")
        return self._shapes[1]

    @property
    def pid(self) -> int | None:
        """The child's pid (for a local child also its process group id)."""
        return None if self._child is None else self._child.pid

    @property
    def alive(self) -> bool:
        return self._child is not None and not self._child.exited()

    def stderr_tail(self) -> str:
        """The last output the child wrote to stderr or stdout."""
        return "" if self._child is None else self._child.output_tail()

    def predict(self, X: np.ndarray | Sequence[str]) -> np.ndarray:
        """The model's predictions; a list of strings (texts) reaches the model as a list of str."""
        _, arrays = self._call("predict", {}, [self._wire(X, "X")])
        if len(arrays) != 1:
            raise LearnwareRuntimeError("the learnware runner replied to predict without an array")
        return arrays[0]

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._call("fit", {}, [self._wire(X, "X"), self._wire(y, "y")])

    def finetune(self, X: np.ndarray, y: np.ndarray) -> None:
        self._call("finetune", {}, [self._wire(X, "X"), self._wire(y, "y")])

    def ping(self) -> None:
        self._call("ping", {})

    # -- internals ---------------------------------------------------------------

    def _check_loaded(self) -> None:
        if not self.alive:
            raise LearnwareRuntimeError("the learnware runner is not running (not started, closed or failed)")

    @staticmethod
    def _wire(array: Any, name: str) -> np.ndarray:
        try:
            return to_wire_array(array)
        except FramingError as exc:
            raise TypeError(f"{name}: {exc}") from None

    def _call(
        self, cmd: str, fields: dict, arrays: Sequence[np.ndarray] = (), timeout_s: float | None = None
    ) -> tuple[dict, list[np.ndarray]]:
        try:
            chunks = pack_frame({"cmd": cmd, **fields}, arrays)
        except TypeError as exc:
            raise TypeError(f"{cmd}: arguments cannot be sent to the learnware as JSON: {exc}") from None
        with self._lock:
            self._check_loaded()
            deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
            try:
                for chunk in chunks:
                    self._send(chunk, deadline, cmd)
                header, out = read_frame(lambda n: self._recv_exact(n, deadline, cmd))
            except FramingError as exc:
                self._kill()
                raise LearnwareRuntimeError(
                    f"the learnware process broke the protocol during {cmd}: {exc}", stderr_tail=self.stderr_tail()
                ) from None
            except BaseException:
                self._kill()  # a half-done exchange (e.g. KeyboardInterrupt) leaves the pipes out of step
                raise
        if not header.get("ok"):
            message = str(header.get("error", "unknown error"))
            if header.get("error_type") == "MemoryError":
                self._out_of_memory(cmd, message)
            child_tb = header.get("traceback")
            text = f"learnware {cmd} failed: {message}{self.sandbox.describe_error(header.get('error_type'), message)}"
            if child_tb:
                text += f"\n{child_tb}"
            raise LearnwareRuntimeError(text, error_type=header.get("error_type"), child_traceback=child_tb)
        return header, out

    def _wait_fd(self, fd: int, events: int, deadline: float, cmd: str) -> None:
        poller = select.poll()
        poller.register(fd, events)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(cmd)
            if poller.poll(remaining * 1000):
                return

    def _send(self, data: bytes | memoryview, deadline: float, cmd: str) -> None:
        assert self._child is not None
        fd = self._child.send_fd
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            self._wait_fd(fd, select.POLLOUT, deadline, cmd)
            try:
                pos += os.write(fd, view[pos : pos + _CHUNK])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                self._crashed(cmd)

    def _recv_exact(self, n: int, deadline: float, cmd: str) -> bytearray:
        assert self._child is not None
        fd = self._child.recv_fd
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        while pos < n:
            self._wait_fd(fd, select.POLLIN, deadline, cmd)
            try:
                got = os.readv(fd, [view[pos : pos + _CHUNK]])
            except BlockingIOError:
                continue
            if got == 0:
                self._crashed(cmd)
            pos += got
        return buf

    def _timed_out(self, cmd: str) -> None:
        self._kill()
        raise LearnwareTimeoutError(
            f"learnware {cmd} did not finish within {self.timeout_s:g} s; its process group was killed",
            stderr_tail=self.stderr_tail(),
        )

    def _out_of_memory(self, cmd: str, message: str) -> None:
        self._kill()
        raise LearnwareRuntimeError(
            f"learnware {cmd} ran out of memory: the sandbox allows {self.sandbox.memory_bytes / 1024**3:g} GiB "
            f"per process ({message}); the learnware process was stopped",
            error_type="MemoryError",
            stderr_tail=self.stderr_tail(),
        )

    def _crashed(self, cmd: str) -> None:
        self._kill()
        how = self._child.exit_description() if self._child is not None else "never started"
        tail = self.stderr_tail().strip()[-4000:] or "(no output)"
        raise LearnwareRuntimeError(
            f"the learnware process {how} during {cmd}; its last stderr output:\n{tail}", stderr_tail=tail
        )

    def _kill(self) -> None:
        """Kill the child with everything it started (and reap it)."""
        if self._child is not None:
            self._child.kill()


def _as_shape(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def open_learnware(archive: LearnwareArchive, workdir: Path, **runner_kwargs: Any) -> ModelRunner:
    """Extract `archive` into `workdir` and return a started ModelRunner for its model.

    Without a `python` argument the learnware's environment is built (or taken
    from the cache) by the default EnvironmentManager (LWM_ENV_* variables).
    """
    if "python" not in runner_kwargs:
        runner_kwargs["python"] = default_environments().prepare(archive).python
    folder = extract_archive(archive, Path(workdir))
    runner = ModelRunner(
        folder,
        archive.config.model_class_name,
        archive.config.model_kwargs,
        module_path=archive.config.model_module_path,
        **runner_kwargs,
    )
    return runner.start()
