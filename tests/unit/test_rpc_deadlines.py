"""Default deadlines of calls between services (lwm.rpc.deadlines): one table, overridable per step."""

from __future__ import annotations

import grpc
import pytest

from lwm.rpc import deadlines
from lwm.rpc.deadlines import DEFAULT_DEADLINES_S, DEFAULT_STEP_DEADLINE_S, StepTimedOut, step_deadline_s, step_name
from lwm.rpc.learnware.v1 import checker_pb2, organizer_pb2, reuse_pb2, searcher_pb2


def test_steps_are_named_by_service_and_method() -> None:
    assert step_name("/learnware.v1.SearcherService/SearchLearnwares") == "searcher.SearchLearnwares"
    assert step_name("/grpc.health.v1.Health/Check") == "health.Check"


def test_every_internal_rpc_has_a_listed_deadline() -> None:
    steps = {f"{name.removesuffix('Service').lower()}.{method}" for module in (organizer_pb2, checker_pb2, searcher_pb2, reuse_pb2) for name, service in module.DESCRIPTOR.services_by_name.items() for method in service.methods_by_name}
    assert steps == set(DEFAULT_DEADLINES_S), steps ^ set(DEFAULT_DEADLINES_S)


def test_a_step_deadline_comes_from_its_variable_else_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    assert step_deadline_s("searcher.SearchLearnwares") == DEFAULT_DEADLINES_S["searcher.SearchLearnwares"]
    assert step_deadline_s("organizer.WatchLearnwares") is None
    assert step_deadline_s("health.Check") == DEFAULT_STEP_DEADLINE_S
    monkeypatch.setenv("LWM_DEADLINE_SEARCHER_SEARCHLEARNWARES_S", "2.5")
    assert step_deadline_s("searcher.SearchLearnwares") == 2.5
    monkeypatch.setenv("LWM_DEADLINE_CHECKER_CHECKLEARNWARE_S", "0")
    assert step_deadline_s("checker.CheckLearnware") is None
    monkeypatch.setenv("LWM_DEADLINE_REUSE_PREDICT_S", "soon")
    with pytest.raises(ValueError, match="LWM_DEADLINE_REUSE_PREDICT_S must be a number of seconds, got 'soon'"):
        step_deadline_s("reuse.Predict")


def test_a_step_timeout_is_a_failed_call_with_its_message() -> None:
    error = StepTimedOut(None, "searcher.SearchLearnwares did not answer within 1.0 s")
    assert isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call) and error.done()
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and error.details() == "searcher.SearchLearnwares did not answer within 1.0 s"
    assert error.exception() is error
    with pytest.raises(StepTimedOut):
        error.result()


class _ContextWithTimeLeft:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time_remaining(self) -> float:
        return self.seconds


def test_the_answer_margin_is_kept_from_the_start_of_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler making one call after another must not spend the time kept back to answer its caller: with 10 s
    at the start, 1 s stays kept back when 1.5 s are left (a margin of 10% of what is left would keep 0.15 s)."""
    now = [1000.0]
    monkeypatch.setattr(deadlines.time, "monotonic", lambda: now[0])
    token = deadlines.serving_with_deadline(_ContextWithTimeLeft(10.0))  # type: ignore[arg-type]
    try:
        assert deadlines.time_to_pass_on_s() == pytest.approx(9.0)
        now[0] += 8.5
        assert deadlines.serving_time_left_s() == pytest.approx(1.5)
        assert deadlines.time_to_pass_on_s() == pytest.approx(0.5)
        now[0] += 1.0
        assert deadlines.time_to_pass_on_s() == 0.0
    finally:
        deadlines.end_serving(token)
    assert deadlines.time_to_pass_on_s() is None
