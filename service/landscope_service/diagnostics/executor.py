"""Fan-out of a job's independent pieces.

A runner that has independent pieces (probe vectors, minima to train, pairs of minima)
calls ``executor.map(fn, payloads)``. ``fn`` must be a module-level function of the core
with signature ``fn(problem, payload, monitor) -> dict``; payloads and results are dicts
of JSON values and tensors. :class:`LocalExecutor` runs them in this process; the
service supplies an executor that spreads them over Celery workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .monitor import Monitor
from .problem import Problem

__all__ = ["Executor", "LocalExecutor", "PieceFn"]

PieceFn = Callable[[Problem, dict[str, Any], Monitor], dict[str, Any]]


class Executor(Protocol):
    def map(
        self,
        fn: PieceFn,
        problem: Problem,
        payloads: Sequence[dict[str, Any]],
        monitor: Monitor,
    ) -> list[dict[str, Any]]:
        """Run ``fn(problem, payload, ...)`` for every payload; results in payload order.

        ``monitor`` receives the fraction of pieces done; cancellation is honoured
        between pieces (and inside them, through the monitor each piece gets).
        """
        ...


class LocalExecutor:
    """Runs every piece in this process, one after the other."""

    def map(
        self,
        fn: PieceFn,
        problem: Problem,
        payloads: Sequence[dict[str, Any]],
        monitor: Monitor,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        n = len(payloads)
        for i, payload in enumerate(payloads):
            monitor.check()
            out.append(fn(problem, payload, monitor.sub(i / max(n, 1), (i + 1) / max(n, 1))))
            monitor.report("pieces", (i + 1) / max(n, 1), f"{i + 1}/{n} pieces done")
        return out
