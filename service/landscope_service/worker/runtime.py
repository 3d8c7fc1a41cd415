"""Running one job inside a worker process: claim, build, run the core, store, finish.

The worker does no numerics itself: it turns the stored request into a
:class:`~landscope_service.diagnostics.Problem` (modelspec), calls the kind's runner
from the core, and writes progress, result and artifacts to the job record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from ..diagnostics import Cancelled, Monitor, RunContext, RunOutput
from ..jobs.estimate import work_per_sample
from ..jobs.registry import kinds, load_runner
from ..jobs.store import JobStore, products_of
from ..logs import job_id_var, tenant_var
from ..reports import job_report
from ..settings import Settings
from ..storage.blobs import BlobService, artifact_key
from ..storage.store import ObjectStore
from .problem_factory import build_for_request
from .watchdog import PollingThread, Watchdog

__all__ = ["JobRuntime", "UserFacingError"]

log = logging.getLogger("landscope.worker")


class UserFacingError(Exception):
    """A failure whose message is meant for the caller, with an error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Lease(PollingThread):
    """Renews the job's lease from a thread while the attempt runs."""

    def __init__(self, store: JobStore, job_id: str, token: str) -> None:
        super().__init__(f"lease-{job_id}", max(0.25, store.lease_s / 4))
        self.store, self.job_id, self.token = store, job_id, token

    def tick(self) -> bool:
        if not self.store.renew(self.job_id, self.token):
            # Another attempt holds the job now (it was re-queued); whichever attempt
            # finishes first writes the (same, seeded) result.
            log.warning("lease of %s taken over by another attempt", self.job_id)
        return True


@dataclass
class JobRuntime:
    settings: Settings
    jobs: JobStore
    blobs: BlobService
    store: ObjectStore
    hostname: str
    make_executor: Callable[[str, dict[str, Any]], Any] | None = None
    hard_stop: Callable[[], None] | None = None
    """Kills this pool process when a cancelled or past-deadline job ignores its checks
    (set in prefork children only; see :mod:`.watchdog`)."""

    def execute(self, job_id: str) -> str:
        """Run ``job_id`` once if it should run; return what happened (for logs/tests)."""
        token_job = job_id_var.set(job_id)
        try:
            return self._execute(job_id)
        finally:
            job_id_var.reset(token_job)

    def _execute(self, job_id: str) -> str:
        code, attempts, token = self.jobs.start(
            job_id, worker=self.hostname, max_attempts=self.settings.max_attempts
        )
        if code in ("missing", "finished", "busy"):
            log.info("job %s not run: %s", job_id, code)
            return code
        if code == "cancelled":
            self.jobs.mark_cancelled(job_id)
            return code
        if code == "expired":
            self.jobs.expire(job_id)
            return code
        if code == "exhausted":
            self.jobs.fail(
                job_id, "worker_lost",
                f"The job's worker died in each of its {attempts} runs "
                f"(LANDSCOPE_MAX_ATTEMPTS={self.settings.max_attempts}); the job may exhaust "
                "the worker's memory or crash its process.",
            )
            return "failed"
        self.jobs.set_pid(job_id, os.getpid())
        with _Lease(self.jobs, job_id, token):
            return self._run(job_id, attempts)

    # ------------------------------------------------------------------ internals
    def _run(self, job_id: str, attempts: int) -> str:
        raw = self.jobs.raw(job_id)
        if raw is None or "doc" not in raw:
            return "missing"
        doc = json.loads(raw["doc"])
        max_runtime = float(raw["max_runtime_s"]) if raw.get("max_runtime_s") else None
        watchdog = Watchdog(self.jobs, job_id, max_runtime_s=max_runtime,
                            grace_s=self.settings.cancel_grace_s, hard_stop=self.hard_stop)
        with watchdog:
            return self._attempt(job_id, attempts, doc, watchdog)

    def _attempt(self, job_id: str, attempts: int, doc: dict[str, Any],
                 watchdog: Watchdog) -> str:
        tenant, req = doc["tenant"], doc["request"]
        tenant_var.set(tenant)
        log.info("job started", extra={"attempt": attempts, "kind": doc["kind"]})
        self.jobs.progress(job_id, "starting", 0.0, f"attempt {attempts} on {self.hostname}")

        def progress(stage: str, fraction: float, message: str) -> None:
            if not watchdog.stop_requested():  # a stopped job's progress stays as it was
                self.jobs.progress(job_id, stage, fraction, message)

        def should_cancel() -> bool:
            return watchdog.stop_requested() or self.jobs.cancel_requested(job_id)

        monitor = Monitor(progress=progress, should_cancel=should_cancel, min_interval=0.25)
        execution: dict[str, Any] = {"worker": self.hostname, "pieces": {}}
        t_start = time.monotonic()
        try:
            output = self._compute(job_id, tenant, req, monitor, execution)
            report = job_report(doc, output.result, output.artifacts)  # report.html
            artifacts = self._store_artifacts(
                job_id, [*output.artifacts, *([report] if report is not None else [])])
            result = json.loads(json.dumps(output.result, allow_nan=False))
        except Cancelled:
            if watchdog.reason == "deadline":
                self.jobs.fail(job_id, "deadline_exceeded", watchdog.deadline_message(),
                               allowed=("running",))
                return "failed"
            self.jobs.mark_cancelled(job_id)
            return "cancelled"
        except UserFacingError as e:
            self.jobs.fail(job_id, e.code, str(e))
            return "failed"
        except BaseException as e:
            code, message = classify_failure(e)
            if code is None:
                raise
            log.error("job %s failed: %s\n%s", job_id, message, traceback.format_exc())
            self.jobs.fail(job_id, code, message)
            if code == "out_of_memory":
                _release_gpu_memory()
            return "failed"
        products = products_of(result)
        if products:
            work = work_per_sample(req["model"].get("architecture") or {}) or int(
                execution.get("num_params", 0))
            self.jobs.record_rate(self.hostname, products=products,
                                  seconds=time.monotonic() - t_start,
                                  units=work * int(execution.get("num_samples", 0)))
        if not self.jobs.succeed(job_id, result, artifacts, execution):
            # cancelled (or re-run) meanwhile: the first writer wins
            return self.jobs.status(job_id) or "missing"
        log.info("job succeeded")
        return "succeeded"

    def _compute(self, job_id: str, tenant: str, req: dict[str, Any], monitor: Monitor,
                 execution: dict[str, Any]) -> RunOutput:
        spec = kinds().get(str(req.get("kind", "")))
        if spec is None:
            raise UserFacingError("unknown_kind", f"Unknown kind {req.get('kind')!r}.")
        problem, load_params = build_for_request(self, tenant, req)
        execution.update(num_params=problem.num_params, num_samples=problem.num_samples)
        runner = load_runner(spec)
        executor = None
        if self.make_executor is not None:
            executor = self.make_executor(job_id, req)
        ctx = RunContext(monitor=monitor, seed=int(req.get("seed", 0)), load_params=load_params)
        if executor is not None:
            ctx.executor = executor
        options = dict(req["options"])
        estimate = json.loads((self.jobs.raw(job_id) or {}).get("estimate") or "null")
        if options.get("mode") == "auto" and isinstance(estimate, dict) and estimate.get("mode"):
            # "auto" runs the mode the submit-time estimate found cheaper (job.estimate)
            options["mode"] = estimate["mode"]
        monitor.report("running", 0.0, spec.name, force=True)
        out = runner(problem, options, ctx)
        pieces = getattr(executor, "pieces_by_worker", None)
        if pieces:
            execution["pieces"] = dict(pieces)
        return out

    def _store_artifacts(self, job_id: str, artifacts: list[Any]) -> list[dict[str, Any]]:
        out = []
        for art in artifacts:
            self.store.put(artifact_key(job_id, art.name), art.data,
                           ttl_s=self.settings.result_ttl_s)
            out.append({"name": art.name, "media_type": art.media_type, "size": len(art.data),
                        "sha256": hashlib.sha256(art.data).hexdigest()})
        return out


def _release_gpu_memory() -> None:
    """After a CUDA out-of-memory error, hand cached blocks back so the next job fits."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        log.warning("could not empty the CUDA cache", exc_info=True)


def classify_failure(e: BaseException) -> tuple[str | None, str]:
    """Map an exception from a run to an error code and a message for the caller."""
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(e, SoftTimeLimitExceeded):
        return "time_limit", "The job exceeded its time limit (LANDSCOPE_SOFT_TIME_LIMIT_S)."
    if isinstance(e, redis.ConnectionError | redis.TimeoutError):
        # Redis went away mid-run (a restart): not the job's fault. The task raises, the
        # lease lapses and the reaper runs the job again (bounded by LANDSCOPE_MAX_ATTEMPTS).
        return None, ""
    name = type(e).__name__
    text = str(e)
    if (name == "OutOfMemoryError" or isinstance(e, MemoryError)
            or "out of memory" in text.lower() or "DefaultCPUAllocator: can't allocate" in text
            or "Cannot allocate memory" in text):
        device = "CPU" if (isinstance(e, MemoryError) or "CPU" in text
                           or "Cannot allocate memory" in text) else "device"
        return "out_of_memory", (
            f"The {device} ran out of memory: {name}: {text or 'allocation failed'}. Use a "
            "smaller batch_size, float32, or a smaller model; the worker survived and took "
            "the next job."
        )
    if isinstance(e, FloatingPointError):
        return "numerical_error", str(e)
    if isinstance(e, ValueError) and "Out of range float values are not JSON" in str(e):
        return "invalid_result", "The computation produced NaN or infinity."
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
        return None, ""
    if isinstance(e, Exception):
        return "internal_error", f"{name}: {e}"
    return None, ""
