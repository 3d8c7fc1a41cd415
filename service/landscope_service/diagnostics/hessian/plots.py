"""The spectral-density figure of ``hessian_spectrum``, in the shared style (:mod:`..plots`).

The density is drawn on a log axis down to ``DYNAMIC_RANGE`` below its peak; below that
the curve is not drawn at all (it breaks), so gaps in the spectrum read as gaps and never
as a plateau at some floor value. The extreme eigenvalues are ticks on the axis (top-k
and bottom-k) with the largest and smallest labelled by value.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..output import Artifact
from ..plots import OKABE_ITO, caption_text, figure_artifacts, new_figure, set_caption, styled

__all__ = ["DYNAMIC_RANGE", "density_artifacts", "density_caption", "density_figure",
           "density_png"]

DYNAMIC_RANGE = 1e-6
"""Lowest density drawn, relative to the peak (six decades, the range SLQ resolves
with a few probes; Ghorbani et al. 2019, fig. 1, show about as many)."""

_LABEL_BOX = {"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}


def density_caption(*, exact: bool, num_probes: int | None, steps: int | None,
                    sigma: float | None, grid_points: int, num_params: int | None,
                    num_samples: int | None, loss: str | None, dtype: str | None) -> str:
    """The caption line of the density figure: P, N, loss, dtype, method, broadening,
    grid and the drawn range."""
    if exact:
        method = "All P eigenvalues of the dense Hessian"
    else:
        method = f"Stochastic Lanczos quadrature, {num_probes} probes x {steps} steps"
    extra = [f"Gaussian broadening \u03c3 = {sigma:.3g}" if sigma is not None else "",
             f"{grid_points}-point grid",
             f"density below {DYNAMIC_RANGE:.0e} of its peak not drawn"]
    return caption_text(what="Hessian spectral density", num_params=num_params,
                        num_samples=num_samples, loss=loss, dtype=dtype, method=method,
                        extra=extra)


def density_figure(grid: np.ndarray, values: np.ndarray, *, top: list[float],
                   bottom: list[float], caption: str, label: str = "SLQ density",
                   title: str = "Hessian spectral density") -> Figure:
    """The density on a log axis (no floor: values below ``DYNAMIC_RANGE`` times the
    peak are masked, so the curve breaks there), top-k and bottom-k eigenvalues as
    vertical ticks, ``lambda_max`` and ``lambda_min`` labelled with their values."""
    grid = np.asarray(grid, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    with styled():
        fig = new_figure("column", aspect=0.75)
        ax = fig.add_subplot(1, 1, 1)
        finite = values[np.isfinite(values) & (values > 0)]
        if finite.size:
            peak = float(finite.max())
            lo = peak * DYNAMIC_RANGE
            shown = np.where(np.isfinite(values) & (values >= lo), values, np.nan)
            ax.plot(grid, shown, color=OKABE_ITO["blue"], lw=1.2, label=label)
            ax.set_yscale("log")
            ax.set_ylim(lo, peak * 3.0)
        else:
            ax.text(0.5, 0.5, "no positive density", ha="center", transform=ax.transAxes)
        tr = ax.get_xaxis_transform()  # x in data, y in axes fraction
        for i, v in enumerate(top):
            ax.axvline(v, ymin=0.0, ymax=0.12, color=OKABE_ITO["vermillion"], lw=1.0,
                       label=f"top {len(top)}" if i == 0 else None)
        for i, v in enumerate(bottom):
            ax.axvline(v, ymin=0.0, ymax=0.12, color=OKABE_ITO["bluish_green"], lw=1.0,
                       label=f"bottom {len(bottom)}" if i == 0 else None)
        extremes = [*top, *bottom]
        if extremes:
            hi, lo_v = max(extremes), min(extremes)
            ax.annotate(f"$\\lambda_{{max}}$ = {hi:.4g}", (hi, 0.12), xycoords=tr,
                        xytext=(0, 3), textcoords="offset points", ha="right",
                        va="bottom", fontsize=7, color=OKABE_ITO["vermillion"], bbox=_LABEL_BOX)
            if lo_v != hi:
                ax.annotate(f"$\\lambda_{{min}}$ = {lo_v:.4g}", (lo_v, 0.12), xycoords=tr,
                            xytext=(0, 3), textcoords="offset points", ha="left",
                            va="bottom", fontsize=7, color=OKABE_ITO["bluish_green"],
                            bbox=_LABEL_BOX)
            span = [float(np.nanmin(grid)) if grid.size else lo_v,
                    float(np.nanmax(grid)) if grid.size else hi]
            pad = 0.04 * max(max(span[1], hi) - min(span[0], lo_v), 1e-300)
            ax.set_xlim(min(span[0], lo_v) - pad, max(span[1], hi) + pad)
        ax.set_xlabel("eigenvalue $\\lambda$")
        ax.set_ylabel("density (log)")
        ax.set_label(title)
        # above the axes, in place of a title (the caption names the figure)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, handlelength=1.2,
                  columnspacing=0.8, fontsize=6.5, frameon=False, borderaxespad=0.2)
        set_caption(fig, caption)
    return fig


def density_artifacts(grid: np.ndarray, values: np.ndarray, *, top: list[float],
                      bottom: list[float], caption: str, label: str = "SLQ density",
                      title: str = "Hessian spectral density") -> list[Artifact]:
    """``density.png`` and ``density.svg`` of :func:`density_figure`."""
    return figure_artifacts("density", density_figure(
        grid, values, top=top, bottom=bottom, caption=caption, label=label, title=title))


def density_png(grid: np.ndarray, values: np.ndarray, *, top: list[float],
                bottom: list[float], title: str, label: str = "SLQ density",
                caption: str = "") -> bytes:
    """PNG bytes of :func:`density_figure` (kept for callers of the old function)."""
    return density_artifacts(grid, values, top=top, bottom=bottom, caption=caption or title,
                             label=label, title=title)[0].data
