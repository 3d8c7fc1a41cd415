"""Putting jobs on the Celery queue: first sends, re-sends of lost runs, cancels.

The API and the reaper share this, so a job is always sent the same way: the task
``landscope.run_job`` with the job id as its only argument, on the job's queue, and the
task id recorded in the job (a cancel revokes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from .reaper import reap_one
from .store import JobStore

__all__ = ["Dispatcher", "queue_for"]


def queue_for(request: dict[str, Any]) -> str:
    """``cuda`` jobs go to the gpu queue, every other to the cpu queue."""
    return "gpu" if request.get("device") == "cuda" else "cpu"


@dataclass
class Dispatcher:
    celery: Celery
    jobs: JobStore

    def send(self, job_id: str, queue: str, *, task_id: str | None = None) -> str:
        """Enqueue a run of the job; returns the Celery task id.

        ``task_id``: an id already recorded in the job (else a new one is recorded).
        """
        result = self.celery.send_task("landscope.run_job", args=[job_id], queue=queue,
                                       task_id=task_id)
        if task_id is None:
            self.jobs.set_task_id(job_id, result.id)
        return str(result.id)

    def recover_if_lost(self, job_id: str, *, max_attempts: int) -> bool:
        """A running job whose lease lapsed is re-queued (or failed); True if it changed."""
        return reap_one(self.jobs, job_id, self.send, max_attempts=max_attempts) is not None

    def cancel(self, job_id: str) -> str | None:
        """A queued job is cancelled at once; a running one is flagged and its task revoked.

        Returns the status after the request, or None if the job does not exist.
        """
        status = self.jobs.request_cancel(job_id)
        raw = self.jobs.raw(job_id) or {}
        if status == "running" and raw.get("task_id"):
            # Revoke stops a redelivered copy of the task; the running one sees the flag.
            self.celery.control.revoke(raw["task_id"])
        return status
