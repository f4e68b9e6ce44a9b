"""Bootstrap shared by every service: a gRPC server with health, reflection, graceful stop,
request ids, metrics and access control (see lwm.rpc.interceptors; settings from LWM_* variables)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lwm.rpc import metrics
from lwm.rpc.auth import Access, RateLimiter, SecurityConfig, TokenStore
from lwm.rpc.deadlines import DeadlineClientInterceptor
from lwm.rpc.interceptors import (
    GatewayAuthInterceptor,
    MalformedRequestInterceptor,
    MetadataClientInterceptor,
    ObservabilityInterceptor,
    PeerSecretInterceptor,
    ServingDeadlineInterceptor,
    bearer_metadata,
    peer_metadata,
)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
log = logging.getLogger(__name__)


class Server:
    """One gRPC server process: the service's servicers plus health and reflection.

    Internal services (public_policy None) accept only callers with the peer secret when
    LWM_PEER_SECRET is set. The public server (the gateway, given its access policy)
    authenticates API tokens from LWM_TOKENS_FILE, rate-limits callers, and serves TLS
    when LWM_TLS_CERT/LWM_TLS_KEY are set.
    """

    def __init__(self, name: str, port: int, host: str = "127.0.0.1", max_workers: int = 16, public_policy: dict[str, Access] | None = None, security: SecurityConfig | None = None) -> None:
        self.name = name
        security = security if security is not None else SecurityConfig.from_env()
        interceptors: list[grpc.ServerInterceptor] = [ObservabilityInterceptor(name), MalformedRequestInterceptor(), ServingDeadlineInterceptor()]
        if public_policy is not None:
            tokens = TokenStore(Path(security.tokens_file)) if security.tokens_file else None
            interceptors.append(GatewayAuthInterceptor(public_policy, tokens, security.allow_anonymous, RateLimiter(security.rate_per_s, security.rate_burst)))
        elif security.peer_secret:
            interceptors.append(PeerSecretInterceptor(security.peer_secret))
        options = dict(CHANNEL_OPTIONS)
        if public_policy is not None and security.max_request_bytes:
            options["grpc.max_receive_message_length"] = security.max_request_bytes
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name), options=list(options.items()), interceptors=interceptors)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        credentials = security.server_credentials() if public_policy is not None else None
        self.tls = credentials is not None
        self.port = self._grpc.add_secure_port(f"{host}:{port}", credentials) if credentials else self._grpc.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"{name}: cannot bind {host}:{port}")
        self.host = host
        self.address = f"{host}:{self.port}"
        self._serving = False
        self._stopped = threading.Event()
        metrics.health.register(name, lambda: self._serving)

    def add(self, register: Callable[[object, grpc.Server], None], servicer: object, full_names: Iterable[str]) -> None:
        """Register a servicer, e.g. add(pb2_grpc.add_XServicer_to_server, servicer, [descriptor.full_name])."""
        register(servicer, self._grpc)
        self._service_names.extend(full_names)

    def start(self) -> None:
        reflection.enable_server_reflection(self._service_names, self._grpc)
        self._grpc.start()
        for service in self._service_names:
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        metrics_port = metrics.serve_http_from_env(self.host)
        log.info("%s listening on %s%s%s", self.name, self.address, " (TLS)" if self.tls else "", f", metrics on :{metrics_port}" if metrics_port else "")

    def stop(self, grace_s: float = 5.0) -> None:
        """Refuse new calls, let in-flight calls finish for up to grace_s seconds."""
        self._serving = False
        self._health.enter_graceful_shutdown()
        self._grpc.stop(grace_s).wait()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def channel(address: str) -> grpc.Channel:
    """A channel to a market service; calls carry the peer secret (LWM_PEER_SECRET), the current request id
    and a deadline (lwm.rpc.deadlines: the step's default, or less when the caller being served has less time left)."""
    outgoing = MetadataClientInterceptor(peer_metadata(os.environ.get("LWM_PEER_SECRET", "")))
    return grpc.intercept_channel(grpc.insecure_channel(address, options=CHANNEL_OPTIONS), outgoing, DeadlineClientInterceptor())


def market_channel(address: str, token: str = "", tls_ca: str = "") -> grpc.Channel:
    """A client's channel to the gateway: TLS when tls_ca (a CA bundle path, or "system" for the
    default roots) is given, and every call carrying the API token when one is given."""
    if tls_ca:
        roots = None if tls_ca == "system" else Path(tls_ca).read_bytes()
        base = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=CHANNEL_OPTIONS)
    else:
        base = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.intercept_channel(base, MetadataClientInterceptor(bearer_metadata(token))) if token else base


def stop_process(process: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM a child process (by its PID), SIGKILL it after `grace_s`; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_serving(address: str, timeout_s: float = 30.0) -> None:
    """Block until the server at address answers its health check with SERVING."""
    deadline = time.monotonic() + timeout_s
    with channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no gRPC server serving at {address} after {timeout_s:.0f} s")
            time.sleep(0.05)
