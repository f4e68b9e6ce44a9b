"""`make web-demo` (examples/web_demo.py): the demo market with `lwm web` in front of it prints the
web UI's address, serves the UI and the uploaded learnwares there, and SIGTERM stops both."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-all (make test stays under 12 minutes on 2 cores)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT_S = 600  # a market start and a learnware check, on a loaded machine


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError):
        return False


def accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, int(port))) == 0


def test_web_demo_serves_the_ui_until_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "web_demo.py"), "--web-port", "0", "--learnwares", "1", "--work-dir", str(tmp_path / "demo")]
    # Its own process group: a demo that hangs or fails is killed with the market and web it started.
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(START_TIMEOUT_S, os.killpg, args=(demo.pid, signal.SIGKILL))
    watchdog.start()
    output: list[str] = []
    url = ""
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)
            if line.startswith("Web UI: "):
                url = line.removeprefix("Web UI: ").strip()
                break
        assert url, "".join(output)
        watchdog.cancel()
        gateway = re.search(r"lwm serve --all at (\S+)", "".join(output))
        assert gateway is not None, "".join(output)

        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert b"Learnware Market" in reply.read()
        with urllib.request.urlopen(f"{url}v1/market", timeout=30) as reply:
            assert json.load(reply)["learnwareCounts"]["USABLE"] == "1"
        spec_line = next(line for line in output if line.startswith("Try a statistical search with the specification file "))
        assert Path(spec_line.split("file ", 1)[1].strip()).is_file()

        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=120)
        assert demo.returncode == 0, rest
        assert "lwm web stopped" in rest and "market stopped" in rest
        assert not answers(url)
        assert not accepts(gateway.group(1))
    finally:
        watchdog.cancel()
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
