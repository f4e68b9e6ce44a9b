"""Shared fixtures: a real market (`lwm serve --all`) on free loopback ports; the sandbox backends installed here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lwm.rpc.server import stop_process, wait_until_serving
from lwm.runtime.sandbox import gvisor_works

# Every test worker, and every server and sandbox it starts, computes on one thread: the workers
# already share the cores, and OpenMP threads that spin on oversubscribed cores slowed one torch
# training fixture from 30 s of CPU to over ten minutes of wall time.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MarketProcess:
    """`lwm serve --all` in a child process; stopped with SIGTERM (by PID) like an operator would."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.address = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None, extra_args: tuple[str, ...] = (), timeout_s: float = 180) -> str:
        """Start on `port` (default: a free one) with more `lwm serve` options; returns the gateway's address once it serves (within `timeout_s`)."""
        # Imports take a minute on a loaded 2-core machine.
        port = port or free_port()
        self.address = f"127.0.0.1:{port}"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "lwm.client.cli", "serve", "--all", "--port", str(port), "--data-dir", str(self.data_dir), *extra_args], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_until_serving(self.address, timeout_s=timeout_s)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"market did not start; log:\n{self.log_path.read_text()[-3000:]}") from None
        return self.address

    def stop(self) -> int:
        if self.process is None:
            return 0
        code = stop_process(self.process, grace_s=30)
        self.process = None
        return code


@pytest.fixture
def market_process(tmp_path: Path) -> Iterator[MarketProcess]:
    market = MarketProcess(tmp_path / "market-data", tmp_path / "market.log")
    yield market
    market.stop()


@pytest.fixture(params=["gvisor", "bwrap"])
def isolation(request: pytest.FixtureRequest) -> str:
    if request.param == "gvisor" and not gvisor_works():
        pytest.skip("gVisor (runsc) is not installed or does not work here")
    if request.param == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    return str(request.param)

