"""deploy/Dockerfile for real: `make image`'s script builds the market image from a debootstrap
base (no registry), the container runs `lwm serve --all` on the host network, and a client on
the host uploads, searches and reuses through it.

Uses the Docker engine of DOCKER_HOST when one answers; otherwise starts a private dockerd
(vfs, no bridge; stopped by PID afterwards) whose data root persists in LWM_IMAGE_DOCKER_ROOT
(default /var/tmp/lwm-image-docker), so a second run reuses the built layers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from lwm.client import MarketClient
from lwm.rpc.server import wait_until_serving
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/learnware-market/lwm-market:0.1.0"


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _engine_answers() -> bool:
    try:
        return _docker("version", "--format", "{{.Server.Version}}", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def docker_host() -> Iterator[None]:
    """DOCKER_HOST names an engine that answers: the caller's, or a private one started here."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None or shutil.which("docker") is None:
        pytest.skip("building the image needs root, debootstrap and docker (apt-get install debootstrap docker.io)")
    if os.environ.get("DOCKER_HOST") and _engine_answers():
        yield
        return
    root = Path(os.environ.get("LWM_IMAGE_DOCKER_ROOT", "/var/tmp/lwm-image-docker"))
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    with open(root / "dockerd.log", "ab") as log:
        process = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
             "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
             "-H", f"unix://{sock}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 120
        while not _engine_answers():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{(root / 'dockerd.log').read_text()[-3000:]}")
            time.sleep(1)
        yield
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def market_image(docker_host: None) -> str:
    start = time.monotonic()
    done = subprocess.run([str(ROOT / "deploy" / "build_images.sh"), "market"], capture_output=True, text=True, timeout=7200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    size = int(_docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"{IMAGE}: built (or found) in {time.monotonic() - start:.0f} s, {size / 1e6:.0f} MB")
    base = _docker("image", "inspect", "--format", "{{.Size}}", "lwm-debian:bookworm").stdout
    print(f"lwm-debian:bookworm (debootstrap): {int(base) / 1e6:.0f} MB")
    return IMAGE


def test_market_image_serves_upload_search_and_reuse(market_image: str, tmp_path: Path) -> None:
    port = free_port()
    name = f"lwm-image-test-{port}"
    # As on Kubernetes: a non-root uid, a read-only root, scratch in /tmp. The container is the
    # learnwares' only isolation here (LWM_SANDBOX=none), which is fine for our own test learnwares.
    _docker(
        "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,exec,size=4g",
        "-e", "HOME=/tmp", "-e", "LWM_SANDBOX=none", "-e", "LWM_ENV_CACHE_DIR=/tmp/envs", "-e", "LWM_HOST=127.0.0.1",
        market_image, "serve", "--all", "--port", str(port), "--data-dir", "/tmp/lwm-data",
    )
    try:
        assert _docker("inspect", "--format", "{{.Config.User}}", name).stdout.strip() == "10001"
        address = f"127.0.0.1:{port}"
        try:
            wait_until_serving(address, timeout_s=300)
        except TimeoutError:
            pytest.fail(f"the market in the container did not serve:\n{_docker('logs', name, check=False).stderr[-3000:]}")
        world = TableWorld.make(tasks=2, seed=5)
        with MarketClient(address) as client:
            ids = []
            for task in range(2):
                zip_path, semantic = world.write_learnware(task, tmp_path)
                ids.append(client.add_learnware(zip_path, semantic, wait=False).id)
            for learnware_id in ids:
                checked = client.wait_until_checked(learnware_id, timeout_s=900)
                assert checked.status == "USABLE", checked.check_report

            x_user, y_user = world.sample(1, 200, np.random.default_rng(11))
            spec = RKMETableSpecification()
            spec.generate_stat_spec_from_data(x_user)
            results = client.search_learnware({}, spec)
            assert results.search_path == "statistical"
            assert results.get_single_results()[0].learnware.id == ids[1]

            scores = client.predict(ids[1], x_user)
            assert scores.shape == (200, world.n_classes)
            assert (scores.argmax(axis=1) == y_user).mean() > 0.85
            averaged = client.reuse_averaging(ids, x_user, mode="vote_by_prob")
            assert averaged.shape == (200, world.n_classes) and np.allclose(averaged.sum(axis=1), 1.0)
    finally:
        _docker("rm", "-f", name, check=False)
