"""The worker's background thread (in the Celery parent process): heartbeat and reaper.

Every ``lease_s / 4`` seconds it writes the worker's heartbeat (``ls:worker:<name>``,
read by ``/readyz``, the GPU routing check and the cost estimates: it carries the
per-product rates this worker measured); every other tick it re-queues or fails jobs whose
lease lapsed (:func:`~landscope_service.jobs.reaper.reap`) and ends queued jobs past their
queue deadline (``expired``). It never touches torch or CUDA: the pool forks after it starts.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ..jobs.reaper import reap
from ..jobs.redelivery import redis_restarted, resend_stranded
from ..jobs.store import JobStore
from ..settings import Settings
from .watchdog import deadline_message

__all__ = ["Heartbeat", "is_child_process", "worker_devices"]

log = logging.getLogger("landscope.worker")

SendFn = Callable[[str, str], None]


def is_child_process(pid: int) -> bool:
    """Whether ``pid`` is a child of this process (a prefork pool process), from
    ``/proc/<pid>/stat``; False where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2:].split()
    return len(fields) > 1 and fields[1] == str(os.getpid())


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def worker_devices(queues: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """The devices a worker serves, without asking torch.cuda (CUDA must stay untouched in
    the parent before the pool forks): ``CUDA_VISIBLE_DEVICES`` names the GPUs."""
    if "gpu" not in queues:
        return ["cpu"]
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [d for d in visible.split(",") if d] if visible else []
    return ["cpu"] + ([f"cuda:{d}" for d in ids] if ids else ["cuda"])


class Heartbeat:
    """Heartbeat, reaper and queue-deadline sweep of one worker, in a daemon thread.

    Args:
        settings: lease, attempts and Redis settings.
        hostname: the worker's name (its heartbeat key).
        queues: the queues it consumes.
        concurrency: its pool size.
        send: re-sends a job's task (``send(job_id, queue)``).
        jobs: the job store (built from ``settings.redis_url`` if None).
    """

    def __init__(self, settings: Settings, hostname: str, queues: list[str], concurrency: int,
                 send: SendFn, jobs: JobStore | None = None) -> None:
        self.settings, self.hostname, self.send = settings, hostname, send
        self.jobs = jobs or JobStore(redis.Redis.from_url(settings.redis_url),
                                     lease_s=settings.lease_s,
                                     result_ttl_s=settings.result_ttl_s)
        self.info: dict[str, Any] = {"queues": queues, "concurrency": concurrency,
                                     "pid": os.getpid(), "devices": worker_devices(queues)}
        self.period = max(0.5, settings.lease_s / 4)
        self.ttl = max(3.0, settings.lease_s)
        self.stop = threading.Event()
        self.kill: Callable[[int], None] = _kill
        self._ticks = 0
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One heartbeat; every other tick also one reaper and queue-deadline sweep."""
        rates = self.jobs.product_rates(self.hostname)
        self.jobs.heartbeat(self.hostname, {**self.info, "rates": rates}, self.ttl)
        if redis_restarted(self.jobs.client):  # queued jobs whose messages it stranded
            resend_stranded(self.jobs.client, self.send)
        if self._ticks % 2 == 0:
            for job_id, action in reap(self.jobs, self.send,
                                       max_attempts=self.settings.max_attempts):
                log.warning("reaper: job %s %s", job_id, action)
            for job_id in self.jobs.expire_overdue():
                log.warning("job %s expired: not started before its queue deadline", job_id)
        self.stop_stuck()
        self._ticks += 1

    def stop_stuck(self, now: float | None = None) -> list[str]:
        """Fallback of the attempts' own watchdogs (``watchdog.py``), which need the
        GIL: a job of this worker still running ``3 * LANDSCOPE_CANCEL_GRACE_S`` after
        its cancel or past its deadline is finalised here and its pool process (a child
        of this process, recorded in the job) killed. Returns the jobs stopped."""
        now = time.time() if now is None else now
        late = 3 * self.settings.cancel_grace_s
        out = []
        for job_id, raw in self.jobs.running_on(self.hostname):
            limit = float(raw["max_runtime_s"]) if raw.get("max_runtime_s") else None
            started = float(raw.get("started_at") or now)
            if raw.get("cancel_requested") == "1":
                if now - float(raw.get("cancel_requested_at") or now) < late:
                    continue
                self.jobs.mark_cancelled(job_id, allowed=("running",))
            elif limit is not None and now - started > limit + late:
                self.jobs.fail(job_id, "deadline_exceeded", deadline_message(limit),
                               allowed=("running",))
            else:
                continue
            pid = int(raw.get("pid") or 0)
            if pid and is_child_process(pid):
                log.warning("job %s: its pool process %d did not stop; killing it", job_id, pid)
                self.kill(pid)
                out.append(job_id)
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception:
                log.warning("heartbeat/reaper iteration failed", exc_info=True)
            self.stop.wait(self.period)
        try:
            self.jobs.drop_worker(self.hostname)
        except Exception:
            pass

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self.run, name="landscope-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self
