"""Progress display for ``Jobs.wait``.

On a terminal: a tqdm bar when tqdm is importable, else one line redrawn in place. Off a
terminal (a log file, CI output, a pipe): plain lines, at most one per stage and one per
10 % of progress, so a long job writes a few dozen lines, never hundreds of redraws.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from landscope.types import Job

__all__ = [
    "ByteProgress",
    "LineProgress",
    "NullProgress",
    "ProgressReporter",
    "TqdmProgress",
    "make_reporter",
]

ProgressCallback = Callable[[Job], None]


class ProgressReporter(Protocol):
    """Receives every job state ``wait`` sees, then ``close()`` once."""

    def update(self, job: Job) -> None:
        """Show the job's latest state."""
        ...

    def close(self) -> None:
        """Finish the display."""
        ...


class NullProgress:
    """Shows nothing."""

    def update(self, job: Job) -> None:
        """Ignore the update."""

    def close(self) -> None:
        """Nothing to finish."""


class CallbackProgress:
    """Calls a user function with each job state.

    Args:
        callback: called with each :class:`~landscope.Job` seen.
    """

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    def update(self, job: Job) -> None:
        """Call the callback."""
        self._callback(job)

    def close(self) -> None:
        """Nothing to finish."""


def _describe(job: Job) -> str:
    text = f"{job.status}"
    if job.progress.stage and job.progress.stage != job.status:
        text += f" {job.progress.stage}"
    if job.progress.message:
        text += f": {job.progress.message}"
    return text


def _percent(job: Job) -> float:
    if job.status == "succeeded":
        return 100.0
    return max(0.0, min(1.0, job.progress.fraction)) * 100.0


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (False when it cannot tell)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


class LineProgress:
    """A one-line bar: redrawn with a carriage return on a terminal; off a terminal, a
    new line only when the status or stage changes or progress enters a new 10 % step.

    Args:
        stream: where to write (standard error by default).
        width: characters of the bar.
        step: off a terminal, the progress step (percent) that earns a new line.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 24, step: float = 10.0
                 ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._step = step
        self._tty = is_terminal(self._stream)
        self._last_len = 0
        self._last_key: tuple[str, str] | None = None
        self._last_bucket = -1
        self._drawn = False

    def update(self, job: Job) -> None:
        """Redraw the line for this state."""
        percent = _percent(job)
        filled = round(self._width * percent / 100.0)
        bar = "#" * filled + "." * (self._width - filled)
        line = f"{job.id} [{bar}] {percent:5.1f}% {_describe(job)}"
        if self._tty:
            pad = " " * max(0, self._last_len - len(line))
            self._stream.write(f"\r{line}{pad}")
            self._last_len = len(line)
            self._drawn = True
        else:
            key = (job.status, job.progress.stage)
            bucket = int(percent // self._step)
            if key == self._last_key and bucket <= self._last_bucket:
                return
            self._last_key = key
            self._last_bucket = bucket
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the line."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


class TqdmProgress:
    """A tqdm bar of percent complete, with the stage and message as postfix.

    Args:
        tqdm_class: the ``tqdm.tqdm`` class.
        stream: where to write (standard error by default).
    """

    def __init__(self, tqdm_class: Any, stream: TextIO | None = None) -> None:
        self._tqdm_class = tqdm_class
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Any = None

    def update(self, job: Job) -> None:
        """Move the bar to the job's fraction."""
        if self._bar is None:
            self._bar = self._tqdm_class(
                total=100.0,
                desc=job.id,
                file=self._stream,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                leave=True,
            )
        self._bar.n = round(_percent(job), 1)
        self._bar.set_postfix_str(_describe(job), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()


def make_reporter(
    progress: bool | ProgressCallback, stream: TextIO | None = None
) -> ProgressReporter:
    """Pick the progress display for ``wait(progress=...)``.

    Args:
        progress: ``False`` for none, ``True`` for a bar on standard error (tqdm if
            installed and the stream is a terminal, else a plain line; off a terminal at
            most one line per stage or per 10 %), or a function called with each state.
        stream: where a bar is drawn (standard error by default).

    Returns:
        The reporter.
    """
    if progress is False:
        return NullProgress()
    if progress is True:
        if not is_terminal(stream if stream is not None else sys.stderr):
            return LineProgress(stream)
        try:
            tqdm_module = importlib.import_module("tqdm")
        except ImportError:
            return LineProgress(stream)
        return TqdmProgress(tqdm_module.tqdm, stream)
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"progress must be a bool or a callable, got {type(progress).__name__}.")


class ByteProgress:
    """Bytes sent of a file: a tqdm bar when tqdm is importable, else a redrawn line.

    The count only grows: a part sent again after a failure is counted once, when the
    service confirms it.

    Args:
        total: bytes of the file.
        label: shown before the bar.
        stream: where to write (standard error by default).
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        try:
            tqdm_module = importlib.import_module("tqdm")
        except ImportError:
            self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        else:
            self._bar = tqdm_module.tqdm(total=total, desc=label, unit="B", unit_scale=True,
                                         unit_divisor=1024, file=self._stream, leave=True)

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more as sent (never more than the total)."""
        step = max(0, min(nbytes, self.total - self.done))
        self.done += step
        if self._bar is not None:
            self._bar.update(step)
            return
        percent = 100.0 * self.done / self.total if self.total else 100.0
        line = f"{self._label} {self.done}/{self.total} bytes ({percent:5.1f}%)"
        self._stream.write(f"\r{line}" if self._tty else line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Finish the display."""
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            self._stream.write("\n")
            self._stream.flush()
