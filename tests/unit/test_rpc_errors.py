"""grpc_errors on a real server: ServiceError keeps its code, a ValueError is INVALID_ARGUMENT
only inside caller_input(), anything else is INTERNAL naming the request id (details in the log)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from lwm.rpc.auth import SecurityConfig
from lwm.rpc.errors import ServiceError, caller_input, grpc_errors, not_found
from lwm.rpc.learnware.v1 import checker_pb2, checker_pb2_grpc, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import Server, channel

SECRET = "numpy says: operands could not be broadcast together with shapes (3,) (4,)"


def _fail(how: str) -> None:
    if how == "service-error":
        raise not_found("no learnware with id 'x'")
    if how == "caller-input":
        with caller_input():
            raise ValueError("x must have shape (n, 8)")
    if how == "value-error":
        raise ValueError(SECRET)
    if how == "runtime-error":
        raise RuntimeError(SECRET)


@grpc_errors
class FailingChecker(checker_pb2_grpc.CheckerServiceServicer):
    def CheckLearnware(self, request: checker_pb2.CheckLearnwareRequest, context: grpc.ServicerContext) -> checker_pb2.CheckLearnwareResponse:
        _fail(request.learnware_id)
        return checker_pb2.CheckLearnwareResponse()


@grpc_errors
class FailingDownloads(organizer_pb2_grpc.OrganizerServiceServicer):
    def DownloadLearnware(self, request: organizer_pb2.DownloadLearnwareRequest, context: grpc.ServicerContext) -> Iterator[organizer_pb2.DownloadLearnwareResponse]:
        yield organizer_pb2.DownloadLearnwareResponse()
        _fail(request.learnware_id)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = Server("errors-test", 0, security=SecurityConfig())
    server.add(checker_pb2_grpc.add_CheckerServiceServicer_to_server, FailingChecker(), [checker_pb2.DESCRIPTOR.services_by_name["CheckerService"].full_name])
    server.add(organizer_pb2_grpc.add_OrganizerServiceServicer_to_server, FailingDownloads(), [organizer_pb2.DESCRIPTOR.services_by_name["OrganizerService"].full_name])
    server.start()
    yield server.address
    server.stop(0)


def _call(address: str, how: str, streaming: bool, request_id: str = "") -> grpc.RpcError:
    metadata = [("x-request-id", request_id)] if request_id else None
    with channel(address) as ch:
        with pytest.raises(grpc.RpcError) as error:
            if streaming:
                list(organizer_pb2_grpc.OrganizerServiceStub(ch).DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=how), metadata=metadata))
            else:
                checker_pb2_grpc.CheckerServiceStub(ch).CheckLearnware(checker_pb2.CheckLearnwareRequest(learnware_id=how), metadata=metadata)
    return error.value


@pytest.mark.parametrize("streaming", [False, True])
def test_errors_meant_for_the_caller_keep_their_code_and_message(address: str, streaming: bool) -> None:
    error = _call(address, "service-error", streaming)
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == "no learnware with id 'x'"
    error = _call(address, "caller-input", streaming)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == "x must have shape (n, 8)"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("how, exception", [("value-error", "ValueError"), ("runtime-error", "RuntimeError")])
def test_other_errors_are_internal_with_the_request_id_and_the_detail_in_the_log(address: str, streaming: bool, how: str, exception: str, caplog: pytest.LogCaptureFixture) -> None:
    request_id = f"rid-{how}-{streaming}"
    with caplog.at_level(logging.ERROR, logger="lwm.rpc.errors"):
        error = _call(address, how, streaming, request_id)
    assert error.code() == grpc.StatusCode.INTERNAL
    method = "FailingDownloads.DownloadLearnware" if streaming else "FailingChecker.CheckLearnware"
    assert error.details() == f"internal error in {method} (request id {request_id}); the service log has the details"
    assert SECRET not in error.details() and exception not in error.details()
    [record] = [r for r in caplog.records if r.name == "lwm.rpc.errors"]
    assert request_id in record.getMessage() and record.exc_info is not None
    assert f"{exception}: {SECRET}" in caplog.text and "Traceback" in caplog.text and "in _fail" in caplog.text


class _Aborted(Exception):
    pass


class _Context:
    """Stands for grpc.ServicerContext: abort raises, as gRPC's does."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted


def test_without_a_request_id_the_message_says_so() -> None:
    context = _Context()
    with pytest.raises(_Aborted):
        FailingChecker().CheckLearnware(checker_pb2.CheckLearnwareRequest(learnware_id="runtime-error"), context)  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.INTERNAL
    assert context.details == "internal error in FailingChecker.CheckLearnware (no request id); the service log has the details"


def test_caller_input_turns_only_value_errors_into_invalid_argument() -> None:
    with pytest.raises(ServiceError) as error, caller_input():
        int("seven")
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "seven" in error.value.message
    with pytest.raises(KeyError), caller_input():
        raise KeyError("not a ValueError")
