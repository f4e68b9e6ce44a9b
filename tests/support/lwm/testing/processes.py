"""Processes of the tests: the host's as the sandbox tests see them (through /proc), and market services started one per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lwm.rpc.server import stop_process, wait_until_serving
from lwm.testing.local_servers import free_port


def live_processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it ended meanwhile
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


@dataclass
class ServiceProcess:
    """One `lwm serve <service>` child process on a fixed loopback port (a restart serves the same address)."""

    service: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            command = [sys.executable, "-m", "lwm.client.cli", "serve", self.service, "--port", str(self.port), *self.args]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        return self

    def kill(self) -> None:
        """SIGKILL it (by its PID): no cleanup runs, as when a machine dies."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the {self.service} on port {self.port} is not running")
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, grace_s: float = 20.0) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s)


def start_control_plane(env: dict[str, str], data_dir: Path, logs: Path, gateways: int, checkers: int, searchers: int = 1, timeout_s: float = 180.0) -> list[ServiceProcess]:
    """An organizer, then checkers, searchers, one reuse and gateways (gateway i uses checker and searcher i modulo their
    numbers), each `lwm serve <service>` in its own process; returned in that order, all serving. Stop them in reverse."""
    logs.mkdir(parents=True, exist_ok=True)

    def service(kind: str, name: str, args: list[str]) -> ServiceProcess:
        return ServiceProcess(kind, args, env, logs / f"{name}.log")

    organizer = service("organizer", "organizer", ["--data-dir", str(data_dir)])
    to_organizer = ["--organizer", organizer.address]
    checker_list = [service("checker", f"checker{i}", to_organizer) for i in range(checkers)]
    searcher_list = [service("searcher", f"searcher{i}", to_organizer) for i in range(searchers)]
    reuse = service("reuse", "reuse", to_organizer)
    gateway_list = [
        service("gateway", f"gateway{i}", [*to_organizer, "--checker", checker_list[i % checkers].address, "--searcher", searcher_list[i % searchers].address, "--reuse", reuse.address])
        for i in range(gateways)
    ]
    started: list[ServiceProcess] = []
    try:
        started.append(organizer.start())
        wait_until_serving(organizer.address, timeout_s=timeout_s)  # it runs the migrations: the others start after
        for other in [*checker_list, *searcher_list, reuse, *gateway_list]:
            started.append(other.start())
        for other in started[1:]:
            wait_until_serving(other.address, timeout_s=timeout_s)
    except BaseException:
        for running in reversed(started):
            running.stop()
        raise
    return started
