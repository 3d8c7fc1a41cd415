"""Inline data validation (``NumberArray``): the row fast path says exactly what the plain
walk says, for valid arrays and for every kind of mistake, and stays linear in size."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
from marshmallow import ValidationError

from landscope_service.modelspec import schemas
from landscope_service.modelspec.schemas import InlineDataSchema


def _reference(value: Any, path: list[int], count: list[int], limit: int) -> tuple[int, ...]:
    """The walk before the fast path (one path string per number): the oracle."""
    if isinstance(value, list):
        if not value:
            where = "".join(f"[{i}]" for i in path) or "the array"
            raise ValidationError(f"Empty list at {where}: every row needs values.")
        first: tuple[int, ...] | None = None
        for i, item in enumerate(value):
            shape = _reference(item, [*path, i], count, limit)
            if first is None:
                first = shape
            elif shape != first:
                where = "".join(f"[{j}]" for j in [*path, i])
                raise ValidationError(
                    f"Ragged array: {where} has shape {shape}, earlier rows have {first}.")
        return (len(value), *(first or ()))
    where = "".join(f"[{i}]" for i in path) or "the value"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"Value at {where} is {value!r}, not a number.")
    count[0] += 1
    if count[0] > limit:
        raise ValidationError(
            f"Inline data holds at most {limit} numbers; upload larger data "
            f"as a blob (POST /v1/blobs) and use {{'blob': ..., 'format': ...}}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"Value at {where} is {value}; all values must be finite.")
    return ()


BAD = [True, False, "1", None, math.nan, math.inf, -math.inf, [], [1.0], {"a": 1}]


def _random_array(rng: random.Random) -> Any:
    depth = rng.choice([1, 2, 2, 3])
    shape = [rng.randint(1, 4) for _ in range(depth)]

    def build(level: int) -> Any:
        if level == depth:
            return rng.choice([rng.uniform(-5, 5), rng.randint(-5, 5)])
        return [build(level + 1) for _ in range(shape[level])]

    value = build(0)
    for _ in range(rng.choice([0, 0, 1, 2])):  # plant mistakes at random places
        holder, key = value, rng.randrange(len(value))
        while isinstance(holder[key], list) and holder[key] and rng.random() > 0.3:
            holder = holder[key]
            key = rng.randrange(len(holder))
        if rng.random() < 0.2:
            holder.append(copy.deepcopy(rng.choice(BAD)))  # a ragged row
        else:
            holder[key] = copy.deepcopy(rng.choice(BAD))
    return value


def _outcome(fn: Any, value: Any) -> Any:
    try:
        return ("ok", fn(value))
    except ValidationError as e:
        return ("error", e.messages)


@pytest.mark.parametrize("limit", [100_000, 7])
def test_fast_path_says_what_the_plain_walk_says(limit: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schemas, "INLINE_MAX_NUMBERS", limit)
    rng = random.Random(limit)
    seen = {"ok": 0, "error": 0}
    for _ in range(3000):
        value = _random_array(rng)
        got = _outcome(lambda v: schemas._walk_numbers(v, [], [0]), value)
        want = _outcome(lambda v: _reference(v, [], [0], limit), value)
        assert got == want, value
        seen[got[0]] += 1
    assert seen["ok"] > 100 and seen["error"] > 100  # both sides of the check exercised


def test_messages_name_the_position() -> None:
    schema = InlineDataSchema()
    with pytest.raises(ValidationError) as e:
        schema.load({"x": [[1.0, 2.0], [3.0, math.nan]], "y": [0, 1]})
    assert e.value.messages == {"x": ["Value at [1][1] is nan; all values must be finite."]}
    with pytest.raises(ValidationError) as e:
        schema.load({"x": [[1.0, 2.0], [3.0, True]], "y": [0, 1]})
    assert e.value.messages == {"x": ["Value at [1][1] is True, not a number."]}
    with pytest.raises(ValidationError) as e:
        schema.load({"x": [[1.0, 2.0], [3.0]], "y": [0, 1]})
    assert e.value.messages == {
        "x": ["Ragged array: [1] has shape (1,), earlier rows have (2,)."]}


def test_the_number_limit_counts_every_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schemas, "INLINE_MAX_NUMBERS", 6)
    assert schemas._walk_numbers([[1, 2, 3], [4, 5, 6]], [], [0]) == (2, 3)
    with pytest.raises(ValidationError, match="at most 6 numbers"):
        schemas._walk_numbers([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [], [0])
