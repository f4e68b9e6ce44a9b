"""Each service as its own process (`lwm serve NAME --port P`), wired by addresses, with health and reflection."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lwm.client import MarketClient
from lwm.rpc.server import stop_process, wait_until_serving
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
SERVICE_NAMES = {
    "organizer": "learnware.v1.OrganizerService",
    "checker": "learnware.v1.CheckerService",
    "searcher": "learnware.v1.SearcherService",
    "reuse": "learnware.v1.ReuseService",
    "gateway": "learnware.v1.MarketService",
}


# `lwm` as in an image of one service, which installs lwm-market and lwm-gateway-service only:
# the other services, and with the organizer its command `lwm admin`, are missing.
ONLY_THE_GATEWAY_INSTALLED = """
import sys
from lwm.client import cli
for name in ("organizer", "checker", "searcher", "reuse"):
    sys.modules["lwm.services." + name] = None
installed = cli.entry_points
cli.entry_points = lambda group: [e for e in installed(group=group) if e.name != "admin"]
sys.exit(cli.main(sys.argv[1:]))
"""


def reflected_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        return {service.name for reply in replies for service in reply.list_services_response.service}


@pytest.mark.slow  # a minute; tests/integration/test_search_sharded.py and the gateway-only test below run services apart in make test
def test_five_processes(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVICE_NAMES}
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    wiring = [f"--{name}={addresses[name]}" for name in ("organizer", "checker", "searcher", "reuse")]
    processes: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "services.log", "wb")
    try:
        for name in SERVICE_NAMES:
            command = [sys.executable, "-m", "lwm.client.cli", "serve", name, "--port", str(ports[name]), "--data-dir", str(tmp_path / "data"), *wiring]
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            wait_until_serving(addresses[name], timeout_s=60)
        assert len({p.pid for p in processes}) == 5
        for name, full_name in SERVICE_NAMES.items():
            services = reflected_services(addresses[name])
            assert full_name in services and "grpc.health.v1.Health" in services
            with grpc.insecure_channel(addresses[name]) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=full_name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

        world = TableWorld.make(tasks=2, seed=11)
        with MarketClient(addresses["gateway"]) as client:
            ids = [client.add_learnware(*world.write_learnware(task, tmp_path), wait=True).id for task in range(2)]
            x, _ = world.sample(1, 200, np.random.default_rng(0))
            spec = RKMETableSpecification()
            spec.generate_stat_spec_from_data(x)
            assert client.search_learnware({}, spec).get_single_results()[0].learnware.id == ids[1]
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                assert process.wait(timeout=30) == 0
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_a_service_serves_with_only_its_distribution_installed(tmp_path: Path) -> None:
    organizer_port, gateway_port = free_port(), free_port()
    organizer_address = f"127.0.0.1:{organizer_port}"
    log = open(tmp_path / "services.log", "wb")
    organizer = subprocess.Popen([sys.executable, "-m", "lwm.client.cli", "serve", "organizer", "--port", str(organizer_port), "--data-dir", str(tmp_path / "data")], stdout=log, stderr=subprocess.STDOUT)
    gateway = None
    try:
        wait_until_serving(organizer_address, timeout_s=60)
        gateway = subprocess.Popen([sys.executable, "-c", ONLY_THE_GATEWAY_INSTALLED, "serve", "gateway", "--port", str(gateway_port), "--organizer", organizer_address], stdout=log, stderr=subprocess.STDOUT)
        wait_until_serving(f"127.0.0.1:{gateway_port}", timeout_s=60)
        assert SERVICE_NAMES["gateway"] in reflected_services(f"127.0.0.1:{gateway_port}")

        refused = subprocess.run([sys.executable, "-c", ONLY_THE_GATEWAY_INSTALLED, "serve", "--all", "--port", "0"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "the organizer service is not installed: pip install lwm-organizer-service" in refused.stderr, refused.stderr
    finally:
        for process in (gateway, organizer):
            if process is not None:
                stop_process(process, grace_s=30)
        log.close()
