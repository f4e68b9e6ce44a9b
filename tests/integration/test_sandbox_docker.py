"""The Docker sandbox backend against a real engine: dockerd started by the test (vfs, no bridge), an image from `docker import`."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fixtures.learnwares import SOURCES, build_learnware_zip, semantic_spec

from lwm.checks import check_learnware
from lwm.rpc.learnware.v1 import common_pb2
from lwm.runtime.environment import EnvironmentConfig, EnvironmentManager
from lwm.runtime.runner import LearnwareRuntimeError, LearnwareTimeoutError, ModelRunner
from lwm.runtime.sandbox import SandboxConfig

docker = pytest.importorskip("docker")
pytestmark = pytest.mark.integration
IMAGE = "lwm-runner-test:latest"


def _rootfs_tar() -> bytes:
    """A minimal root filesystem: the runner's interpreter and libraries come from read-only mounts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("etc", "tmp", "scratch"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, text in (("etc/passwd", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), ("etc/group", "nogroup:x:65534:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxConfig]:
    """A private dockerd (stopped by PID afterwards) with the test image; skips when none can start."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no dockerd binary (apt-get install docker.io) to start a Docker engine")
    root = tmp_path_factory.mktemp("dockerd")
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")
    process = subprocess.Popen(
        [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
         "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
         "-H", f"unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    try:
        client = None
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = docker.from_env()
                client.ping()
            except docker.errors.DockerException:
                client = None
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (root / "dockerd.log").read_text()[-2000:]
                    print(f"dockerd could not start:\n{tail}")
                    pytest.skip("a Docker engine could not be started here (see the printed dockerd log)")
                time.sleep(0.3)
        client.api.import_image_from_data(_rootfs_tar(), repository=IMAGE.split(":")[0], tag="latest")
        yield SandboxConfig(isolation="docker", docker_image=IMAGE, memory_bytes=1024**3)
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def runner_containers() -> list:
    return docker.from_env().containers.list(all=True, filters={"label": "lwm.runner=1"})


def test_runner_in_container_predicts_and_is_isolated(docker_engine: SandboxConfig, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text(
        "import os, socket\nimport numpy as np\nfrom learnware.model import BaseModel\n\n"
        "def attempt(action):\n    try:\n        action()\n        return 'ok'\n    except Exception as error:\n        return type(error).__name__\n\n"
        "class Model(BaseModel):\n    def __init__(self, secret):\n        super().__init__(input_shape=(1,), output_shape=(1,))\n        self.secret = secret\n\n"
        "    def predict(self, X):\n"
        "        return np.array([str(os.getuid()), attempt(lambda: open('in-scratch', 'w').write('x')),\n"
        "            attempt(lambda: open('/etc/planted', 'w').write('x')), attempt(lambda: open(self.secret).read()),\n"
        "            attempt(lambda: socket.create_connection(('1.1.1.1', 53), timeout=2))])\n"
    )
    with ModelRunner(probe, "Model", {"secret": str(secret)}, timeout_s=60, sandbox=docker_engine) as runner:
        assert len(runner_containers()) == 1
        uid, scratch, etc, read_secret, network = runner.predict(np.zeros((1, 1)))
    assert uid == "65534" and scratch == "ok"
    assert etc == "OSError" and read_secret == "FileNotFoundError" and network == "OSError"
    assert runner_containers() == []  # removed on close

    with ModelRunner(SOURCES / "relative_imports", "Model", timeout_s=60, sandbox=docker_engine) as runner:
        scores = runner.predict(np.random.default_rng(0).normal(size=(5, 4)))
    assert scores.shape == (5, 2) and np.allclose(scores.sum(axis=1), 1.0)


def test_container_memory_limit_and_timeout(docker_engine: SandboxConfig) -> None:
    runner = ModelRunner(SOURCES / "allocates_10gb", "Model", timeout_s=60, sandbox=docker_engine).start()
    with pytest.raises(LearnwareRuntimeError, match="ran out of memory|memory limit of 1 GiB"):
        runner.predict(np.zeros((2, 4)))
    assert not runner.alive
    runner.close()

    # The limit bounds the container's start and the model's load too: long enough for those on a busy machine.
    runner = ModelRunner(SOURCES / "sleeps_forever", "Model", timeout_s=10, sandbox=docker_engine).start()
    with pytest.raises(LearnwareTimeoutError, match="predict did not finish within 10 s"):
        runner.predict(np.zeros((2, 4)))
    runner.close()
    assert runner_containers() == []


def test_checker_with_docker_sandbox(docker_engine: SandboxConfig, tmp_path: Path) -> None:
    environments = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs"))
    report = check_learnware(semantic_spec(), build_learnware_zip("scores", tmp_path).read_bytes(), environments=environments, sandbox=docker_engine)
    assert report.status == common_pb2.LEARNWARE_STATUS_USABLE, report
    report = check_learnware(semantic_spec(), build_learnware_zip("missing_module", tmp_path).read_bytes(), environments=environments, sandbox=docker_engine)
    assert report.status == common_pb2.LEARNWARE_STATUS_INVALID
    assert "lwm_fixture_module_that_does_not_exist" in " ".join(m for s in report.steps for m in s.messages)
