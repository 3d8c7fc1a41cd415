"""Request metrics recorded in memory and written to Redis in batches.

Writing one Redis pipeline per request cost a round trip on every call, and tied
``/healthz`` to Redis (a hung Redis held every probe for the socket timeout). Instead
each API process appends observations to a buffer, and a background thread flushes it
every ``interval_s`` seconds (0: at once, the default of apps in TESTING mode, so that
one test's requests never land in the next test's Redis); ``/metrics`` flushes its own
process's buffer first, so a scrape sees every request that process served. A flush
that fails (Redis down) keeps the observations for the next try, at most
``max_pending`` of them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from ..metrics import RedisMetrics

__all__ = ["HttpMetricsBuffer"]

log = logging.getLogger("landscope.api")


class HttpMetricsBuffer:
    def __init__(self, metrics: RedisMetrics, *, interval_s: float = 1.0,
                 max_pending: int = 100_000) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self._pending: deque[tuple[str, str, int, float]] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def record(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Buffer one observation; with ``interval_s == 0``, write it at once."""
        self._pending.append((method, endpoint, status, seconds))
        if self.interval_s <= 0:
            try:
                self.flush()
            except Exception as e:  # metrics must never break a request
                log.debug("metrics write failed: %s", e)
            return
        if self._thread is None or self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="landscope-metrics",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception as e:  # Redis down: keep the observations for the next try
                log.debug("metrics flush failed: %s", e)

    def flush(self) -> None:
        """Write every pending observation (raises if Redis cannot be reached)."""
        with self._lock:
            batch = []
            while self._pending:
                batch.append(self._pending.popleft())
            try:
                self.metrics.http_requests(batch)
            except Exception:
                self._pending.extendleft(reversed(batch))
                raise
