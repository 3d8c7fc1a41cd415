"""The webhook delivery task (queue ``webhooks``).

One delivery is one event of one job (:class:`~..jobs.webhooks.Deliveries`). An attempt
POSTs the stored body, signed with the tenant's valid secrets, without following
redirects; a 2xx ends it ``delivered``. Anything else (an error status, a redirect, a
refused or timed-out connection, a host that now resolves to a private address) is logged
in the delivery's attempts and retried after ``LANDSCOPE_WEBHOOK_BACKOFF_S * 2**n`` seconds
(capped at one hour) until ``LANDSCOPE_WEBHOOK_RETRY_S`` (24 h) after the first attempt;
then the delivery ends ``failed``. The job itself never waits for or depends on this.

Run a worker for it with ``landscope-service worker --queues webhooks --pool threads
--concurrency 8`` (deliveries wait on the network, not on the CPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
from celery import Celery

from ..jobs.events import WEBHOOK_QUEUE
from ..jobs.webhooks import Deliveries, WebhookSecrets, check_webhook_url
from ..settings import Settings

__all__ = ["MAX_DELAY_S", "WebhookSender", "register_webhook_task"]

log = logging.getLogger("landscope.webhooks")

MAX_DELAY_S = 3600.0  # below the broker's visibility timeout, so a held retry is not re-sent


@dataclass
class WebhookSender:
    """Attempts deliveries; ``post`` and ``clock`` are injectable for tests."""

    settings: Settings
    client: redis.Redis
    post: Callable[..., requests.Response] = requests.post
    clock: Callable[[], float] = time.time

    def attempt(self, delivery_id: str) -> float | None:
        """One attempt; returns the delay before the next one, or None when done."""
        deliveries = Deliveries(self.client, ttl_s=self.settings.result_ttl_s)
        rec = deliveries.get(delivery_id)
        if rec is None or rec["status"] != "pending":
            return None
        now = self.clock()
        ts = int(now)
        entry: dict[str, Any] = {"at": now, "status_code": None, "error": None}
        why = check_webhook_url(rec["url"], allow_private=self.settings.webhook_allow_private)
        if why is not None:  # re-checked per attempt: DNS may change after the submit
            entry["error"] = why
        else:
            secrets = WebhookSecrets(self.client, grace_s=self.settings.webhook_secret_grace_s)
            headers = {
                "content-type": "application/json",
                "user-agent": "landscope-webhooks",
                "webhook-id": rec["id"],
                "webhook-timestamp": str(ts),
                "webhook-signature": secrets.signature_header(rec["tenant"], rec["id"], ts,
                                                              rec["body"]),
            }
            t0 = time.monotonic()
            try:
                r = self.post(rec["url"], data=rec["body"], headers=headers,
                              timeout=self.settings.webhook_timeout_s, allow_redirects=False)
                entry["status_code"] = r.status_code
                if not 200 <= r.status_code < 300:
                    entry["error"] = f"HTTP {r.status_code}" + (
                        " (redirects are not followed)" if 300 <= r.status_code < 400 else "")
                r.close()
            except requests.RequestException as e:
                entry["error"] = f"{type(e).__name__}: {e}"[:500]
            entry["duration_s"] = round(time.monotonic() - t0, 6)
        n = len(rec["attempts"]) + 1
        first = rec["attempts"][0]["at"] if rec["attempts"] else now
        if entry["error"] is None:
            deliveries.record_attempt(delivery_id, entry, "delivered")
            return None
        delay = min(self.settings.webhook_backoff_s * 2 ** (n - 1), MAX_DELAY_S)
        if now + delay - first > self.settings.webhook_retry_s:
            deliveries.record_attempt(delivery_id, entry, "failed")
            log.warning("webhook %s to %s failed after %d attempts", delivery_id,
                        urlsplit(rec["url"]).hostname, n)
            return None
        entry["next_attempt_at"] = now + delay
        deliveries.record_attempt(delivery_id, entry, "pending")
        return delay


def register_webhook_task(app: Celery, settings: Settings) -> Any:
    """Register ``landscope.deliver_webhook`` on ``app``; returns the task."""
    state: dict[str, WebhookSender] = {}

    def sender() -> WebhookSender:
        if "s" not in state:
            state["s"] = WebhookSender(settings, redis.Redis.from_url(settings.redis_url))
        return state["s"]

    @app.task(name="landscope.deliver_webhook", bind=True, acks_late=True,  # type: ignore[misc]
              queue=WEBHOOK_QUEUE, soft_time_limit=settings.webhook_timeout_s * 3 + 30,
              time_limit=settings.webhook_timeout_s * 3 + 60)
    def deliver_webhook(self: Any, delivery_id: str) -> str:
        delay = sender().attempt(delivery_id)
        if delay is None:
            return "done"
        self.apply_async(args=[delivery_id], countdown=delay, queue=WEBHOOK_QUEUE)
        return f"retry in {delay:.3f} s"

    return deliver_webhook
