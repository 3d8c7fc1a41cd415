"""The pure numerical core of landscope.

Torch, numpy and scipy only: no Flask, Celery or Redis imports (a test enforces it), so
every diagnostic can be used in-process as a library.
"""

from .context import RunContext
from .executor import Executor, LocalExecutor
from .monitor import Cancelled, Monitor
from .output import Artifact, RunOutput
from .problem import LossName, Params, Problem, flatten, unflatten

__all__ = [
    "Artifact",
    "Cancelled",
    "Executor",
    "LocalExecutor",
    "LossName",
    "Monitor",
    "Params",
    "Problem",
    "RunContext",
    "RunOutput",
    "flatten",
    "unflatten",
]
