"""MarketClient's retries, timeouts and exceptions: the real client over real gRPC, against a scripted market servicer."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from lwm.client import DeadlineExceededError, MarketClient, MarketError, NotFoundError, RetryPolicy, UnavailableError
from lwm.client.retry import call_with_retry
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, market_pb2_grpc

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.02)


class UpperBound(random.Random):
    """Jitter that always picks the largest allowed sleep, to read the backoff caps."""

    def uniform(self, a: float, b: float) -> float:
        return b


class StatusError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """An RpcError as a call raises it: code() and details()."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name.lower()


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter_below_it() -> None:
    policy = RetryPolicy(max_attempts=8, initial_backoff_s=0.1, max_backoff_s=0.5, multiplier=2.0)
    assert [round(policy.backoff_s(n, UpperBound()), 6) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    rng = random.Random(0)
    pauses = [policy.backoff_s(3, rng) for _ in range(200)]
    assert all(0.0 <= p <= 0.4 for p in pauses) and len(set(pauses)) == 200
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_call_with_retry_retries_only_unavailable_and_gives_up_after_max_attempts() -> None:
    sleeps: list[float] = []
    outcomes: list[Any] = [StatusError(grpc.StatusCode.UNAVAILABLE), StatusError(grpc.StatusCode.UNAVAILABLE), "ok"]

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(max_attempts=3, initial_backoff_s=1.0, max_backoff_s=10.0)
    assert call_with_retry(flaky, policy, "flaky", UpperBound(), sleeps.append) == "ok"
    assert sleeps == [1.0, 2.0]

    calls = []

    def failing(code: grpc.StatusCode) -> None:
        calls.append(code)
        raise StatusError(code)

    with pytest.raises(StatusError):
        call_with_retry(lambda: failing(grpc.StatusCode.NOT_FOUND), policy, "missing", UpperBound(), sleeps.append)
    assert calls == [grpc.StatusCode.NOT_FOUND]
    calls.clear()
    with pytest.raises(StatusError):
        call_with_retry(lambda: failing(grpc.StatusCode.UNAVAILABLE), policy, "down", UpperBound(), sleeps.append)
    assert len(calls) == 3


class ScriptedMarket(market_pb2_grpc.MarketServiceServicer):
    """Answers UNAVAILABLE a given number of times per method, then normally."""

    def __init__(self, unavailable: dict[str, int]) -> None:
        self.unavailable = unavailable
        self.calls: dict[str, int] = {}
        self.upload_request_ids: list[str] = []

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] <= self.unavailable.get(method, 0):
            context.abort(grpc.StatusCode.UNAVAILABLE, "organizer is restarting")

    def GetLearnware(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("GetLearnware", context)
        statuses = {"lw-1": common_pb2.LEARNWARE_STATUS_USABLE, "lw-stuck": common_pb2.LEARNWARE_STATUS_PENDING}
        if request.learnware_id not in statuses:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no learnware {request.learnware_id}")
        return market_pb2.MarketGetLearnwareResponse(learnware=common_pb2.LearnwareInfo(id=request.learnware_id, status=statuses[request.learnware_id]))

    def AddLearnware(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        for message in request_iterator:
            if message.WhichOneof("payload") == "metadata":
                self.upload_request_ids.append(message.metadata.client_request_id)
        self._enter("AddLearnware", context)
        return market_pb2.MarketAddLearnwareResponse()

    def DownloadLearnware(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._enter("DownloadLearnware", context)
        for part in (b"zip-", b"bytes"):
            yield market_pb2.MarketDownloadLearnwareResponse(chunk=common_pb2.Chunk(data=part))

    def GetMarketInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("GetMarketInfo", context)
        time.sleep(1.0)
        return market_pb2.MarketGetMarketInfoResponse()


@pytest.fixture
def scripted_market() -> Iterator[tuple[str, ScriptedMarket]]:
    servicer = ScriptedMarket({"GetLearnware": 2, "AddLearnware": 1, "DownloadLearnware": 1})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    market_pb2_grpc.add_MarketServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_idempotent_calls_are_retried_and_uploads_keep_their_request_id(scripted_market: tuple[str, ScriptedMarket], tmp_path: Path) -> None:
    address, servicer = scripted_market
    with MarketClient(address, token="", tls_ca="", retry=FAST_RETRY) as client:
        assert client.get_learnware("lw-1").status == "USABLE"
        assert servicer.calls["GetLearnware"] == 3

        received: list[int] = []
        assert client.download("lw-1", tmp_path / "lw.zip", progress=received.append).read_bytes() == b"zip-bytes"
        assert servicer.calls["DownloadLearnware"] == 2 and received == [4, 9]

        (tmp_path / "upload.zip").write_bytes(b"not checked here")
        sent: list[int] = []
        client.add_learnware(tmp_path / "upload.zip", {}, progress=sent.append)
        # Retried after UNAVAILABLE with the same request id (the market stores it once), the zip sent again.
        assert servicer.calls["AddLearnware"] == 2 and sent == [len(b"not checked here")] * 2
        first, retry = servicer.upload_request_ids
        assert first and first == retry
        client.add_learnware(tmp_path / "upload.zip", {})
        assert servicer.calls["AddLearnware"] == 3 and servicer.upload_request_ids[2] not in (first, "")


def test_status_codes_become_exception_classes_and_timeouts_apply_per_call(scripted_market: tuple[str, ScriptedMarket]) -> None:
    address, servicer = scripted_market
    with MarketClient(address, token="", tls_ca="", retry=FAST_RETRY, timeouts={"GetMarketInfo": 0.2}) as client:
        servicer.unavailable.clear()
        with pytest.raises(NotFoundError) as missing:
            client.get_learnware("lw-404")
        assert isinstance(missing.value, MarketError) and missing.value.code == grpc.StatusCode.NOT_FOUND and "lw-404" in missing.value.message
        with pytest.raises(DeadlineExceededError):
            client.market_info()
        assert servicer.calls["GetMarketInfo"] == 1
        assert client.timeouts["GetMarketInfo"] == 0.2 and client.timeouts["SearchLearnware"] == 120.0
    with MarketClient(address, timeout_s=7.0, token="", tls_ca="") as client:
        assert client.timeouts["AddLearnware"] == 7.0


def test_wait_until_checked_returns_the_decided_learnware_or_times_out(scripted_market: tuple[str, ScriptedMarket]) -> None:
    address, _ = scripted_market
    with MarketClient(address, token="", tls_ca="", retry=FAST_RETRY) as client:
        assert client.wait_until_checked("lw-1").status == "USABLE"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="lw-stuck is still PENDING after 0.3 s"):
            client.wait_until_checked("lw-stuck", timeout_s=0.3, poll_s=0.05)
        assert time.monotonic() - started < 5


def test_unreachable_market_raises_unavailable_after_the_retries() -> None:
    with MarketClient("127.0.0.1:1", token="", tls_ca="", retry=FAST_RETRY) as client:
        with pytest.raises(UnavailableError):
            client.get_learnware("lw-1")


def test_every_market_rpc_has_a_default_timeout() -> None:
    from lwm.client.market import DEFAULT_TIMEOUTS_S, IDEMPOTENT_METHODS

    methods = set(market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods_by_name)
    assert methods == set(DEFAULT_TIMEOUTS_S), methods ^ set(DEFAULT_TIMEOUTS_S)
    assert IDEMPOTENT_METHODS <= methods
