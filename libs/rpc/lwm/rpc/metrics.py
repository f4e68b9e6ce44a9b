"""Observability of a service process: Prometheus metrics and a health endpoint over
HTTP (LWM_METRICS_PORT), and structured JSON logs carrying the request id
(LWM_LOG_FORMAT=json)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

RPC_REQUESTS = Counter("lwm_rpc_requests_total", "gRPC calls served, by service, method and status code", ["service", "method", "code"])
RPC_LATENCY = Histogram("lwm_rpc_duration_seconds", "Time to serve a gRPC call", ["service", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
AUTH_DENIALS = Counter("lwm_auth_denials_total", "Calls refused by authentication, access policy or rate limits", ["code"])
CHECK_DURATION = Histogram("lwm_check_duration_seconds", "Time to check a learnware, by resulting status", ["status"], buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
LIMIT_REFUSALS = Counter("lwm_limit_refusals_total", "Operations refused because a concurrency limit was reached", ["limit"])

# Id of the request being served; set by the ObservabilityInterceptor, sent on to peer services, logged.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("lwm_request_id", default="")


class _LearnwareCounts:
    """Collector of lwm_learnwares{status}: asks the organizer's database at scrape time."""

    def __init__(self) -> None:
        self.count_by_status: Callable[[], dict[str, int]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.count_by_status is None:  # no organizer in this process
            return
        family = GaugeMetricFamily("lwm_learnwares", "Learnwares in the market by status", labels=["status"])
        try:
            counts = self.count_by_status()
        except Exception:
            counts = {}
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


_learnware_counts = _LearnwareCounts()
REGISTRY.register(_learnware_counts)


def register_learnware_counts(count_by_status: Callable[[], dict[str, int]]) -> None:
    """Export the organizer's learnware counts (the latest organizer built in this process)."""
    _learnware_counts.count_by_status = count_by_status


class _Health:
    """Health of the gRPC servers in this process, for the HTTP /healthz probe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, Callable[[], bool]] = {}

    def register(self, name: str, serving: Callable[[], bool]) -> None:
        with self._lock:
            self._checks[name] = serving

    def unhealthy(self) -> list[str]:
        with self._lock:
            return [name for name, serving in self._checks.items() if not serving()]


health = _Health()
_http_lock = threading.Lock()
_http_server: ThreadingHTTPServer | None = None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            down = health.unhealthy()
            self._reply(503 if down else 200, (f"not serving: {', '.join(down)}\n" if down else "serving\n").encode(), "text/plain")
        else:
            self._reply(404, b"try /metrics or /healthz\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
        return


def serve_http(port: int, host: str = "0.0.0.0") -> int:
    """Start the /metrics + /healthz server once per process (later calls reuse it); returns its port."""
    global _http_server
    with _http_lock:
        if _http_server is None:
            _http_server = ThreadingHTTPServer((host, port), _Handler)
            threading.Thread(target=_http_server.serve_forever, name="metrics-http", daemon=True).start()
        return _http_server.server_address[1]


def serve_http_from_env(host: str) -> int | None:
    """serve_http on LWM_METRICS_PORT when it is set."""
    port = os.environ.get("LWM_METRICS_PORT", "")
    return serve_http(int(port), host) if port else None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        entry.update({key: value for key, value in vars(record).items() if key not in self.STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Root logging from LWM_LOG_LEVEL (default WARNING) and LWM_LOG_FORMAT (json or text)."""
    handler = logging.StreamHandler()
    if (fmt or os.environ.get("LWM_LOG_FORMAT", "text")) == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level or os.environ.get("LWM_LOG_LEVEL", "WARNING"), handlers=[handler], force=True)
