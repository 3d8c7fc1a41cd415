"""Typed options and results of each job kind.

One module per kind, named like the kind (``landscope.kinds.evaluate``), defines
``<Kind>Options`` (with ``to_json()``) and ``<Kind>Result`` (with the classmethod
``from_json(data)``), where ``<Kind>`` is the kind in CamelCase
(``hessian_spectrum`` -> ``HessianSpectrumResult``).

Kind modules are imported on first use, never here: :func:`result_class` and
:func:`options_class` look them up with :mod:`importlib`, and the names are also
reachable lazily as attributes (``landscope.kinds.HessianSpectrumResult``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from landscope._exceptions import LandscopeError

__all__ = [
    "KNOWN_KINDS",
    "KindOptions",
    "ResultClass",
    "camel_case",
    "kind_module",
    "options_class",
    "result_class",
]

from landscope.kinds._options import KNOWN_KINDS  # generated from openapi.json (make sdk)

T_co = TypeVar("T_co", covariant=True)

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LAZY_RE = re.compile(r"^([A-Z][A-Za-z0-9]*)(Options|Result)$")


class ResultClass(Protocol[T_co]):
    """A typed result class: anything with ``from_json(data) -> result``."""

    def from_json(self, data: Mapping[str, Any], /) -> T_co:
        """Parse the job's ``result`` object."""
        ...


class KindOptions(Protocol):
    """Typed options of a kind: anything with ``to_json() -> dict``."""

    def to_json(self) -> dict[str, Any]:
        """The ``options`` object of the job request."""
        ...


def camel_case(kind: str) -> str:
    """``hessian_spectrum`` -> ``HessianSpectrum``."""
    return "".join(part[:1].upper() + part[1:] for part in kind.split("_") if part)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def kind_module(kind: str) -> Any:
    """Import ``landscope.kinds.<kind>``.

    Args:
        kind: the job kind, e.g. ``"evaluate"``.

    Returns:
        The module.

    Raises:
        LandscopeError: the name is not a kind name, or this SDK has no module for it.
    """
    if not _KIND_RE.match(kind):
        raise LandscopeError(f"Not a job kind name: {kind!r}.")
    name = f"{__name__}.{kind}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise LandscopeError(
            f"This landscope SDK has no typed classes for kind {kind!r}; upgrade the SDK "
            "or read the raw dict in job.result."
        ) from e


def _lookup(kind: str, suffix: str) -> Any:
    module = kind_module(kind)
    attr = f"{camel_case(kind)}{suffix}"
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise LandscopeError(f"{module.__name__} defines no {attr}.") from e


def result_class(kind: str) -> ResultClass[Any]:
    """The typed result class of a kind (``evaluate`` -> ``EvaluateResult``).

    Raises:
        LandscopeError: this SDK has no result class for the kind.
    """
    cls: ResultClass[Any] = _lookup(kind, "Result")
    return cls


def options_class(kind: str) -> type[Any]:
    """The typed options class of a kind (``evaluate`` -> ``EvaluateOptions``).

    Raises:
        LandscopeError: this SDK has no options class for the kind.
    """
    cls: type[Any] = _lookup(kind, "Options")
    return cls


def __getattr__(name: str) -> Any:
    match = _LAZY_RE.match(name)
    if match is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    kind = _snake_case(match.group(1))
    try:
        return _lookup(kind, match.group(2))
    except LandscopeError as e:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}: {e}") from e
