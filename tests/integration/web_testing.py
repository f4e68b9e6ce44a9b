"""Helpers of the web tests: a market with tokens and `lwm web` in front of it, and HTTP calls."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from lwm.rpc.auth import TokenStore
from lwm.rpc.convert import semantic_from_dict
from lwm.testing.local_servers import free_port
from lwm.testing.web import WebProcess


class Reply:
    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status, self.body, self.content_type = status, body, content_type

    def json(self) -> Any:
        return json.loads(self.body)


def http(url: str, method: str = "GET", body: bytes | None = None, token: str = "", content_type: str = "application/json") -> Reply:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=300) as reply:
            return Reply(reply.status, reply.read(), reply.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(), error.headers.get("Content-Type", ""))


def post_json(url: str, payload: Any, token: str = "", method: str = "POST") -> Reply:
    return http(url, method, json.dumps(payload).encode(), token)


def multipart(parts: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body: name -> (filename or None, content)."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, (filename, content) in parts.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(base: str, zip_path: Path, semantic: dict[str, Any], token: str, wait: bool = True) -> Reply:
    metadata = {"semanticSpec": json_format.MessageToDict(semantic_from_dict(semantic)), "waitForCheck": wait}
    body, content_type = multipart({"metadata": (None, json.dumps(metadata).encode()), "chunk": ("lw.zip", zip_path.read_bytes())})
    return http(f"{base}/v1/learnwares", "POST", body, token, content_type)


def assert_error(reply: Reply, status: int, grpc_status: str, words: str = "") -> None:
    assert reply.status == status, (reply.status, reply.body[:500])
    body = reply.json()
    assert body["status"] == grpc_status and body["message"], body
    assert words.lower() in body["message"].lower(), body


@contextlib.contextmanager
def running_web_market(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str = "easy") -> Iterator[tuple[str, dict[str, str]]]:
    """A market of `kind` (LWM_MARKET_KIND) with tokens (anonymous reads allowed) and `lwm web` in
    front of it: (base URL, token by user name)."""
    store = TokenStore(tmp_path / "tokens.json")
    tokens = {name: store.create(name, role)[0] for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin"))}
    monkeypatch.setenv("LWM_TOKENS_FILE", str(store.path))
    monkeypatch.setenv("LWM_ALLOW_ANONYMOUS", "true")
    monkeypatch.setenv("LWM_MARKET_KIND", kind)
    gateway = market_process.start()
    web = WebProcess(tmp_path / "web.log")
    try:
        yield web.start(gateway, free_port()), tokens
    finally:
        web.stop()


@pytest.fixture
def web_market(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    """An Easy market with tokens and `lwm web` in front of it."""
    with running_web_market(market_process, tmp_path, monkeypatch) as market:
        yield market


@pytest.fixture
def hetero_web_market(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    """As web_market, a Hetero market."""
    with running_web_market(market_process, tmp_path, monkeypatch, kind="hetero") as market:
        yield market
