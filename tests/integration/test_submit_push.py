"""A job whose Celery message was pushed by the job-creation script (not by ``send_task``)
is run by a real worker: real Redis, gunicorn API, Celery worker, through the SDK."""

from __future__ import annotations

import redis

import landscope
from landscope_service.local import LocalStack

from support import evaluate_request


def test_pushed_message_runs_once_and_a_replay_pushes_nothing(
        stack: LocalStack, client_a: landscope.Client) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    submitted = client_a.jobs.submit(evaluate_request(), idempotency_key="push-once")
    done = client_a.jobs.wait(submitted.id, timeout=120)
    assert done.status == "succeeded" and done.attempts == 1
    assert r.hget(f"ls:job:{done.id}", "task_id")  # the id the message carried
    counted = r.hget("ls:m:submitted", "evaluate")
    replay = client_a.jobs.submit(evaluate_request(), idempotency_key="push-once")
    assert replay.id == done.id
    # the replay returned before the script's writes (counter and push come together)
    assert r.hget("ls:m:submitted", "evaluate") == counted
    assert client_a.jobs.get(done.id).attempts == 1
