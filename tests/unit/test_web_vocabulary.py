"""GET /ui/vocabulary.json of the web component: the semantic tags the UI's forms offer are the
market's own vocabulary (lwm.learnware.semantic), named by SemanticSpec's JSON fields."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from lwm.learnware.semantic import allowed_values
from lwm.rpc.learnware.v1 import common_pb2
from lwm.services.web.app import build_app


def get(path: str) -> tuple[int, Any]:
    """One GET through the ASGI app (no server; the gateway is never called for this route)."""
    app = build_app("127.0.0.1:1")
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"", "headers": [], "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "", "http_version": "1.1"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_vocabulary_is_the_markets_semantic_vocabulary() -> None:
    status, vocabulary = get("/ui/vocabulary.json")
    assert status == 200
    fields = common_pb2.SemanticSpec.DESCRIPTOR.fields_by_name
    assert set(vocabulary) == {"data", "task", "library", "scenario", "license", "model"}
    for field, values in vocabulary.items():
        assert field in fields and fields[field].is_repeated
        assert values == allowed_values(field.capitalize())
    assert "Text Generation" in vocabulary["task"] and "Others" in vocabulary["scenario"]
