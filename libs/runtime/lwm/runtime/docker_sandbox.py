"""The runner in a Docker container (SandboxConfig(isolation="docker")), through the docker SDK.

The container is started from `SandboxConfig.docker_image` with the same
read-only folders as under bubblewrap (system directories, the interpreter and
its environment, the runner script, the learnware) mounted at their own paths
and the scratch folder at /scratch; no network, a read-only root filesystem,
no capabilities, no-new-privileges, the sandbox uid, a memory limit (no swap),
CPUs, a process limit and the CPU-time/file-size ulimits. The image itself only
needs to exist: everything the runner uses comes from the mounts, so the engine
must run on this host.

Frames go over a unix socket in the scratch folder that the parent listens on
(the container's stdio is multiplexed by the engine, not a plain pipe); the
container's output is read back from its logs.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.types import Ulimit

from .runner import ChildProcess, LearnwareRuntimeError, LearnwareTimeoutError
from .sandbox import SCRATCH_IN_SANDBOX, SYSTEM_PATHS, SandboxConfig, SandboxUnavailableError

SOCKET_NAME = "runner.sock"
LOG_TAIL_LINES = 200


class DockerChild(ChildProcess):
    """A runner container; `send_fd`/`recv_fd` are the accepted socket's fd."""

    def __init__(
        self,
        config: SandboxConfig,
        command: Sequence[str],
        *,
        read_only: Sequence[Path | str],
        scratch: Path,
        env: dict[str, str],
        timeout_s: float,
    ):
        self._config = config
        self._conn: socket.socket | None = None
        self._exit: dict | None = None
        self._logs = ""
        try:
            self._client = docker.from_env()
            self._client.ping()
        except DockerException as error:
            raise SandboxUnavailableError(f"no Docker engine is reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'default')}): {error}") from None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(scratch / SOCKET_NAME))
            os.chmod(scratch / SOCKET_NAME, 0o777)
            listener.listen(1)
            self._container = self._client.containers.run(
                config.docker_image,
                list(command),
                detach=True,
                network_mode="none",
                read_only=True,
                user=f"{config.uid}:{config.gid}",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=config.memory_bytes,
                memswap_limit=config.memory_bytes,
                nano_cpus=int(config.cpus * 1e9),
                pids_limit=config.max_processes,
                ulimits=[
                    Ulimit(name="cpu", soft=config.cpu_time_s, hard=config.cpu_time_s + 5),
                    Ulimit(name="fsize", soft=config.file_size_bytes, hard=config.file_size_bytes),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                volumes=_volumes(read_only, scratch),
                working_dir=SCRATCH_IN_SANDBOX,
                environment={**env, "LWM_RUNNER_SOCKET": f"{SCRATCH_IN_SANDBOX}/{SOCKET_NAME}"},
                labels={"lwm.runner": "1"},
            )
            self._conn = self._accept(listener, time.monotonic() + timeout_s)
        except DockerException as error:
            self.kill()
            raise SandboxUnavailableError(f"the runner container could not start: {error}") from None
        except BaseException:
            self.kill()
            raise
        finally:
            listener.close()
        self.send_fd = self.recv_fd = self._conn.fileno()
        os.set_blocking(self.send_fd, False)

    def _accept(self, listener: socket.socket, deadline: float) -> socket.socket:
        """Wait for the runner to connect, noticing a container that died first."""
        listener.settimeout(0.2)
        while True:
            try:
                conn, _ = listener.accept()
                return conn
            except TimeoutError:
                pass
            self._container.reload()
            if self._container.status in ("exited", "dead"):
                self.kill()
                raise LearnwareRuntimeError(
                    f"the runner container {self.exit_description()} before it connected; its output:\n{self._logs.strip()[-4000:]}",
                    stderr_tail=self._logs,
                )
            if time.monotonic() > deadline:
                self.kill()
                raise LearnwareTimeoutError("the runner container did not connect in time; it was killed", stderr_tail=self._logs)

    @property
    def pid(self) -> int | None:
        if self._exit is not None:
            return None
        self._container.reload()
        return int(self._container.attrs["State"]["Pid"]) or None

    def exited(self) -> bool:
        return self._exit is not None

    def await_exit(self, timeout_s: float) -> None:
        try:
            self._container.wait(timeout=timeout_s)
        except Exception:  # the SDK raises requests' ReadTimeout (or ConnectionError) on timeout
            pass

    def kill(self) -> None:
        if self._exit is not None:
            return
        container = getattr(self, "_container", None)
        self._exit = {"StatusCode": None, "OOMKilled": False}
        if container is not None:
            try:
                container.kill()
            except APIError:
                pass  # it had stopped already
            try:
                container.wait(timeout=30)
                container.reload()
                self._exit = dict(container.attrs["State"])
                self._logs = container.logs(stdout=True, stderr=True, tail=LOG_TAIL_LINES).decode("utf-8", errors="replace")
                container.remove(force=True)
            except NotFound:
                pass
        if self._conn is not None:
            self._conn.close()

    def exit_description(self) -> str:
        state = self._exit if self._exit is not None else self._state()
        if state.get("OOMKilled"):
            return f"was killed for using more than its memory limit of {self._config.memory_bytes / 1024**3:g} GiB"
        code = state.get("ExitCode", state.get("StatusCode"))
        if code is not None and code > 128:
            name = signal.Signals(code - 128).name
            return f"was killed by {name}{self._config.describe_signal(name)}"
        return f"exited with code {code}"

    def _state(self) -> dict:
        self._container.reload()
        return dict(self._container.attrs["State"])

    def output_tail(self) -> str:
        if self._exit is not None:
            return self._logs
        try:
            return self._container.logs(stdout=True, stderr=True, tail=LOG_TAIL_LINES).decode("utf-8", errors="replace")
        except DockerException:
            return ""


def _volumes(read_only: Sequence[Path | str], scratch: Path) -> dict[str, dict[str, str]]:
    volumes: dict[str, dict[str, str]] = {}
    for path in [*SYSTEM_PATHS, *map(str, read_only)]:
        if os.path.exists(path):
            volumes.setdefault(os.path.realpath(path), {"bind": str(path), "mode": "ro"})
    volumes[str(scratch)] = {"bind": SCRATCH_IN_SANDBOX, "mode": "rw"}
    return volumes
