"""The SDK's one generic result reader (landscope/kinds/_read.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from landscope import InvalidResponseError
from landscope.kinds._read import FromJson


@dataclass(frozen=True)
class Inner(FromJson):
    value: float
    pair: tuple[int, int]


@dataclass(frozen=True)
class Outer(FromJson):
    status: Literal["ok", "bad"]
    count: int
    inner: Inner
    items: tuple[Inner, ...]
    maybe: float | None
    grid: tuple[tuple[float | None, ...], ...]
    extra: Mapping[str, Any] = field(metadata={"missing": {}})
    others: Mapping[str, Any] = field(metadata={"rest": True})
    renamed: str = field(default="x", metadata={"json": "name"})
    flag: bool = True


GOOD: dict[str, Any] = {
    "status": "ok", "count": 3, "inner": {"value": 1, "pair": [1, 2]},
    "items": [{"value": 0.5, "pair": [0, 1]}], "maybe": None, "grid": [[1.0, None], []],
    "name": "y", "flag": None, "unknown_key": [1],
}


def test_reads_by_type_hints() -> None:
    out = Outer.from_json(GOOD)
    assert out == Outer(status="ok", count=3, inner=Inner(1.0, (1, 2)),
                        items=(Inner(0.5, (0, 1)),), maybe=None, grid=((1.0, None), ()),
                        extra={}, others={"unknown_key": [1]}, renamed="y", flag=True)
    assert isinstance(out.inner.value, float)  # a JSON integer read as a float
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.count = 4  # type: ignore[misc]


@pytest.mark.parametrize(("change", "message"), [
    ({"status": "done"}, r"result\.status is unknown: 'done'"),
    ({"count": True}, r"result\.count should be an integer"),
    ({"count": 1.0}, r"result\.count should be an integer"),
    ({"inner": {"value": "1", "pair": [1, 2]}}, r"result\.inner\.value should be a number"),
    ({"inner": {"value": 1, "pair": [1, 2, 3]}}, r"result\.inner\.pair should be a list of 2"),
    ({"items": [{"value": 1, "pair": [1]}]}, r"result\.items\[0\]\.pair"),
    ({"grid": [[1.0, "x"]]}, r"result\.grid\[0\]\[1\] should be a number"),
    ({"inner": None}, r"result\.inner should be an object"),
    ({"extra": [1]}, r"result\.extra should be an object"),
])
def test_names_the_path_of_a_broken_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        Outer.from_json({**GOOD, **change})


def test_missing_fields() -> None:
    data = dict(GOOD)
    del data["count"]
    with pytest.raises(InvalidResponseError, match=r"result has no 'count' field"):
        Outer.from_json(data)
    data = dict(GOOD)
    del data["maybe"], data["name"], data["flag"]
    out = Outer.from_json(data)  # optional and defaulted fields may be missing
    assert out.maybe is None and out.renamed == "x" and out.flag is True
    with pytest.raises(InvalidResponseError, match="should be an object"):
        Outer.from_json([GOOD])
