"""Celery tasks: thin shells around :class:`JobRuntime`.

Start a worker with ``landscope-service worker`` (or
``celery -A landscope_service.worker.tasks:app worker -Q cpu``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import redis
from celery import signals

from ..jobs.events import WEBHOOK_QUEUE
from ..jobs.store import JobStore
from ..settings import load_settings
from ..storage.blobs import BlobService
from ..storage.store import make_store
from .celery_app import make_celery
from .heartbeat import Heartbeat
from .runtime import JobRuntime
from .webhooks import register_webhook_task

log = logging.getLogger("landscope.worker")

settings = load_settings()
app = make_celery(settings)

_state: dict[str, Any] = {}

deliver_webhook = register_webhook_task(app, settings)


def _send_webhook(delivery_id: str) -> None:
    app.send_task("landscope.deliver_webhook", args=[delivery_id], queue=WEBHOOK_QUEUE)


def _runtime(hostname: str) -> JobRuntime:
    rt = _state.get("runtime")
    if rt is None or _state.get("pid") != os.getpid():
        client = redis.Redis.from_url(settings.redis_url)
        store = make_store(settings.storage, data_dir=settings.data_dir, client=client)
        jobs = JobStore(client, result_ttl_s=settings.result_ttl_s,
                        idempotency_ttl_s=settings.idempotency_ttl_s, lease_s=settings.lease_s)
        jobs.events.sender = _send_webhook

        from .fanout import make_executor_factory

        blobs = BlobService(client, store, ttl_s=settings.blob_ttl_s)  # reads renew retention
        rt = JobRuntime(settings=settings, jobs=jobs, blobs=blobs,
                        store=store, hostname=hostname)
        rt.make_executor = make_executor_factory(app, rt)
        if _state.get("forked_child"):
            rt.hard_stop = _kill_this_process
        _state.update(runtime=rt, pid=os.getpid())
    return rt  # type: ignore[no-any-return]


def _kill_this_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


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
    # a prefork child may be killed when a cancelled job ignores its checks: the pool
    # replaces it (never in solo/threads pools, where this is the worker itself)
    _state["forked_child"] = True


@signals.worker_ready.connect
def _start_background(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    queues = sorted(q.name for q in app.amqp.queues.consume_from.values()) \
        if app.amqp.queues.consume_from else ["cpu"]
    concurrency = int(getattr(sender, "concurrency", 1) or 1)

    def send(job_id: str, queue: str) -> None:
        app.send_task("landscope.run_job", args=[job_id], queue=queue)

    hb = Heartbeat(settings, hostname, queues, concurrency, send)
    hb.jobs.events.sender = _send_webhook  # the reaper's transitions send webhooks too
    _state["heartbeat"] = hb.start()


@signals.worker_shutdown.connect
def _stop_background(**_: Any) -> None:
    hb = _state.get("heartbeat")
    if hb is not None:
        hb.stop.set()
