"""Starting the market's services: one per process, or all five in one process (`lwm serve --all`).

With --all every service still gets its own gRPC server on a loopback port and the
services talk to each other over gRPC exactly as they do when deployed separately.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lwm.learnware.settings import env_float

# torch's OpenMP threads otherwise spin between kernels; on cores shared with other services
# (or other processes) that made small kernels up to 100x slower (bench/search_bench.py).
# Read once when torch loads, so it is set before any service module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lwm.rpc.learnware.v1.market_pb2 import MARKET_KIND_EASY, MARKET_KIND_HETERO, MarketKind
from lwm.rpc.server import Server, wait_for_stop_signal, wait_until_serving

if TYPE_CHECKING:
    from lwm.services.organizer.server import OrganizerConfig

# Each service is its own distribution, lwm-<name>-service, imported only when it starts.
SERVICES = ("organizer", "checker", "searcher", "reuse", "gateway")
log = logging.getLogger(__name__)


class ServiceNotInstalledError(Exception):
    """The distribution of a service to start is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the {name} service is not installed: pip install lwm-{name}-service (or lwm-market[all] for every service)")


@dataclass
class ServeConfig:
    """Settings of the services; each has an LWM_* environment variable as its default."""

    host: str = field(default_factory=lambda: os.environ.get("LWM_HOST", "127.0.0.1"))
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("LWM_DATA_DIR", ".lwm-data")))
    db_url: str = field(default_factory=lambda: os.environ.get("LWM_DB_URL", ""))
    organizer: str = field(default_factory=lambda: os.environ.get("LWM_ORGANIZER", "127.0.0.1:50052"))
    checker: str = field(default_factory=lambda: os.environ.get("LWM_CHECKER", "127.0.0.1:50053"))
    # The gateway's searcher: one address, or comma-separated addresses of the replicas of a sharded market.
    searcher: str = field(default_factory=lambda: os.environ.get("LWM_SEARCHER", "127.0.0.1:50054"))
    # The shard of the market a searcher replica indexes, "i/n" (docs/search.md).
    searcher_shard: str = field(default_factory=lambda: os.environ.get("LWM_SEARCHER_SHARD", "0/1"))
    reuse: str = field(default_factory=lambda: os.environ.get("LWM_REUSE", "127.0.0.1:50055"))
    check_timeout_s: float = field(default_factory=lambda: env_float("LWM_CHECK_TIMEOUT_S", 120, minimum=1))
    # "easy" or "hetero": a Hetero market's searcher trains the hetero engine and its gateway searches with it (docs/search.md).
    market_kind: str = field(default_factory=lambda: os.environ.get("LWM_MARKET_KIND", "easy"))

    def organizer_config(self) -> OrganizerConfig:
        from lwm.services.organizer.server import OrganizerConfig

        return OrganizerConfig.from_env(self.data_dir, self.db_url)


@dataclass
class Running:
    """Started servers and their background work (followers, runner pools, check workers)."""

    servers: list[Server] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def add_server(self, server: Server) -> None:
        self.servers.append(server)
        self._stops.append(server.stop)

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        self._stops.append(cleanup)

    def stop(self) -> None:
        # Last started, first stopped: a service and its background work stop before the
        # services it calls, so no stream into the organizer (the searcher's change feed)
        # is still open when it stops, which would hold it for its whole grace period.
        for stop in reversed(self._stops):
            stop()


def market_kind(config: ServeConfig) -> MarketKind:
    """The MarketKind of LWM_MARKET_KIND ("easy" or "hetero")."""
    kinds = {"easy": MARKET_KIND_EASY, "hetero": MARKET_KIND_HETERO}
    if config.market_kind.lower() not in kinds:
        raise ValueError(f"LWM_MARKET_KIND must be 'easy' or 'hetero', got {config.market_kind!r}")
    return kinds[config.market_kind.lower()]


def start_service(name: str, port: int, config: ServeConfig, running: Running) -> Server:
    """Build and start one service; append it (and its cleanups) to `running`."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose one of {SERVICES}")
    if importlib.util.find_spec(f"lwm.services.{name}") is None:
        raise ServiceNotInstalledError(name)
    if name == "organizer":
        from lwm.services.organizer.server import build_server as build_organizer

        server, sweeper = build_organizer(config.organizer_config(), port, config.host)
        sweeper.start()
        running.add_cleanup(sweeper.stop)
    elif name == "checker":
        from lwm.services.checker.server import build_server as build_checker

        server, workers = build_checker(config.organizer, port, config.host, config.check_timeout_s)
        server.start()
        running.add_server(server)
        workers.start()  # after the server: its cleanup runs first, so workers stop before the server
        running.add_cleanup(workers.stop)
        return server
    elif name == "searcher":
        from lwm.services.searcher.index import Shard
        from lwm.services.searcher.server import build_server as build_searcher

        server, follower, hetero = build_searcher(config.organizer, port, config.host, shard=Shard.parse(config.searcher_shard), hetero=market_kind(config) == MARKET_KIND_HETERO)
        follower.start()
        running.add_cleanup(follower.stop)
        if hetero is not None:
            hetero.start()
            running.add_cleanup(hetero.stop)
    elif name == "reuse":
        from lwm.services.reuse.server import build_server as build_reuse

        server, pool = build_reuse(config.organizer, port, config.host, config.check_timeout_s)
        running.add_cleanup(pool.close)
    else:  # the gateway
        from lwm.services.gateway.server import Backends
        from lwm.services.gateway.server import build_server as build_gateway

        server, _ = build_gateway(Backends(config.organizer, config.checker, config.searcher, config.reuse), port, config.host, kind=market_kind(config))
    server.start()
    running.add_server(server)
    return server


def start_all(config: ServeConfig, gateway_port: int) -> tuple[Running, str]:
    """All five services in this process on loopback; returns them and the gateway address."""
    running = Running()
    try:
        organizer = start_service("organizer", 0, config, running)
        config.organizer = organizer.address
        for name in ("checker", "searcher", "reuse"):
            setattr(config, name, start_service(name, 0, config, running).address)
        gateway = start_service("gateway", gateway_port, config, running)
        for server in running.servers:
            if not server.tls:  # a TLS server is serving once started; the plaintext probe cannot reach it
                wait_until_serving(server.address)
    except BaseException:
        running.stop()
        raise
    return running, gateway.address


def start_web(running: Running, gateway: str, host: str, port: int) -> str:
    """The web component (lwm web) in this process, in front of `gateway`; returns its URL."""
    if importlib.util.find_spec("lwm.services.web") is None:
        raise ServiceNotInstalledError("web")
    if any(server.tls for server in running.servers):
        raise RuntimeError("--web-port: the web component calls the gateway in plaintext; with TLS, run `lwm web` beside a plaintext gateway")
    from lwm.services.web.server import WebThread

    web = WebThread(gateway, host, port)
    web.start()
    running.add_cleanup(web.stop)
    return web.url


def serve_forever(running: Running) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully (in-flight calls may finish)."""
    try:
        wait_for_stop_signal()
    finally:
        running.stop()
