"""Cancel that always ends, run-time and queue deadlines, CPU out-of-memory, heartbeat.

Real (private) Redis; time is a fake clock the tests move, never a sleep."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from landscope_service.jobs.store import JobStore
from landscope_service.settings import load_settings
from landscope_service.worker.heartbeat import Heartbeat, worker_devices
from landscope_service.worker.runtime import classify_failure
from landscope_service.worker.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def jobs(redis_client: Any) -> JobStore:
    return JobStore(redis_client, lease_s=5.0)


def _running(jobs: JobStore, **kw: Any) -> str:
    job, _ = jobs.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={},
                         queue="cpu", **kw)
    code, _, _ = jobs.start(job["id"], worker="w", max_attempts=3)
    assert code == "started"
    jobs.progress(job["id"], "extremes", 0.4, "product 40/100")
    return str(job["id"])


def test_cancel_ignored_past_grace_finalises_then_hard_stops(jobs: JobStore) -> None:
    job_id = _running(jobs)
    clock, kills = Clock(), []
    wd = Watchdog(jobs, job_id, max_runtime_s=None, grace_s=2.0,
                  hard_stop=lambda: kills.append(1), clock=clock)
    assert wd.tick() and not wd.stop_requested()
    jobs.request_cancel(job_id)
    assert wd.tick() and wd.reason == "cancelled"          # cooperative checks now raise
    clock.t += 1.9
    assert wd.tick() and jobs.status(job_id) == "running" and not kills  # within grace
    clock.t += 0.2
    assert not wd.tick()                                    # grace over: end it
    assert jobs.status(job_id) == "cancelled" and kills == [1]
    assert job_id.encode() not in jobs.client.smembers("ls:running")


def test_no_hard_stop_when_the_job_finished_in_the_grace_period(jobs: JobStore) -> None:
    job_id = _running(jobs)
    clock, kills = Clock(), []
    wd = Watchdog(jobs, job_id, max_runtime_s=None, grace_s=2.0,
                  hard_stop=lambda: kills.append(1), clock=clock)
    jobs.request_cancel(job_id)
    wd.tick()
    jobs.mark_cancelled(job_id)  # the computation stopped at a check and ended the job
    clock.t += 3
    wd.tick()
    assert kills == []


def test_deadline_fails_at_once_keeps_progress_then_hard_stops(jobs: JobStore) -> None:
    job_id = _running(jobs, max_runtime_s=10)
    raw = jobs.raw(job_id) or {}
    clock, kills = Clock(), []
    wd = Watchdog(jobs, job_id, max_runtime_s=float(raw["max_runtime_s"]), grace_s=2.0,
                  hard_stop=lambda: kills.append(1), clock=clock)
    clock.t += 9.9
    assert wd.tick() and not wd.stop_requested()
    clock.t += 0.2
    assert wd.tick() and wd.reason == "deadline"
    job = jobs.get(job_id) or {}
    assert job["status"] == "failed" and job["error"]["code"] == "deadline_exceeded"
    assert "max_runtime_s=10" in job["error"]["message"]
    assert job["progress"] == {"stage": "extremes", "fraction": 0.4,
                               "message": "product 40/100"}
    assert job["limits"]["max_runtime_s"] == 10
    clock.t += 2.1
    assert not wd.tick() and kills == [1]


def test_solo_pool_finalises_without_killing(jobs: JobStore) -> None:
    job_id = _running(jobs)
    clock = Clock()
    wd = Watchdog(jobs, job_id, max_runtime_s=None, grace_s=1.0, hard_stop=None, clock=clock)
    jobs.request_cancel(job_id)
    wd.tick()
    clock.t += 1.5
    assert not wd.tick() and jobs.status(job_id) == "cancelled"


def test_queue_deadline_expires_a_job_never_started(jobs: JobStore) -> None:
    job, _ = jobs.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={},
                         queue="cpu", queue_timeout_s=30)
    other, _ = jobs.create(tenant="a", kind="evaluate", request={"x": 2}, metadata={},
                           queue="cpu", queue_timeout_s=300)
    assert job["limits"]["queue_deadline_at"] is not None
    created = jobs.client.hget(f"ls:job:{job['id']}", "queue_deadline_at")
    now = float(created or 0)
    assert jobs.expire_overdue(now - 1) == []
    assert jobs.expire_overdue(now + 1) == [job["id"]]
    got = jobs.get(job["id"]) or {}
    assert got["status"] == "expired" and got["error"]["code"] == "expired"
    assert got["finished_at"] is not None
    assert jobs.start(job["id"], worker="w", max_attempts=3)[0] == "finished"
    assert jobs.status(other["id"]) == "queued"
    # a started job leaves the deadline index: its queue deadline no longer applies
    assert jobs.start(other["id"], worker="w", max_attempts=3)[0] == "started"
    assert jobs.client.zcard("ls:queue_deadlines") == 0


def test_start_after_the_queue_deadline_says_expired(jobs: JobStore) -> None:
    job, _ = jobs.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={},
                         queue="cpu", queue_timeout_s=30)
    jobs.client.hset(f"ls:job:{job['id']}", "queue_deadline_at", 1.0)  # long past
    assert jobs.start(job["id"], worker="w", max_attempts=3)[0] == "expired"
    assert jobs.expire(job["id"]) and jobs.status(job["id"]) == "expired"


def test_cancel_of_a_missing_job_creates_nothing(jobs: JobStore) -> None:
    assert jobs.request_cancel("job_00000000000000000000000000") is None
    assert not jobs.client.exists("ls:job:job_00000000000000000000000000")


@pytest.mark.parametrize("exc", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                 "allocate memory: you tried to allocate 34359738368 bytes. Error code 12 "
                 "(Cannot allocate memory)"),
])
def test_cpu_out_of_memory_is_out_of_memory(exc: BaseException) -> None:
    code, message = classify_failure(exc)
    assert code == "out_of_memory"
    assert "CPU ran out of memory" in message and "batch_size" in message


def test_other_runtime_errors_stay_internal() -> None:
    assert classify_failure(RuntimeError("shape mismatch"))[0] == "internal_error"


def test_heartbeat_carries_rates_and_expires_overdue_jobs(jobs: JobStore,
                                                          redis_url: str) -> None:
    settings = load_settings({}, redis_url=redis_url, lease_s=2.0)
    jobs.record_rate("w1", products=100, seconds=2.0, units=1000)
    jobs.record_rate("w1", products=0, seconds=2.0, units=1000)  # nothing to learn
    job, _ = jobs.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={},
                         queue="cpu", queue_timeout_s=1)
    jobs.client.hset(f"ls:job:{job['id']}", "queue_deadline_at", 1.0)
    jobs.client.zadd("ls:queue_deadlines", {job["id"]: 1.0})
    sent: list[tuple[str, str]] = []
    hb = Heartbeat(settings, "w1", ["cpu"], 2, lambda j, q: sent.append((j, q)), jobs=jobs)
    hb.tick()
    (worker,) = jobs.workers()
    assert worker["name"] == "w1" and worker["devices"] == ["cpu"]
    assert worker["rates"] == [{"units": 1000, "seconds_per_product": 0.02}]
    assert jobs.status(job["id"]) == "expired" and sent == []
    raw = jobs.client.get("ls:worker:w1")
    assert json.loads(raw or b"{}")["concurrency"] == 2


def test_worker_devices_never_ask_torch() -> None:
    assert worker_devices(["cpu"]) == ["cpu"]
    assert worker_devices(["gpu"], {"CUDA_VISIBLE_DEVICES": "0,2"}) == ["cpu", "cuda:0",
                                                                        "cuda:2"]
    assert worker_devices(["gpu"], {}) == ["cpu", "cuda"]


def test_limits_from_request_tenant_and_defaults() -> None:
    from landscope_service.jobs.deadlines import resolve_limits

    s = load_settings({"LANDSCOPE_MAX_RUNTIME_S": "600", "LANDSCOPE_QUEUE_TIMEOUT_S": "60",
                       "LANDSCOPE_TENANT_MAX_RUNTIME_S": "big:7200,small:30"})
    assert resolve_limits({}, s, "other").max_runtime_s == 600          # the default
    assert resolve_limits({"max_runtime_s": 9000}, s, "other").max_runtime_s == 600  # ceiling
    assert resolve_limits({"max_runtime_s": 5}, s, "small").max_runtime_s == 5
    assert resolve_limits({}, s, "big").max_runtime_s == 7200
    assert resolve_limits({}, s, "big").queue_timeout_s == 60
    assert resolve_limits({"queue_timeout_s": 5}, s, "big").queue_timeout_s == 5
    none = resolve_limits({}, load_settings({}), "t")
    assert none.max_runtime_s is None and none.queue_timeout_s is None
    from landscope_service.settings import SettingsError

    with pytest.raises(SettingsError, match="tenant:seconds"):
        load_settings({"LANDSCOPE_TENANT_MAX_RUNTIME_S": "big:-3"})


def test_products_of_reads_totals_by_part() -> None:
    from landscope_service.jobs.store import products_of

    assert products_of({"products": {"total": 830, "extremes": 180}}) == 830
    assert products_of({"cost": {"products": 12}}) == 12
    assert products_of({"products": True}) is None and products_of({}) is None


def _stuck_child() -> Any:
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_worker_fallback_kills_a_stuck_pool_process(jobs: JobStore, redis_url: str) -> None:
    import time

    settings = load_settings({}, redis_url=redis_url, lease_s=2.0, cancel_grace_s=2.0)
    hb = Heartbeat(settings, "w", ["cpu"], 1, lambda j, q: None, jobs=jobs)
    cancelled, plain, recent, stranger = (_running(jobs) for _ in range(4))
    deadline = _running(jobs, max_runtime_s=10)
    children = {j: _stuck_child() for j in (cancelled, deadline, recent)}
    try:
        for job_id, child in children.items():
            jobs.set_pid(job_id, child.pid)
        jobs.set_pid(stranger, os.getpid())  # not a child of this process: never killed
        now = time.time()
        for job_id in (cancelled, stranger):
            jobs.request_cancel(job_id)
            jobs.client.hset(f"ls:job:{job_id}", "cancel_requested_at", now - 7)  # > 3 x 2 s
        jobs.request_cancel(recent)                                             # within 6 s
        jobs.client.hset(f"ls:job:{deadline}", "started_at", now - 17)          # 10 + 6 < 17
        assert sorted(hb.stop_stuck(now)) == sorted([cancelled, deadline])
        assert children[cancelled].wait(10) == -9 and children[deadline].wait(10) == -9
        assert children[recent].poll() is None
        assert jobs.status(cancelled) == "cancelled" and jobs.status(stranger) == "cancelled"
        failed = jobs.get(deadline) or {}
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "deadline_exceeded"
        assert jobs.status(recent) == "running" and jobs.status(plain) == "running"
    finally:
        for child in children.values():
            child.kill()
            child.wait()
