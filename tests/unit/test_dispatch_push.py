"""The Celery message pushed by the job-creation script (real Redis, real Celery/kombu).

``Dispatcher.prepare`` runs Celery's own ``send_task`` with kombu's publish-batch hook, so
the message is Celery's; these tests compare it, field by field, with what ``send`` puts on
the queue, and check that creation pushes it once, only when the job is created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from landscope_service.jobs.dispatch import Dispatcher
from landscope_service.jobs.store import JobStore
from landscope_service.worker.celery_app import make_celery


@pytest.fixture()
def dispatcher(settings: Any, redis_client: Any) -> Dispatcher:
    return Dispatcher(make_celery(settings), JobStore(redis_client, lease_s=settings.lease_s))


def _without_tag(raw: bytes | str) -> dict[str, Any]:
    msg = json.loads(raw)
    tag = msg["properties"].pop("delivery_tag")  # kombu's per-publish uuid
    assert isinstance(tag, str) and tag
    return msg  # type: ignore[no-any-return]


@pytest.mark.parametrize("queue", ["cpu", "gpu"])
def test_prepared_message_is_the_one_send_publishes(dispatcher: Dispatcher, redis_client: Any,
                                                    queue: str) -> None:
    push = dispatcher.prepare("job_X", queue, task_id="task-1")
    assert push is not None and push.key == queue
    assert redis_client.llen(queue) == 0  # prepared, not sent
    dispatcher.send("job_X", queue, task_id="task-1")
    (sent,) = redis_client.lrange(queue, 0, -1)
    assert _without_tag(push.payload) == _without_tag(sent)
    headers = json.loads(push.payload)["headers"]
    assert headers["task"] == "landscope.run_job" and headers["id"] == "task-1"
    assert json.loads(push.payload)["properties"]["delivery_info"]["routing_key"] == queue


@pytest.mark.parametrize("queue", ["cpu", "gpu"])
def test_a_filled_template_is_celerys_own_message(dispatcher: Dispatcher, queue: str) -> None:
    """After the first message of a queue, prepare fills a template; every field equals the
    message Celery builds for the same ids (the body compared decoded), and the kombu
    delivery tag is new each time."""
    import base64

    from landscope_service.jobs.store import new_job_id

    tags = set()
    for k in range(4):
        job_id, task_id = new_job_id(), f"task-{k}-{queue}"
        filled = dispatcher.prepare(job_id, queue, task_id=task_id)
        built = dispatcher.build(job_id, queue, task_id=task_id)
        assert filled is not None and built is not None and filled.key == built.key == queue
        a, b = _without_tag(filled.payload), _without_tag(built.payload)
        tags.add(json.loads(filled.payload)["properties"]["delivery_tag"])
        assert json.loads(base64.b64decode(a.pop("body"))) == json.loads(
            base64.b64decode(b.pop("body")))
        assert a == b
    assert len(tags) == 4
    assert dispatcher.template(queue) is not None


def test_a_message_of_another_shape_is_built_by_celery_each_time(
        dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    from landscope_service.jobs import dispatch

    assert dispatch.MessageTemplate.of(dispatch.Push("cpu", '{"body": "e30="}')) is None
    monkeypatch.setattr(dispatch.MessageTemplate, "of", classmethod(lambda cls, push: None))
    calls = []
    real = dispatcher.build

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatcher, "build", counting)
    for k in range(3):
        push = dispatcher.prepare(f"job_{k}", "cpu", task_id=f"t{k}")
        assert push is not None and json.loads(push.payload)["headers"]["id"] == f"t{k}"
    assert len(calls) == 4  # the template attempt, then Celery for every message


def test_create_pushes_the_message_once_and_a_replay_pushes_nothing(
        dispatcher: Dispatcher, redis_client: Any) -> None:
    push = dispatcher.prepare("job_01", "cpu", task_id="task-1")
    assert push is not None
    store = dispatcher.jobs
    job, created = store.create(tenant="t", kind="evaluate", request={"x": 1}, metadata={},
                                queue="cpu", idempotency_key="k", job_id="job_01",
                                push=(push.key, push.payload))
    assert created and redis_client.lrange("cpu", 0, -1) == [
        push.payload if isinstance(push.payload, bytes) else push.payload.encode()]
    again, created2 = store.create(tenant="t", kind="evaluate", request={"x": 1}, metadata={},
                                   queue="cpu", idempotency_key="k", job_id="job_02",
                                   push=(push.key, push.payload))
    assert not created2 and again["id"] == job["id"] and redis_client.llen("cpu") == 1
    assert store.raw("job_02") is None
