"""landscope.AsyncClient against the real API served in-process (``liveapi``), and its
retries against an httpx MockTransport with the sleep recorded (time is the test's)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from liveapi import API_KEY, OTHER_KEY, LiveAPI, running, succeeded

import landscope
from landscope import (
    AsyncClient,
    ConflictError,
    EvaluateResult,
    JobFailedError,
    LandscopeError,
    NotFoundError,
    RetryPolicy,
    UnprocessableEntityError,
)

from support import evaluate_request


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def test_submit_wait_result_typed(live_api: LiveAPI) -> None:
    live_api.on_submit = lambda job_id: live_api.apply(job_id, succeeded())

    async def go() -> Any:
        async with AsyncClient(live_api.url, api_key=API_KEY) as client:
            job = await client.jobs.submit(evaluate_request(num_samples=4))
            assert isinstance(job, landscope.Job)
            result = await client.jobs.result(job, EvaluateResult)
            listed = [j.id async for j in client.jobs.list(limit=1)]
            return job, result, listed, await client.jobs.get(job.id)

    job, result, listed, again = run(go)
    assert isinstance(result, EvaluateResult) and result.loss == 0.25
    assert listed == [job.id] and again.status == "succeeded"
    key = live_api.calls("POST", "/v1/jobs")[0].headers["idempotency-key"]
    assert len(key) == 36  # one uuid4 per submit


def test_errors_are_the_sync_clients(live_api: LiveAPI) -> None:
    job = live_api.add_job(**succeeded())

    async def go() -> None:
        async with AsyncClient(live_api.url, api_key=API_KEY, max_retries=0) as client:
            with pytest.raises(ConflictError):
                await client.jobs.cancel(job["id"])
            with pytest.raises(UnprocessableEntityError) as e:
                await client.jobs.submit({**evaluate_request(num_samples=4), "kind": "nope"})
            assert "kind" in e.value.errors
        async with AsyncClient(live_api.url, api_key=OTHER_KEY) as other:
            with pytest.raises(NotFoundError):
                await other.jobs.get(job["id"])

    run(go)


def test_failed_job_raises_and_events_list(live_api: LiveAPI) -> None:
    job = live_api.add_job(**running(0.5))
    live_api.apply(job["id"], {"status": "failed", "error": {"code": "x", "message": "m"}})

    async def go() -> tuple[list[str], list[str]]:
        async with AsyncClient(live_api.url, api_key=API_KEY) as client:
            with pytest.raises(JobFailedError):
                await client.jobs.result(job["id"])
            listed = [e.id async for e in client.jobs.events(job["id"])]
            streamed = [e.id async for e in client.jobs.events(job["id"], stream=True)]
            types = [e.type async for e in client.jobs.events(job["id"])]
            assert streamed == listed
            return types, streamed

    types, _ = run(go)
    assert types[0] == "job.queued" and types[1] == "job.started" and types[-1] == "job.failed"


def test_retries_with_backoff_and_one_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503, json={"code": "unavailable", "detail": "busy"}),
               httpx.Response(429, headers={"Retry-After": "7"}, json={"detail": "slow"}),
               httpx.Response(202, json={
                   "id": "job_1", "kind": "evaluate", "status": "queued",
                   "progress": {"stage": "queued", "fraction": 0.0, "message": ""},
                   "created_at": "2026-01-01T00:00:00.000000Z", "metadata": {},
                   "request": {}, "artifacts": []})]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    class Half:
        def random(self) -> float:
            return 0.5

    async def go() -> Any:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = AsyncClient("http://svc", api_key="k", http_client=http, sleep=sleep,
                             rng=Half(),  # type: ignore[arg-type]
                             retry=RetryPolicy(max_retries=3, initial_delay=2.0))
        job = await client.jobs.submit(evaluate_request(num_samples=4))
        await http.aclose()
        return job

    job = run(go)
    assert job.id == "job_1"
    assert slept == [1.0, 7.0]  # 0.5 * 2 s of jitter, then Retry-After
    assert len({r.headers["idempotency-key"] for r in seen}) == 1 and len(seen) == 3
    assert all(r.headers["authorization"] == "Bearer k" for r in seen)


def test_without_httpx_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(LandscopeError, match=r"landscope\[async\]"):
        AsyncClient("http://svc", api_key="k")
