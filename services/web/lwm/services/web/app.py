"""The ASGI app: the Market API's HTTP routes, /openapi.json and the web UI's static files.

Each HTTP call becomes one gRPC call to the gateway. The Authorization header goes along as
the gRPC `authorization` metadata, so tokens, roles and rate limits are the gateway's.
A gRPC status becomes the HTTP status of google.rpc.Code's mapping, with a JSON body
{"code", "status", "message"} (the message is the gateway's).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from lwm.learnware.semantic import semantic_spec_config
from lwm.rpc.auth import AUTHORIZATION_HEADER
from lwm.rpc.learnware.v1 import market_pb2
from lwm.services.web.openapi import openapi_document
from lwm.services.web.transcode import BadRequestError, Route, build_request, chunk_field, match, routes_of, to_json

log = logging.getLogger(__name__)
MARKET_SERVICE = market_pb2.DESCRIPTOR.services_by_name["MarketService"]
UPLOAD_CHUNK_BYTES = 1 << 20

# google.rpc.Code -> HTTP status, as google/rpc/code.proto documents it.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def error_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    return {"code": code.value[0], "status": code.name, "message": message}


def error_response(code: grpc.StatusCode, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=HTTP_STATUS[code])


class MarketHttp:
    """Calls the gateway at `gateway` for each HTTP route of MarketService."""

    def __init__(self, gateway: str, timeout_s: float) -> None:
        self.gateway = gateway
        self.timeout_s = timeout_s
        self.routes = routes_of(MARKET_SERVICE)
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        # Made on first use: a grpc.aio channel belongs to the event loop that serves the app.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.gateway, options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    def _callable(self, route: Route) -> Any:
        path = f"/{MARKET_SERVICE.full_name}/{route.method.name}"
        serialize = GetMessageClass(route.request_type).SerializeToString
        deserialize = GetMessageClass(route.response_type).FromString
        kind = {(False, False): self.channel().unary_unary, (True, False): self.channel().stream_unary, (False, True): self.channel().unary_stream}
        return kind[(route.method.client_streaming, route.method.server_streaming)](path, request_serializer=serialize, response_deserializer=deserialize)

    async def handle(self, request: Request) -> Response:
        route, params, path_known = match(self.routes, request.method, request.url.path)
        if route is None:
            code = "405 method not allowed" if path_known else "404 no such route"
            return JSONResponse({"code": 12 if path_known else 5, "status": "UNIMPLEMENTED" if path_known else "NOT_FOUND", "message": f"{code}: {request.method} {request.url.path}"}, status_code=405 if path_known else 404)
        metadata = []
        if AUTHORIZATION_HEADER in request.headers:
            metadata.append((AUTHORIZATION_HEADER, request.headers[AUTHORIZATION_HEADER]))
        try:
            if route.upload:
                messages = await self._upload_messages(route, request, params)
                response = await self._callable(route)(messages, metadata=metadata, timeout=self.timeout_s)
                return JSONResponse(to_json(response))
            body = await self._json_body(request) if route.body else None
            message = build_request(route, params, list(request.query_params.multi_items()), body)
            if route.method.server_streaming:
                return await self._stream(route, message, metadata)
            response = await self._callable(route)(message, metadata=metadata, timeout=self.timeout_s)
            return JSONResponse(to_json(response))
        except BadRequestError as error:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except grpc.aio.AioRpcError as error:
            return error_response(error.code(), error.details() or error.code().name)
        except Exception:  # a bug here: logged, and still an answer in the API's format
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(grpc.StatusCode.INTERNAL, "internal error of the web component (logged)")

    async def _json_body(self, request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequestError(f"the request body is not JSON: {error}") from None

    async def _upload_messages(self, route: Route, request: Request, params: dict[str, str]) -> AsyncIterator[Message]:
        """A multipart form as the client stream: the first message's part (JSON), then file chunks.

        The stream message is a oneof of the first message (e.g. `metadata`) and a Chunk
        (e.g. `chunk`); the form has one part named after each.
        """
        if params:
            raise BadRequestError(f"{route.template}: path parameters of an upload are not supported")
        stream_type = route.request_type
        chunk = chunk_field(stream_type)
        first = next((field for field in stream_type.fields if field is not chunk), None)
        if chunk is None or first is None:
            raise BadRequestError(f"{route.method.name} does not stream a file")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError(f"send a multipart/form-data body with the parts {first.name!r} (JSON) and {chunk.name!r} (the file)")
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=1 << 20)
        except (HTTPException, MultiPartException) as error:  # a malformed form or too many parts
            raise BadRequestError(f"the multipart form cannot be read: {getattr(error, 'detail', None) or getattr(error, 'message', error)}") from None
        head, upload = form.get(first.name), form.get(chunk.name)
        if not isinstance(head, str):
            raise BadRequestError(f"the form needs a part {first.name!r} holding a JSON object")
        if not isinstance(upload, UploadFile):
            raise BadRequestError(f"the form needs a file part {chunk.name!r}")
        try:
            first_message = json_format.Parse(head, GetMessageClass(first.message_type)())
        except json_format.ParseError as error:
            raise BadRequestError(f"part {first.name!r}: {error}") from None
        message_class = GetMessageClass(stream_type)

        async def messages() -> AsyncIterator[Message]:
            message = message_class()
            getattr(message, first.name).CopyFrom(first_message)
            yield message
            while data := await upload.read(UPLOAD_CHUNK_BYTES):
                message = message_class()
                getattr(message, chunk.name).data = data
                yield message
            await upload.close()

        return messages()

    async def _stream(self, route: Route, message: Message, metadata: list[tuple[str, str]]) -> Response:
        """A server stream: file chunks as a chunked byte body, other messages as NDJSON lines.

        The first message is read before answering, so an error up front gets its HTTP status;
        an error later ends a byte body early (the client sees a truncated transfer) and
        becomes a last NDJSON line {"error": {...}}.
        """
        call = self._callable(route)(message, metadata=metadata, timeout=self.timeout_s)
        iterator = call.__aiter__()
        try:
            first: Message | None = await iterator.__anext__()
        except StopAsyncIteration:
            first = None
        chunk = chunk_field(route.response_type)
        if chunk is not None:

            async def data() -> AsyncIterator[bytes]:
                if first is not None:
                    yield getattr(first, chunk.name).data
                async for item in iterator:
                    yield getattr(item, chunk.name).data

            return StreamingResponse(data(), media_type="application/octet-stream")

        async def lines() -> AsyncIterator[bytes]:
            if first is not None:
                yield (json.dumps(to_json(first)) + "\n").encode()
            try:
                async for item in iterator:
                    yield (json.dumps(to_json(item)) + "\n").encode()
            except grpc.aio.AioRpcError as error:
                yield (json.dumps({"error": error_body(error.code(), error.details() or "")}) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def semantic_vocabulary() -> dict[str, list[str]]:
    """The allowed values of each tag key of a semantic spec, by its SemanticSpec JSON field name
    ("data", "task", ...): the lists the UI's forms offer are the ones the market checks."""
    return {key.lower(): list(entry["Values"]) for key, entry in semantic_spec_config().items() if entry["Values"] is not None}


def build_app(gateway: str, timeout_s: float = 300.0, ui_dir: Path | None = None) -> ASGIApp:
    """The web component: /v1/... (the Market API), /openapi.json, /ui/vocabulary.json and, if built, the UI at /."""
    market = MarketHttp(gateway, timeout_s)
    document = openapi_document(market.routes)

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    async def vocabulary(_: Request) -> Response:
        return JSONResponse(semantic_vocabulary())

    routes: list[Any] = [StarletteRoute("/openapi.json", openapi, methods=["GET"]), StarletteRoute("/ui/vocabulary.json", vocabulary, methods=["GET"])]
    if ui_dir is not None and (ui_dir / "index.html").is_file():
        routes.append(Mount("/", StaticFiles(directory=ui_dir, html=True)))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await market.close()

    app = Starlette(routes=routes, lifespan=lifespan)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        # /v1/... is matched by the routes of the HTTP rules, not by Starlette's router, whose
        # path patterns stop at a newline: every path there gets an answer in the API's format.
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            response = await market.handle(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
