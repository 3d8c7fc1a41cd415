"""Long polls (``GET /v1/jobs/{id}?wait=S``) multiplexed on one Redis subscription.

Each API process keeps ONE pattern subscription to the jobs' finish events
(``ls:events:*``, published by the job store when a job finishes) in a background
thread, and wakes the waiters of a job when its event arrives. A wait then costs no Redis
connection of its own, only an event object; under gunicorn's gevent workers (the
default of ``landscope-service api``) it costs no thread either, only a greenlet. The
per-tenant cap on concurrent waits is :class:`~landscope_service.jobs.limits.WaitSlots`.

A waiter re-reads the status at least every ``recheck_s`` seconds, so an event lost while
the subscription reconnects (Redis restarted) delays an answer by at most that much.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

__all__ = ["JobWaits"]

log = logging.getLogger("landscope.api")
CHANNEL_PREFIX = "ls:events:"


class JobWaits:
    """Waits for jobs to finish, all on one subscription per process."""

    def __init__(self, client: redis.Redis, *, recheck_s: float = 5.0) -> None:
        self.client = client
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._subscribed = threading.Event()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ listener
    def _ensure_listener(self) -> None:
        """Start the listener once per process (a forked child starts its own)."""
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() \
                    and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._subscribed = threading.Event()
            self._thread = threading.Thread(target=self._listen, name="landscope-waits",
                                            daemon=True)
            self._thread.start()
        self._subscribed.wait(2.0)  # else waiters rely on their rechecks

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self._subscribed.set()
                self._wake_all()  # events may have been missed while reconnecting
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "pmessage":
                        channel = msg["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        self._wake(channel[len(CHANNEL_PREFIX):])
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                if self._subscribed.is_set():  # once per outage, not once per retry
                    log.warning("long-poll subscription lost (%s); reconnecting", e)
                self._subscribed.clear()
                self._stop.wait(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(job_id, ()))
        for ev in events:
            ev.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [ev for evs in self._waiters.values() for ev in evs]
        for ev in events:
            ev.set()

    def close(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ waiting
    def wait(self, job_id: str, timeout_s: float, finished: Callable[[], bool]) -> None:
        """Return when ``finished()`` is true or after ``timeout_s`` seconds.

        The waiter is registered before ``finished()`` is first read, so a finish that
        lands in between wakes it.
        """
        self._ensure_listener()
        ev = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(ev)
        try:
            deadline = time.monotonic() + timeout_s
            while not finished():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                ev.wait(min(remaining, self.recheck_s))
                ev.clear()
        finally:
            with self._lock:
                evs = self._waiters.get(job_id)
                if evs is not None:
                    evs.discard(ev)
                    if not evs:
                        del self._waiters[job_id]
