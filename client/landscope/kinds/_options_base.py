"""Behaviour shared by the generated options classes (``_options.py``).

Each generated class is a frozen dataclass whose fields carry the server's defaults; its
``_FIELDS`` constraints and ``_RULES`` come from the committed ``openapi.json``. This
module checks them when an instance is made and writes the ``options`` JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

__all__ = ["OptionsBase"]

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "string": (str,),
    "array": (tuple, list),
}


def _check(name: str, value: Any, spec: Mapping[str, Any]) -> None:
    """Raise TypeError or ValueError when ``value`` breaks the constraints ``spec``."""
    if value is None:
        if spec.get("nullable"):
            return
        raise TypeError(f"{name} must not be None.")
    kind = str(spec["type"])
    if kind == "object":
        return  # a nested options object: checked when it was made
    if (kind != "boolean" and isinstance(value, bool)) or not isinstance(value, _TYPES[kind]):
        raise TypeError(f"{name} must be of JSON type {kind}, got {type(value).__name__}.")
    return _check_value(name, value, spec, kind)


def _check_value(name: str, value: Any, spec: Mapping[str, Any], kind: str) -> None:
    if kind == "number" and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    bounds: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
        ("minimum", lambda v, b: v >= b, ">="), ("maximum", lambda v, b: v <= b, "<="),
        ("exclusiveMinimum", lambda v, b: v > b, ">"),
        ("exclusiveMaximum", lambda v, b: v < b, "<"))
    for key, ok, word in bounds:
        if key in spec and not ok(value, spec[key]):
            raise ValueError(f"{name} must be {word} {spec[key]}, got {value}.")
    if "enum" in spec and value not in spec["enum"]:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, spec['enum']))}, got "
                         f"{value!r}.")
    size = len(value) if isinstance(value, str | tuple | list) else None
    for key, ok, word in (("minLength", lambda n, b: n >= b, "at least"),
                          ("maxLength", lambda n, b: n <= b, "at most"),
                          ("minItems", lambda n, b: n >= b, "at least"),
                          ("maxItems", lambda n, b: n <= b, "at most")):
        if key in spec and size is not None and not ok(size, spec[key]):
            unit = "items" if key.endswith("Items") else "characters"
            raise ValueError(f"{name} must have {word} {spec[key]} {unit}, got {size}.")
    if kind == "array":
        for i, item in enumerate(value):
            _check(f"{name}[{i}]", item, spec["items"])


class OptionsBase:
    """Base of the generated options classes: checks on creation, sparse ``to_json``."""

    _FIELDS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    """Field name -> its OpenAPI constraints (type, bounds, enum, lengths, nullable)."""
    _RULES: ClassVar[tuple[tuple[str, Callable[[Any], bool], str], ...]] = ()
    """Cross-field rules: (field, condition on the instance, message template)."""

    def __post_init__(self) -> None:
        for name, spec in self._FIELDS.items():
            _check(name, getattr(self, name), spec)
        for _field, holds, message in self._RULES:
            if not holds(self):
                values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
                raise ValueError(message.format(**values))

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        """The ``options`` object of the job request.

        Args:
            full: every option; by default only those that differ from the server's
                default (the server fills in the rest with the same values).
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, OptionsBase):
                nested = value.to_json(full=full)
                if nested or full:
                    out[f.name] = nested
                continue
            factory = f.default_factory
            default = factory() if factory is not dataclasses.MISSING else f.default
            if full or value != default:
                out[f.name] = list(value) if isinstance(value, tuple | list) else value
        return out
