"""Queued jobs whose broker message a Redis restart stranded are sent again (real Redis,
real Celery messages; the restart is a real kill -9 and start of a private Redis with
an append-only file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from landscope_service.jobs.redelivery import (
    queued_task_ids,
    redis_restarted,
    resend_stranded,
)
from landscope_service.local import LOCAL_REDIS_ARGS, find_redis_server, free_port


def _job(r: redis.Redis, tenant: str, job_id: str, status: str, task_id: str,
         queue: str = "cpu") -> None:
    r.hset(f"ls:job:{job_id}", mapping={"status": status, "task_id": task_id,
                                        "doc": json.dumps({"id": job_id, "queue": queue})})
    r.zadd(f"ls:tenant:{tenant}:jobs", {job_id: time.time()})


def _message(r: redis.Redis, queue: str, task_id: str, job_id: str) -> None:
    from landscope_service.settings import load_settings
    from landscope_service.worker.celery_app import make_celery

    port = r.connection_pool.connection_kwargs["port"]
    app = make_celery(load_settings(environ={"LANDSCOPE_REDIS_URL":
                                             f"redis://127.0.0.1:{port}/0"}))
    app.send_task("landscope.run_job", args=[job_id], queue=queue, task_id=task_id)


def test_only_queued_jobs_without_a_message_are_sent_again(redis_client: Any) -> None:
    r = redis_client
    _message(r, "cpu", "t-on-queue", "j-on-queue")
    _message(r, "cpu", "t-other", "j-resent-under-new-id")
    _job(r, "a", "j-on-queue", "queued", "t-on-queue")
    _job(r, "a", "j-resent-under-new-id", "queued", "t-old")  # its message has a new id
    _job(r, "a", "j-stranded", "queued", "t-gone")
    _job(r, "b", "j-stranded-gpu", "queued", "t-gone-2", queue="gpu")
    _job(r, "b", "j-running", "running", "t-run")
    _job(r, "b", "j-done", "succeeded", "t-done")
    tasks, jobs = queued_task_ids(r, ["cpu", "gpu"])
    assert tasks == {"t-on-queue", "t-other"}
    assert jobs == {"j-on-queue", "j-resent-under-new-id"}
    sent: list[tuple[str, str]] = []
    out = resend_stranded(r, lambda job_id, queue: sent.append((job_id, queue)), batch=2)
    assert sorted(out) == ["j-stranded", "j-stranded-gpu"]
    assert sorted(sent) == [("j-stranded", "cpu"), ("j-stranded-gpu", "gpu")]


Started = tuple[int, list[subprocess.Popen[bytes]], Callable[[], None]]


@pytest.fixture()
def durable_redis(tmp_path: Path) -> Iterator[Started]:
    """A private Redis with the local stack's AOF settings; ``start()`` (re)starts it."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
             "--dir", str(tmp_path), *LOCAL_REDIS_ARGS],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    start()
    yield port, procs, start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_a_restart_is_noticed_once_and_records_survive(durable_redis: Started) -> None:
    port, procs, start = durable_redis
    r = redis.Redis(port=port)
    assert redis_restarted(r) is False  # first sight: records the run id
    assert redis_restarted(r) is False
    _job(r, "a", "j-stranded", "queued", "t-gone")
    deadline = time.monotonic() + 20
    while r.info("persistence")["aof_buffer_length"] != 0:  # in the AOF: a state, not a time
        assert time.monotonic() < deadline
    os.kill(procs[-1].pid, signal.SIGKILL)
    procs[-1].wait(5)
    start()
    assert redis_restarted(r) is True  # the first caller after the restart handles it
    assert redis_restarted(r) is False
    sent: list[str] = []
    assert resend_stranded(r, lambda job_id, queue: sent.append(job_id)) == ["j-stranded"]


def test_a_run_interrupted_by_redis_is_rerun_not_failed() -> None:
    from landscope_service.worker.runtime import classify_failure

    assert classify_failure(redis.ConnectionError("Connection reset by peer")) == (None, "")
    assert classify_failure(redis.TimeoutError("Timeout reading from socket")) == (None, "")
    assert classify_failure(RuntimeError("boom"))[0] == "internal_error"
