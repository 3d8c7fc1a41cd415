"""The singular values of the Jacobian at the fitted point, in the shared style
(:mod:`..plots`): the figure that was already right, kept as it was and restyled."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..output import Artifact
from ..plots import GREY, OKABE_ITO, figure_artifacts, new_figure, render, set_caption, styled
from .rank import RankResult

__all__ = ["singular_value_artifacts", "singular_value_figure", "singular_value_plot"]


def singular_value_figure(rank: RankResult, *, caption: str = "", title: str = "") -> Figure:
    """The singular values of ``J`` (log scale) with the rank cut marked.

    The horizontal line is the threshold ``rtol * sigma_max``; the vertical line falls
    between ``sigma_rank`` and ``sigma_{rank+1}``. Exact zeros are drawn at the bottom
    of the axis (a log scale cannot show them) with their own marker and legend entry.

    Args:
        rank: the rank result (singular values, threshold, rule).
        caption: the caption line under the figure (P, N, loss, dtype, rule).
        title: figure title (default: the route and the gap at the cut).
    """
    s = rank.singular_values.numpy()
    idx = np.arange(1, s.size + 1)
    with styled():
        fig = new_figure("column", aspect=0.78)
        ax = fig.add_subplot(1, 1, 1)
        positive = s[s > 0]
        floor = (positive.min() if positive.size else 1.0) * 1e-2
        if rank.threshold > 0:
            floor = min(floor, rank.threshold * 1e-2)
        kept = idx <= rank.rank
        zero = s <= 0
        ax.semilogy(idx[kept & ~zero], s[kept & ~zero], "o", ms=3,
                    color=OKABE_ITO["blue"], label="kept")
        cut = ~kept & ~zero
        if cut.any():
            ax.semilogy(idx[cut], s[cut], "x", ms=4, color=OKABE_ITO["vermillion"],
                        label="cut")
        if zero.any():
            ax.semilogy(idx[zero], np.full(int(zero.sum()), floor), "v", ms=4,
                        color=OKABE_ITO["vermillion"], label="exactly 0 (drawn at floor)")
        if rank.threshold > 0:
            ax.axhline(rank.threshold, color=GREY, ls="--", lw=1,
                       label=f"threshold {rank.threshold:.2e}")
        ax.axvline(rank.rank + 0.5, color=OKABE_ITO["bluish_green"], ls=":", lw=1.2,
                   label=f"rank = {rank.rank}")
        gap = "n/a" if rank.gap_ratio is None else f"{rank.gap_ratio:.2e}"
        ax.set_xlabel("index $i$")
        ax.set_ylabel("singular value $\\sigma_i$ of $J$")
        ax.set_title(title or f"Jacobian spectrum ({rank.route} route), gap at cut {gap}",
                     fontsize=7.5)
        ax.legend(loc="lower left")
        ax.grid(True, which="both", alpha=0.3)
        if caption:
            set_caption(fig, caption)
    return fig


def singular_value_artifacts(rank: RankResult, *, caption: str, title: str = ""
                             ) -> list[Artifact]:
    """``singular_values.png`` and ``singular_values.svg``."""
    return figure_artifacts("singular_values",
                            singular_value_figure(rank, caption=caption, title=title))


def singular_value_plot(rank: RankResult, *, title: str = "", caption: str = "") -> bytes:
    """PNG bytes of :func:`singular_value_figure`."""
    return render(singular_value_figure(rank, caption=caption, title=title), "png")
