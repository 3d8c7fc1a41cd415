"""The Celery application (importing it never imports torch)."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from ..settings import Settings, load_settings

__all__ = ["QUEUES", "make_celery"]

QUEUES = ("cpu", "gpu")


def make_celery(settings: Settings | None = None) -> Celery:
    s = settings or load_settings()
    app = Celery("landscope", broker=s.redis_url, backend=None, set_as_current=False)
    app.conf.update(
        task_default_queue="cpu",
        task_queues=[Queue(q) for q in QUEUES],
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=s.soft_time_limit_s,
        task_time_limit=s.hard_time_limit_s,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Our own leases detect dead workers within LANDSCOPE_LEASE_S; the broker's
        # visibility timeout is only the last resort (see DESIGN.md, pitfalls).
        broker_transport_options={"visibility_timeout": max(3600, s.hard_time_limit_s + 600)},
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    app.conf.landscope_settings = s
    return app
