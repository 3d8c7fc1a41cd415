"""One generic reader of result JSON, driven by the result dataclasses' fields and hints.

A result class is a frozen dataclass deriving from :class:`FromJson`; its
``from_json(data)`` reads each field from the JSON key of the same name and converts it
by the field's type hint:

* ``float``, ``int``, ``bool``, ``str``: JSON numbers (not booleans), integers, booleans,
  strings; ``Literal[...]``: one of the values;
* ``X | None``: null or a missing key gives None;
* ``tuple[X, ...]``: a list; ``tuple[X, Y]``: a list of exactly that length;
* ``Mapping[str, Any]``: an object, kept as a dict; ``Any``: any JSON;
* another :class:`FromJson` dataclass: a nested object.

A field with a default takes it when the key is missing or null. Field metadata
(``dataclasses.field(metadata=...)``) can rename the key (``{"json": "key"}``), give the
value of a missing key without making it a default (``{"missing": value}``), or collect
every key no other field reads into a dict (``{"rest": True}``). Anything else raises
:class:`~landscope.InvalidResponseError` naming the field's path (``result.top.residuals``),
so a typed result can be trusted.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self, TypeVar, Union, get_args, get_origin

from landscope._exceptions import InvalidResponseError

__all__ = ["FromJson", "read"]

T = TypeVar("T")


class FromJson:
    """Mixin of the result dataclasses: ``from_json`` reads by the type hints."""

    @classmethod
    def from_json(cls, data: Any, what: str = "result") -> Self:
        """Build from the JSON object ``data`` (``what`` names it in errors).

        Raises:
            InvalidResponseError: a field is missing or has the wrong type.
        """
        return read(cls, data, what)

    def _repr_html_(self) -> str:
        """Notebook display: the scalar fields as a table (landscope._frames)."""
        from landscope._frames import summary_html

        return summary_html(self)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fail(what: str, expected: str, value: Any) -> InvalidResponseError:
    return InvalidResponseError(f"{what} should be {expected}, got {value!r:.200}.")


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(what, "an object", value)
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise _fail(what, "a list", value)
    return value


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)):
            inner = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
            return inner, True
    return tp, False


def _convert(tp: Any, value: Any, what: str) -> Any:
    inner, nullable = _optional(tp)
    if value is None and nullable:
        return None
    tp = inner
    if tp is Any:
        return value
    origin = get_origin(tp)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(what, "a number", value)
        return float(value)
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            word = {int: "an integer", bool: "a boolean", str: "a string"}[tp]
            raise _fail(what, word, value)
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise InvalidResponseError(f"{what} is unknown: {value!r:.100} (expected one of "
                                       f"{', '.join(map(repr, get_args(tp)))}).")
        return value
    if origin is tuple:
        items = _list(value, what)
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{what}[{i}]") for i, v in enumerate(items))
        if len(items) != len(args):
            raise _fail(what, f"a list of {len(args)} items", value)
        return tuple(_convert(a, v, f"{what}[{i}]") for i, (a, v) in enumerate(
            zip(args, items, strict=True)))
    if origin in (Mapping, dict, typing.Mapping):
        obj = _obj(value, what)
        value_type = get_args(tp)[1] if get_args(tp) else Any
        return {str(k): _convert(value_type, v, f"{what}.{k}") for k, v in obj.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return read(tp, value, what)
    raise TypeError(f"No reader for type {tp!r} at {what}.")  # a bug in a result class


def read(cls: type[T], data: Any, what: str = "result") -> T:
    """Build the dataclass ``cls`` from the JSON object ``data`` (see the module doc)."""
    d = _obj(data, what)
    hints = _hints(typing.cast(Any, cls))
    kwargs: dict[str, Any] = {}
    used: set[str] = set()
    rest_field: str | None = None
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.metadata.get("rest"):
            rest_field = f.name
            continue
        key = str(f.metadata.get("json", f.name))
        used.add(key)
        path = f"{what}.{key}"
        value = d.get(key)
        has_default = (f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING)
        if value is None and has_default and not _optional(hints[f.name])[1]:
            continue  # missing or null: the dataclass default
        if key not in d:
            if "missing" in f.metadata:
                value = f.metadata["missing"]
            elif has_default:
                continue
            elif not _optional(hints[f.name])[1]:
                raise InvalidResponseError(f"{what} has no {key!r} field.")
        kwargs[f.name] = _convert(hints[f.name], value, path)
    if rest_field is not None:
        kwargs[rest_field] = {k: v for k, v in d.items() if k not in used}
    return cls(**kwargs)
