"""Effect sizes with bootstrap intervals, and the three-way verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_interval", "effect_summary", "majority", "verdict"]


def bootstrap_interval(values: Sequence[float], *, confidence: float = 0.95,
                       resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (over seeds).

    Uses :func:`scipy.stats.bootstrap` (percentile method, seeded). With one value, or all
    values equal, the interval is that value (no spread to resample).
    """
    from scipy.stats import bootstrap

    vals = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if vals.size == 0:
        return (math.nan, math.nan)
    if vals.size == 1 or float(np.ptp(vals)) == 0.0:
        return (float(vals[0]), float(vals[0]))
    res = bootstrap((vals,), np.median, confidence_level=confidence, n_resamples=resamples,
                    method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return (float(ci.low), float(ci.high))


def majority(n: int) -> int:
    """Seeds needed for a claim to count as held: at least two thirds, ``ceil(2n/3)``."""
    return -(-2 * n // 3)


def verdict(held: int, against: int, n: int, *, blocking_confounds: bool) -> str:
    """``supported`` when at least ``ceil(2n/3)`` seeds hold it, ``not_supported`` when at
    least ``ceil(2n/3)`` seeds contradict it, else ``inconclusive``; always
    ``inconclusive`` while a confound that bears on the comparison is flagged."""
    if blocking_confounds:
        return "inconclusive"
    if held >= majority(n):
        return "supported"
    if against >= majority(n):
        return "not_supported"
    return "inconclusive"


def effect_summary(name: str, values: Sequence[float], *, seed: int) -> dict[str, object]:
    """``{name, value, interval, confidence}``: the median of ``values`` over seeds (None
    when there are none) and its 95% percentile bootstrap interval (JSON-safe floats)."""
    from ..output import json_float, json_floats

    return {"name": name, "value": json_float(float(np.median(values))) if values else None,
            "interval": json_floats(bootstrap_interval(values, seed=seed)),
            "confidence": 0.95}
