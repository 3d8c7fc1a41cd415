"""Job kind ``evaluate``: loss, gradient norm, parameter count, per-sample losses.

Options: ``diagnostics/options/evaluate.py``.
"""

from __future__ import annotations

from .base import KindSpec

__all__ = ["KIND"]

KIND = KindSpec.from_table(
    "evaluate",
    summary="Loss, gradient norm, parameter count and per-sample loss summary.",
)
