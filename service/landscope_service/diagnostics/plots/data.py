"""What a figure shows, as data: the artists' coordinates and texts, for regression tests
that compare figures by content rather than by pixels, and the PNG+SVG artifact pair."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from ..output import Artifact
from .style import render

__all__ = ["figure_artifacts", "figure_data"]


def _num(x: Any, digits: int) -> Any:
    """Round to ``digits`` significant digits; NaN/inf become strings (JSON has none)."""
    v = float(x)
    if not math.isfinite(v):
        return str(v)
    return float(f"{v:.{digits}g}")


def _arr(a: Any, digits: int) -> list[Any]:
    arr = np.ma.filled(np.ma.asarray(a, dtype=np.float64), np.nan)
    if arr.ndim == 0:
        return [_num(arr, digits)]
    return [_arr(row, digits) if np.ndim(row) else _num(row, digits) for row in arr]


def _texts(texts: list[Text]) -> list[str]:
    return [t.get_text() for t in texts if t.get_visible() and t.get_text().strip()]


def _axes(ax: Axes, digits: int) -> dict[str, Any]:
    lines = []
    for ln in ax.get_lines():
        if not isinstance(ln, Line2D) or not ln.get_visible():
            continue
        lines.append({"label": str(ln.get_label()), "x": _arr(ln.get_xdata(), digits),
                      "y": _arr(ln.get_ydata(), digits), "style": str(ln.get_linestyle()),
                      "marker": str(ln.get_marker()),
                      "color": to_hex(ln.get_color(), keep_alpha=False)})
    colls = []
    for c in ax.collections:
        if not isinstance(c, Collection) or not c.get_visible():
            continue
        entry: dict[str, Any] = {"type": type(c).__name__, "label": str(c.get_label())}
        offsets = c.get_offsets()
        if len(offsets):
            entry["offsets"] = _arr(offsets, digits)
        segs = getattr(c, "get_segments", None)
        if segs is not None:
            entry["segments"] = [_arr(s, digits) for s in segs()]
        arr = c.get_array()
        if arr is not None:
            entry["array"] = _arr(np.asarray(arr).reshape(-1), digits)
        colls.append(entry)
    legend = ax.get_legend()
    out = {
        "title": ax.get_title(),
        "xlabel": ax.get_xlabel(),
        "ylabel": ax.get_ylabel(),
        "xscale": ax.get_xscale(),
        "yscale": ax.get_yscale(),
        "lines": lines,
        "collections": colls,
        "texts": _texts(ax.texts),
        "legend": _texts(legend.get_texts()) if legend is not None else [],
    }
    if ax.child_axes:  # insets
        out["insets"] = [_axes(child, digits) for child in ax.child_axes]
    return out


def figure_data(fig: Figure, digits: int = 8) -> dict[str, Any]:
    """The figure's content as JSON types: per axes the title, labels, scales, each
    line's label and ``x``/``y``, each collection's offsets/segments/values, texts,
    legend entries and insets; and the figure-level texts (the caption). Numbers are rounded to
    ``digits`` significant digits."""
    return {
        "size_in": _arr(fig.get_size_inches(), digits),
        "texts": _texts(fig.texts),
        "axes": [_axes(ax, digits) for ax in fig.axes],
    }


def figure_artifacts(stem: str, fig: Figure) -> list[Artifact]:
    """``<stem>.png`` and ``<stem>.svg`` of the figure."""
    return [Artifact(f"{stem}.png", "image/png", render(fig, "png")),
            Artifact(f"{stem}.svg", "image/svg+xml", render(fig, "svg"))]
