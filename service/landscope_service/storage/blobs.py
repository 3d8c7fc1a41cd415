"""Content-addressed blobs, visible per tenant, with retention and a per-tenant byte cap.

The bytes live once in the object store under ``blobs/sha256/<hex>``; each tenant that
uploaded them has a record ``ls:blob:<tenant>:<hex>`` in Redis, so a tenant sees only
the blobs it uploaded, even when two tenants upload the same bytes.

Retention: a record lives ``ttl_s`` after the blob was last *used* (uploaded again, or
read by a job at submit time or in the worker); every use renews it, and the blob
object shows when it will expire (``expires_at``, from the record's own Redis TTL, so it
is exact whatever moves the expiry). The bytes go once no tenant's record is left: each
tenant's blobs are listed in ``ls:blobsizes:<tenant>`` (hex -> size) and each digest's
tenants in ``ls:blobowners:<hex>``; :meth:`BlobService.sweep` (run at most once a minute
by uploads, and callable by any periodic task) removes what expired.

Cap: a tenant's live blobs may total at most ``tenant_cap_bytes``; an upload beyond it
raises :class:`BlobQuotaError` (the API's 429), with the seconds until the tenant's
next blob expires as the time to retry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .store import LocalStore, ObjectStore

__all__ = ["BLOB_ID", "BlobQuotaError", "BlobService", "TenantBlobs", "artifact_key"]

BLOB_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
SWEEP_EVERY_S = 60
"""Seconds between sweeps of expired blobs (over all API processes: a Redis key elects
one per period)."""
_TENANTS = "ls:blobtenants"
_LEAVE_IF_EMPTY = """
if redis.call('HLEN', KEYS[2]) == 0 then return redis.call('SREM', KEYS[1], ARGV[1]) end
return 0
"""


def artifact_key(job_id: str, name: str) -> str:
    return f"artifacts/{job_id}/{name}"


class BlobQuotaError(Exception):
    """An upload would take a tenant's stored blob bytes over its cap."""

    def __init__(self, used: int, size: int, cap: int, retry_after_s: int) -> None:
        super().__init__(
            f"Storing {size} more bytes would take this API key's blobs to {used + size} "
            f"bytes, above its cap of {cap} (LANDSCOPE_TENANT_BLOB_BYTES); delete blobs you "
            f"no longer need (DELETE /v1/blobs/{{id}}) or retry once older ones expire."
        )
        self.used, self.size, self.cap, self.retry_after_s = used, size, cap, retry_after_s


@dataclass
class BlobService:
    """Blob records and bytes.

    Args:
        client: Redis.
        store: where the bytes live.
        ttl_s: seconds a blob lives after its last use (``None``: for ever).
        tenant_cap_bytes: bytes of live blobs one tenant may hold (0: no cap).
        clock: seconds since the epoch (injected by tests).
    """

    client: redis.Redis
    store: ObjectStore
    ttl_s: int | None = None
    tenant_cap_bytes: int = 0
    clock: Callable[[], float] = field(default=time.time)

    @staticmethod
    def _meta_key(tenant: str, hexdigest: str) -> str:
        return f"ls:blob:{tenant}:{hexdigest}"

    @staticmethod
    def _sizes_key(tenant: str) -> str:
        return f"ls:blobsizes:{tenant}"

    @staticmethod
    def _owners_key(hexdigest: str) -> str:
        return f"ls:blobowners:{hexdigest}"

    def _lock(self, name: str) -> Any:
        """Serialises put and delete of the same bytes (a delete never removes bytes that a
        concurrent upload has just claimed), or the uploads of one tenant (its cap)."""
        return self.client.lock(f"ls:bloblock:{name}", timeout=60, blocking_timeout=30)

    def _px(self) -> int | None:
        return None if self.ttl_s is None else int(self.ttl_s * 1000)

    # ------------------------------------------------------------------ records
    def put(self, tenant: str, data: bytes) -> tuple[dict[str, Any], bool]:
        """Store bytes; return ``(meta, created)``; the same bytes give the same id.

        Uploading bytes this tenant already has renews their retention.

        Raises:
            BlobQuotaError: new bytes over the tenant's cap (nothing is stored).
        """
        digest = hashlib.sha256(data).hexdigest()
        return self.adopt(tenant, digest, len(data),
                          lambda key: self.store.put(key, data))

    def adopt(self, tenant: str, digest: str, size: int,
              place: Callable[[str], None]) -> tuple[dict[str, Any], bool]:
        """Record bytes whose SHA-256 the caller computed; ``place(key)`` puts them in the
        store under ``key`` when the store does not hold them yet (a chunked upload moves
        its assembled parts there). Same answers and errors as :meth:`put`."""
        key = f"blobs/sha256/{digest}"
        meta: dict[str, Any] = {"id": f"sha256:{digest}", "size": size,
                                "created_at": self.clock()}
        self.maybe_sweep()
        with self._lock(f"tenant:{tenant}"):
            if self.touch(tenant, digest):
                return self.meta(tenant, meta["id"]) or meta, False
            if self.tenant_cap_bytes:
                used = self.usage(tenant)
                if used + size > self.tenant_cap_bytes:
                    raise BlobQuotaError(used, size, self.tenant_cap_bytes,
                                            self._next_expiry_s(tenant))
            with self._lock(digest):
                if not self.store.exists(key):
                    place(key)
                pipe = self.client.pipeline()
                pipe.set(self._meta_key(tenant, digest), json.dumps(meta), nx=True,
                         px=self._px())
                pipe.hset(self._sizes_key(tenant), digest, size)
                pipe.sadd(self._owners_key(digest), tenant)
                pipe.sadd(_TENANTS, tenant)
                created = bool(pipe.execute()[0])
        if not created:
            meta = self.meta(tenant, meta["id"]) or meta
        return self._with_expiry(tenant, digest, meta), created

    def _with_expiry(self, tenant: str, digest: str, meta: dict[str, Any]) -> dict[str, Any]:
        pttl = int(self.client.pttl(self._meta_key(tenant, digest)))  # type: ignore[arg-type]
        return {**meta, "expires_at": self.clock() + pttl / 1000 if pttl >= 0 else None}

    def meta(self, tenant: str, blob_id: str) -> dict[str, Any] | None:
        """``{id, size, created_at, expires_at}`` (times in epoch seconds; ``expires_at``
        None when blobs do not expire), or None if this tenant has no such blob."""
        if not BLOB_ID.match(blob_id):
            return None
        key = self._meta_key(tenant, blob_id.split(":", 1)[1])
        pipe = self.client.pipeline()
        pipe.get(key)
        pipe.pttl(key)
        raw, pttl = pipe.execute()
        if raw is None:
            return None
        meta: dict[str, Any] = json.loads(raw)
        meta["expires_at"] = self.clock() + int(pttl) / 1000 if int(pttl) >= 0 else None
        return meta

    def touch(self, tenant: str, hexdigest: str) -> bool:
        """Renew a blob's retention (a use); False if this tenant has no such blob."""
        key = self._meta_key(tenant, hexdigest)
        if self.ttl_s is None:
            return bool(self.client.exists(key))
        return bool(self.client.pexpire(key, int(self.ttl_s * 1000)))

    def delete(self, tenant: str, blob_id: str) -> bool:
        """Forget this tenant's blob; the bytes go once no tenant refers to them.

        Jobs that already ran keep their results; a queued job that needs the blob fails
        with ``blob_missing``.
        """
        if self.meta(tenant, blob_id) is None:
            return False
        digest = blob_id.split(":", 1)[1]
        with self._lock(digest):
            self.client.delete(self._meta_key(tenant, digest))
            self._forget(tenant, digest)
        return True

    def read(self, tenant: str, blob_id: str) -> bytes:
        """The blob's bytes (a use: renews its retention); KeyError if this tenant has no
        such blob."""
        if not BLOB_ID.match(blob_id) or not self.touch(tenant, blob_id.split(":", 1)[1]):
            raise KeyError(blob_id)
        return self.store.get(f"blobs/sha256/{blob_id.split(':', 1)[1]}")

    def file(self, tenant: str, blob_id: str) -> Path | bytes:
        """The blob's file in a local store (to memory-map), else its bytes; a use, like
        :meth:`read`. KeyError if this tenant has no such blob."""
        if not BLOB_ID.match(blob_id) or not self.touch(tenant, blob_id.split(":", 1)[1]):
            raise KeyError(blob_id)
        key = f"blobs/sha256/{blob_id.split(':', 1)[1]}"
        if isinstance(self.store, LocalStore):
            return self.store.root / key
        return self.store.get(key)

    # ------------------------------------------------------------------ retention and cap
    def _forget(self, tenant: str, digest: str) -> None:
        """Drop ``tenant``'s bookkeeping of ``digest`` (its record is gone); remove the
        bytes when no tenant's record is left. Call with the digest's lock held."""
        pipe = self.client.pipeline()
        pipe.hdel(self._sizes_key(tenant), digest)
        pipe.srem(self._owners_key(digest), tenant)
        pipe.smembers(self._owners_key(digest))
        owners: set[bytes] = pipe.execute()[2]
        live = [o for o in owners
                if self.client.exists(self._meta_key(o.decode(), digest))]
        if not live:
            self.client.delete(self._owners_key(digest))
            self.store.delete(f"blobs/sha256/{digest}")

    def _live(self, tenant: str) -> dict[str, int]:
        """This tenant's live blobs (hex -> size); expired ones are forgotten on the way."""
        raw: dict[bytes, bytes] = self.client.hgetall(  # type: ignore[assignment]
            self._sizes_key(tenant))
        sizes = {k.decode(): int(v) for k, v in raw.items()}
        if not sizes:
            return {}
        pipe = self.client.pipeline()
        for digest in sizes:
            pipe.exists(self._meta_key(tenant, digest))
        alive = pipe.execute()
        for digest, ok in zip(list(sizes), alive, strict=True):
            if not ok:
                with self._lock(digest):
                    if not self.client.exists(self._meta_key(tenant, digest)):
                        self._forget(tenant, digest)
                        del sizes[digest]
        return sizes

    def usage(self, tenant: str) -> int:
        """Bytes of this tenant's live blobs."""
        return sum(self._live(tenant).values())

    def _next_expiry_s(self, tenant: str) -> int:
        """Whole seconds until this tenant's next blob expires (at least 1)."""
        digests = list(self._live(tenant))
        if not digests or self.ttl_s is None:
            return 60
        pipe = self.client.pipeline()
        for digest in digests:
            pipe.pttl(self._meta_key(tenant, digest))
        ttls = [int(t) for t in pipe.execute() if int(t) >= 0]
        return max(1, math.ceil(min(ttls) / 1000)) if ttls else 1

    def sweep(self) -> int:
        """Forget expired records of every tenant and remove bytes no one holds.

        Returns:
            The number of tenants looked at.
        """
        tenants = [t.decode() for t in self.client.smembers(_TENANTS)]  # type: ignore[union-attr]
        for tenant in tenants:
            if not self._live(tenant):  # leave the list only if no upload came meanwhile
                self.client.eval(_LEAVE_IF_EMPTY, 2, _TENANTS, self._sizes_key(tenant), tenant)
        return len(tenants)

    def maybe_sweep(self) -> None:
        """:meth:`sweep`, if no process swept in the last :data:`SWEEP_EVERY_S` seconds.

        Called on each upload and, in the API, periodically (``create_app``), so bytes of
        expired blobs go even when nothing is uploaded."""
        if self.ttl_s is not None and self.client.set("ls:blobsweep", "1", nx=True,
                                                      ex=SWEEP_EVERY_S):
            self.sweep()


@dataclass(frozen=True)
class TenantBlobs:
    """One tenant's blobs as the readers the checks take: called with an id, the bytes
    (:meth:`BlobService.read`); :meth:`file`, the local file to map instead
    (:meth:`BlobService.file`), so a streamed data set's headers are read without the
    whole file."""

    service: BlobService
    tenant: str

    def __call__(self, blob_id: str) -> bytes:
        return self.service.read(self.tenant, blob_id)

    def file(self, blob_id: str) -> Path | bytes:
        return self.service.file(self.tenant, blob_id)
