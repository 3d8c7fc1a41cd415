"""The core's one JSON-float sanitiser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from landscope_service.diagnostics.output import json_float, json_floats


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (np.float32(0.25), 0.25),
        (np.float64(-2.0), -2.0),
        (torch.tensor(4.0, dtype=torch.float64), 4.0),
        (None, None),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (np.float32("nan"), None),
        (torch.tensor(float("-inf")), None),
    ],
)
def test_json_float(value: object, expected: float | None) -> None:
    got = json_float(value)  # type: ignore[arg-type]
    assert got == expected
    assert got is None or type(got) is float  # a plain float, never a numpy or torch scalar


def test_json_floats_flattens_and_survives_strict_json() -> None:
    arr = np.array([[1.0, np.nan], [np.inf, -3.0]], dtype=np.float32)
    out = json_floats(arr)
    assert out == [1.0, None, None, -3.0]
    assert all(v is None or type(v) is float for v in out)
    # allow_nan=False raises on NaN/inf: the sanitised list always serialises
    assert json.dumps(out, allow_nan=False) == "[1.0, null, null, -3.0]"
    with pytest.raises(ValueError):
        json.dumps(arr.reshape(-1).tolist(), allow_nan=False)
