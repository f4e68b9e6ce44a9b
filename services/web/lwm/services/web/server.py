"""The web component in a thread of another process (`lwm serve --all --web-port N`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from lwm.services.web.app import build_app
from lwm.services.web.cli import DEFAULT_UI_DIR

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class WebThread:
    """uvicorn serving the web component for `gateway` on host:port in a daemon thread."""

    def __init__(self, gateway: str, host: str, port: int, ui_dir: Path = DEFAULT_UI_DIR) -> None:
        self.host = host
        self.port = port
        # uvicorn installs signal handlers only in the main thread: the process's own handlers stay.
        self._server = uvicorn.Server(uvicorn.Config(build_app(gateway, ui_dir=ui_dir), host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="lwm-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving; RuntimeError if it cannot (e.g. the port is taken)."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the web component did not start on {self.url} (is the port taken?)")
            time.sleep(0.05)
        if self.port == 0:  # a free port chosen by the system
            self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_S)
