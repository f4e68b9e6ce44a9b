"""Python SDK of the Learnware Market (and the `lwm` command line); lwm.client.compat has the reference package's API."""

from lwm.client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    MarketError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from lwm.client.market import Learnware, MarketClient, MixtureResult, SearchResults, SingleResult
from lwm.client.retry import RetryPolicy

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Learnware",
    "MarketClient",
    "MarketError",
    "MixtureResult",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SearchResults",
    "SingleResult",
    "UnauthenticatedError",
    "UnavailableError",
]
