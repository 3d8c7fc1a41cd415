"""The pure numerical core of landscope.

Torch, numpy and scipy (matplotlib for plots) only: no Flask, Celery or Redis imports (a
test enforces it), so every diagnostic can be used in-process as a library::

    from landscope_service.diagnostics import Problem, RunContext, run_hessian_spectrum

    out = run_hessian_spectrum(Problem(model, params, x, y, "mse"), {"top_k": 3},
                               RunContext(seed=0))

Every name here is imported on first use, so that ``diagnostics.options`` (the kinds'
option tables, plain Python) can be read without torch, as the API does. The runners
``run_<kind>`` are found from each kind's option table (``options/<kind>.py`` names its
``RUNNER``): this module keeps no list of kinds.
"""

import importlib
import pkgutil
from typing import Any

_CORE = {
    "RunContext": "context",
    "Executor": "executor",
    "LocalExecutor": "executor",
    "Cancelled": "monitor",
    "Monitor": "monitor",
    "Artifact": "output",
    "RunOutput": "output",
    "LossName": "problem",
    "Params": "problem",
    "Problem": "problem",
    "flatten": "problem",
    "unflatten": "problem",
}
_PACKAGES = ("evaluate", "hessian", "manifold", "connectivity", "options")


def kind_names() -> list[str]:
    """The kinds whose option tables the core has (``options/<kind>.py``)."""
    from . import options

    return sorted(m.name for m in pkgutil.iter_modules(options.__path__))


def _runner(kind: str) -> Any:
    table = importlib.import_module(f"{__name__}.options.{kind}")
    module, _, func = str(table.RUNNER).partition(":")
    return getattr(importlib.import_module(module), func)


def __getattr__(name: str) -> Any:
    if name in _CORE:
        return getattr(importlib.import_module(f"{__name__}.{_CORE[name]}"), name)
    if name in _PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("run_") and name[4:] in kind_names():
        return _runner(name[4:])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted([*_CORE, *(f"run_{k}" for k in kind_names())])
