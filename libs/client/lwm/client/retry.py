"""Retrying calls that failed with UNAVAILABLE: exponential backoff with full jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently an idempotent call is retried while the market is UNAVAILABLE.

    Before retry n (1, 2, ...) the client sleeps a uniformly random time in
    [0, min(max_backoff_s, initial_backoff_s * multiplier ** (n - 1))] ("full
    jitter", so many clients restarting together do not retry in lockstep).
    """

    max_attempts: int = 6
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The sleep before retry number `retry` (1 for the first retry)."""
        return rng.uniform(0.0, min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1)))


NO_RETRY = RetryPolicy(max_attempts=1)


def call_with_retry(call: Callable[[], T], policy: RetryPolicy, what: str, rng: random.Random, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `call`; when it raises a grpc.RpcError with UNAVAILABLE, sleep and try again, up to `policy.max_attempts` in all."""
    attempt = 1
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if attempt == policy.max_attempts or not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            pause = policy.backoff_s(attempt, rng)
            log.info("%s: market unavailable (%s); retry %d of %d in %.2f s", what, error.details(), attempt, policy.max_attempts - 1, pause)
        sleep(pause)
        attempt += 1
