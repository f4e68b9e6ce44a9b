"""Where learnware zips live: a plain directory (the embedded default) or any S3 endpoint
(MinIO, SeaweedFS, AWS) through the `minio` SDK. Both have the same interface."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import grpc
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from lwm.rpc.errors import ServiceError

CHUNK_BYTES = 1024 * 1024
# Zips above this size go to S3 as a multipart upload of parts of this size.
MULTIPART_PART_BYTES = 16 * 1024 * 1024
SHA256_METADATA = "sha256"


class ObjectNotFound(KeyError):
    pass


class ObjectStoreUnavailable(ServiceError):
    """The object store cannot be reached: callers see UNAVAILABLE with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, f"object storage is unavailable: {reason}")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime  # timezone-aware (UTC)


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, sha256: str) -> None: ...
    def open_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"bad object key {key!r}")
    return key


class DirectoryObjectStore:
    """Objects as files under a root directory; writes are atomic (temp file + fsync + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as dst:
            while chunk := src.read(CHUNK_BYTES):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(dst.name, target)

    def open_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        with handle:
            while chunk := handle.read(chunk_bytes):
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    yield StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))


@dataclass(frozen=True)
class S3Config:
    """Where the S3 object store is; every field has an LWM_S3_* environment variable."""

    endpoint: str  # host:port, no scheme
    bucket: str = "learnwares"
    access_key: str = ""
    secret_key: str = ""
    secure: bool = False  # HTTPS
    region: str = ""
    ca_file: str = ""  # CA bundle for HTTPS (default: system/certifi roots)

    @classmethod
    def from_env(cls) -> S3Config | None:
        """The S3 settings from LWM_S3_*; None when LWM_S3_ENDPOINT is not set (directory backend)."""
        endpoint = os.environ.get("LWM_S3_ENDPOINT", "")
        if not endpoint:
            return None
        return cls(
            endpoint=endpoint,
            bucket=os.environ.get("LWM_S3_BUCKET", "learnwares"),
            access_key=os.environ.get("LWM_S3_ACCESS_KEY", ""),
            secret_key=os.environ.get("LWM_S3_SECRET_KEY", ""),
            secure=os.environ.get("LWM_S3_SECURE", "false").lower() in ("1", "true", "yes"),
            region=os.environ.get("LWM_S3_REGION", ""),
            ca_file=os.environ.get("LWM_S3_CA_FILE", ""),
        )


class S3ObjectStore:
    """Objects in one S3 bucket (created if missing). Connection failures raise ObjectStoreUnavailable
    after a few quick retries, so that a storage outage is reported instead of hanging calls."""

    def __init__(self, config: S3Config, connect_timeout_s: float = 3.0, read_timeout_s: float = 60.0) -> None:
        self.config = config
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=32,
            cert_reqs="CERT_REQUIRED" if config.secure else "CERT_NONE",
            ca_certs=config.ca_file or None,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            region=config.region or None,
            http_client=http,
        )
        self.bucket = config.bucket
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with _s3_errors():
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as error:
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._bucket_ready = True

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        self._ensure_bucket()
        with _s3_errors():
            self.client.fput_object(self.bucket, _check_key(key), str(path), metadata={SHA256_METADATA: sha256}, part_size=MULTIPART_PART_BYTES)

    def open_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        self._ensure_bucket()
        with _s3_errors():
            try:
                response = self.client.get_object(self.bucket, _check_key(key))
            except S3Error as error:
                if error.code == "NoSuchKey":
                    raise ObjectNotFound(key) from None
                raise
            try:
                yield from response.stream(chunk_bytes)
            finally:
                response.close()
                response.release_conn()

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        with _s3_errors():
            self.client.remove_object(self.bucket, _check_key(key))

    def exists(self, key: str) -> bool:
        self._ensure_bucket()
        with _s3_errors():
            try:
                self.client.stat_object(self.bucket, _check_key(key))
            except S3Error as error:
                if error.code in ("NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        self._ensure_bucket()
        with _s3_errors():
            for item in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if item.object_name and item.last_modified is not None:
                    yield StoredObject(item.object_name, int(item.size or 0), item.last_modified)


@contextmanager
def _s3_errors() -> Iterator[None]:
    """Network failures and server errors of the S3 endpoint become ObjectStoreUnavailable."""
    try:
        yield
    except S3Error as error:
        if error.code in ("NoSuchKey", "NotFound"):
            raise
        raise ObjectStoreUnavailable(f"{error.code}: {error.message}") from error
    except (urllib3.exceptions.HTTPError, MinioException, OSError) as error:
        raise ObjectStoreUnavailable(f"{type(error).__name__}: {error}") from error


def open_object_store(object_dir: Path, s3: S3Config | None) -> ObjectStore:
    """The S3 store when configured, else the directory store under object_dir."""
    return S3ObjectStore(s3) if s3 is not None else DirectoryObjectStore(object_dir)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
