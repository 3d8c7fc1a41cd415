"""Plots of the spectrum (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["density_png"]


def density_png(grid: np.ndarray, values: np.ndarray, *, top: list[float], bottom: list[float],
                title: str, label: str = "SLQ density") -> bytes:
    """A PNG of the spectral density (log scale), with the extreme eigenvalues marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    floor = max(float(np.max(values)) * 1e-8, 1e-300) if values.size else 1e-300
    ax.semilogy(grid, np.maximum(values, floor), color="C0", lw=1.2, label=label)
    for i, v in enumerate(top):
        ax.axvline(v, color="C3", lw=0.8, ls="--", label="top-k" if i == 0 else None)
    for i, v in enumerate(bottom):
        ax.axvline(v, color="C2", lw=0.8, ls="--", label="bottom-k" if i == 0 else None)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
