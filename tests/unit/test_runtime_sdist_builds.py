"""Source builds (LWM_ENV_ALLOW_SDIST=1) inside real sandboxes, and the index proxy that is their only network.

Builds run under each sandbox backend installed here (a backend that is not is skipped). The sdists
are made by the tests in a local --find-links folder; their build dependency (setuptools) and the
runner's numpy come from PyPI through the index proxy.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import tarfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lwm.runtime.environment import (
    ALLOW_SDIST_ENV,
    EnvironmentBuildError,
    EnvironmentConfig,
    EnvironmentManager,
    parse_requirements_txt,
)
from lwm.runtime.index_proxy import IndexProxy, index_hosts
from lwm.runtime.sandbox import SandboxConfig

SECRET_ENV = "LWM_TEST_SERVICE_TOKEN"


def _sdist(links: Path, name: str, setup_py: str) -> None:
    """An sdist `{name}-1.0.tar.gz` in `links` with this setup.py (a legacy sdist: uv builds it with setuptools)."""
    root = links / "src" / f"{name}-1.0"
    root.mkdir(parents=True)
    (root / "setup.py").write_text(textwrap.dedent(setup_py))
    (root / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    with tarfile.open(links / f"{name}-1.0.tar.gz", "w:gz") as tar:
        tar.add(root, arcname=f"{name}-1.0")
    shutil.rmtree(links / "src")


@pytest.fixture
def make_manager(tmp_path: Path) -> Iterator[Callable[..., EnvironmentManager]]:
    """make_manager(links, isolation, **config): a manager allowing source builds (closed after the test)."""
    managers: list[EnvironmentManager] = []

    def make(links: Path, isolation: str, **config: Any) -> EnvironmentManager:
        sandbox = SandboxConfig(isolation=isolation)
        base = EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=(), find_links=(str(links),), allow_sdist=True, sandbox=sandbox)
        managers.append(EnvironmentManager(dataclasses.replace(base, **config)))
        return managers[-1]

    yield make
    for manager in managers:
        manager.close()


def _site_packages(python: str) -> Path:
    [folder] = Path(python).parent.parent.glob("lib/python*/site-packages")
    return folder


def test_benign_sdist_builds_in_the_sandbox_and_imports(tmp_path: Path, isolation: str, make_manager: Callable[..., EnvironmentManager]) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links, "lwm-test-benign-sdist", """
        from pathlib import Path
        from setuptools import setup
        Path("lwm_test_benign_sdist").mkdir(exist_ok=True)
        Path("lwm_test_benign_sdist/__init__.py").write_text("VALUE = 42\\n")
        setup(name="lwm-test-benign-sdist", version="1.0", packages=["lwm_test_benign_sdist"])
    """)
    env = make_manager(links, isolation).prepare_requirements(parse_requirements_txt("lwm-test-benign-sdist\n"))
    assert not env.cached and env.dropped == ()
    out = subprocess.run([env.python, "-c", "import lwm_test_benign_sdist as m; print(m.VALUE)"], capture_output=True, text=True)
    assert out.stdout.strip() == "42", out.stderr
    owner = os.stat(_site_packages(env.python) / "lwm_test_benign_sdist" / "__init__.py").st_uid
    assert owner == os.geteuid()  # given back to the service's uid after the build
    print(f"{isolation}: sandboxed sdist build took {env.build_s:.1f} s")


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP server on every interface of the host (not the index) that records who connects."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except TimeoutError:
                continue
            connections.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


def _host_address() -> str:
    """An address of this host other than loopback (where its default route leaves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


HOSTILE_SETUP = """
    import json, os, socket
    from pathlib import Path
    from setuptools import setup

    results = {{}}

    def attempt(name, action):
        try:
            action()
            results[name] = "ok"
        except Exception as error:
            results[name] = f"{{type(error).__name__}}: {{error}}"

    def connect(host):
        socket.create_connection((host, {port}), timeout=3).close()

    def connect_through_proxy():
        proxy = os.environ["HTTPS_PROXY"].rsplit("/", 1)[-1].rsplit(":", 1)
        with socket.create_connection((proxy[0], int(proxy[1])), timeout=5) as s:
            crlf = bytes([13, 10])  # not an escape: setuptools rewrites the text "\\r\\n" in setup.py to "\\n"
            s.sendall(b"CONNECT 127.0.0.1:{port} HTTP/1.1" + crlf + b"Host: 127.0.0.1:{port}" + crlf + crlf)
            status = s.recv(200).split(crlf)[0]
            if b" 200 " not in status:
                raise ConnectionRefusedError(status.decode())

    attempt("write_marker", lambda: Path({marker!r}).write_text("setup.py ran on the host"))
    attempt("write_cache", lambda: Path({cache_poison!r}).write_text("poisoned"))
    attempt("write_links", lambda: Path({links_poison!r}).write_text("poisoned"))
    attempt("connect_loopback", lambda: connect("127.0.0.1"))
    attempt("connect_host", lambda: connect({host!r}))
    attempt("connect_through_proxy", connect_through_proxy)
    results["secret"] = os.environ.get({secret_env!r}, "absent")
    results["uid"] = os.getuid()
    Path("lwm_test_hostile_sdist").mkdir(exist_ok=True)
    Path("lwm_test_hostile_sdist/__init__.py").write_text("RESULTS = " + repr(json.dumps(results)) + "\\n")
    setup(name="lwm-test-hostile-sdist", version="1.0", packages=["lwm_test_hostile_sdist"])
"""


def test_hostile_setup_py_is_contained(
    tmp_path: Path,
    isolation: str,
    make_manager: Callable[..., EnvironmentManager],
    listener: tuple[int, list[object]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, connections = listener
    secret = "lwm-secret-3f9a1c7e"
    monkeypatch.setenv(SECRET_ENV, secret)
    links, marker = tmp_path / "links", tmp_path / "setup-py-ran"
    links.mkdir()
    _sdist(links, "lwm-test-hostile-sdist", HOSTILE_SETUP.format(
        port=port, host=_host_address(), marker=str(marker), cache_poison=str(tmp_path / "envs" / "poison"),
        links_poison=str(links / "poison"), secret_env=SECRET_ENV,
    ))
    caplog.set_level(logging.WARNING, logger="lwm.runtime.index_proxy")
    env = make_manager(links, isolation).prepare_requirements(parse_requirements_txt("lwm-test-hostile-sdist\n"))
    # setup.py ran (inside the sandbox) and wrote what it managed to do into the package it built.
    source = (_site_packages(env.python) / "lwm_test_hostile_sdist" / "__init__.py").read_text()
    results = json.loads(ast.literal_eval(source.split("=", 1)[1].strip()))
    for action in ("write_marker", "write_cache", "write_links", "connect_loopback", "connect_host", "connect_through_proxy"):
        assert results[action] != "ok", (action, results)
    assert "403" in results["connect_through_proxy"]
    assert any(f"refused CONNECT 127.0.0.1:{port}" in record.getMessage() for record in caplog.records)
    assert results["secret"] == "absent"
    assert not marker.exists() and not (tmp_path / "envs" / "poison").exists() and not (links / "poison").exists()
    assert connections == []
    if os.geteuid() == 0:
        assert results["uid"] == 65534
    for path in (tmp_path / "envs").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path


def test_build_that_replaces_the_interpreter_is_refused_and_never_runs_it(tmp_path: Path, isolation: str, make_manager: Callable[..., EnvironmentManager]) -> None:
    """setup.py finds the environment being built (bound at its own path) and puts a script in place of its
    python, which the market would run on the host; the build is refused and the script never runs."""
    links, marker = tmp_path / "links", tmp_path / "fake-python-ran"
    links.mkdir()
    _sdist(links, "lwm-test-swap-sdist", f"""
        import glob, os
        from setuptools import setup
        for python in glob.glob({str(tmp_path / "envs" / ".building-*" / "venv" / "bin" / "python")!r}):
            os.unlink(python)
            with open(python, "w") as script:
                script.write("#!/bin/sh\\necho ran > {marker}\\n")
            os.chmod(python, 0o755)
        setup(name="lwm-test-swap-sdist", version="1.0")
    """)
    with pytest.raises(EnvironmentBuildError, match=r"changed the environment's interpreter files \(python\)"):
        make_manager(links, isolation).prepare_requirements(parse_requirements_txt("lwm-test-swap-sdist\n"))
    assert not marker.exists()
    assert not any((tmp_path / "envs").glob("*/venv"))


def test_setup_py_that_fails_is_reported_as_a_failure_inside_the_sandbox(tmp_path: Path, isolation: str, make_manager: Callable[..., EnvironmentManager]) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links, "lwm-test-broken-sdist", """
        raise SystemExit("lwm-test-broken-sdist refuses to build")
    """)
    with pytest.raises(EnvironmentBuildError, match=rf"(?s)failed \(inside the {isolation} sandbox; source builds allowed\).*refuses to build"):
        make_manager(links, isolation).prepare_requirements(parse_requirements_txt("lwm-test-broken-sdist\n"))
    assert not any((tmp_path / "envs").glob("*/venv"))  # nothing half-built is left in the cache


def test_build_that_never_ends_is_killed_at_its_deadline(tmp_path: Path, isolation: str, make_manager: Callable[..., EnvironmentManager]) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links, "lwm-test-endless-sdist", """
        import time
        while True:
            time.sleep(1)
    """)
    manager = make_manager(links, isolation, build_timeout_s=15)
    with pytest.raises(EnvironmentBuildError, match="took longer than 15 s"):
        manager.prepare_requirements(parse_requirements_txt("lwm-test-endless-sdist\n"))
    assert list((tmp_path / "envs").iterdir()) == []  # the build and scratch folders are gone
    # The sandbox dies with its killed parent (runsc's sandbox within a few seconds). Its host processes
    # name the build folder (bubblewrap) or the OCI bundle (runsc) in their command lines.
    marks = (str(tmp_path), "lwm_gvisor_build_")
    for _ in range(300):
        if not _processes_mentioning(marks):
            break
        threading.Event().wait(0.1)
    assert _processes_mentioning(marks) == []


def _processes_mentioning(marks: tuple[str, ...]) -> list[str]:
    """The command lines of this host's processes (other than this one) that contain one of `marks`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        if any(mark in argv for mark in marks) and cmdline.parent.name != str(os.getpid()):
            found.append(argv)
    return found


def test_switch_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_SDIST_ENV, "1")
    monkeypatch.setenv("LWM_ENV_INDEX_URL", "https://mirror.example.org/simple")
    config = EnvironmentConfig.from_env()
    assert config.allow_sdist and config.index_hosts() == {("mirror.example.org", 443)}
    monkeypatch.setenv(ALLOW_SDIST_ENV, "0")
    assert not EnvironmentConfig.from_env().allow_sdist
    monkeypatch.setenv(ALLOW_SDIST_ENV, "maybe")
    with pytest.raises(ValueError, match="must be 1"):
        EnvironmentConfig.from_env()


def test_switch_needs_a_sandbox_to_build_in(tmp_path: Path) -> None:
    config = EnvironmentConfig(cache_dir=tmp_path, allow_sdist=True, sandbox=SandboxConfig(isolation="none"))
    with pytest.raises(ValueError, match="inside the gvisor or bwrap sandbox, but the sandbox is 'none'"):
        EnvironmentManager(config)


def test_index_hosts() -> None:
    assert index_hosts(["https://pypi.org/simple"]) == {("pypi.org", 443), ("files.pythonhosted.org", 443)}
    assert index_hosts(["http://Mirror.local:3141/root/pypi/+simple/"]) == {("mirror.local", 3141)}
    with pytest.raises(ValueError, match="credentials"):
        index_hosts(["https://user:token@private.example.org/simple"])
    with pytest.raises(ValueError, match="http"):
        index_hosts(["/srv/wheels"])


# -- the proxy alone ---------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on loopback standing for the index: echoes what it gets, upper-cased."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _through_proxy(proxy: IndexProxy, request: bytes) -> tuple[bytes, socket.socket]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(proxy.socket_path))
    client.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(1)
        if not data:
            break
        head += data
    return head.split(b"\r\n")[0], client


def test_proxy_relays_connect_to_an_allowed_host(tmp_path: Path, echo_server: int) -> None:
    with IndexProxy(tmp_path / "proxy.sock", [("127.0.0.1", echo_server)]) as proxy:
        status, client = _through_proxy(proxy, f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        with client:
            assert status == b"HTTP/1.1 200 Connection Established"
            client.sendall(b"hello index")
            assert client.recv(100) == b"HELLO INDEX"
        assert list(proxy.refused) == []


def test_proxy_refuses_other_hosts_and_other_requests(tmp_path: Path, echo_server: int, listener: tuple[int, list[object]], caplog: pytest.LogCaptureFixture) -> None:
    other_port, connections = listener
    caplog.set_level(logging.WARNING, logger="lwm.runtime.index_proxy")
    with IndexProxy(tmp_path / "proxy.sock", [("127.0.0.1", echo_server)]) as proxy:
        status, client = _through_proxy(proxy, f"CONNECT 127.0.0.1:{other_port} HTTP/1.1\r\n\r\n".encode())
        client.close()
        assert status.startswith(b"HTTP/1.1 403")
        status, client = _through_proxy(proxy, f"GET http://127.0.0.1:{echo_server}/ HTTP/1.1\r\n\r\n".encode())
        client.close()
        assert status.startswith(b"HTTP/1.1 405")
        assert list(proxy.refused) == [("127.0.0.1", other_port), None]
    assert connections == []
    assert any(f"refused CONNECT 127.0.0.1:{other_port}" in record.getMessage() for record in caplog.records)
