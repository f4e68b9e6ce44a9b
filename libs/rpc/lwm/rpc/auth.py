"""Who is calling: API tokens (stored hashed), roles, the Market API's access policy,
per-token rate limits, and the security settings of the services.

A token looks like `lwm_<id>_<secret>`. The tokens file (JSON, typically a Kubernetes
Secret) holds only the id, SHA-256 of the whole token, user, role and expiry; the
token itself is shown once, when `lwm admin token create` makes it. The secret part
has 256 random bits, so a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import grpc

from lwm.learnware.settings import env_float, env_int
from lwm.rpc import metrics
from lwm.rpc.errors import ServiceError

ROLES = ("user", "admin")
TOKEN_PREFIX = "lwm"
AUTHORIZATION_HEADER = "authorization"
PEER_SECRET_HEADER = "x-lwm-peer-secret"


class Access(Enum):
    PUBLIC = "public"  # anyone when anonymous access is on, else any token
    USER = "user"  # any valid token
    ADMIN = "admin"  # an admin token


# Every MarketService method and who may call it; a method missing here is refused.
MARKET_POLICY: dict[str, Access] = {
    "AddLearnware": Access.USER,
    "UpdateLearnware": Access.USER,  # the owner or an admin (checked by the gateway)
    "DeleteLearnware": Access.USER,  # the owner or an admin (checked by the gateway)
    "ListLearnwares": Access.USER,  # own learnwares; an admin sees all
    "GetLearnware": Access.PUBLIC,
    "DownloadLearnware": Access.PUBLIC,
    "SearchLearnware": Access.PUBLIC,
    "Predict": Access.PUBLIC,
    "Reuse": Access.PUBLIC,
    "ReuseStream": Access.PUBLIC,
    "GetMarketInfo": Access.PUBLIC,
    "RecheckLearnware": Access.ADMIN,
    "ClearMarket": Access.USER,  # the owner of all of the market's learnwares or an admin (checked by the gateway)
    "TrainHeteroEngine": Access.USER,  # what the background trainer does anyway, now
    "GetHeteroEngine": Access.PUBLIC,
}
# Infrastructure services that need no token (health checks, reflection).
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # "user", "admin", or "anonymous"
    token_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_change(self, owner: str) -> bool:
        """Whether this caller may update or delete a learnware owned by `owner`."""
        return self.is_admin or (self.role == "user" and self.name == owner)


ANONYMOUS = Principal("anonymous", "anonymous")
# Without a tokens file there is no authentication: every caller may do everything.
AUTH_DISABLED = Principal("anonymous", "admin")


@dataclass
class TokenRecord:
    id: str
    sha256: str
    user: str
    role: str
    created_at: float
    expires_at: float = 0.0  # 0 = never

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_id(token: str) -> str:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "malformed API token (expected lwm_<id>_<secret>)")
    return parts[1]


class TokenStore:
    """The tokens file: read on demand and re-read when it changes on disk (a rotated Secret)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded_stamp: tuple[float, int] | None = None
        self._tokens: dict[str, TokenRecord] = {}

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime, stat.st_size)

    def tokens(self) -> dict[str, TokenRecord]:
        with self._lock:
            stamp = self._stamp()
            if stamp != self._loaded_stamp:
                raw = json.loads(self.path.read_text()) if stamp is not None else {"tokens": []}
                self._tokens = {entry["id"]: TokenRecord(**entry) for entry in raw.get("tokens", [])}
                self._loaded_stamp = stamp
            return dict(self._tokens)

    def _write(self, tokens: dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps({"tokens": [asdict(t) for t in tokens.values()]}, indent=2))
        os.chmod(partial, 0o600)
        os.replace(partial, self.path)

    def create(self, user: str, role: str, ttl_s: float = 0.0) -> tuple[str, TokenRecord]:
        """A new token for `user`; returns (token, its record). The token is not stored, only its hash."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if not user:
            raise ValueError("user is empty")
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
        now = time.time()
        record = TokenRecord(id=token_id, sha256=hash_token(token), user=user, role=role, created_at=now, expires_at=now + ttl_s if ttl_s > 0 else 0.0)
        tokens = self.tokens()
        tokens[token_id] = record
        self._write(tokens)
        return token, record

    def revoke(self, token_id: str) -> bool:
        tokens = self.tokens()
        if tokens.pop(token_id, None) is None:
            return False
        self._write(tokens)
        return True

    def authenticate(self, token: str) -> Principal:
        """The principal of a token; ServiceError UNAUTHENTICATED when unknown, wrong or expired."""
        record = self.tokens().get(_token_id(token))
        if record is None or not hmac.compare_digest(record.sha256, hash_token(token)):
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked API token")
        if record.expired(time.time()):
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, f"API token {record.id} expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(record.expires_at))}")
        return Principal(record.user, record.role, record.id)


class RateLimiter:
    """Token buckets per caller key: `rate_per_s` sustained, `burst` at once; 0 = unlimited."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(burst, rate_per_s, 1.0)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time)

    def allow(self, key: str) -> bool:
        if self.rate_per_s <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return allowed


class ConcurrencyLimit:
    """At most `limit` operations in flight (0 = unlimited); acquire() beyond it raises RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._lock = threading.Lock()
        self.in_flight = 0

    @classmethod
    def from_env(cls, variable: str, what: str) -> ConcurrencyLimit:
        return cls(env_int(variable, 0, minimum=0), what)

    def acquire(self) -> None:
        with self._lock:
            if self.limit and self.in_flight >= self.limit:
                metrics.LIMIT_REFUSALS.labels(self.what).inc()
                raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{self.in_flight} {self.what} are already in progress (limit {self.limit}); try again later")
            self.in_flight += 1

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SecurityConfig:
    """Security settings of a service process; every field has an LWM_* environment variable."""

    tokens_file: str = ""  # LWM_TOKENS_FILE: gateway authentication on when set
    allow_anonymous: bool = True  # LWM_ALLOW_ANONYMOUS: PUBLIC methods without a token
    peer_secret: str = ""  # LWM_PEER_SECRET: internal services accept only calls carrying it
    tls_cert: str = ""  # LWM_TLS_CERT / LWM_TLS_KEY: the gateway serves TLS
    tls_key: str = ""
    rate_per_s: float = 0.0  # LWM_RATE_PER_S / LWM_RATE_BURST: per-token (or per-address) limit at the gateway
    rate_burst: float = 0.0
    max_request_bytes: int = 0  # LWM_MAX_REQUEST_BYTES: largest single gRPC message (0 = server default)

    @classmethod
    def from_env(cls) -> SecurityConfig:
        return cls(
            tokens_file=os.environ.get("LWM_TOKENS_FILE", ""),
            allow_anonymous=_flag("LWM_ALLOW_ANONYMOUS", "true"),
            peer_secret=os.environ.get("LWM_PEER_SECRET", ""),
            tls_cert=os.environ.get("LWM_TLS_CERT", ""),
            tls_key=os.environ.get("LWM_TLS_KEY", ""),
            rate_per_s=env_float("LWM_RATE_PER_S", 0, minimum=0),
            rate_burst=env_float("LWM_RATE_BURST", 0, minimum=0),
            max_request_bytes=env_int("LWM_MAX_REQUEST_BYTES", 0, minimum=0),
        )

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not (self.tls_cert and self.tls_key):
            return None
        return grpc.ssl_server_credentials([(Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())])
