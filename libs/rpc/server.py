"""Bootstrap shared by every service: a gRPC server with health, reflection and graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from typing import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
log = logging.getLogger(__name__)


class Server:
    """One gRPC server process: the service's servicers plus health and reflection."""

    def __init__(self, name: str, port: int, host: str = "127.0.0.1", max_workers: int = 16) -> None:
        self.name = name
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name), options=CHANNEL_OPTIONS)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        self.port = self._grpc.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"{name}: cannot bind {host}:{port}")
        self.address = f"{host}:{self.port}"
        self._stopped = threading.Event()

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
        log.info("%s listening on %s", self.name, self.address)

    def stop(self, grace_s: float = 5.0) -> None:
        """Refuse new calls, let in-flight calls finish for up to grace_s seconds."""
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
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


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
