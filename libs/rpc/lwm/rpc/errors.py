"""Errors with a gRPC status, and the wrapper that turns exceptions into statuses."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from lwm.rpc import metrics

log = logging.getLogger(__name__)
UNAVAILABLE_PREFIX = "a market service is unavailable: "
T = TypeVar("T")


class ServiceError(Exception):
    """An error meant for the caller: a status code and a human-readable message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_argument(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unimplemented(capability: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNIMPLEMENTED, f"not implemented yet: {capability}")


@contextlib.contextmanager
def caller_input() -> Iterator[None]:
    """A ValueError raised inside is the caller's fault: it becomes INVALID_ARGUMENT with its message.

    Wrap only the parsing or validation of what the caller sent: a ValueError anywhere
    else is a bug of the service, and grpc_errors answers it with INTERNAL.
    """
    try:
        yield
    except ValueError as error:
        raise invalid_argument(str(error)) from error


def _abort(context: grpc.ServicerContext, error: BaseException, method: str) -> None:
    if isinstance(error, ServiceError):
        context.abort(error.code, error.message)
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
        # A downstream service answered with a status: pass it on unchanged.
        code = error.code()
        details = error.details() or code.name
        if code == grpc.StatusCode.UNAVAILABLE and not details.startswith(UNAVAILABLE_PREFIX):
            details = UNAVAILABLE_PREFIX + details
        context.abort(code, details)
    # The exception's text may reveal internals: it goes to the log, the caller gets the request id to find it.
    rid = metrics.request_id.get()
    log.exception("internal error in %s (request id %s)", method, rid or "none")
    which = f"request id {rid}" if rid else "no request id"
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} ({which}); the service log has the details")


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    name = method.__qualname__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, request, context)
            except Exception as error:
                _abort(context, error, name)

        return stream_wrapper

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as error:
            _abort(context, error, name)

    return wrapper


def grpc_errors(cls: type[T]) -> type[T]:
    """Class decorator: every public RPC method maps exceptions to gRPC statuses.

    ServiceError keeps its code (a ValueError inside caller_input() is one: INVALID_ARGUMENT),
    statuses from downstream services pass through, anything else is INTERNAL: the caller
    gets the request id, the service log the exception and its traceback.
    """
    for attr, value in list(vars(cls).items()):
        if callable(value) and attr[:1].isupper():
            setattr(cls, attr, _wrap(value))
    return cls
