"""Byte stores behind one interface.

Keys are slash-separated paths such as ``blobs/sha256/<hex>`` or
``artifacts/<job>/<name>``. :class:`LocalStore` keeps them in a folder (one host, or a
shared file system); :class:`RedisStore` keeps them in Redis under a size cap, so that
workers on other hosts reach them with nothing but the Redis URL.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

import redis

__all__ = ["LocalStore", "ObjectStore", "RedisStore", "StoreFullError", "make_store"]

_KEY = re.compile(r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$")


class StoreFullError(RuntimeError):
    """An object is larger than the backend accepts."""


def _check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"Invalid store key {key!r}.")
    return key


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, *, ttl_s: int | None = None) -> None: ...
    def get(self, key: str) -> bytes:
        """Return the bytes; KeyError if absent."""
        ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...


class LocalStore:
    """A folder. Writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes, *, ttl_s: int | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class RedisStore:
    """Objects as Redis strings under ``ls:obj:<key>``, each at most ``max_bytes``."""

    def __init__(self, client: redis.Redis, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.client = client
        self.max_bytes = max_bytes

    @staticmethod
    def _k(key: str) -> str:
        return "ls:obj:" + _check_key(key)

    def put(self, key: str, data: bytes, *, ttl_s: int | None = None) -> None:
        if len(data) > self.max_bytes:
            raise StoreFullError(
                f"Object of {len(data)} bytes exceeds the Redis store's cap of {self.max_bytes}."
            )
        self.client.set(self._k(key), data, ex=ttl_s)

    def get(self, key: str) -> bytes:
        value = self.client.get(self._k(key))
        if value is None:
            raise KeyError(key)
        return bytes(value)  # type: ignore[arg-type]

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(self._k(key)))

    def size(self, key: str) -> int:
        n = int(self.client.strlen(self._k(key)))  # type: ignore[arg-type]
        if n == 0 and not self.exists(key):
            raise KeyError(key)
        return n

    def delete(self, key: str) -> None:
        self.client.delete(self._k(key))


def make_store(kind: str, *, data_dir: Path, client: redis.Redis) -> ObjectStore:
    if kind == "local":
        return LocalStore(data_dir)
    if kind == "redis":
        return RedisStore(client)
    raise ValueError(f"Unknown storage backend {kind!r}: expected 'local' or 'redis'.")
