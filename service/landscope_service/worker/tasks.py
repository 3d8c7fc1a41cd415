"""Celery tasks: thin shells around :class:`JobRuntime`.

Start a worker with ``landscope-service worker`` (or
``celery -A landscope_service.worker.tasks:app worker -Q cpu``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import redis
from celery import signals

from ..jobs.reaper import reap
from ..jobs.store import JobStore
from ..settings import load_settings
from ..storage.blobs import BlobService
from ..storage.store import make_store
from .celery_app import make_celery
from .runtime import JobRuntime

log = logging.getLogger("landscope.worker")

settings = load_settings()
app = make_celery(settings)

_state: dict[str, Any] = {}


def _runtime(hostname: str) -> JobRuntime:
    rt = _state.get("runtime")
    if rt is None or _state.get("pid") != os.getpid():
        client = redis.Redis.from_url(settings.redis_url)
        store = make_store(settings.storage, data_dir=settings.data_dir, client=client)
        jobs = JobStore(client, result_ttl_s=settings.result_ttl_s,
                        idempotency_ttl_s=settings.idempotency_ttl_s, lease_s=settings.lease_s)

        from .fanout import make_executor_factory

        blobs = BlobService(client, store, ttl_s=settings.blob_ttl_s)  # reads renew retention
        rt = JobRuntime(settings=settings, jobs=jobs, blobs=blobs,
                        store=store, hostname=hostname)
        rt.make_executor = make_executor_factory(app, rt)
        _state.update(runtime=rt, pid=os.getpid())
    return rt  # type: ignore[no-any-return]


@app.task(name="landscope.run_job", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Any, job_id: str) -> str:
    """Run one job (idempotent: a duplicate delivery finds it claimed or finished)."""
    return _runtime(self.request.hostname or socket.gethostname()).execute(job_id)


@app.task(name="landscope.run_pieces", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_pieces(self: Any, job_id: str, fanout_id: str) -> int:
    """Help a running job: take its independent pieces off a shared list until none remain."""
    from .fanout import help_with_pieces

    return help_with_pieces(_runtime(self.request.hostname or socket.gethostname()),
                            job_id, fanout_id)


# ---------------------------------------------------------------- process set-up
@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    from ..logs import configure_logging

    configure_logging(settings.log_level)


@signals.worker_init.connect
def _import_torch_in_parent(**_: Any) -> None:
    # Import torch once in the parent, before the pool forks; never touch CUDA here.
    import torch  # noqa: F401


@signals.worker_process_init.connect
def _per_child(**_: Any) -> None:
    import torch

    threads = settings.torch_threads
    if threads <= 0:
        conc = int(os.environ.get("LANDSCOPE_WORKER_CONCURRENCY", "1") or 1)
        threads = max(1, (os.cpu_count() or 1) // max(conc, 1))
    torch.set_num_threads(threads)
    _state.clear()


def _background(hostname: str, queues: list[str], concurrency: int) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    jobs = JobStore(client, lease_s=settings.lease_s, result_ttl_s=settings.result_ttl_s)
    stop = _state.setdefault("stop", threading.Event())
    period = max(0.5, settings.lease_s / 4)
    ttl = max(3.0, settings.lease_s)

    def send(job_id: str, queue: str) -> None:
        app.send_task("landscope.run_job", args=[job_id], queue=queue)

    def devices() -> list[str]:
        # Never ask torch.cuda in this (parent) process: CUDA must stay untouched before
        # the pool forks its children. CUDA_VISIBLE_DEVICES names the worker's GPUs.
        if "gpu" not in queues:
            return ["cpu"]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        ids = [d for d in visible.split(",") if d] if visible else []
        return ["cpu"] + ([f"cuda:{d}" for d in ids] if ids else ["cuda"])

    info = {"queues": queues, "concurrency": concurrency, "pid": os.getpid()}
    info["devices"] = devices()
    ticks = 0
    while not stop.is_set():
        try:
            jobs.heartbeat(hostname, info, ttl)
            if ticks % 2 == 0:
                for job_id, action in reap(jobs, send, max_attempts=settings.max_attempts):
                    log.warning("reaper: job %s %s", job_id, action)
        except Exception:
            log.warning("heartbeat/reaper iteration failed", exc_info=True)
        ticks += 1
        stop.wait(period)
    try:
        jobs.drop_worker(hostname)
    except Exception:
        pass


@signals.worker_ready.connect
def _start_background(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    queues = sorted(q.name for q in app.amqp.queues.consume_from.values()) \
        if app.amqp.queues.consume_from else ["cpu"]
    concurrency = int(getattr(sender, "concurrency", 1) or 1)
    threading.Thread(target=_background, args=(hostname, queues, concurrency),
                     name="landscope-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_background(**_: Any) -> None:
    stop = _state.get("stop")
    if stop is not None:
        stop.set()
