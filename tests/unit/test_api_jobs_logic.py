"""The job logic moved out of the views (``jobs/``): rate limit with an injected clock,
cursors, kind-check error paths, and the dispatcher (real Redis, real Celery broker)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from landscope_service.jobs.cursors import decode_cursor, encode_cursor
from landscope_service.jobs.dispatch import Dispatcher, queue_for
from landscope_service.jobs.errors import InvalidRequestError, TooManyRequestsError
from landscope_service.jobs.ratelimit import SubmitRateLimiter
from landscope_service.jobs.store import JobStore
from landscope_service.jobs.submit import split_check_errors
from landscope_service.worker.celery_app import make_celery

from support import AUTH_A, AUTH_B, evaluate_request


class Clock:
    """UNIX seconds that move only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limit_counts_per_tenant_and_minute(redis_client: Any) -> None:
    clock = Clock(1_000_000 * 60 + 15.5)  # 15.5 s into a minute
    limiter = SubmitRateLimiter(redis_client, 2, clock=clock)
    limiter.hit("a")
    limiter.hit("a")
    with pytest.raises(TooManyRequestsError) as info:
        limiter.hit("a")
    assert info.value.status == 429 and info.value.code == "rate_limited"
    assert info.value.retry_after == 44  # 60 - 15.5, rounded down
    assert info.value.headers() == {"Retry-After": "44"}
    limiter.hit("b")  # another tenant has its own count
    clock.now += 44.5  # the next minute: a fresh window
    limiter.hit("a")
    limiter.hit("a")
    with pytest.raises(TooManyRequestsError):
        limiter.hit("a")


def test_rate_limit_zero_is_off(redis_client: Any) -> None:
    limiter = SubmitRateLimiter(redis_client, 0, clock=Clock(0.0))
    for _ in range(50):
        limiter.hit("a")
    assert redis_client.keys("ls:rate:*") == []


def test_rate_limit_through_the_api_with_a_moved_clock(settings: Any, redis_client: Any) -> None:
    from landscope_service.api import create_app

    clock = Clock(2_000_000 * 60 + 59.9)  # the last tenth of a minute: no race with time
    app = create_app({"TESTING": True}, settings=dataclasses.replace(
        settings, submit_rate_per_min=1), clock=clock)
    http = app.test_client()
    assert http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).status_code == 202
    resp = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A)
    assert resp.status_code == 429
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.get_json()["code"] == "rate_limited" and resp.headers["Retry-After"] == "1"
    assert http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_B).status_code == 202
    clock.now += 0.2
    assert http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).status_code == 202


def test_cursor_round_trip_and_rejection() -> None:
    assert decode_cursor(encode_cursor((1234, "job_ABC"))) == (1234, "job_ABC")
    # not base64; base64 of "not-a-number:job_1"; of the byte 0xff (not UTF-8)
    for bad in ("!!!", "bm90LWEtbnVtYmVyOmpvYl8x", "_w=="):
        with pytest.raises(InvalidRequestError) as info:
            decode_cursor(bad)
        assert info.value.errors == {"cursor": ["Use next_cursor as returned."]}


def test_split_check_errors_routes_top_level_fields() -> None:
    assert split_check_errors({"top_k": ["too big"], "^batch_size": ["too small"]}) == {
        "batch_size": ["too small"], "options": {"top_k": ["too big"]}}
    assert split_check_errors(["bare"]) == {"options": ["bare"]}


def test_queue_for_device() -> None:
    assert queue_for({"device": "cuda"}) == "gpu"
    assert queue_for({"device": "auto"}) == "cpu" and queue_for({"device": "cpu"}) == "cpu"


@pytest.fixture()
def dispatcher(settings: Any, redis_client: Any) -> Dispatcher:
    return Dispatcher(make_celery(settings), JobStore(redis_client, lease_s=settings.lease_s))


def _job(d: Dispatcher) -> str:
    job, _ = d.jobs.create(tenant="t", kind="evaluate", request={"device": "cpu"}, metadata={},
                           queue="cpu")
    return str(job["id"])


def test_dispatcher_sends_and_records_the_task(dispatcher: Dispatcher, redis_client: Any) -> None:
    job_id = _job(dispatcher)
    task_id = dispatcher.send(job_id, "cpu")
    assert redis_client.llen("cpu") == 1
    assert dispatcher.jobs.raw(job_id)["task_id"] == task_id  # type: ignore[index]


def test_dispatcher_cancel_of_a_queued_job(dispatcher: Dispatcher) -> None:
    job_id = _job(dispatcher)
    assert dispatcher.cancel(job_id) == "cancelled"
    assert dispatcher.jobs.status(job_id) == "cancelled"


def test_dispatcher_requeues_a_lost_run_once(dispatcher: Dispatcher, redis_client: Any) -> None:
    job_id = _job(dispatcher)
    code, _, _ = dispatcher.jobs.start(job_id, worker="w", max_attempts=3)
    assert code == "started"
    assert not dispatcher.recover_if_lost(job_id, max_attempts=3)  # lease still held
    redis_client.delete(f"ls:lease:{job_id}")  # the worker died: its lease is gone
    assert dispatcher.recover_if_lost(job_id, max_attempts=3)
    assert dispatcher.jobs.status(job_id) == "queued" and redis_client.llen("cpu") == 1
    assert not dispatcher.recover_if_lost(job_id, max_attempts=3)  # nothing left to recover


@pytest.mark.parametrize("extra", [
    {},
    {"kind": "hessian_spectrum", "options": {"top_k": 2}},
    {"metadata": {"run": "a", "step": "7"}, "max_runtime_s": 90, "queue_timeout_s": 600},
    {"dtype": "float64", "seed": 5, "batch_size": 16},
])
def test_a_new_job_is_answered_in_the_schema_shape(http: Any, extra: dict[str, Any]) -> None:
    """The 202 of a new job is encoded without a pass through JobSchema, so it must already
    be in that shape: dumping it changes nothing, and it equals the schema-dumped GET of
    the same job (nothing ran it in between)."""
    from landscope_service.api.jobs.views import JOB

    resp = http.post("/v1/jobs", json=evaluate_request(**extra), headers=AUTH_A)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert JOB.dump(body) == body
    assert http.get(f"/v1/jobs/{body['id']}", headers=AUTH_A).get_json() == body
    assert set(body) == set(JOB.fields)
