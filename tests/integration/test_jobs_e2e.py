"""End to end: the real SDK over real HTTP against the API, Redis and a Celery worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import landscope
from landscope_service.local import LocalStack

from support import block_request, evaluate_request, expire_lease, wait_file

pytestmark = pytest.mark.integration


def _wait_status(client: landscope.Client, job_id: str, statuses: set[str],
                 timeout: float = 60) -> landscope.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.jobs.get(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}; last {job.status}")


def test_progress_seen_mid_run(client_a: landscope.Client, tmp_path: Path) -> None:
    """The job cannot finish before the waiter has seen it mid-run: the progress callback
    itself releases the test_block job's gate."""
    gate = tmp_path / "gate"
    job = client_a.jobs.submit(block_request(str(gate), steps=3))
    assert job.status in ("queued", "running")
    seen: list[tuple[str, float]] = []

    def on_progress(j: landscope.Job) -> None:
        seen.append((j.status, j.progress.fraction))
        if j.status == "running" and 0.0 < j.progress.fraction < 1.0:
            gate.touch()

    done = client_a.jobs.wait(job.id, timeout=120, progress=on_progress)
    assert done.status == "succeeded", done.error
    assert ("running", 0.75) in seen, seen  # steps 3: it waits at 3/4
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions), fractions  # never backwards
    assert done.progress.fraction == 1.0


def test_submit_and_typed_result(client_a: landscope.Client) -> None:
    job = client_a.jobs.submit(evaluate_request(num_samples=300, batch_size=64))
    assert job.status in ("queued", "running")
    done = client_a.jobs.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.progress.fraction == 1.0
    res = done.typed_result()
    assert isinstance(res, landscope.EvaluateResult)
    assert res.num_params == 3 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    assert res.num_samples == 300 and res.loss > 0 and np.isfinite(res.grad_norm)
    assert res.per_sample_loss.min <= res.per_sample_loss.mean <= res.per_sample_loss.max
    assert done.started_at is not None and done.finished_at is not None


def test_result_matches_in_process_core(client_a: landscope.Client) -> None:
    """The worker's number equals the core's, computed here from the same spec."""
    import torch

    from landscope_service.diagnostics.evaluate import evaluate
    from landscope_service.modelspec.build import build_problem

    req = evaluate_request(num_samples=50)
    done = client_a.jobs.wait(client_a.jobs.submit(req).id, timeout=60)
    full = dict(done.request)
    prob = build_problem(full, lambda b: b"", device=torch.device("cpu"), dtype=torch.float64)
    assert done.result is not None
    assert done.result["loss"] == pytest.approx(evaluate(prob)["loss"], rel=1e-12)


def test_cancel_running_then_queued_never_runs(stack: LocalStack, client_a: landscope.Client,
                                               tmp_path: Path) -> None:
    # neither gate is ever created: only the cancels end these jobs
    started = tmp_path / "started"
    running = client_a.jobs.submit(block_request(str(tmp_path / "gate1"), started=str(started)))
    wait_file(started)  # the runner is blocked in the only worker's only pool process
    queued = client_a.jobs.submit(block_request(str(tmp_path / "gate2")))
    assert client_a.jobs.get(queued.id).status == "queued"  # the only worker is busy
    cancelled = client_a.jobs.cancel(queued.id)
    assert cancelled.status == "cancelled"
    client_a.jobs.cancel(running.id)
    stopped = _wait_status(client_a, running.id, {"cancelled", "succeeded", "failed"}, 60)
    assert stopped.status == "cancelled" and stopped.error is not None
    # Even across a worker restart the cancelled job never runs.
    wp = stack.worker_procs[0]
    stack.stop_worker(wp)
    stack.worker_procs.remove(wp)
    stack.start_worker(name="w-restarted")
    stack.wait_ready(90)
    probe = client_a.jobs.wait(client_a.jobs.submit(evaluate_request()).id, timeout=90)
    assert probe.status == "succeeded"
    never = client_a.jobs.get(queued.id)
    assert never.status == "cancelled" and never.started_at is None and never.attempts == 0
    with pytest.raises(landscope.ConflictError):
        client_a.jobs.cancel(never.id)


def test_idempotent_resubmission(client_a: landscope.Client) -> None:
    req = evaluate_request(seed=11, metadata={"run": "idem"})
    first = client_a.jobs.submit(req, idempotency_key="idem-key-1")
    again = client_a.jobs.submit(req, idempotency_key="idem-key-1")
    assert again.id == first.id
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(evaluate_request(seed=12), idempotency_key="idem-key-1")
    assert info.value.code == "idempotency_mismatch"


def test_tenants_are_isolated(client_a: landscope.Client, client_b: landscope.Client) -> None:
    blob = client_a.blobs.upload(b"tenant a's private bytes")
    job = client_a.jobs.submit(evaluate_request(metadata={"owner": "a"}))
    with pytest.raises(landscope.NotFoundError):
        client_b.jobs.get(job.id)
    with pytest.raises(landscope.NotFoundError):
        client_b.blobs.get(blob.id)
    with pytest.raises(landscope.NotFoundError):
        client_b.jobs.cancel(job.id)
    assert all(j.id != job.id for j in client_b.jobs.list())
    assert any(j.id == job.id for j in client_a.jobs.list(metadata={"owner": "a"}))
    # The same bytes uploaded by b become b's blob too, without exposing a's record.
    assert client_b.blobs.upload(b"tenant a's private bytes").id == blob.id
    client_b.blobs.delete(blob.id)  # b's record goes; a's blob stays
    with pytest.raises(landscope.NotFoundError):
        client_b.blobs.get(blob.id)
    assert client_a.blobs.get(blob.id).size == len(b"tenant a's private bytes")
    client_a.jobs.wait(job.id, timeout=60)


def test_worker_killed_mid_job_is_rerun(stack: LocalStack, client_a: landscope.Client,
                                        tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(gate), started=str(started)))
    wait_file(started)  # the first attempt is running, blocked at its gate
    for wp in list(stack.worker_procs):  # SIGKILL the whole worker: main and pool children
        stack.stop_worker(wp, sig=signal.SIGKILL)
        stack.worker_procs.remove(wp)
    assert client_a.jobs.get(job.id).status == "running"  # no worker is left to notice
    expire_lease(stack.redis_url, job.id)  # the dead attempt's lease lapses now, not in 30 s
    gate.touch()  # the re-run passes its gate at once
    stack.start_worker(name="w-after-kill")
    stack.wait_ready(90)
    final = client_a.jobs.wait(job.id, timeout=180)
    assert final.status == "succeeded", final.error
    assert final.attempts == 2


def test_pool_child_killed_mid_job_is_rerun(stack: LocalStack, client_a: landscope.Client,
                                            tmp_path: Path) -> None:
    """Only the worker's pool process dies (the main process lives and forks a new one):
    the redelivered task finds the dead attempt's lease, leaves it, and the reaper re-runs
    the job once the lease lapses (the test expires it instead of waiting)."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(gate), started=str(started)))
    pid = int(wait_file(started))  # the pool process running the first attempt
    live = [w for w in stack.worker_procs if w.proc.poll() is None]
    assert pid in [p for w in live for p in w.child_pids()], "not a pool process"
    os.kill(pid, signal.SIGKILL)
    expire_lease(stack.redis_url, job.id)  # the dead attempt's lease lapses now, not in 30 s
    gate.touch()  # the re-run passes its gate at once
    final = client_a.jobs.wait(job.id, timeout=180)
    assert final.status == "succeeded", final.error
    assert final.attempts == 2
