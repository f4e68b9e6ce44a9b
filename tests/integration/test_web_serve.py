"""`lwm serve --all --web-port N`: the web component (the HTTP/JSON API and the UI) in the
market's process, in front of its gateway, stopped with it."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from web_testing import http, post_json

from lwm.client.cli import EXIT_USAGE
from lwm.testing.local_servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-all (make test stays under 12 minutes on 2 cores)


def test_serve_all_with_web_port(market_process) -> None:
    web_port = free_port()
    market_process.start(extra_args=("--web-port", str(web_port)))
    base = f"http://127.0.0.1:{web_port}"
    with urllib.request.urlopen(f"{base}/", timeout=30) as reply:
        assert b"Learnware Market" in reply.read()
    market = http(f"{base}/v1/market")
    assert market.status == 200 and market.json()["kind"] == "MARKET_KIND_EASY"
    assert "Classification" in http(f"{base}/ui/vocabulary.json").json()["task"]
    search = post_json(f"{base}/v1/learnwares:search", {"semanticSpec": {"data": ["Table"]}})
    assert search.status == 200 and search.json()["searchPath"] == "semantic"
    assert f"web UI at {base}/" in market_process.log_path.read_text()

    assert market_process.stop() == 0
    with pytest.raises(OSError):  # stopped with the market
        urllib.request.urlopen(f"{base}/openapi.json", timeout=5)


def test_web_port_needs_all_and_a_free_port(tmp_path: Path) -> None:
    alone = subprocess.run([sys.executable, "-m", "lwm.client.cli", "serve", "gateway", "--web-port", "8080"], capture_output=True, text=True, timeout=120)
    assert alone.returncode == EXIT_USAGE and "--web-port needs --all" in alone.stderr

    with socket.socket() as taken:  # a port someone else listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = subprocess.run([sys.executable, "-m", "lwm.client.cli", "serve", "--all", "--port", "0", "--data-dir", str(tmp_path / "data"), "--web-port", str(port)], capture_output=True, text=True, timeout=300)
    assert serve.returncode == 1 and f"the web component did not start on http://127.0.0.1:{port}" in serve.stderr, serve.stderr[-2000:]
