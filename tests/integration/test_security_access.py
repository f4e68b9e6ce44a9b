"""Access control on real loopback gRPC servers, in process: the gateway's token policy,
anonymous access on/off, rate limits, request size, the internal services' peer secret,
TLS, and garbled messages."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lwm.client import MarketClient, MarketError
from lwm.rpc.auth import MARKET_POLICY, SecurityConfig, TokenStore
from lwm.rpc.learnware.v1 import market_pb2, market_pb2_grpc, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.rpc.tensors import to_tensor
from lwm.services.gateway.server import Backends
from lwm.services.gateway.server import build_server as build_gateway
from lwm.services.organizer.server import OrganizerConfig
from lwm.services.organizer.server import build_server as build_organizer

pytestmark = pytest.mark.integration
PEER_SECRET = "peer-secret-for-tests"


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[TokenStore, dict[str, str]]:
    store = TokenStore(tmp_path / "tokens.json")
    made = {name: store.create(name, role)[0] for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin"))}
    made["expired"] = store.create("carol", "user", ttl_s=0.001)[0]
    time.sleep(0.01)
    return store, made


@pytest.fixture
def organizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("LWM_PEER_SECRET", PEER_SECRET)
    monkeypatch.delenv("LWM_S3_ENDPOINT", raising=False)
    server, _ = build_organizer(OrganizerConfig.in_directory(tmp_path / "organizer"), 0)
    server.start()
    yield server
    server.stop(0)


def gateway_with(organizer: Server, security: SecurityConfig, monkeypatch: pytest.MonkeyPatch) -> Server:
    """A gateway on the organizer; the other backends are absent (calls needing them fail UNAVAILABLE)."""
    monkeypatch.setattr(SecurityConfig, "from_env", classmethod(lambda cls: security))
    server, _ = build_gateway(Backends(organizer.address, "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"), 0)
    monkeypatch.undo()
    server.start()
    return server


def status_of(call) -> grpc.StatusCode:
    try:
        call()
    except MarketError as error:
        return error.code
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_every_market_method_has_an_access_rule() -> None:
    methods = {method.name for method in market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods}
    assert methods == set(MARKET_POLICY), "add new MarketService methods to lwm.rpc.auth.MARKET_POLICY"


def test_gateway_token_policy(organizer: Server, tokens: tuple[TokenStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    store, made = tokens
    gateway = gateway_with(organizer, SecurityConfig(tokens_file=str(store.path), peer_secret=PEER_SECRET, allow_anonymous=True), monkeypatch)
    monkeypatch.setenv("LWM_PEER_SECRET", PEER_SECRET)
    try:
        def client(name: str | None) -> MarketClient:
            return MarketClient(gateway.address, token=made[name] if name else "", tls_ca="")

        listing = lambda name: status_of(lambda: list(client(name).list_learnwares()))  # noqa: E731
        assert listing(None) == grpc.StatusCode.UNAUTHENTICATED  # no token
        assert listing("alice") == grpc.StatusCode.OK
        assert listing("expired") == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(MarketError, match="expired"):
            list(client("expired").list_learnwares())
        wrong = made["alice"][:-4] + "AAAA"
        assert status_of(lambda: list(MarketClient(gateway.address, token=wrong, tls_ca="").list_learnwares())) == grpc.StatusCode.UNAUTHENTICATED
        assert status_of(lambda: list(MarketClient(gateway.address, token="not-a-token", tls_ca="").list_learnwares())) == grpc.StatusCode.UNAUTHENTICATED
        # Anonymous reads pass the gateway (NOT_FOUND comes from the organizer behind it).
        assert status_of(lambda: client(None).get_learnware("nope")) == grpc.StatusCode.NOT_FOUND
        # Admin-only method.
        recheck = lambda name: status_of(lambda: client(name)._call("RecheckLearnware", market_pb2.MarketRecheckLearnwareRequest(learnware_id="nope")))  # noqa: E731
        assert recheck("alice") == grpc.StatusCode.PERMISSION_DENIED
        assert recheck("root") == grpc.StatusCode.NOT_FOUND
        # Revoking a token takes effect without a restart (the file is re-read when it changes).
        store.revoke(made["bob"].split("_")[1])
        assert listing("bob") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        gateway.stop(0)


def test_anonymous_access_can_be_turned_off(organizer: Server, tokens: tuple[TokenStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    store, made = tokens
    gateway = gateway_with(organizer, SecurityConfig(tokens_file=str(store.path), allow_anonymous=False), monkeypatch)
    monkeypatch.setenv("LWM_PEER_SECRET", PEER_SECRET)
    try:
        assert status_of(lambda: MarketClient(gateway.address, token="", tls_ca="").get_learnware("x")) == grpc.StatusCode.UNAUTHENTICATED
        assert status_of(lambda: MarketClient(gateway.address, token=made["alice"], tls_ca="").get_learnware("x")) == grpc.StatusCode.NOT_FOUND
    finally:
        gateway.stop(0)


def test_rate_limit_and_request_size_give_resource_exhausted(organizer: Server, tokens: tuple[TokenStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    store, made = tokens
    gateway = gateway_with(organizer, SecurityConfig(tokens_file=str(store.path), rate_per_s=2, rate_burst=5, max_request_bytes=1024 * 1024), monkeypatch)
    monkeypatch.setenv("LWM_PEER_SECRET", PEER_SECRET)
    try:
        alice = MarketClient(gateway.address, token=made["alice"], tls_ca="")
        codes = [status_of(lambda: alice.get_learnware("x")) for _ in range(12)]
        assert codes[:5] == [grpc.StatusCode.NOT_FOUND] * 5
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[5:]
        with pytest.raises(MarketError, match="rate limit"):
            alice.get_learnware("x")
        # Another token has its own budget.
        assert status_of(lambda: MarketClient(gateway.address, token=made["root"], tls_ca="").get_learnware("x")) == grpc.StatusCode.NOT_FOUND
        big = market_pb2.MarketPredictRequest(learnware_id="x", x=to_tensor(np.zeros((300, 1000))))
        stub = market_pb2_grpc.MarketServiceStub(grpc.insecure_channel(gateway.address))
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(big, metadata=[("authorization", f"Bearer {made['bob']}")], timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        gateway.stop(0)


def test_internal_services_accept_only_peers(organizer: Server) -> None:
    request = organizer_pb2.GetLearnwareRequest(learnware_id="x")
    raw = organizer_pb2_grpc.OrganizerServiceStub(grpc.insecure_channel(organizer.address))
    assert status_of(lambda: raw.GetLearnware(request, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    assert status_of(lambda: raw.GetLearnware(request, metadata=[("x-lwm-peer-secret", "guess")], timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    assert status_of(lambda: raw.GetLearnware(request, metadata=[("x-lwm-peer-secret", PEER_SECRET)], timeout=10)) == grpc.StatusCode.NOT_FOUND
    peer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer.address))  # channel() sends LWM_PEER_SECRET
    assert status_of(lambda: peer.GetLearnware(request, timeout=10)) == grpc.StatusCode.NOT_FOUND
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(organizer.address))  # probes need no secret
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_garbled_messages_get_invalid_argument(organizer: Server) -> None:
    ch = grpc.insecure_channel(organizer.address)
    metadata = [("x-lwm-peer-secret", PEER_SECRET)]
    unary = ch.unary_unary("/learnware.v1.OrganizerService/GetLearnware")
    with pytest.raises(grpc.RpcError) as error:
        unary(b"\xff\xff\xff\x0f garbage", metadata=metadata, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in error.value.details()
    streaming = ch.stream_unary("/learnware.v1.OrganizerService/AddLearnware")
    with pytest.raises(grpc.RpcError) as error:
        streaming(iter([b"\x0a\xff\xff"]), metadata=metadata, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in error.value.details()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_gateway_serves_tls(organizer: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed_certificate(tmp_path)
    gateway = gateway_with(organizer, SecurityConfig(tls_cert=str(cert), tls_key=str(key)), monkeypatch)
    monkeypatch.setenv("LWM_PEER_SECRET", PEER_SECRET)
    try:
        assert gateway.tls
        assert status_of(lambda: MarketClient(gateway.address, token="", tls_ca=str(cert), timeout_s=10).get_learnware("x")) == grpc.StatusCode.NOT_FOUND
        assert status_of(lambda: MarketClient(gateway.address, token="", tls_ca="", timeout_s=5).get_learnware("x")) == grpc.StatusCode.UNAVAILABLE
    finally:
        gateway.stop(0)
