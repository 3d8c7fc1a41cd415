"""Cancel that always ends, run-time and queue deadlines: real Redis, real Celery worker
(prefork, one process), real HTTP through the SDK. The jobs are ``test_block`` jobs that
run exactly as long as the test wants; nothing is made long by size.

The only clock bound asserted is the product's promise: a cancelled job is ``cancelled``
within 5 s of the request (the grace period is 2 s; the watchdog polls every 0.25 s).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import landscope

from support import block_request, evaluate_request, wait_file

pytestmark = pytest.mark.integration


def _gone(pid: int, timeout: float = 30) -> bool:
    """Whether process ``pid`` has exited (polled: an event, bounded against hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_cancel_of_a_job_that_ignores_it_kills_its_process_and_the_worker_goes_on(
        client_a: landscope.Client, tmp_path: Path) -> None:
    started = tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(tmp_path / "gate"), started=str(started),
                                             ignore_cancel=True, steps=1))
    pid = int(wait_file(started))
    asked = datetime.now(UTC)
    client_a.jobs.cancel(job.id)
    done = client_a.jobs.wait(job.id, timeout=30)
    assert done.status == "cancelled"
    assert done.finished_at is not None
    latency = (done.finished_at - asked).total_seconds()
    print(f"hard-stop cancel latency {latency:.2f} s")
    assert latency < 5.0
    assert done.progress.fraction == pytest.approx(0.5)   # progress kept where it stopped
    # the pool process that ran it was killed; the worker replaced it and takes the next job
    assert _gone(pid)
    nxt = client_a.jobs.wait(client_a.jobs.submit(evaluate_request(seed=11)).id, timeout=120)
    assert nxt.status == "succeeded", nxt.error
    # the killed task's redelivery found the job finished: it stays cancelled, run once
    again = client_a.jobs.get(job.id)
    assert again.status == "cancelled" and again.attempts == 1


def test_cooperative_cancel_is_prompt(client_a: landscope.Client, tmp_path: Path) -> None:
    started = tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(tmp_path / "gate"), started=str(started)))
    pid = int(wait_file(started))
    asked = datetime.now(UTC)
    client_a.jobs.cancel(job.id)
    done = client_a.jobs.wait(job.id, timeout=30)
    assert done.status == "cancelled" and done.finished_at is not None
    latency = (done.finished_at - asked).total_seconds()
    print(f"cooperative cancel latency {latency:.2f} s")
    assert latency < 5.0
    assert not _gone(pid, timeout=0.5)  # stopped at its check: the process lives on


def test_deadline_exceeded_keeps_progress(client_a: landscope.Client, tmp_path: Path) -> None:
    started = tmp_path / "started"
    req = block_request(str(tmp_path / "gate"), started=str(started), steps=2)
    req["max_runtime_s"] = 1
    job = client_a.jobs.submit(req)
    assert job.limits is not None and job.limits["max_runtime_s"] == 1
    wait_file(started)  # never released: only the deadline ends it
    done = client_a.jobs.wait(job.id, timeout=60)
    assert done.status == "failed"
    assert done.error is not None and done.error.code == "deadline_exceeded"
    assert "max_runtime_s=1" in done.error.message
    assert done.progress.stage == "test_block"
    assert done.progress.fraction == pytest.approx(2 / 3)


def test_deadline_of_a_job_that_ignores_checks(client_a: landscope.Client,
                                               tmp_path: Path) -> None:
    started = tmp_path / "started"
    req = block_request(str(tmp_path / "gate"), started=str(started), ignore_cancel=True)
    req["max_runtime_s"] = 1
    job = client_a.jobs.submit(req)
    pid = int(wait_file(started))
    done = client_a.jobs.wait(job.id, timeout=60)
    assert done.status == "failed" and done.error is not None
    assert done.error.code == "deadline_exceeded"
    assert _gone(pid)  # killed after the grace period
    nxt = client_a.jobs.wait(client_a.jobs.submit(evaluate_request(seed=12)).id, timeout=120)
    assert nxt.status == "succeeded", nxt.error


def test_a_job_not_started_before_its_queue_deadline_expires(client_a: landscope.Client,
                                                             tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    blocker = client_a.jobs.submit(block_request(str(gate), started=str(started)))
    wait_file(started)  # the only worker process is busy from now on
    req = evaluate_request(seed=13)
    req["queue_timeout_s"] = 1
    queued = client_a.jobs.submit(req)
    assert queued.limits is not None and queued.limits["queue_deadline_at"]
    expired = client_a.jobs.wait(queued.id, timeout=60)  # the reaper ends it while queued
    assert expired.status == "expired" and expired.is_finished
    assert expired.error is not None and expired.error.code == "expired"
    assert expired.started_at is None
    gate.touch()
    assert client_a.jobs.wait(blocker.id, timeout=60).status == "succeeded"
    # its task, delivered after the blocker, found it expired and did not run it
    nxt = client_a.jobs.wait(client_a.jobs.submit(evaluate_request(seed=14)).id, timeout=120)
    assert nxt.status == "succeeded"
    after = client_a.jobs.get(queued.id)
    assert after.status == "expired" and after.attempts == 0
    listed = client_a.jobs.list(status="expired")
    assert queued.id in [j.id for j in listed]
