"""Plots of the minimizer-manifold diagnostic (matplotlib, Agg canvas, no pyplot state)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .rank import RankResult

__all__ = ["singular_value_plot"]


def singular_value_plot(rank: RankResult, *, title: str = "") -> bytes:
    """PNG of the singular values of ``J`` (log scale) with the rank cut marked.

    The horizontal line is the threshold ``rtol * sigma_max``; the vertical line falls
    between ``sigma_rank`` and ``sigma_{rank+1}``. Exact zeros are drawn at the bottom
    of the axis (a log scale cannot show them).

    Args:
        rank: the rank result (singular values, threshold, rule).
        title: figure title.

    Returns:
        PNG bytes.
    """
    s = rank.singular_values.numpy()
    idx = np.arange(1, s.size + 1)
    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    positive = s[s > 0]
    floor = (positive.min() if positive.size else 1.0) * 1e-2
    if rank.threshold > 0:
        floor = min(floor, rank.threshold * 1e-2)
    shown = np.where(s > 0, s, floor)
    kept = idx <= rank.rank
    ax.semilogy(idx[kept], shown[kept], "o", ms=3, color="tab:blue", label="kept")
    if (~kept).any():
        ax.semilogy(idx[~kept], shown[~kept], "x", ms=4, color="tab:red", label="cut")
    if rank.threshold > 0:
        ax.axhline(rank.threshold, color="tab:gray", ls="--", lw=1,
                   label=f"threshold {rank.threshold:.2e}")
    ax.axvline(rank.rank + 0.5, color="tab:green", ls=":", lw=1.2,
               label=f"rank = {rank.rank}")
    gap = "n/a" if rank.gap_ratio is None else f"{rank.gap_ratio:.2e}"
    ax.set_xlabel("index i")
    ax.set_ylabel("singular value sigma_i of J")
    ax.set_title(title or f"Jacobian spectrum ({rank.route} route), gap at cut {gap}")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
