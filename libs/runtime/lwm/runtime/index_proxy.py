"""The package index, and nothing else, for sandboxed environment builds: an allow-list HTTP CONNECT proxy.

A build that may run a package's setup.py happens in a sandbox without network
(see sandboxed_build.py). Its only way out is this proxy, which listens on a
unix socket bound into the sandbox. It accepts `CONNECT host:port` for the
hosts of the configured index URLs (PyPI: pypi.org and files.pythonhosted.org,
port 443) and answers everything else with 403, which it logs. It only tunnels
bytes: TLS runs end to end between uv in the sandbox and the index.
"""

from __future__ import annotations

import collections
import logging
import os
import selectors
import socket
import socketserver
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PYPI_INDEX_URL = "https://pypi.org/simple"
# pypi.org's pages link to files on this host.
PYPI_FILES_HOST = "files.pythonhosted.org"
_MAX_HEAD_BYTES = 16 * 1024
_CHUNK = 64 * 1024


def index_hosts(urls: Iterable[str]) -> frozenset[tuple[str, int]]:
    """The (host, port) pairs builds may reach for these index URLs (http/https only; no credentials)."""
    hosts: set[tuple[str, int]] = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an index URL must be an http(s) URL with a host, got {url!r}")
        if parts.username or parts.password:
            raise ValueError(f"index URL {parts.hostname} has credentials; a sandboxed build would hand them to the packages it builds")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        hosts.add((parts.hostname.lower(), port))
        if parts.hostname.lower() == "pypi.org":
            hosts.add((PYPI_FILES_HOST, 443))
    return frozenset(hosts)


def _parse_connect(head: bytes) -> tuple[str, int] | None:
    """The (host, port) of a `CONNECT host:port HTTP/1.x` request head, None for any other request."""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        return None
    host, sep, port = parts[1].rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]").lower(), int(port)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(self.server.proxy.connect_timeout_s)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = client.recv(4096)
                if not data:
                    return
                head += data
                if len(head) > _MAX_HEAD_BYTES:
                    _reply(client, 431, "Request Header Fields Too Large")
                    return
        except OSError:
            return
        self.server.proxy.handle(client, head)


def _reply(client: socket.socket, code: int, reason: str) -> None:
    try:
        client.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    except OSError:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: builds open several connections at once

    def __init__(self, path: str, proxy: IndexProxy) -> None:
        self.proxy = proxy
        super().__init__(path, _Handler)


class IndexProxy:
    """Tunnels CONNECT requests to the `allowed` (host, port) pairs only; listens on `socket_path` in a thread.

    The socket is world-writable (the sandbox's uid connects to it); put it in a folder only the
    service and its sandboxes can reach.
    """

    def __init__(
        self,
        socket_path: Path,
        allowed: Iterable[tuple[str, int]],
        *,
        connect_timeout_s: float = 30.0,
        idle_timeout_s: float = 300.0,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.allowed = frozenset((host.lower(), port) for host, port in allowed)
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        # The latest refused targets, oldest first (None: a request that was not CONNECT).
        self.refused: collections.deque[tuple[str, int] | None] = collections.deque(maxlen=100)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> IndexProxy:
        self._server = _Server(str(self.socket_path), self)
        os.chmod(self.socket_path, 0o666)
        self._thread = threading.Thread(target=self._server.serve_forever, name="lwm-index-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> IndexProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, client: socket.socket, head: bytes) -> None:
        target = _parse_connect(head)
        if target is None or target not in self.allowed:
            self.refused.append(target)
            if target is None:
                log.warning("index proxy refused a request that is not CONNECT: %r", head.split(b"\r\n", 1)[0][:200])
                _reply(client, 405, "Only CONNECT To The Package Index")
            else:
                log.warning("index proxy refused CONNECT %s:%d (allowed: %s)", *target, self._allowed_text())
                _reply(client, 403, "Forbidden")
            return
        log.debug("index proxy: CONNECT %s:%d", *target)
        try:
            upstream = socket.create_connection(target, timeout=self.connect_timeout_s)
        except OSError as error:
            log.warning("index proxy could not reach %s:%d: %s", *target, error)
            _reply(client, 502, "Bad Gateway")
            return
        with upstream:
            try:
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                _relay(client, upstream, self.idle_timeout_s)
            except OSError:
                pass

    def _allowed_text(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in sorted(self.allowed))


def _relay(a: socket.socket, b: socket.socket, idle_timeout_s: float) -> None:
    """Copy bytes both ways until one side closes (a tunnel is over then) or nothing moved for idle_timeout_s."""
    peer = {a: b, b: a}
    for sock in (a, b):
        sock.settimeout(idle_timeout_s)
    with selectors.DefaultSelector() as selector:
        for sock in (a, b):
            selector.register(sock, selectors.EVENT_READ)
        while True:
            events = selector.select(idle_timeout_s)
            if not events:
                return
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(_CHUNK)
                if not data:
                    return
                peer[source].sendall(data)
