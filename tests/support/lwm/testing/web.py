"""`lwm web` in a child process, in front of a running market's gateway."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lwm.rpc.server import stop_process


class WebProcess:
    """`lwm web --gateway ADDRESS` on a loopback port; stopped with SIGTERM by PID."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, gateway: str, port: int) -> str:
        """Start it and return its base URL once /openapi.json answers."""
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "lwm.client.cli", "web", "--gateway", gateway, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/openapi.json", timeout=5):
                    return self.url
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"lwm web did not start; log:\n{self.log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)

    def stop(self) -> int:
        if self.process is None:
            return 0
        code = stop_process(self.process, grace_s=10)
        self.process = None
        return code
