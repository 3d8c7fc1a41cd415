"""Resumable chunked uploads: create, send parts (any order, again if one failed), complete.

An upload declares its total ``size`` and ``part_size`` up front (and optionally the
``sha256`` the caller expects); part ``n`` is then exactly
``min(part_size, size - n * part_size)`` bytes. Records in Redis:

* ``ls:upload:<id>``: the upload (tenant, size, part_size, sha256, created_at), with a
  TTL of ``ttl_s`` renewed by every part: an upload that receives nothing for that long
  expires;
* ``ls:uploadparts:<id>``: part number -> SHA-256 of each part received whole (same TTL);
* ``ls:uploadkey:<tenant>:<size>:<part_size>:<sha256>``: the id of an open upload of the
  same declared bytes, so creating it again resumes it (same TTL);
* ``ls:uploads``: every open upload (id -> tenant), for :meth:`UploadService.sweep`,
  which removes the parts of uploads whose record has expired, and
  ``ls:uploadbytes:<tenant>``: id -> size, the bytes a tenant's open uploads reserve
  against its blob cap.

Completing hashes the assembled bytes a slice at a time (the blob id is the SHA-256 of the
whole), checks it against the declared one, and hands the bytes to
:meth:`~landscope_service.storage.blobs.BlobService.adopt`; nothing is held whole in
memory at any step.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from .blobs import BlobQuotaError, BlobService
from .multipart import PartSink

__all__ = [
    "MIN_PART_BYTES",
    "Upload",
    "UploadDigestError",
    "UploadError",
    "UploadIncompleteError",
    "UploadService",
]

MIN_PART_BYTES = 1024 * 1024
"""Smallest part size an upload may declare (only the last part may be shorter)."""
MAX_PARTS = 100_000
_INDEX = "ls:uploads"
_SWEEP_EVERY_S = 60


class UploadError(ValueError):
    """A request about an upload that cannot be honoured; ``field`` names what to fix."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.status = field, status


class UploadIncompleteError(UploadError):
    """Completing an upload whose parts have not all arrived."""

    def __init__(self, missing: list[int]) -> None:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        super().__init__(f"{len(missing)} part(s) have not arrived yet: {shown}. PUT them, "
                         f"then complete again.", "parts", 409)
        self.missing = missing


class UploadDigestError(UploadError):
    """The assembled bytes' SHA-256 differs from the one declared at creation."""

    def __init__(self, declared: str, got: str) -> None:
        super().__init__(f"The parts assemble to sha256:{got}, not the declared "
                         f"sha256:{declared}: a part was sent with other bytes. Compare each "
                         f"part's sha256 (GET the upload) with your file's and send the "
                         f"differing ones again.", "sha256", 422)


@dataclass(frozen=True)
class Upload:
    """An open upload."""

    id: str
    tenant: str
    size: int
    part_size: int
    sha256: str | None
    created_at: float
    expires_at: float
    parts: dict[int, str]
    """Part number -> SHA-256 of the parts received whole."""

    @property
    def part_count(self) -> int:
        return part_count(self.size, self.part_size)

    def part_length(self, n: int) -> int:
        return part_length(self.size, self.part_size, n)

    @property
    def missing(self) -> list[int]:
        return [n for n in range(self.part_count) if n not in self.parts]


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


def part_length(size: int, part_size: int, n: int) -> int:
    return min(part_size, size - n * part_size)


@dataclass
class UploadService:
    """Chunked uploads of one API (see the module doc).

    Args:
        client: Redis.
        sink: where parts are written (:func:`~landscope_service.storage.multipart.part_sink`).
        blobs: the blob records a completed upload joins.
        max_blob_bytes: largest declared size (``LANDSCOPE_MAX_BLOB_BYTES``).
        max_part_bytes: largest part (the request body limit).
        ttl_s: an upload that receives nothing for this long expires.
        clock: seconds since the epoch (injected by tests).
    """

    client: redis.Redis
    sink: PartSink
    blobs: BlobService
    max_blob_bytes: int
    max_part_bytes: int
    ttl_s: int
    clock: Callable[[], float] = field(default=time.time)

    @staticmethod
    def _key(upload_id: str) -> str:
        return f"ls:upload:{upload_id}"

    @staticmethod
    def _parts_key(upload_id: str) -> str:
        return f"ls:uploadparts:{upload_id}"

    @staticmethod
    def _reserved_key(tenant: str) -> str:
        return f"ls:uploadbytes:{tenant}"

    @staticmethod
    def _same_key(tenant: str, size: int, part_size: int, sha256: str) -> str:
        return f"ls:uploadkey:{tenant}:{size}:{part_size}:{sha256}"

    def _lock(self, upload_id: str) -> Any:
        return self.client.lock(f"ls:uploadlock:{upload_id}", timeout=600,
                                blocking_timeout=30)

    # ------------------------------------------------------------------ create
    def create(self, tenant: str, size: int, part_size: int,
               sha256: str | None = None) -> tuple[Upload, bool]:
        """Open an upload, or return the open one of the same declared bytes.

        Returns:
            ``(upload, created)``.

        Raises:
            UploadError: a size out of bounds (413 for a blob over the maximum).
            BlobQuotaError: the tenant's stored and reserved bytes would pass its cap.
        """
        if size < 1:
            raise UploadError("size must be at least 1 byte.", "size")
        backend_max = self.sink.max_size
        limit = self.max_blob_bytes if backend_max is None else min(self.max_blob_bytes,
                                                                     backend_max)
        if size > limit:
            why = ("LANDSCOPE_MAX_BLOB_BYTES" if limit == self.max_blob_bytes else
                   "the Redis blob store's object cap; use LANDSCOPE_STORAGE=local on a "
                   "shared volume for larger blobs")
            raise UploadError(f"size {size} is larger than the {limit} bytes a blob may have "
                              f"({why}).", "size", 413)
        if not MIN_PART_BYTES <= part_size <= self.max_part_bytes:
            raise UploadError(f"part_size must be between {MIN_PART_BYTES} and "
                              f"{self.max_part_bytes} bytes (LANDSCOPE_MAX_BODY_BYTES), "
                              f"got {part_size}.", "part_size")
        if part_count(size, part_size) > MAX_PARTS:
            raise UploadError(f"size / part_size gives more than {MAX_PARTS} parts: use parts "
                              f"of at least {math.ceil(size / MAX_PARTS)} bytes.", "part_size")
        self._maybe_sweep()
        same = self._same_key(tenant, size, part_size, sha256) if sha256 else None
        if same is not None:
            existing = self.client.get(same)
            if existing is not None:
                found = self.get(tenant, existing.decode())
                if found is not None:
                    self._renew(found)
                    return found, False
        if self.blobs.tenant_cap_bytes:
            used = self.blobs.usage(tenant) + self.reserved(tenant)
            if used + size > self.blobs.tenant_cap_bytes:
                raise BlobQuotaError(used, size, self.blobs.tenant_cap_bytes,
                                     self.blobs._next_expiry_s(tenant))
        upload_id = "up_" + secrets.token_hex(12)
        record = {"tenant": tenant, "size": size, "part_size": part_size, "sha256": sha256,
                  "created_at": self.clock()}
        self.sink.begin(upload_id, size, self.ttl_s)
        pipe = self.client.pipeline()
        pipe.set(self._key(upload_id), json.dumps(record), ex=self.ttl_s)
        pipe.hset(_INDEX, upload_id, f"{tenant} {part_count(size, part_size)}")
        pipe.hset(self._reserved_key(tenant), upload_id, size)
        if same is not None:
            pipe.set(same, upload_id, ex=self.ttl_s)
        pipe.execute()
        upload = self.get(tenant, upload_id)
        if upload is None:
            raise RuntimeError(f"Upload {upload_id} vanished as it was created.")
        return upload, True

    def reserved(self, tenant: str) -> int:
        """Bytes this tenant's open uploads will store."""
        sizes = self.client.hgetall(self._reserved_key(tenant))
        total = 0
        for upload_id, size in sizes.items():  # type: ignore[union-attr]
            if self.client.exists(self._key(upload_id.decode())):
                total += int(size)
        return total

    # ------------------------------------------------------------------ read
    def get(self, tenant: str, upload_id: str) -> Upload | None:
        """This tenant's open upload, or None (unknown, another tenant's, or expired)."""
        if not upload_id.startswith("up_") or len(upload_id) > 64:
            return None
        pipe = self.client.pipeline()
        pipe.get(self._key(upload_id))
        pipe.pttl(self._key(upload_id))
        pipe.hgetall(self._parts_key(upload_id))
        raw, pttl, parts = pipe.execute()
        if raw is None:
            return None
        record = json.loads(raw)
        if record["tenant"] != tenant:
            return None
        return Upload(
            id=upload_id, tenant=tenant, size=record["size"], part_size=record["part_size"],
            sha256=record["sha256"], created_at=record["created_at"],
            expires_at=self.clock() + max(0, int(pttl)) / 1000,
            parts={int(k): v.decode() for k, v in parts.items()},
        )

    def _renew(self, upload: Upload) -> None:
        pipe = self.client.pipeline()
        pipe.expire(self._key(upload.id), self.ttl_s)
        pipe.expire(self._parts_key(upload.id), self.ttl_s)
        if upload.sha256:
            pipe.expire(self._same_key(upload.tenant, upload.size, upload.part_size,
                                       upload.sha256), self.ttl_s)
        pipe.execute()

    # ------------------------------------------------------------------ parts
    def put_part(self, tenant: str, upload_id: str, n: int,
                 chunks: Iterable[bytes]) -> tuple[Upload, str]:
        """Write part ``n`` from a stream of chunks; returns the upload and the part's
        SHA-256. Sending a part again replaces it.

        Raises:
            KeyError: no such open upload for this tenant.
            UploadError: ``n`` out of range (404), or the body's length is not the part's.
        """
        upload = self.get(tenant, upload_id)
        if upload is None:
            raise KeyError(upload_id)
        if not 0 <= n < upload.part_count:
            raise UploadError(f"Part {n} does not exist: this upload has parts 0 to "
                              f"{upload.part_count - 1}.", "n", 404)
        self._renew(upload)
        # The part stops counting before its bytes change: a retry cut short leaves it
        # missing, never "received" with mixed bytes.
        self.client.hdel(self._parts_key(upload_id), str(n))
        from .multipart import PartSizeError

        try:
            digest = self.sink.write_part(upload_id, n, n * upload.part_size,
                                          upload.part_length(n), chunks, self.ttl_s)
        except PartSizeError as e:
            raise UploadError(str(e), "body", 400) from e
        pipe = self.client.pipeline()
        pipe.hset(self._parts_key(upload_id), str(n), digest)
        pipe.expire(self._parts_key(upload_id), self.ttl_s)
        pipe.execute()
        upload = self.get(tenant, upload_id) or upload
        return upload, digest

    # ------------------------------------------------------------------ complete
    def complete(self, tenant: str, upload_id: str) -> tuple[dict[str, Any], bool]:
        """Assemble the parts into a blob: ``(blob meta, created)``.

        Raises:
            KeyError: no such open upload.
            UploadIncompleteError: parts missing (409).
            UploadDigestError: the bytes differ from the declared SHA-256 (422; the upload
                stays open so the wrong parts can be sent again).
            BlobQuotaError: the blob would pass the tenant's cap.
        """
        with self._lock(upload_id):
            upload = self.get(tenant, upload_id)
            if upload is None:
                raise KeyError(upload_id)
            if upload.missing:
                raise UploadIncompleteError(upload.missing)
            self._renew(upload)
            lengths = [upload.part_length(n) for n in range(upload.part_count)]
            digest = hashlib.sha256()
            for chunk in self.sink.read(upload_id, lengths):
                digest.update(chunk)
            hexdigest = digest.hexdigest()
            if upload.sha256 is not None and hexdigest != upload.sha256:
                raise UploadDigestError(upload.sha256, hexdigest)
            meta, created = self.blobs.adopt(
                tenant, hexdigest, upload.size,
                lambda key: self.sink.commit(upload_id, key, lengths))
            self._forget(upload)
        return meta, created

    def abort(self, tenant: str, upload_id: str) -> bool:
        """Drop an open upload and its parts; False if there is none."""
        upload = self.get(tenant, upload_id)
        if upload is None:
            return False
        with self._lock(upload_id):
            self._forget(upload)
        return True

    def _forget(self, upload: Upload) -> None:
        self.sink.discard(upload.id, upload.part_count)
        pipe = self.client.pipeline()
        pipe.delete(self._key(upload.id), self._parts_key(upload.id))
        if upload.sha256:
            pipe.delete(self._same_key(upload.tenant, upload.size, upload.part_size,
                                       upload.sha256))
        pipe.hdel(_INDEX, upload.id)
        pipe.hdel(self._reserved_key(upload.tenant), upload.id)
        pipe.execute()

    # ------------------------------------------------------------------ expiry
    def sweep(self) -> list[str]:
        """Remove the parts of every upload whose record has expired.

        Returns:
            The ids removed.
        """
        removed = []
        for raw_id, raw in self.client.hgetall(_INDEX).items():  # type: ignore[union-attr]
            upload_id = raw_id.decode()
            tenant, parts = raw.decode().rsplit(" ", 1)
            if self.client.exists(self._key(upload_id)):
                continue
            with self._lock(upload_id):
                if self.client.exists(self._key(upload_id)):
                    continue
                self.sink.discard(upload_id, int(parts))
                pipe = self.client.pipeline()
                pipe.delete(self._parts_key(upload_id))
                pipe.hdel(_INDEX, upload_id)
                pipe.hdel(self._reserved_key(tenant), upload_id)
                pipe.execute()
            removed.append(upload_id)
        return removed

    def _maybe_sweep(self) -> None:
        if self.client.set("ls:uploadsweep", "1", nx=True, ex=_SWEEP_EVERY_S):
            self.sweep()
