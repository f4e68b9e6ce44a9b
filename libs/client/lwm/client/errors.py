"""The SDK's exceptions: one class per gRPC status code a caller may want to handle, all MarketError;
and MissingDistributionError for a part of the SDK whose optional distribution is not installed."""

from __future__ import annotations

import importlib.util

import grpc


class MissingDistributionError(ModuleNotFoundError):
    """What was asked for needs a distribution that is not installed; the message says which to install."""


def require_distribution(module: str, distribution: str, purpose: str) -> None:
    """Raise MissingDistributionError naming `distribution` unless `module` (one of its packages) is installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingDistributionError(f"{purpose} needs {distribution}: pip install {distribution}", name=module)


class MarketError(Exception):
    """A call to the market failed; `code` is the gRPC status code, `message` the server's explanation."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(MarketError):
    """The request was wrong (a bad spec, zip or array); retrying will not help."""


class NotFoundError(MarketError):
    """No learnware (or other object) with that id."""


class AlreadyExistsError(MarketError):
    pass


class UnauthenticatedError(MarketError):
    """No token, or a wrong or expired one."""


class PermissionDeniedError(MarketError):
    """The token is valid but may not do this (another owner's learnware, an admin operation)."""


class FailedPreconditionError(MarketError):
    """The object is not in a state that allows the call (a learnware that is not USABLE yet)."""


class ResourceExhaustedError(MarketError):
    """A rate limit or size limit was hit."""


class DeadlineExceededError(MarketError):
    """The call took longer than its timeout."""


class UnavailableError(MarketError):
    """The market (or a service behind it) could not be reached; idempotent calls were retried first."""


ERRORS_BY_CODE: dict[grpc.StatusCode, type[MarketError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def market_error(code: grpc.StatusCode, message: str) -> MarketError:
    """The exception of the class for `code` (MarketError itself for the other codes)."""
    return ERRORS_BY_CODE.get(code, MarketError)(code, message)


def from_rpc_error(error: grpc.RpcError) -> MarketError:
    return market_error(error.code(), error.details() or "")
