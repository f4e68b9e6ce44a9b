"""Where learnware zips live. The directory backend is the embedded default;
an S3/MinIO backend with the same interface comes with the production-storage work."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol

CHUNK_BYTES = 1024 * 1024


class ObjectNotFound(KeyError):
    pass


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path) -> None: ...
    def open_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...


class DirectoryObjectStore:
    """Objects as files under a root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return self.root / key

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as dst:
            while chunk := src.read(CHUNK_BYTES):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(dst.name, target)

    def open_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle: BinaryIO = open(path, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        with handle:
            while chunk := handle.read(chunk_bytes):
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str = "") -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
