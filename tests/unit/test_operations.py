"""Operations: metrics, GPU routing, CUDA out-of-memory (simulated at its seam), JSON logs.

Real app and real (private) Redis; the worker runtime runs in-process."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest
import torch

from landscope_service.jobs.store import JobStore
from landscope_service.storage.blobs import BlobService
from landscope_service.storage.store import LocalStore
from landscope_service.worker import runtime as runtime_mod
from landscope_service.worker.runtime import JobRuntime

from support import AUTH_A, evaluate_request


def _metric(text: str, name: str, **labels: str) -> float:
    """Value of the sample ``name{labels}`` in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        m = re.fullmatch(re.escape(name) + r"(?:\{(.*)\})? (\S+)", line)
        if m is None:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if got == labels:
            return float(m.group(2))
    return 0.0


@pytest.fixture()
def runtime(settings: Any, redis_client: Any) -> JobRuntime:
    store = LocalStore(settings.data_dir)
    return JobRuntime(settings=settings, jobs=JobStore(redis_client, lease_s=settings.lease_s),
                      blobs=BlobService(redis_client, store), store=store, hostname="test-w")


def test_metrics_move_after_a_job(http: Any, runtime: JobRuntime) -> None:
    before = http.get("/metrics").get_data(as_text=True)
    assert _metric(before, "landscope_jobs_submitted_total", kind="evaluate") == 0
    job = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).get_json()
    assert runtime.execute(job["id"]) == "succeeded"
    text = http.get("/metrics").get_data(as_text=True)
    assert _metric(text, "landscope_jobs_submitted_total", kind="evaluate") == 1
    assert _metric(text, "landscope_jobs_finished_total", kind="evaluate",
                   status="succeeded") == 1
    assert _metric(text, "landscope_job_duration_seconds_count", kind="evaluate",
                   status="succeeded") == 1
    assert _metric(text, "landscope_http_request_duration_seconds_count", method="POST",
                   endpoint="/v1/jobs", status="202") == 1
    assert "landscope_queue_depth" in text and "landscope_workers" in text


def test_cuda_without_gpu_worker_is_refused(http: Any, runtime: JobRuntime,
                                            redis_client: Any) -> None:
    req = evaluate_request(device="cuda")
    resp = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "no_gpu_worker" and "device" in body["errors"]
    assert redis_client.llen("gpu") == 0
    runtime.jobs.heartbeat("gpu-worker@host", {"queues": ["gpu"]}, ttl_s=30)
    resp = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert resp.status_code == 202
    assert redis_client.llen("gpu") == 1 and redis_client.llen("cpu") == 0


def test_cuda_out_of_memory_fails_job_and_worker_goes_on(
    http: Any, runtime: JobRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load_runner = runtime_mod.load_runner

    def oom_runner(problem: Any, options: Any, ctx: Any) -> Any:
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 139.81 GiB total)")

    monkeypatch.setattr(runtime_mod, "load_runner", lambda spec: oom_runner)
    first = http.post("/v1/jobs", json=evaluate_request(seed=1), headers=AUTH_A).get_json()
    assert runtime.execute(first["id"]) == "failed"
    failed = http.get(f"/v1/jobs/{first['id']}", headers=AUTH_A).get_json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "out_of_memory"
    assert "batch_size" in failed["error"]["message"]
    monkeypatch.setattr(runtime_mod, "load_runner", real_load_runner)
    second = http.post("/v1/jobs", json=evaluate_request(seed=2), headers=AUTH_A).get_json()
    assert runtime.execute(second["id"]) == "succeeded"


def test_json_logs_carry_job_and_tenant(http: Any, runtime: JobRuntime,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from landscope_service.logs import JsonFormatter

    job = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).get_json()
    with caplog.at_level(logging.INFO, logger="landscope.worker"):
        runtime.execute(job["id"])
    started = [r for r in caplog.records if r.getMessage() == "job started"]
    assert started
    line = json.loads(JsonFormatter().format(started[0]))
    assert line["job_id"] == job["id"] and line["tenant"] == "tenant-a"
    assert line["level"] == "INFO" and line["kind"] == "evaluate"


def test_cancel_flag_stops_a_running_job(http: Any, runtime: JobRuntime) -> None:
    job = http.post("/v1/jobs", json=evaluate_request(num_samples=4000, batch_size=1),
                    headers=AUTH_A).get_json()
    runtime.jobs.client.hset(f"ls:job:{job['id']}", "cancel_requested", "1")
    t0 = time.monotonic()
    assert runtime.execute(job["id"]) == "cancelled"
    assert time.monotonic() - t0 < 10


def test_long_poll_answers_when_the_job_finishes(http: Any, runtime: JobRuntime) -> None:
    import threading

    job = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).get_json()
    timer = threading.Timer(0.3, runtime.execute, args=(job["id"],))
    timer.start()
    t0 = time.monotonic()
    got = http.get(f"/v1/jobs/{job['id']}?wait=20", headers=AUTH_A).get_json()
    elapsed = time.monotonic() - t0
    timer.join()
    assert got["status"] == "succeeded"
    assert elapsed < 10  # answered on the finish event, not after the 20 s hold
    resp = http.get(f"/v1/jobs/{job['id']}?wait=31", headers=AUTH_A)
    assert resp.status_code == 422 and "wait" in resp.get_json()["errors"]


def test_submissions_are_rate_limited_per_tenant(settings: Any, redis_client: Any) -> None:
    import dataclasses

    from landscope_service.api import create_app

    now = 1_000_000 * 60 + 10.0  # an injected clock: the three submissions share a minute
    limited = dataclasses.replace(settings, submit_rate_per_min=2)
    http = create_app({"TESTING": True}, settings=limited, clock=lambda: now).test_client()
    for _ in range(2):
        assert http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).status_code == 202
    resp = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A)
    assert resp.status_code == 429 and resp.get_json()["code"] == "rate_limited"
    assert resp.headers["Retry-After"] == "50"
    other = http.post("/v1/jobs", json=evaluate_request(),
                      headers={"Authorization": "Bearer key-b"})
    assert other.status_code == 202  # the limit is per tenant
