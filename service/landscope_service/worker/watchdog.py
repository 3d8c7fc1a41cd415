"""Cancel and run-time deadline of one running attempt, enforced from a thread.

The computation stops itself at its cooperative checks (``Monitor.check`` inside every
long loop): :meth:`Watchdog.stop_requested` turns true as soon as a cancel was requested
or the job's ``max_runtime_s`` has passed, and the job's monitor asks it. A computation
that does not reach a check within ``grace_s`` (a long native call, a loop without a
check) is ended from here: the job record is finalised first (``cancelled``, or ``failed``
with ``deadline_exceeded``), so the caller sees the final status within ``grace_s`` plus
one poll, then ``hard_stop`` kills the pool process. Celery's prefork pool replaces a
killed child and the worker takes the next job; the task, redelivered because its
process died, finds the job finished and does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

from ..jobs.store import JobStore

__all__ = ["PollingThread", "Watchdog", "deadline_message"]

log = logging.getLogger("landscope.worker")


def deadline_message(max_runtime_s: float) -> str:
    """The error message of a job stopped at its run-time limit."""
    return (f"The job ran longer than its max_runtime_s={max_runtime_s:g} s and was "
            "stopped; its progress shows how far it got. Raise max_runtime_s (within "
            "the tenant's limit) or reduce the work (fewer products, a smaller model).")


class PollingThread:
    """A daemon thread that calls :meth:`tick` every ``poll_s`` seconds while a ``with``
    block runs. ``tick`` returning False ends the polls; an exception (a Redis blip) is
    logged and the next poll tries again. Leaving the block stops the thread."""

    def __init__(self, name: str, poll_s: float) -> None:
        self.poll_s = poll_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> bool:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._done.wait(self.poll_s):
            try:
                if not self.tick():
                    return
            except Exception:
                log.warning("%s: poll failed", self._thread.name, exc_info=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)


class Watchdog(PollingThread):
    """Polls the job's cancel flag and its run-time deadline while an attempt runs.

    Args:
        jobs: the job store.
        job_id: the running job.
        max_runtime_s: run-time limit of this attempt (None: none).
        grace_s: how long a cooperative stop may take before the hard stop.
        hard_stop: ends the computation (kills this pool process); None where the
            process must not be killed (solo and threads pools): the job record is still
            finalised, and the computation stops at its next check.
        poll_s: seconds between polls.
        clock: monotonic clock (tests inject one).
    """

    def __init__(self, jobs: JobStore, job_id: str, *, max_runtime_s: float | None,
                 grace_s: float, hard_stop: Callable[[], None] | None,
                 poll_s: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(f"watchdog-{job_id}", poll_s)
        self.jobs, self.job_id = jobs, job_id
        self.max_runtime_s = max_runtime_s
        self.grace_s = grace_s
        self.hard_stop, self.clock = hard_stop, clock
        self.reason: str | None = None
        """``"cancelled"`` or ``"deadline"`` once the attempt must stop."""
        self._since = 0.0
        self._started = clock()

    def stop_requested(self) -> bool:
        """True once the computation must stop (its cooperative checks raise)."""
        return self.reason is not None

    def deadline_message(self) -> str:
        return deadline_message(self.max_runtime_s or 0.0)

    def tick(self) -> bool:
        """One poll; returns False once nothing is left to watch."""
        now = self.clock()
        if self.reason is None:
            if self.jobs.cancel_requested(self.job_id):
                self.reason, self._since = "cancelled", now
            elif self.max_runtime_s and now - self._started > self.max_runtime_s:
                self.reason, self._since = "deadline", now
                # failed at once, the progress reached so far kept in the record
                self.jobs.fail(self.job_id, "deadline_exceeded", self.deadline_message(),
                               allowed=("running",))
            return True
        if now - self._since < self.grace_s:
            return True
        # the computation did not stop at a cooperative check within the grace period
        if self.reason == "cancelled":
            ended = self.jobs.mark_cancelled(self.job_id, allowed=("running",))
        else:
            ended = self.jobs.status(self.job_id) == "failed"
        if not ended:  # it finished meanwhile (the first writer won): nothing to stop
            return False
        if self.hard_stop is None:
            log.warning("job %s is %s but its computation did not stop within %.1f s and "
                        "this pool cannot kill it; it stops at its next check",
                        self.job_id, self.reason, self.grace_s)
            return False
        log.warning("job %s: no cooperative stop within %.1f s after %s; killing its pool "
                    "process (the worker replaces it)", self.job_id, self.grace_s, self.reason)
        self.hard_stop()
        return False
