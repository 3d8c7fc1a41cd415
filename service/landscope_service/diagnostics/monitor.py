"""Progress reporting and cooperative cancellation for long numerical work.

The core never knows who listens: the worker passes callbacks that write to the job
record; a library user passes nothing, or a tqdm bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Cancelled", "Monitor", "ProgressFn"]

ProgressFn = Callable[[str, float, str], None]
"""``progress(stage, fraction, message)``; fraction in [0, 1] is the whole job's."""


class Cancelled(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by :meth:`Monitor.check` when the caller asked to stop."""


@dataclass
class Monitor:
    """Carries the progress callback and the cancellation check into the core.

    Args:
        progress: called with ``(stage, fraction, message)``; rate-limited to one call
            per ``min_interval`` seconds except when ``force=True`` or the stage changes.
            The root monitor's fractions never decrease: a report below the highest
            fraction reported so far is forwarded with that highest fraction (its stage
            and message still update), so pieces or stages that overlap cannot move the
            job's progress backwards.
        should_cancel: returns True once the work must stop; polled by :meth:`check`,
            at most once per ``min_interval`` seconds.
        min_interval: seconds between forwarded progress calls and cancel polls.
    """

    progress: ProgressFn | None = None
    should_cancel: Callable[[], bool] | None = None
    min_interval: float = 0.2
    parent: Monitor | None = field(default=None, repr=False)
    """Set by :meth:`sub`: cancellation is checked (and remembered) at the root."""

    def __post_init__(self) -> None:
        self._last_report = 0.0
        self._last_stage = ""
        self._last_poll = 0.0
        self._cancelled = False
        self._high = 0.0

    def report(
        self, stage: str, fraction: float, message: str = "", *, force: bool = False
    ) -> None:
        """Report progress; ``fraction`` is clipped to [0, 1] (and, at the root, to at least
        the highest fraction reported before)."""
        if self.progress is None:
            return
        fraction = min(1.0, max(0.0, float(fraction)))
        if self.parent is None:
            fraction = max(fraction, self._high)
            self._high = fraction
        now = time.monotonic()
        if not force and stage == self._last_stage and now - self._last_report < self.min_interval:
            return
        self._last_report = now
        self._last_stage = stage
        self.progress(stage, fraction, message)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.parent is not None:  # a sub-monitor shares its root's poll and flag
            self.parent.check()
            return
        if self._cancelled:
            raise Cancelled("cancelled")
        if self.should_cancel is None:
            return
        now = time.monotonic()
        if now - self._last_poll < self.min_interval:
            return
        self._last_poll = now
        if self.should_cancel():
            self._cancelled = True
            raise Cancelled("cancelled")

    def sub(self, start: float, stop: float, stage: str | None = None) -> Monitor:
        """A monitor whose fractions map into ``[start, stop]`` of this one's."""
        parent = self

        def progress(st: str, frac: float, msg: str) -> None:
            parent.report(stage or st, start + (stop - start) * frac, msg)

        child = Monitor(
            progress=progress if self.progress is not None else None,
            should_cancel=self.should_cancel,
            min_interval=self.min_interval,
            parent=self,
        )
        return child


NULL_MONITOR = Monitor()
