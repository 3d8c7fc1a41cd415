"""A job's event history: one Redis stream per job, and the webhooks it triggers.

Every state change of a job (queued, started with its attempt, re-queued, succeeded,
failed, cancelled, expired) and its progress (at most one event a second per job) is
appended to ``ls:jobevents:<id>`` by the :class:`~.store.JobStore` transition that made
it, so the history is complete and in the order Redis applied the changes. Stream ids
(``<ms>-<seq>``) are the event ids: ``GET /v1/jobs/{id}/events`` pages by them and the
Server-Sent-Events stream resumes from ``Last-Event-ID``.

A job that carries a ``webhook`` gets a delivery (:class:`~.webhooks.Deliveries`) for each
event it subscribed to; the delivery is sent by the worker's ``landscope.deliver_webhook``
task on the ``webhooks`` queue. Recording never raises into the transition: a job's
outcome never depends on its events or its webhook.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .webhooks import DEFAULT_EVENTS, Deliveries

__all__ = ["WEBHOOK_QUEUE", "JobEvents", "event_key"]

log = logging.getLogger("landscope.events")

WEBHOOK_QUEUE = "webhooks"
MAX_EVENTS = 10_000  # per job (progress is throttled, so this holds any real history)
PROGRESS_INTERVAL_S = 1.0


def event_key(job_id: str) -> str:
    return f"ls:jobevents:{job_id}"


def _iso(ts: float) -> str:
    from .store import iso

    return iso(ts) or ""


@dataclass
class JobEvents:
    """Appends events to a job's stream and queues its webhook deliveries."""

    client: redis.Redis
    ttl_s: int
    render: Callable[[str], dict[str, Any] | None]
    sender: Callable[[str], None] | None = None
    _default_sender: Callable[[str], None] | None = field(default=None, init=False, repr=False)

    def record(self, job_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Append ``job.<event_type>``; never raises (logged instead)."""
        try:
            self._record(job_id, event_type, data)
        except Exception:
            log.exception("could not record event %s of %s", event_type, job_id)

    def progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """A progress event, at most one a second per job (across every process)."""
        try:
            key = event_key(job_id) + ":throttle"
            if not self.client.set(key, 1, nx=True, px=int(PROGRESS_INTERVAL_S * 1000)):
                return
            self._record(job_id, "progress", {"progress": progress})
        except Exception:
            log.exception("could not record progress of %s", job_id)

    def _record(self, job_id: str, event_type: str, data: dict[str, Any]) -> None:
        now = time.time()
        entry = {"type": "job." + event_type, "timestamp": _iso(now),
                 "data": json.dumps(data, allow_nan=False)}
        pipe = self.client.pipeline()
        pipe.xadd(event_key(job_id), entry,  # type: ignore[arg-type]
                  maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(event_key(job_id), self.ttl_s)
        pipe.hget(f"ls:job:{job_id}", "webhook")
        _, _, hook = pipe.execute()
        if hook:
            self._webhook(job_id, event_type, json.loads(hook), now)

    def _webhook(self, job_id: str, event_type: str, hook: dict[str, Any], now: float) -> None:
        if event_type not in (hook.get("events") or DEFAULT_EVENTS):
            return
        job = self.render(job_id)
        if job is None:
            return
        body = json.dumps({"type": "job." + event_type, "timestamp": _iso(now), "data": job},
                          allow_nan=False, separators=(",", ":")).encode()
        deliveries = Deliveries(self.client, ttl_s=self.ttl_s)
        delivery_id = deliveries.create(job_id=job_id, tenant=hook["tenant"], url=hook["url"],
                                        event_type="job." + event_type, body=body)
        self._send(delivery_id)

    def _send(self, delivery_id: str) -> None:
        sender = self.sender or self._default_sender
        if sender is None:
            from ..settings import load_settings
            from ..worker.celery_app import make_celery

            celery = make_celery(load_settings())

            def sender(delivery_id: str) -> None:
                celery.send_task("landscope.deliver_webhook", args=[delivery_id],
                                 queue=WEBHOOK_QUEUE)

            self._default_sender = sender
        sender(delivery_id)

    # ---------------------------------------------------------------- reading
    def read(self, job_id: str, *, after: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Events after the id ``after`` (exclusive; None: from the first), oldest first."""
        start = "-" if not after else "(" + after
        rows = self.client.xrange(event_key(job_id), min=start, max="+", count=limit)
        return [_decode(eid, fields) for eid, fields in rows]  # type: ignore[union-attr,arg-type]


def _decode(eid: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    return {"id": eid.decode(), "type": fields[b"type"].decode(),
            "timestamp": fields[b"timestamp"].decode(),
            "data": json.loads(fields[b"data"])}


def decode_stream_rows(rows: Any) -> list[dict[str, Any]]:
    """XREAD's answer for one stream as events."""
    out: list[dict[str, Any]] = []
    for _stream, entries in rows or []:
        out.extend(_decode(eid, fields) for eid, fields in entries)
    return out
