"""The job kinds the service offers: name -> :class:`KindSpec`."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from .kinds.base import KindSpec

__all__ = ["KIND_MODULES", "kinds", "load_runner"]

KIND_MODULES = (
    "evaluate",
    "hessian_spectrum",
    "minimizer_manifold",
    "level_set_connectivity",
)


@cache
def kinds() -> dict[str, KindSpec]:
    """Every kind, by name. Importing a kind module never imports torch."""
    out: dict[str, KindSpec] = {}
    for mod in KIND_MODULES:
        spec = importlib.import_module(f"{__package__}.kinds.{mod}").KIND
        out[spec.name] = spec
    return out


def load_runner(spec: KindSpec) -> Any:
    """Import the runner (worker side only: this imports torch)."""
    module, _, func = spec.runner.partition(":")
    return getattr(importlib.import_module(module), func)
