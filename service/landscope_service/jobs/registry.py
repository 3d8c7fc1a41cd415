"""The job kinds the service offers: name -> :class:`KindSpec`.

``KIND_MODULES`` is the one list of public kinds. ``TEST_KIND_MODULES`` are kinds for
tests only (``test_block``); they are registered only while the environment variable
``LANDSCOPE_TEST_KINDS`` is true, and never documented in the public OpenAPI document.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import Any

from .kinds.base import KindSpec

__all__ = [
    "KIND_MODULES",
    "TEST_KINDS_ENV",
    "TEST_KIND_MODULES",
    "kinds",
    "load_runner",
    "public_kinds",
    "test_kinds_enabled",
]

KIND_MODULES = (
    "evaluate",
    "hessian_spectrum",
    "minimizer_manifold",
    "level_set_connectivity",
    "landscape_slice",
    "sweep",
)

TEST_KIND_MODULES = ("test_block",)

TEST_KINDS_ENV = "LANDSCOPE_TEST_KINDS"


def test_kinds_enabled() -> bool:
    """Whether ``LANDSCOPE_TEST_KINDS`` is true in this process's environment."""
    return os.environ.get(TEST_KINDS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@cache
def _load(modules: tuple[str, ...]) -> dict[str, KindSpec]:
    out: dict[str, KindSpec] = {}
    for mod in modules:
        spec = importlib.import_module(f"{__package__}.kinds.{mod}").KIND
        out[spec.name] = spec
    return out


def public_kinds() -> dict[str, KindSpec]:
    """The public kinds, by name (what the OpenAPI document and the SDK know)."""
    return _load(KIND_MODULES)


def kinds(include_test: bool | None = None) -> dict[str, KindSpec]:
    """Every kind this process accepts, by name. Importing a kind module never imports torch.

    Args:
        include_test: add the test-only kinds; ``None`` reads ``LANDSCOPE_TEST_KINDS``.
    """
    if include_test is None:
        include_test = test_kinds_enabled()
    return _load(KIND_MODULES + TEST_KIND_MODULES) if include_test else public_kinds()


def load_runner(spec: KindSpec) -> Any:
    """Import the runner (worker side only: this imports torch)."""
    module, _, func = spec.runner.partition(":")
    return getattr(importlib.import_module(module), func)
