"""What a diagnostic returns: a JSON-able result and named artifacts (files).

Results hold only JSON types, and JSON has no NaN or infinity: every float a runner puts
in a result goes through :func:`json_float` (or :func:`json_floats` for arrays), the one
sanitiser of the core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import numpy as np

__all__ = ["Artifact", "RunOutput", "json_float", "json_floats"]


def json_float(x: SupportsFloat | None) -> float | None:
    """A finite Python float, or None for None, NaN and infinities.

    Accepts anything ``float()`` accepts: Python and numpy numbers, one-element arrays
    and tensors.
    """
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def json_floats(xs: Any) -> list[float | None]:
    """:func:`json_float` of every element of an array-like, flattened (C order)."""
    return [json_float(v) for v in np.asarray(xs, dtype=np.float64).reshape(-1).tolist()]


@dataclass(frozen=True)
class Artifact:
    """A file produced by a run: a plot (``image/png``), an array file, a JSON table."""

    name: str
    media_type: str
    data: bytes


@dataclass
class RunOutput:
    """Result of one job kind's runner.

    ``result`` holds only JSON types (dict, list, str, int, float, bool, None); floats
    must be finite or None (:func:`json_float`). Large arrays go to ``artifacts``.
    """

    result: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)
