"""gRPC interceptors shared by the services: request ids, metrics and access logs on
every call; token authentication, access policy and rate limits at the gateway; the
shared peer secret on internal services; and the client side that sends them."""

from __future__ import annotations

import contextvars
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import grpc

from lwm.rpc import metrics
from lwm.rpc.auth import (
    ANONYMOUS,
    AUTH_DISABLED,
    AUTHORIZATION_HEADER,
    OPEN_SERVICES,
    PEER_SECRET_HEADER,
    Access,
    Principal,
    RateLimiter,
    TokenStore,
)
from lwm.rpc.deadlines import end_serving, serving_with_deadline
from lwm.rpc.errors import ServiceError, invalid_argument

REQUEST_ID_HEADER = "x-request-id"
log = logging.getLogger("lwm.access")

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("lwm_principal", default=AUTH_DISABLED)
request_id = metrics.request_id


def current_principal() -> Principal:
    """The caller of the RPC being served (AUTH_DISABLED when the gateway has no tokens file)."""
    return _principal.get()


def _split_method(full_method: str) -> tuple[str, str]:
    """'/learnware.v1.MarketService/AddLearnware' -> ('learnware.v1.MarketService', 'AddLearnware')."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


Behaviour = Callable[[Any, grpc.ServicerContext], Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _text_metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    """The call's text metadata (binary `-bin` headers left out)."""
    return {key: value for key, value in details.invocation_metadata or () if isinstance(value, str)}


def _wrap_handler(handler: Handler, around: Callable[[Behaviour, bool], Behaviour], deserializer: Callable[[bytes], Any] | None = None) -> Handler:
    """The same handler with its behaviour wrapped by around(behaviour, response_streaming)
    (and, if given, another request deserializer)."""
    deserialize = deserializer or handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(around(handler.unary_unary, False), deserialize, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(around(handler.unary_stream, True), deserialize, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(around(handler.stream_unary, False), deserialize, handler.response_serializer)
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(around(handler.stream_stream, True), deserialize, handler.response_serializer)


class _Malformed:
    """Stands for a request message that could not be parsed."""

    def __init__(self, error: Exception) -> None:
        self.reason = f"{type(error).__name__}: {error}"


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Garbled request bytes become INVALID_ARGUMENT with a message (gRPC itself answers INTERNAL)."""

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails) -> Handler | None:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        client_streaming = bool(handler.stream_unary or handler.stream_stream)

        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as error:
                return _Malformed(error)

        def checked(messages: Iterator[Any]) -> Iterator[Any]:
            for message in messages:
                if isinstance(message, _Malformed):
                    raise invalid_argument(f"malformed request message ({message.reason})")
                yield message

        def around(behaviour: Behaviour, _streaming: bool) -> Behaviour:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                if client_streaming:
                    return behaviour(checked(request), context)
                if isinstance(request, _Malformed):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request message ({request.reason})")
                return behaviour(request, context)

            return run

        return _wrap_handler(handler, around, deserialize)


def _with_context(behaviour: Callable[..., Any], streaming: bool, values: Sequence[tuple[contextvars.ContextVar[Any], Any]], on_done: Callable[[grpc.ServicerContext, BaseException | None], None]) -> Callable[..., Any]:
    """Run the behaviour with the context variables set, and call on_done when the call ends."""

    def enter() -> list[contextvars.Token[Any]]:
        return [var.set(value) for var, value in values]

    def leave(tokens: list[contextvars.Token[Any]]) -> None:
        for (var, _), token in zip(reversed(values), reversed(tokens)):
            var.reset(token)

    if streaming:

        def stream_behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            tokens = enter()
            error: BaseException | None = None
            try:
                yield from behaviour(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                on_done(context, error)
                leave(tokens)

        return stream_behaviour

    def unary_behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        tokens = enter()
        error: BaseException | None = None
        try:
            return behaviour(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            on_done(context, error)
            leave(tokens)

    return unary_behaviour


def _status_name(context: grpc.ServicerContext, error: BaseException | None) -> str:
    code: grpc.StatusCode | None = context.code()  # type: ignore[attr-defined]  # grpc's stubs lack it (grpc >= 1.38 has it)
    if code is None:
        code = grpc.StatusCode.UNKNOWN if error is not None and not isinstance(error, GeneratorExit) else grpc.StatusCode.OK
    return code.name


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Every call: a request id (taken from x-request-id or made up), Prometheus counts and
    latencies, and one access log line carrying the request id."""

    def __init__(self, service: str) -> None:
        self.service = service

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return handler
        _, method = _split_method(details.method)
        incoming = _text_metadata(details)
        rid = incoming.get(REQUEST_ID_HEADER) or uuid.uuid4().hex[:16]
        started = time.perf_counter()

        def done(context: grpc.ServicerContext, error: BaseException | None) -> None:
            status = _status_name(context, error)
            elapsed = time.perf_counter() - started
            metrics.RPC_REQUESTS.labels(self.service, method, status).inc()
            metrics.RPC_LATENCY.labels(self.service, method).observe(elapsed)
            log.info("%s %s %s %.1f ms", self.service, method, status, elapsed * 1000, extra={"rpc_service": self.service, "rpc_method": method, "status": status, "duration_ms": round(elapsed * 1000, 2)})

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            return _with_context(behaviour, streaming, [(request_id, rid)], done)

        return _wrap_handler(handler, around)


class ServingDeadlineInterceptor(grpc.ServerInterceptor):
    """Records each served call's deadline, so the calls it makes to other services pass the time left on (lwm.rpc.deadlines)."""

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return handler

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            if streaming:

                def stream_behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    token = serving_with_deadline(context)
                    try:
                        yield from behaviour(request, context)
                    finally:
                        end_serving(token)

                return stream_behaviour

            def unary_behaviour(request: Any, context: grpc.ServicerContext) -> Any:
                token = serving_with_deadline(context)
                try:
                    return behaviour(request, context)
                finally:
                    end_serving(token)

            return unary_behaviour

        return _wrap_handler(handler, around)


def _denial_for(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the same kind as `handler` that only aborts (streams need matching arity)."""

    def around(_behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
        if streaming:

            def abort_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                context.abort(code, message)
                yield  # pragma: no cover - abort raises

            return abort_stream

        def abort(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(code, message)

        return abort

    return _wrap_handler(handler, around)


class GatewayAuthInterceptor(grpc.ServerInterceptor):
    """Bearer tokens, the method policy and per-caller rate limits of the public Market API.

    With `tokens` None authentication is off (everyone may do everything); rate limits still apply.
    """

    def __init__(self, policy: dict[str, Access], tokens: TokenStore | None, allow_anonymous: bool, limiter: RateLimiter) -> None:
        self.policy = policy
        self.tokens = tokens
        self.allow_anonymous = allow_anonymous
        self.limiter = limiter

    def _principal(self, method: str, metadata: dict[str, str]) -> Principal:
        if self.tokens is None:
            return AUTH_DISABLED
        access = self.policy.get(method)
        if access is None:
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"method {method} is not open to clients")
        header = metadata.get(AUTHORIZATION_HEADER, "")
        if not header:
            if access is Access.PUBLIC and self.allow_anonymous:
                return ANONYMOUS
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, f"{method} needs an API token (metadata 'authorization: Bearer <token>')")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "the authorization metadata must be 'Bearer <token>'")
        principal = self.tokens.authenticate(token.strip())
        if access is Access.ADMIN and not principal.is_admin:
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"{method} is for admins; user {principal.name!r} has role {principal.role}")
        return principal

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails) -> Handler | None:
        handler = continuation(details)
        service, method = _split_method(details.method)
        if handler is None or service in OPEN_SERVICES:
            return handler
        metadata = _text_metadata(details)
        try:
            principal = self._principal(method, metadata)
        except ServiceError as error:
            metrics.AUTH_DENIALS.labels(error.code.name).inc()
            return _denial_for(handler, error.code, error.message)
        return _wrap_handler(handler, lambda behaviour, streaming: self._admitted(principal, _with_context(behaviour, streaming, [(_principal, principal)], lambda *_: None)))

    def _admitted(self, principal: Principal, behaviour: Behaviour) -> Behaviour:
        """The behaviour behind the caller's rate limit (per token; per client address when anonymous)."""

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            key = principal.token_id or f"anonymous@{context.peer().rsplit(':', 1)[0]}"
            if not self.limiter.allow(key):
                metrics.AUTH_DENIALS.labels(grpc.StatusCode.RESOURCE_EXHAUSTED.name).inc()
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit of {self.limiter.rate_per_s:g} requests/s for {principal.name!r} exceeded; retry later")
            return behaviour(request, context)

        return run


class PeerSecretInterceptor(grpc.ServerInterceptor):
    """Internal services: only callers that present the shared peer secret (the gateway and peers)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails) -> Handler | None:
        handler = continuation(details)
        service, _ = _split_method(details.method)
        if handler is None or service in OPEN_SERVICES:
            return handler
        presented = _text_metadata(details).get(PEER_SECRET_HEADER, "")
        if not hmac.compare_digest(presented.encode(), self.secret):
            metrics.AUTH_DENIALS.labels(grpc.StatusCode.UNAUTHENTICATED.name).inc()
            return _denial_for(handler, grpc.StatusCode.UNAUTHENTICATED, "internal service: calls must come from the gateway or a peer service (missing or wrong peer secret)")
        return handler


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = tuple(metadata)
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class MetadataClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds metadata from `supplier()` (evaluated per call) to every outgoing call."""

    def __init__(self, supplier: Callable[[], list[tuple[str, str]]]) -> None:
        self.supplier = supplier

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details, [*(details.metadata or ()), *self.supplier()])

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)


def peer_metadata(peer_secret: str) -> Callable[[], list[tuple[str, str]]]:
    """Metadata of a call from one market service to another: the peer secret and the current request id."""

    def supplier() -> list[tuple[str, str]]:
        items = [(PEER_SECRET_HEADER, peer_secret)] if peer_secret else []
        rid = request_id.get()
        return items + [(REQUEST_ID_HEADER, rid)] if rid else items

    return supplier


def bearer_metadata(token: str) -> Callable[[], list[tuple[str, str]]]:
    return lambda: [(AUTHORIZATION_HEADER, f"Bearer {token}")]
