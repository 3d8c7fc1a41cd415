"""Everything a job kind's runner gets besides the problem and its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .executor import Executor, LocalExecutor
from .monitor import Monitor
from .problem import Params

__all__ = ["RunContext"]


def _no_loader(ref: str) -> Params:
    raise RuntimeError(f"No parameter loader is configured; cannot load {ref!r}.")


@dataclass
class RunContext:
    """Services a runner may use.

    Attributes:
        monitor: progress and cancellation.
        executor: fans independent pieces out (in-process by default).
        seed: base seed of every random routine of the run.
        load_params: loads a parameter set (e.g. a weights blob id) shaped like the
            problem's parameters, on the problem's device and dtype.
    """

    monitor: Monitor = field(default_factory=Monitor)
    executor: Executor = field(default_factory=LocalExecutor)
    seed: int = 0
    load_params: Callable[[str], Params] = _no_loader
