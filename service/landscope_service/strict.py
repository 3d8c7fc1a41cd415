"""The one strict marshmallow base of every request schema (model, data, options).

Strict means: unknown fields are rejected; integers are JSON integers (``3.0``, ``"3"``
and ``true`` are not); booleans are JSON ``true``/``false`` only (not ``"yes"``, 1 or 0);
numbers are finite JSON numbers (not ``"1e-6"``, booleans, NaN or infinity).
Use :class:`StrictSchema` as the base class, :class:`StrictBoolean` and
:class:`StrictFloat` for booleans and numbers, and ``fields.Integer(strict=True)``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, fields

__all__ = ["StrictBoolean", "StrictFloat", "StrictSchema"]


class StrictSchema(Schema):
    """Base of every request schema: unknown fields are rejected."""

    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """A boolean that accepts only JSON ``true`` and ``false`` (not 1, 0 or strings)."""

    default_error_messages: ClassVar[dict[str, str]] = {  # type: ignore[assignment,misc]
        "invalid": "Not a valid boolean: use true or false."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictFloat(fields.Float):
    """A finite JSON number; strings and booleans are rejected."""

    default_error_messages: ClassVar[dict[str, str]] = {  # type: ignore[assignment,misc]
        "invalid": "Not a valid number: use a JSON number, not a string.",
        "special": "Must be a finite number (not NaN or infinity).",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        out = super()._deserialize(value, attr, data, **kwargs)
        return float(out) if out is not None else math.nan
