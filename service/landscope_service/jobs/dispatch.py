"""Putting jobs on the Celery queue: first sends, re-sends of lost runs, cancels.

The API and the reaper share this, so a job is always sent the same way: the task
``landscope.run_job`` with the job id as its only argument, on the job's queue, and the
task id recorded in the job (a cancel revokes it).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from .reaper import reap_one
from .store import JobStore, dumps_compact

__all__ = ["Dispatcher", "MessageTemplate", "Push", "queue_for"]

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


_SENTINEL_JOB = "job_0TEMPLATE0"
_SENTINEL_TASK = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class MessageTemplate:
    """A message Celery built for the sentinel job and task ids, parsed, with the places
    where those ids sit checked (see :meth:`Dispatcher.prepare`)."""

    key: str
    message: dict[str, Any]
    embed: Any

    @classmethod
    def of(cls, push: Push) -> MessageTemplate | None:
        """The template, or None when the message is not shaped as expected (another
        Celery message protocol: then every message is built by Celery)."""
        try:
            msg = json.loads(push.payload)
            h, p = msg["headers"], msg["properties"]
            args, kwargs, embed = json.loads(base64.b64decode(msg["body"]))
            ok = (h["id"] == h["root_id"] == p["correlation_id"] == _SENTINEL_TASK
                  and h["argsrepr"] == repr([_SENTINEL_JOB]) and args == [_SENTINEL_JOB]
                  and kwargs == {} and p["body_encoding"] == "base64"
                  and msg["content-type"] == "application/json"
                  and _SENTINEL_JOB not in json.dumps({**msg, "body": None}).replace(
                      h["argsrepr"], "")
                  and _SENTINEL_TASK not in json.dumps(
                      [msg.get("content-encoding"),
                       {k: v for k, v in h.items() if k not in ("id", "root_id")},
                       {k: v for k, v in p.items() if k != "correlation_id"}]))
        except (ValueError, KeyError, TypeError):
            return None
        return cls(push.key, msg, embed) if ok else None

    def fill(self, job_id: str, task_id: str) -> Push:
        msg = copy.copy(self.message)
        msg["headers"] = {**msg["headers"], "id": task_id, "root_id": task_id,
                          "argsrepr": repr([job_id])}
        msg["properties"] = {**msg["properties"], "correlation_id": task_id,
                             "delivery_tag": str(uuid.uuid4())}
        body = json.dumps([[job_id], {}, self.embed]).encode()  # byte for byte Celery's
        msg["body"] = base64.b64encode(body).decode()
        return Push(self.key, dumps_compact(msg))


@dataclass
class Dispatcher:
    celery: Celery
    jobs: JobStore
    _templates: dict[tuple[str, int], MessageTemplate | None] = field(default_factory=dict,
                                                                 init=False, repr=False)

    def send(self, job_id: str, queue: str, *, task_id: str | None = None) -> str:
        """Enqueue a run of the job; returns the Celery task id.

        ``task_id``: an id already recorded in the job (else a new one is recorded).
        """
        result = self.celery.send_task(TASK, args=[job_id], queue=queue, task_id=task_id)
        if task_id is None:
            self.jobs.set_task_id(job_id, result.id)
        return str(result.id)

    def prepare(self, job_id: str, queue: str, *, task_id: str) -> Push | None:
        """The message :meth:`send` would publish, built but not sent, so the job store can
        push it in the round trip that creates the job.

        Celery builds the queue's first message in each process (:meth:`build`) for
        sentinel ids; it is kept as a template, and each later message is that template
        with the job id, the task id and a new kombu delivery tag put where Celery put the
        sentinels (building a message through ``send_task`` was a fifth of a submission's
        CPU). ``tests/unit/test_dispatch_push.py`` checks that a filled template equals
        Celery's own message for the same ids. A message of another shape is built by
        Celery every time. None: see :meth:`build`.
        """
        template = self.template(queue)
        if template is None:
            return self.build(job_id, queue, task_id=task_id)
        return template.fill(job_id, task_id)

    def template(self, queue: str) -> MessageTemplate | None:
        """This process's template of ``queue``'s messages (built by Celery on first use;
        None when the message has another shape)."""
        slot = (queue, os.getpid())  # the origin header names the process
        if slot not in self._templates:
            first = self.build(_SENTINEL_JOB, queue, task_id=_SENTINEL_TASK)
            self._templates[slot] = None if first is None else MessageTemplate.of(first)
        return self._templates[slot]

    def build(self, job_id: str, queue: str, *, task_id: str) -> Push | None:
        """The message :meth:`send` would publish, built by Celery and kombu but not sent.

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
