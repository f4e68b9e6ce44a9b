"""Deadlines of calls between market services.

Every call a service makes to another (through lwm.rpc.server.channel) gets a deadline:
the default of its step from DEFAULT_DEADLINES_S (or LWM_DEADLINE_<STEP>_S, e.g.
LWM_DEADLINE_SEARCHER_SEARCHLEARNWARES_S=5; 0 = none), or, when the call is made while
serving a call that has a deadline, the time that caller has left (less a margin so that
the answer naming the step gets back before the caller gives up), whichever is smaller.
A call that runs out fails with DEADLINE_EXCEEDED and a message naming its step, e.g.
"searcher.SearchLearnwares did not answer within 30.0 s"; callers pass that message on.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

# Seconds per step ("<service>.<Method>"); None = no deadline (the change feed is a stream
# that lasts as long as the searcher). Steps not listed get DEFAULT_STEP_DEADLINE_S.
DEFAULT_DEADLINES_S: dict[str, float | None] = {
    "organizer.AddLearnware": 600.0,
    "organizer.GetLearnware": 10.0,
    "organizer.ListLearnwares": 30.0,
    "organizer.UpdateLearnware": 10.0,
    "organizer.DeleteLearnware": 30.0,
    "organizer.DownloadLearnware": 600.0,
    "organizer.GetStatSpecs": 60.0,
    "organizer.WatchLearnwares": None,
    "organizer.PutCheckpoint": 120.0,
    "organizer.GetCheckpoint": 120.0,
    "organizer.AcquireLease": 10.0,
    "organizer.ReleaseLease": 10.0,
    "organizer.CreateCheckJob": 10.0,
    "organizer.ClaimCheckJob": 10.0,
    "organizer.HeartbeatCheckJob": 10.0,
    "organizer.CompleteCheckJob": 30.0,
    # Answers after at most 30 s (WaitCheckJobRequest.wait_s is capped there).
    "organizer.WaitCheckJob": 60.0,
    "checker.CheckSemanticSpec": 10.0,
    # Builds the learnware's environment and runs its model: the longest step.
    "checker.CheckLearnware": 1800.0,
    "searcher.SearchLearnwares": 30.0,
    "searcher.SearchShard": 30.0,
    "searcher.MergeSearchResults": 30.0,
    "searcher.TrainHeteroEngine": 1800.0,
    "searcher.GetHeteroEngine": 60.0,
    "searcher.GetIndexStats": 10.0,
    "reuse.Predict": 300.0,
    "reuse.Reuse": 600.0,
    "reuse.ReuseStream": 600.0,
}
DEFAULT_STEP_DEADLINE_S = 60.0
# The share of a caller's remaining time kept back for answering it (at most MAX_ANSWER_MARGIN_S): on a
# loaded machine the answering thread can wait half a second for a core.
ANSWER_MARGIN = 0.1
MAX_ANSWER_MARGIN_S = 1.0
# Every message naming a step that ran out contains this (so an outer step does not rename it).
STEP_TIMED_OUT = "did not answer within"

# Of the call being served: the monotonic time its caller gives up, and the time kept back to answer it
# (fixed when the call arrives, so that a handler making one call after another does not spend it); None: no deadline.
_serving_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("lwm_serving_deadline", default=None)


def step_name(full_method: str) -> str:
    """'/learnware.v1.SearcherService/SearchLearnwares' -> 'searcher.SearchLearnwares'."""
    service, _, method = full_method.lstrip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1].removesuffix('Service').lower()}.{method}"


def step_deadline_s(step: str) -> float | None:
    """The default deadline of a step: LWM_DEADLINE_<STEP>_S if set (0 = none), else the table's."""
    variable = "LWM_DEADLINE_" + step.replace(".", "_").upper() + "_S"
    configured = os.environ.get(variable)
    if configured is None:
        return DEFAULT_DEADLINES_S.get(step, DEFAULT_STEP_DEADLINE_S)
    try:
        seconds = float(configured)
    except ValueError:
        raise ValueError(f"{variable} must be a number of seconds, got {configured!r}") from None
    if seconds < 0:
        raise ValueError(f"{variable} must be >= 0 (0 = no deadline), got {configured!r}")
    return seconds or None


def serving_time_left_s() -> float | None:
    """Seconds left to answer the call being served in this thread (None: no deadline, or not serving)."""
    serving = _serving_deadline.get()
    return None if serving is None else max(0.0, serving[0] - time.monotonic())


def time_to_pass_on_s() -> float | None:
    """The time a step may take for the call being served: what its caller has left, less the
    margin to answer before the caller gives up (None: the caller set no deadline)."""
    serving = _serving_deadline.get()
    if serving is None:
        return None
    deadline, margin = serving
    return max(0.0, deadline - margin - time.monotonic())


def serving_with_deadline(context: grpc.ServicerContext) -> contextvars.Token[tuple[float, float] | None]:
    """Record the deadline of the call being served (reset with the token when it ends)."""
    remaining = context.time_remaining()
    # gRPC reports a call without a deadline as a huge remaining time.
    if remaining is None or remaining >= 10 * 365 * 86400:
        return _serving_deadline.set(None)
    return _serving_deadline.set((time.monotonic() + remaining, min(MAX_ANSWER_MARGIN_S, ANSWER_MARGIN * remaining)))


def end_serving(token: contextvars.Token[tuple[float, float] | None]) -> None:
    _serving_deadline.reset(token)


class StepTimedOut(grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[type-arg]  # generic only in the stubs
    """DEADLINE_EXCEEDED of a call between services, with a message naming the step.

    Like gRPC's own failed calls it is the error, the call and its (failed) future at once:
    an interceptor further out calls result() on what this one returns.
    """

    def __init__(self, call: Any, message: str) -> None:
        super().__init__(message)
        self._call = call
        self._message = message

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return self._message

    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> Exception:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return self.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


class _Deadline:
    """One call's deadline and how to explain it when it runs out."""

    def __init__(self, step: str, timeout_s: float | None, bound_by_caller: bool) -> None:
        self.step = step
        self.timeout_s = timeout_s
        self.bound_by_caller = bound_by_caller

    def renamed(self, error: Exception) -> Exception:
        """The error, or a StepTimedOut naming this step if it is a DEADLINE_EXCEEDED that names none."""
        if not (isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call)) or error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            return error
        if STEP_TIMED_OUT in (error.details() or ""):
            return error  # a step further down ran out: its message is the precise one
        why = " (the time the caller had left)" if self.bound_by_caller else ""
        return StepTimedOut(error, f"{self.step} {STEP_TIMED_OUT} {self.timeout_s or 0:.1f} s{why}")


class _UnaryOutcome:
    """A unary call's outcome (or future) whose DEADLINE_EXCEEDED names the step."""

    def __init__(self, call: Any, deadline: _Deadline) -> None:
        self._call = call
        self._deadline = deadline

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._call.result(timeout)
        except grpc.RpcError as error:
            raise self._deadline.renamed(error) from None

    def exception(self, timeout: float | None = None) -> Any:
        error = self._call.exception(timeout)
        return None if error is None else self._deadline.renamed(error)

    def code(self) -> Any:
        renamed = self._deadline.renamed(self._call)
        return renamed.code() if isinstance(renamed, grpc.Call) else self._call.code()

    def details(self) -> Any:
        renamed = self._deadline.renamed(self._call)
        return renamed.details() if isinstance(renamed, grpc.Call) else self._call.details()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _StreamOutcome(_UnaryOutcome):
    """A response stream whose DEADLINE_EXCEEDED names the step."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except grpc.RpcError as error:
            raise self._deadline.renamed(error) from None


class _Details(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, timeout: float | None) -> None:
        self.method = details.method
        self.timeout = timeout
        self.metadata = details.metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class DeadlineClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Gives every outgoing call its step's deadline, cut to the time the served caller has left."""

    def _deadline(self, details: grpc.ClientCallDetails) -> tuple[grpc.ClientCallDetails, _Deadline]:
        step = step_name(details.method)
        timeout = step_deadline_s(step)
        if details.timeout is not None and (timeout is None or details.timeout < timeout):
            timeout = details.timeout  # the code making the call asked for less
        passed_on = time_to_pass_on_s()
        bound_by_caller = False
        if passed_on is not None and (timeout is None or passed_on < timeout):
            timeout, bound_by_caller = passed_on, True
        return _Details(details, timeout), _Deadline(step, timeout, bound_by_caller)

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        new_details, deadline = self._deadline(details)
        return _UnaryOutcome(continuation(new_details, request), deadline)

    def intercept_stream_unary(self, continuation: Any, details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        new_details, deadline = self._deadline(details)
        return _UnaryOutcome(continuation(new_details, request_iterator), deadline)

    def intercept_unary_stream(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        new_details, deadline = self._deadline(details)
        return _StreamOutcome(continuation(new_details, request), deadline)

    def intercept_stream_stream(self, continuation: Any, details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        new_details, deadline = self._deadline(details)
        return _StreamOutcome(continuation(new_details, request_iterator), deadline)
