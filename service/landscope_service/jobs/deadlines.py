"""A job's run-time limit and queue deadline, from its request and the settings.

``max_runtime_s``: the request's value, capped by the tenant's limit
(``LANDSCOPE_TENANT_MAX_RUNTIME_S``, else ``LANDSCOPE_MAX_RUNTIME_S``), which is also the
default when the request gives none (0: no limit). ``queue_timeout_s``: the request's value,
else ``LANDSCOPE_QUEUE_TIMEOUT_S`` (0: none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import Settings

__all__ = ["Limits", "resolve_limits"]


@dataclass(frozen=True)
class Limits:
    max_runtime_s: int | None
    queue_timeout_s: int | None


def resolve_limits(req: dict[str, Any], settings: Settings, tenant: str) -> Limits:
    """The limits in force for a request of ``tenant``."""
    cap = settings.tenant_max_runtime_s.get(tenant) or settings.max_runtime_s or None
    asked = req.get("max_runtime_s")
    runtime = asked if cap is None else (cap if asked is None else min(int(asked), cap))
    queue = req.get("queue_timeout_s") or settings.queue_timeout_s or None
    return Limits(max_runtime_s=None if runtime is None else int(runtime),
                  queue_timeout_s=None if queue is None else int(queue))
