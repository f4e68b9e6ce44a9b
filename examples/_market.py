"""What the examples share: a single-machine market (`lwm serve --all`) run as a child process, and printing.

    with running_market(work_dir) as market:
        client = MarketClient(market.address)
        ...

The market keeps its SQLite database and learnware zips under `work_dir/data` and
writes its log to `work_dir/market.log`; it is stopped by its PID when the block ends.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lwm.rpc.server import stop_process, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Market:
    address: str
    pid: int
    log_path: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def fresh_work_dir(description: str, default: Path) -> Path:
    """Parse the example's command line (`--work-dir`, default `default`) and return that folder, emptied."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--work-dir", type=Path, default=default, help=f"where the market's data, log and the learnware zips go (default {default})")
    work_dir = parser.parse_args().work_dir.resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    return work_dir


@contextmanager
def running_market(work_dir: Path) -> Iterator[Market]:
    """Start `lwm serve --all` on a free loopback port, wait until it serves, and stop it (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    log_path = work_dir / "market.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lwm.client.cli", "serve", "--all", "--port", str(port), "--data-dir", str(work_dir / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            market = Market(f"127.0.0.1:{port}", process.pid, log_path)
            _wait_until_serving(market, process)
            section(f"market started: lwm serve --all at {market.address} (pid {market.pid}, log {log_path})")
            yield market
        finally:
            section(f"market stopped (exit code {stop_process(process, STOP_TIMEOUT_S)})")


def _wait_until_serving(market: Market, process: subprocess.Popen[bytes]) -> None:
    """Wait for the market's health check; fail at once, with the end of its log, if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            wait_until_serving(market.address, timeout_s=1.0)
            return
        except TimeoutError:
            if process.poll() is not None:
                raise RuntimeError(f"the market exited with code {process.returncode} before serving; the end of {market.log_path}:\n{market.log_path.read_text()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise
