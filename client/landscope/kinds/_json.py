"""Readers of result JSON for the typed kind classes.

Each raises :class:`~landscope.InvalidResponseError` naming the field path when the
server's answer breaks the contract, so a typed result can be trusted. ``as_*`` check a
value; the others read ``data[key]`` (``opt_*`` accept a missing key or null).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from landscope._exceptions import InvalidResponseError

__all__ = [
    "as_bool", "as_int", "as_list", "as_num", "as_opt_num", "as_str", "bool_", "has", "int_",
    "ints", "list_", "num", "num_list", "nums", "obj", "opt_bool", "opt_int", "opt_num", "opt_nums",
    "opt_str", "str_", "strs",
]


def obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidResponseError(f"{what} should be an object, got {value!r:.200}.")
    return value


def has(data: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in data:
        raise InvalidResponseError(f"{what} has no {key!r} field.")
    return data[key]


def as_num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidResponseError(f"{what} should be a number, got {v!r:.100}.")
    return float(v)


def as_opt_num(v: Any, what: str) -> float | None:
    return None if v is None else as_num(v, what)


def as_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidResponseError(f"{what} should be an integer, got {v!r:.100}.")
    return v


def as_bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise InvalidResponseError(f"{what} should be a boolean, got {v!r:.100}.")
    return v


def as_str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise InvalidResponseError(f"{what} should be a string, got {v!r:.100}.")
    return v


def as_list(v: Any, what: str) -> Sequence[Any]:
    if not isinstance(v, Sequence) or isinstance(v, str | bytes):
        raise InvalidResponseError(f"{what} should be a list, got {v!r:.200}.")
    return v


def num(d: Mapping[str, Any], k: str, what: str) -> float:
    return as_num(has(d, k, what), f"{what}.{k}")


def opt_num(d: Mapping[str, Any], k: str, what: str) -> float | None:
    return as_opt_num(d.get(k), f"{what}.{k}")


def int_(d: Mapping[str, Any], k: str, what: str) -> int:
    return as_int(has(d, k, what), f"{what}.{k}")


def opt_int(d: Mapping[str, Any], k: str, what: str) -> int | None:
    v = d.get(k)
    return None if v is None else as_int(v, f"{what}.{k}")


def bool_(d: Mapping[str, Any], k: str, what: str) -> bool:
    return as_bool(has(d, k, what), f"{what}.{k}")


def opt_bool(d: Mapping[str, Any], k: str, what: str) -> bool | None:
    v = d.get(k)
    return None if v is None else as_bool(v, f"{what}.{k}")


def str_(d: Mapping[str, Any], k: str, what: str) -> str:
    return as_str(has(d, k, what), f"{what}.{k}")


def opt_str(d: Mapping[str, Any], k: str, what: str) -> str | None:
    v = d.get(k)
    return None if v is None else as_str(v, f"{what}.{k}")


def ints(v: Any, what: str) -> tuple[int, ...]:
    return tuple(as_int(x, what) for x in as_list(v, what))


def nums(v: Any, what: str) -> tuple[float, ...]:
    return tuple(as_num(x, what) for x in as_list(v, what))


def opt_nums(v: Any, what: str) -> tuple[float | None, ...]:
    return tuple(as_opt_num(x, what) for x in as_list(v, what))


def list_(d: Mapping[str, Any], k: str, what: str) -> Sequence[Any]:
    return as_list(has(d, k, what), f"{what}.{k}")


def num_list(d: Mapping[str, Any], k: str, what: str) -> tuple[float | None, ...]:
    """``d[k]``: a list of numbers or nulls."""
    return opt_nums(has(d, k, what), f"{what}.{k}")


def strs(d: Mapping[str, Any], k: str, what: str) -> tuple[str, ...]:
    return tuple(as_str(x, f"{what}.{k}") for x in as_list(has(d, k, what), f"{what}.{k}"))
