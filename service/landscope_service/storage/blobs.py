"""Content-addressed blobs, visible per tenant.

The bytes live once in the object store under ``blobs/sha256/<hex>``; each tenant that
uploaded them has a record ``ls:blob:<tenant>:<hex>`` in Redis, so a tenant sees only
the blobs it uploaded, even when two tenants upload the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import redis

from .store import ObjectStore

__all__ = ["BLOB_ID", "BlobService", "artifact_key"]

BLOB_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def artifact_key(job_id: str, name: str) -> str:
    return f"artifacts/{job_id}/{name}"


@dataclass
class BlobService:
    client: redis.Redis
    store: ObjectStore

    @staticmethod
    def _meta_key(tenant: str, hexdigest: str) -> str:
        return f"ls:blob:{tenant}:{hexdigest}"

    def _lock(self, digest: str) -> Any:
        """Serialises put and delete of the same bytes (a delete never removes bytes that a
        concurrent upload has just claimed)."""
        return self.client.lock(f"ls:bloblock:{digest}", timeout=60, blocking_timeout=30)

    def put(self, tenant: str, data: bytes) -> tuple[dict[str, Any], bool]:
        """Store bytes; return ``(meta, created)``; the same bytes give the same id."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"blobs/sha256/{digest}"
        meta = {"id": f"sha256:{digest}", "size": len(data), "created_at": time.time()}
        with self._lock(digest):
            if not self.store.exists(key):
                self.store.put(key, data)
            created = bool(self.client.set(self._meta_key(tenant, digest), json.dumps(meta),
                                           nx=True))
        if not created:
            meta = self.meta(tenant, meta["id"]) or meta
        return meta, created

    def meta(self, tenant: str, blob_id: str) -> dict[str, Any] | None:
        if not BLOB_ID.match(blob_id):
            return None
        raw = self.client.get(self._meta_key(tenant, blob_id.split(":", 1)[1]))
        return None if raw is None else json.loads(raw)  # type: ignore[arg-type]

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
            owners = self.client.scan_iter(match=f"ls:blob:*:{digest}", count=1000)
            if not any(True for _ in owners):
                self.store.delete(f"blobs/sha256/{digest}")
        return True

    def read(self, tenant: str, blob_id: str) -> bytes:
        """The blob's bytes; KeyError if this tenant has no such blob."""
        if self.meta(tenant, blob_id) is None:
            raise KeyError(blob_id)
        return self.store.get(f"blobs/sha256/{blob_id.split(':', 1)[1]}")
