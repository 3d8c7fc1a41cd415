"""The pure numerical core of landscope.

Torch, numpy and scipy (matplotlib for plots) only: no Flask, Celery or Redis imports (a
test enforces it), so every diagnostic can be used in-process as a library::

    from landscope_service.diagnostics import Problem, RunContext, run_hessian_spectrum

    out = run_hessian_spectrum(Problem(model, params, x, y, "mse"), {"top_k": 3},
                               RunContext(seed=0))

The kinds' packages (``hessian``, ``manifold``, ``connectivity``) and their runners are
imported on first use.
"""

import importlib
from typing import Any

from .context import RunContext
from .executor import Executor, LocalExecutor
from .monitor import Cancelled, Monitor
from .output import Artifact, RunOutput
from .problem import LossName, Params, Problem, flatten, unflatten

_LAZY = {
    "evaluate": ("evaluate", None),
    "hessian": ("hessian", None),
    "manifold": ("manifold", None),
    "connectivity": ("connectivity", None),
    "run_evaluate": ("evaluate", "run_evaluate"),
    "run_hessian_spectrum": ("hessian.runner", "run_hessian_spectrum"),
    "run_minimizer_manifold": ("manifold.runner", "run_minimizer_manifold"),
    "run_level_set_connectivity": ("connectivity.runner", "run_level_set_connectivity"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(f"{__name__}.{module}")
    return mod if attr is None else getattr(mod, attr)


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
    "run_evaluate",
    "run_hessian_spectrum",
    "run_level_set_connectivity",
    "run_minimizer_manifold",
    "unflatten",
]
