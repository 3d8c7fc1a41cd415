"""Jobs whose worker died: re-run them, or fail them once they have died too often.

A running attempt holds a lease (``ls:lease:<id>``) that its worker renews every
``lease_s / 4`` seconds. When the lease has lapsed the attempt is lost: the job goes
back to the queue, unless it already used ``max_attempts`` runs (a job that always
kills its process must not loop), in which case it fails with ``worker_lost``.
Bound: a job whose worker is SIGKILLed is re-queued or failed within ``lease_s`` plus
one reaper period (``lease_s / 2``) after its last renewal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .store import JobStore

__all__ = ["reap", "reap_one"]

log = logging.getLogger("landscope.reaper")
SendFn = Callable[[str, str], None]  # (job_id, queue)


def reap_one(store: JobStore, job_id: str, send: SendFn, *, max_attempts: int) -> str | None:
    """Handle one running job whose lease lapsed; returns the action taken."""
    raw = store.raw(job_id)
    if raw is None or raw.get("status") != "running":
        return None
    if store.client.exists(f"ls:lease:{job_id}"):
        return None
    attempts = int(raw.get("attempts", "0"))
    if raw.get("cancel_requested") == "1":
        store.mark_cancelled(job_id, allowed=("running",))
        return "cancelled"
    if attempts >= max_attempts:
        store.fail(
            job_id,
            "worker_lost",
            f"The worker running this job stopped responding {attempts} times "
            f"(LANDSCOPE_MAX_ATTEMPTS={max_attempts}); the job may exhaust the worker's "
            "memory or crash its process. Try a smaller batch_size or model.",
            allowed=("running",),
        )
        log.warning("job %s failed after %d lost attempts", job_id, attempts)
        return "failed"
    if store.requeue(job_id):
        doc = store.doc(job_id) or {}
        store.progress(job_id, "queued", 0.0, f"re-queued after a lost worker (attempt {attempts})")
        send(job_id, str(doc.get("queue", "cpu")))
        log.warning("job %s re-queued after its worker was lost", job_id)
        return "requeued"
    return None


def reap(store: JobStore, send: SendFn, *, max_attempts: int) -> list[tuple[str, str]]:
    """Sweep every running job once."""
    done = []
    for job_id in list(store.lost_jobs()):
        action = reap_one(store, job_id, send, max_attempts=max_attempts)
        if action:
            done.append((job_id, action))
    return done
