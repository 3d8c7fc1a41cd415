"""Where the parts of a chunked upload are written while they arrive.

A part arrives as a stream of chunks; it is written chunk by chunk (never held whole) and
its SHA-256 is computed on the way. Only a part that arrived whole counts: a part cut
short leaves nothing that looks received, and sending it again overwrites it.

* :class:`LocalParts` (``LANDSCOPE_STORAGE=local``): one sparse file per upload,
  ``uploads/<id>.data`` in the store's folder, sized to the declared total; part ``n``
  is written at ``n * part_size``, so any number of API processes write parts at once.
  Completing renames the file into ``blobs/sha256/<hex>`` (no copy).
* :class:`RedisParts` (``LANDSCOPE_STORAGE=redis``): each part a Redis string (written
  with ``APPEND`` to a temporary key, renamed when whole), expiring with the upload.
  Completing appends the parts, a slice at a time, into the blob's key; a blob is at
  most the Redis store's object cap (``max_bytes``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from .store import LocalStore, ObjectStore, RedisStore

__all__ = ["LocalParts", "PartSink", "PartSizeError", "RedisParts", "part_sink"]

SLICE = 1024 * 1024
"""Bytes read or written at a time when parts are hashed or assembled."""
_UPLOAD_ID = re.compile(r"^up_[0-9a-f]{1,60}$")
_BLOB_KEY = re.compile(r"^blobs/sha256/[0-9a-f]{64}$")


def _upload_id(upload_id: str) -> str:
    if not _UPLOAD_ID.match(upload_id):
        raise ValueError(f"Invalid upload id {upload_id!r}.")
    return upload_id


def _blob_key(key: str) -> str:
    if not _BLOB_KEY.match(key):
        raise ValueError(f"Invalid blob key {key!r}: expected blobs/sha256/<hex>.")
    return key


class PartSizeError(ValueError):
    """A part's body had another length than the upload declared for it."""

    def __init__(self, expected: int, got: int) -> None:
        more = "more" if got > expected else "only"
        super().__init__(f"This part must be exactly {expected} bytes; {more} {got} arrived.")
        self.expected, self.got = expected, got


def _cooperate() -> None:
    """Let other requests run between slices (a no-op sleep yields under gevent)."""
    time.sleep(0)


class PartSink(Protocol):
    """Writes, reads back and commits the parts of one upload."""

    max_size: int | None
    """Largest blob this backend can hold (None: no limit of its own)."""

    def begin(self, upload_id: str, size: int, ttl_s: int) -> None:
        """Make room for an upload of ``size`` bytes."""
        ...

    def write_part(self, upload_id: str, n: int, offset: int, length: int,
                   chunks: Iterable[bytes], ttl_s: int) -> str:
        """Write part ``n`` (``length`` bytes at ``offset``) from ``chunks``.

        Returns:
            The part's SHA-256 (hex).

        Raises:
            PartSizeError: the chunks held another number of bytes (nothing counts).
        """
        ...

    def read(self, upload_id: str, part_lengths: list[int]) -> Iterator[bytes]:
        """The upload's bytes in order, a slice at a time."""
        ...

    def commit(self, upload_id: str, key: str, part_lengths: list[int]) -> None:
        """Move the assembled bytes into the object store under ``key``."""
        ...

    def discard(self, upload_id: str, parts: int) -> None:
        """Remove whatever the upload wrote (nothing if already gone)."""
        ...


def _hash_into(chunks: Iterable[bytes], length: int, write: object) -> str:
    digest = hashlib.sha256()
    got = 0
    for chunk in chunks:
        if not chunk:
            continue
        got += len(chunk)
        if got > length:
            raise PartSizeError(length, got)
        digest.update(chunk)
        write(chunk)  # type: ignore[operator]
    if got != length:
        raise PartSizeError(length, got)
    return digest.hexdigest()


class LocalParts:
    """Parts of uploads as regions of one sparse file per upload (see the module doc)."""

    max_size: int | None = None

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def _data(self, upload_id: str) -> Path:
        return self.store.root / "uploads" / f"{_upload_id(upload_id)}.data"

    def begin(self, upload_id: str, size: int, ttl_s: int) -> None:
        path = self._data(upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as fh:
            fh.truncate(size)

    def write_part(self, upload_id: str, n: int, offset: int, length: int,
                   chunks: Iterable[bytes], ttl_s: int) -> str:
        path = self._data(upload_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            raise KeyError(upload_id) from None
        with os.fdopen(fd, "wb") as fh:
            fh.seek(offset)
            return _hash_into(chunks, length, fh.write)

    def read(self, upload_id: str, part_lengths: list[int]) -> Iterator[bytes]:
        left = sum(part_lengths)
        with self._data(upload_id).open("rb") as fh:
            while left:
                chunk = fh.read(min(SLICE, left))
                if not chunk:
                    raise RuntimeError(f"Upload {upload_id}'s file is shorter than declared.")
                left -= len(chunk)
                yield chunk
                _cooperate()

    def commit(self, upload_id: str, key: str, part_lengths: list[int]) -> None:
        target = self.store.root / _blob_key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._data(upload_id), target)

    def discard(self, upload_id: str, parts: int) -> None:
        self._data(upload_id).unlink(missing_ok=True)


class RedisParts:
    """Parts of uploads as Redis strings (see the module doc)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client = store.client
        self.max_size: int | None = store.max_bytes

    @staticmethod
    def _part(upload_id: str, n: int) -> str:
        return f"ls:uploadpart:{_upload_id(upload_id)}:{n}"

    def begin(self, upload_id: str, size: int, ttl_s: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise ValueError(f"size {size} exceeds the Redis store's object cap {self.max_size}.")

    def write_part(self, upload_id: str, n: int, offset: int, length: int,
                   chunks: Iterable[bytes], ttl_s: int) -> str:
        tmp = f"{self._part(upload_id, n)}:tmp:{os.urandom(8).hex()}"
        buffered: list[bytes] = []
        pending = 0

        def write(chunk: bytes) -> None:
            nonlocal pending
            buffered.append(chunk)
            pending += len(chunk)
            if pending >= SLICE:
                flush()

        def flush() -> None:
            nonlocal pending
            if buffered:
                pipe = self.client.pipeline()
                pipe.append(tmp, b"".join(buffered))
                pipe.expire(tmp, ttl_s)
                pipe.execute()
                buffered.clear()
                pending = 0

        try:
            digest = _hash_into(chunks, length, write)
            flush()
            if length == 0:
                self.client.set(tmp, b"", ex=ttl_s)
            self.client.rename(tmp, self._part(upload_id, n))
            self.client.expire(self._part(upload_id, n), ttl_s)
        except BaseException:
            self.client.delete(tmp)
            raise
        return digest

    def read(self, upload_id: str, part_lengths: list[int]) -> Iterator[bytes]:
        for n, length in enumerate(part_lengths):
            key = self._part(upload_id, n)
            for start in range(0, length, SLICE):
                chunk = bytes(self.client.getrange(key, start,  # type: ignore[arg-type]
                                                   min(start + SLICE, length) - 1))
                if len(chunk) != min(SLICE, length - start):
                    raise KeyError(f"{upload_id} part {n}")
                yield chunk
                _cooperate()

    def commit(self, upload_id: str, key: str, part_lengths: list[int]) -> None:
        target = f"ls:obj:{_blob_key(key)}"  # where RedisStore keeps an object
        tmp = f"{target}:tmp:{os.urandom(8).hex()}"
        try:
            self.client.set(tmp, b"")
            for chunk in self.read(upload_id, part_lengths):
                self.client.append(tmp, chunk)
            self.client.rename(tmp, target)
        except BaseException:
            self.client.delete(tmp)
            raise

    def discard(self, upload_id: str, parts: int) -> None:
        keys = [self._part(upload_id, n) for n in range(parts)]
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start:start + 1000])


def part_sink(store: ObjectStore) -> PartSink:
    """The part writer for this object store."""
    if isinstance(store, LocalStore):
        return LocalParts(store)
    if isinstance(store, RedisStore):
        return RedisParts(store)
    raise TypeError(f"No chunked uploads for a {type(store).__name__}.")
