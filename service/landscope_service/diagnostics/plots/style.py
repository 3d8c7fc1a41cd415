"""The one figure style of every kind: column-width sizes, a caption line, Okabe-Ito colours.

Every figure of the service is built inside :func:`styled` on a :func:`new_figure`, given a
caption with :func:`set_caption` and written with :func:`render` (PNG and SVG). Layout is
matplotlib's constrained layout with the caption's height reserved below the axes, so
labels, legends, colour bars and the caption stay inside the canvas (nothing clipped;
:func:`clipped_texts` checks it). Figures use the object API on an Agg canvas: no pyplot
state, nothing shown, safe in worker processes.

Sizes are for a two-column paper: ``"column"`` is 3.4 in wide (a single column of an
IEEE/NeurIPS-style page), ``"double"`` 7.0 in (the full text width), with 8 pt text so
that labels read at print size without scaling.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "GREY",
    "OKABE_ITO",
    "PALETTE",
    "SEQUENTIAL_CMAP",
    "Width",
    "caption_text",
    "clipped_texts",
    "color",
    "log_axis_wanted",
    "new_figure",
    "render",
    "set_caption",
    "styled",
]

Width = Literal["column", "double"]

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour
# vision deficiencies. Yellow is left out of the line cycle (too faint on white).
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
PALETTE: tuple[str, ...] = (
    OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"],
    OKABE_ITO["orange"], OKABE_ITO["reddish_purple"], OKABE_ITO["sky_blue"],
    OKABE_ITO["black"],
)
GREY = "#7f7f7f"  # reference lines (thresholds, noise levels)
SEQUENTIAL_CMAP = "viridis"  # perceptually uniform and colour-blind safe

WIDTH_IN: dict[str, float] = {"column": 3.4, "double": 7.0}
FONT_PT = 8.0
CAPTION_PT = 6.5
PNG_DPI = 200

_RC: dict[str, Any] = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT + 1,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT - 1,
    "ytick.labelsize": FONT_PT - 1,
    "legend.fontsize": FONT_PT - 1,
    "legend.framealpha": 0.85,
    "axes.prop_cycle": __import__("cycler").cycler(color=list(PALETTE)),
    "image.cmap": SEQUENTIAL_CMAP,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.linewidth": 0.6,
    "svg.fonttype": "none",       # text stays text in the SVG (searchable, small)
    "svg.hashsalt": "landscope",  # deterministic element ids
    "figure.dpi": 100,
}


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """The style's rcParams, for building and rendering a figure (restored after)."""
    with rc_context(_RC):
        yield


def new_figure(width: Width = "column", aspect: float = 0.72) -> Figure:
    """An empty figure ``WIDTH_IN[width]`` wide and ``aspect`` times as high, with
    constrained layout and an Agg canvas. Call inside :func:`styled`."""
    if width not in WIDTH_IN:
        raise ValueError(f"width must be one of {sorted(WIDTH_IN)}, got {width!r}.")
    if not aspect > 0:
        raise ValueError(f"aspect must be positive, got {aspect!r}.")
    w = WIDTH_IN[width]
    fig = Figure(figsize=(w, w * aspect), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def caption_text(*, what: str, num_params: int | None = None, num_samples: int | None = None,
                 loss: str | None = None, dtype: str | None = None,
                 method: str | None = None, extra: Sequence[str] = ()) -> str:
    """The caption line: what the figure shows, then P, N, loss, dtype, method and any
    ``extra`` facts (broadening, grid, thresholds), joined by ``"; "``.

    >>> caption_text(what="Hessian density", num_params=10, num_samples=4, loss="mse")
    'Hessian density. P = 10, N = 4, loss mse.'
    """
    facts: list[str] = []
    if num_params is not None:
        facts.append(f"P = {num_params:,}")
    if num_samples is not None:
        facts.append(f"N = {num_samples:,}")
    if loss:
        facts.append(f"loss {loss}")
    if dtype:
        facts.append(str(dtype).removeprefix("torch."))
    head = what.rstrip(".") + "."
    text = head + (" " + ", ".join(facts) + "." if facts else "")
    tail = [m for m in ([method] if method else []) + list(extra) if m]
    if tail:
        tail = [t.rstrip(".") for t in tail]
        text += " " + "; ".join([tail[0][:1].upper() + tail[0][1:], *tail[1:]]) + "."
    return text


def _wrap(fig: Figure, text: str, fontsize: float, width_px: float) -> list[str]:
    """Greedy word wrap measured with the figure's renderer (not a character count)."""
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    prop = FontProperties(size=fontsize)
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}" if line else word
            w, _, _ = renderer.get_text_width_height_descent(trial, prop, ismath=False)
            if line and w > width_px:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def set_caption(fig: Figure, text: str) -> None:
    """Write ``text`` under the axes, wrapped to the figure's width, and reserve its
    height in the constrained layout so nothing overlaps or leaves the canvas."""
    width_in, height_in = fig.get_size_inches()
    lines = _wrap(fig, text, CAPTION_PT, 0.96 * width_in * fig.dpi)
    line_in = CAPTION_PT * 1.25 * 1.2 / 72.0
    reserved = (len(lines) * line_in + 0.06) / height_in
    fig.get_layout_engine().set(rect=(0.0, reserved, 1.0, 1.0 - reserved))
    fig.text(0.01, reserved - 0.03 / height_in, "\n".join(lines), ha="left", va="top",
             fontsize=CAPTION_PT, color="#333333", gid="caption", linespacing=1.25)


def color(i: int) -> str:
    """The ``i``-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


def log_axis_wanted(values: Iterable[float] | np.ndarray, decades: float = 2.0) -> bool:
    """True when the finite values are all positive and span at least ``decades``."""
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                   dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0 or float(v.min()) <= 0:
        return False
    return math.log10(float(v.max()) / float(v.min())) >= decades


def render(fig: Figure, fmt: Literal["png", "svg"] = "png") -> bytes:
    """The figure as PNG (``PNG_DPI``) or SVG bytes, with no date or creator metadata
    (the same figure renders to the same bytes)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}.")
    buf = io.BytesIO()
    meta: dict[str, Any] = ({"Date": None, "Creator": None, "Format": None, "Type": None}
                            if fmt == "svg" else {"Software": None})
    with styled():
        fig.savefig(buf, format=fmt, dpi=PNG_DPI if fmt == "png" else None, metadata=meta)
    return buf.getvalue()


def clipped_texts(fig: Figure) -> list[str]:
    """What leaves the canvas when drawn (should be nothing): each axes (with its tick
    labels, axis labels, title and legend, as laid out), each figure-level text and legend,
    named by the axes' title or label or the text itself."""
    canvas = fig.canvas
    canvas.draw()
    renderer = canvas.get_renderer()  # type: ignore[attr-defined]
    w, h = fig.bbox.width, fig.bbox.height
    out = []
    parts: list[tuple[str, Any]] = []
    for k, ax in enumerate(fig.axes):
        name = ax.get_title() or ax.get_ylabel() or ax.get_label() or f"axes {k}"
        parts.append((f"axes {name!r}", ax.get_tightbbox(renderer)))
    for t in fig.texts:
        if t.get_visible() and t.get_text().strip():
            parts.append((f"text {t.get_text()[:40]!r}", t.get_window_extent(renderer)))
    for leg in fig.legends:
        parts.append(("figure legend", leg.get_window_extent(renderer)))
    for name, bb in parts:
        if bb is None:
            continue
        if bb.x0 < -0.5 or bb.y0 < -0.5 or bb.x1 > w + 0.5 or bb.y1 > h + 0.5:
            out.append(name)
    return out
