"""Putting jobs on the Celery queue: first sends, re-sends of lost runs, cancels.

The API and the reaper share this, so a job is always sent the same way: the task
``landscope.run_job`` with the job id as its only argument, on the job's queue, and the
task id recorded in the job (a cancel revokes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from .reaper import reap_one
from .store import JobStore

__all__ = ["Dispatcher", "Push", "queue_for"]

TASK = "landscope.run_job"


@dataclass(frozen=True)
class Push:
    """A Celery message as kombu's Redis transport would deliver it: ``LPUSH key payload``."""

    key: str
    payload: bytes | str


@dataclass
class _Capture:
    """Stands in for kombu's Redis publish batch (``Producer.batch()``) for one publish:
    kombu routes and serialises the message as always and hands this object the final
    Redis commands, which are collected here instead of sent."""

    commands: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        return channel.basic_publish(message, _publish_batch=self, **kwargs)


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
        result = self.celery.send_task(TASK, args=[job_id], queue=queue, task_id=task_id)
        if task_id is None:
            self.jobs.set_task_id(job_id, result.id)
        return str(result.id)

    def prepare(self, job_id: str, queue: str, *, task_id: str) -> Push | None:
        """The message :meth:`send` would publish, built by Celery and kombu but not sent,
        so the job store can push it in the round trip that creates the job.

        The task, its id, the queue routing and every header are Celery's own (the same
        ``send_task`` call, through a producer whose publish batch collects kombu's final
        Redis commands). None when the broker's transport has no publish batches or the
        message is more than one ``LPUSH`` (queue expiry): then :meth:`send` it after.
        """
        with self.celery.producer_or_acquire() as producer:
            if getattr(producer.channel, "create_publish_batch", None) is None or \
                    not hasattr(producer, "_batch_local"):
                return None  # a transport or kombu without publish batches
            capture = _Capture()
            producer._batch_local.current = capture  # kombu's hook for Producer.batch()
            try:
                self.celery.send_task(TASK, args=[job_id], queue=queue, task_id=task_id,
                                      producer=producer)
            finally:
                del producer._batch_local.current
        if len(capture.commands) != 1 or capture.commands[0][0] != "lpush":
            if capture.commands:  # not sent: kombu would have run them; send it the usual way
                return None
            raise RuntimeError("kombu published the message itself; not capturable")
        key, payload = capture.commands[0][1]
        return Push(str(key), payload)

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
