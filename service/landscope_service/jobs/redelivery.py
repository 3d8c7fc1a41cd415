"""Queued jobs whose broker message a Redis restart stranded are sent again.

Redis keeps the job records and the queues in its append-only file, so a kill -9 and a
restart lose neither. What it can strand is a message a worker had already taken off the
queue when its connection broke: kombu moves it to its ``unacked`` hash (restored only
after the visibility timeout, hours) or, if Redis died between the pop and that move,
nowhere. The job then stays ``queued`` in our registry with no message to run it.

So after each Redis restart (noticed by the server's ``run_id`` changing; the first
process to notice handles it) every queued job whose task is not on its queue list is
sent again. A job whose message was only in flight gets a second delivery, which finds
the job claimed or finished and does nothing (runs are idempotent), so sending too much
is harmless and sending too little is not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

import redis

__all__ = ["RUN_ID_KEY", "queued_task_ids", "redis_restarted", "resend_stranded"]

log = logging.getLogger("landscope.redelivery")

RUN_ID_KEY = "ls:redis_run_id"
SendFn = Callable[[str, str], object]  # (job_id, queue)


def redis_restarted(client: redis.Redis) -> bool:
    """True exactly once per Redis restart, for the first caller after it.

    The server's ``run_id`` (new at every start) is swapped into :data:`RUN_ID_KEY`,
    which the AOF keeps across the restart; a different previous value means a restart.
    The first call ever records the id and returns False.
    """
    run_id = str(client.info("server")["run_id"])
    previous = client.getset(RUN_ID_KEY, run_id)
    return previous is not None and previous.decode() != run_id  # type: ignore[union-attr]


def queued_task_ids(client: redis.Redis, queues: Iterable[str]) -> tuple[set[str], set[str]]:
    """Task ids and job ids of the messages waiting on the Celery queue lists."""
    tasks: set[str] = set()
    jobs: set[str] = set()
    for queue in queues:
        for raw in client.lrange(queue, 0, -1):  # type: ignore[union-attr]
            try:
                headers = json.loads(raw)["headers"]
            except (ValueError, KeyError, TypeError):
                continue
            if headers.get("id"):
                tasks.add(str(headers["id"]))
            if headers.get("task") == "landscope.run_job":
                jobs.add(str(headers.get("argsrepr", "")).strip("[]'\""))
    return tasks, jobs


def resend_stranded(client: redis.Redis, send: SendFn, *, queues: Iterable[str] = ("cpu", "gpu"),
                    batch: int = 500) -> list[str]:
    """Send again every queued job whose message is not on its queue list.

    Args:
        client: Redis (job records, tenant indexes and the Celery lists).
        send: sends a job's task (``send(job_id, queue)``).
        queues: the Celery queue lists to look in.
        batch: job records read per round trip.

    Returns:
        The ids of the jobs sent again.
    """
    queues = list(queues)
    tasks, on_queue = queued_task_ids(client, queues)
    sent: list[str] = []
    for index in client.scan_iter(match="ls:tenant:*:jobs", count=1000):
        ids = [m.decode() for m in client.zrange(index, 0, -1)]  # type: ignore[union-attr]
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            pipe = client.pipeline()
            for job_id in chunk:
                pipe.hmget(f"ls:job:{job_id}", "status", "task_id", "doc")
            for job_id, (status, task_id, doc) in zip(chunk, pipe.execute(), strict=True):
                if status != b"queued" or job_id in on_queue:
                    continue
                if task_id is not None and task_id.decode() in tasks:
                    continue
                queue = "cpu"
                try:
                    queue = str(json.loads(doc or b"{}").get("queue") or "cpu")
                except ValueError:
                    pass
                send(job_id, queue)
                sent.append(job_id)
    if sent:
        log.warning("re-sent %d queued jobs whose messages a Redis restart stranded: %s",
                    len(sent), ", ".join(sent[:20]))
    return sent
