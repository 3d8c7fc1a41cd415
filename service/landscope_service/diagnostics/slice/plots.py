"""Files of a slice: contour, surface and profile figures (PNG and SVG, in the shared
style of :mod:`..plots`), ``slice.npz`` and a legacy VTK grid.

Matplotlib with the Agg backend and the object API (no display, no global state), figures
discarded after rendering.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..plots import OKABE_ITO, SEQUENTIAL_CMAP, new_figure, render, set_caption, styled

__all__ = ["contour_figure", "contour_png", "log_levels_wanted", "npz_bytes",
           "profile_figure", "profile_png", "surface_figure", "surface_png", "vtk_bytes"]


def log_levels_wanted(loss: np.ndarray) -> bool:
    """Log-scale levels when the finite values are positive and span two decades or more."""
    v = loss[np.isfinite(loss)]
    return bool(v.size and float(v.min()) > 0 and float(v.max()) / float(v.min()) >= 100.0)


def _figure(figsize: tuple[float, float]) -> Any:
    """A column-width figure with the aspect of ``figsize`` (shared style)."""
    return new_figure("column", aspect=figsize[1] / figsize[0])


def _styled(build: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure inside the shared style; ``caption=`` adds the caption line."""
    @functools.wraps(build)
    def wrapper(*args: Any, caption: str = "", **kwargs: Any) -> Figure:
        with styled():
            fig = build(*args, **kwargs)
            if caption:
                set_caption(fig, caption)
        return fig
    return wrapper


@_styled
def contour_figure(alpha: np.ndarray, beta: np.ndarray, loss: np.ndarray, *,
                labels: Sequence[str], points: Sequence[dict[str, Any]] = (),
                trajectory: np.ndarray | None = None, minimum: dict[str, Any] | None = None,
                title: str = "Loss slice", levels: int = 30) -> Figure:
    """Filled contours of ``loss[beta, alpha]`` with a colour bar; log-spaced levels when
    the values span decades (:func:`log_levels_wanted`); the trajectory, the given points
    and the slice's minimum drawn on top."""
    from matplotlib.colors import LogNorm

    fig = _figure((6.4, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(False)  # the contour lines are the grid
    z = np.where(np.isfinite(loss), loss, np.nan)
    finite = z[np.isfinite(z)]
    if finite.size and float(finite.max()) > float(finite.min()):
        if log_levels_wanted(z):
            lv = np.geomspace(float(finite.min()), float(finite.max()), levels)
            cs = ax.contourf(alpha, beta, z, levels=lv, norm=LogNorm(), cmap=SEQUENTIAL_CMAP)
            ax.contour(alpha, beta, z, levels=lv, norm=LogNorm(), colors="k",
                       linewidths=0.3)
            scale = "log-spaced levels"
        else:
            lv = np.linspace(float(finite.min()), float(finite.max()), levels)
            cs = ax.contourf(alpha, beta, z, levels=lv, cmap=SEQUENTIAL_CMAP)
            ax.contour(alpha, beta, z, levels=lv, colors="k", linewidths=0.3)
            scale = "linear levels"
        bar = fig.colorbar(cs, ax=ax, label=f"loss ({scale})")
        ticks = (np.geomspace if scale.startswith("log") else np.linspace)(
            float(finite.min()), float(finite.max()), 7)
        bar.set_ticks(ticks)
        bar.set_ticklabels([f"{t:.3g}" for t in ticks])
    else:
        ax.text(0.5, 0.5, "constant or non-finite loss", ha="center", transform=ax.transAxes)
    if trajectory is not None and trajectory.shape[0]:
        ax.plot(trajectory[:, 0], trajectory[:, 1], "-o", color="w", ms=3, lw=1.2,
                mec="k", label="trajectory")
    for k, pt in enumerate(points):
        if pt.get("beta") is None:
            continue
        ax.plot([pt["alpha"]], [pt["beta"]], "*", color=OKABE_ITO["orange"], ms=9, mec="k",
                label="given points" if k == 0 else None)
        ax.annotate(str(pt["label"]), (pt["alpha"], pt["beta"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=7, color="w")
    if minimum is not None and minimum.get("beta") is not None:
        ax.plot([minimum["alpha"]], [minimum["beta"]], "x", color=OKABE_ITO["vermillion"],
                ms=8, mew=2, label="slice minimum")
    ax.plot([0.0], [0.0], "+", color="k", ms=8, mew=1.5, label="centre")
    ax.set_xlabel(f"alpha ({labels[0]})")
    ax.set_ylabel(f"beta ({labels[1]})")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=6, framealpha=0.7)
    return fig


@_styled
def surface_figure(alpha: np.ndarray, beta: np.ndarray, loss: np.ndarray, *,
                labels: Sequence[str], title: str = "Loss surface") -> Figure:
    """3-D surface of ``loss[beta, alpha]`` (log10 of the loss when it spans decades)."""
    fig = _figure((6.4, 5.2))
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    ax.set_box_aspect(None, zoom=0.8)  # room for the 3-D axis labels inside the canvas
    aa, bb = np.meshgrid(alpha, beta)
    z = np.where(np.isfinite(loss), loss, np.nan)
    zlabel = "loss"
    if log_levels_wanted(z):
        z = np.log10(z)
        zlabel = "log10 loss"
    ax.plot_surface(aa, bb, z, cmap=SEQUENTIAL_CMAP, linewidth=0, antialiased=True)
    ax.set_xlabel(f"alpha ({labels[0]})")
    ax.set_ylabel(f"beta ({labels[1]})")
    ax.set_zlabel(zlabel)
    ax.set_title(title)
    return fig


@_styled
def profile_figure(alpha: np.ndarray, loss: np.ndarray, *, label: str,
                accuracy: np.ndarray | None = None, points: Sequence[dict[str, Any]] = (),
                title: str = "Loss profile") -> Figure:
    """The 1-D loss profile (log axis when it spans decades), the accuracy on a second
    axis when given, the given points marked."""
    fig = _figure((6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    z = np.where(np.isfinite(loss), loss, np.nan)
    if log_levels_wanted(z):
        ax.set_yscale("log")
    ax.plot(alpha, z, color=OKABE_ITO["blue"], lw=1.5, label="loss")
    for k, pt in enumerate(points):
        ax.axvline(pt["alpha"], color=OKABE_ITO["vermillion"], lw=0.8, ls="--",
                   label="given points" if k == 0 else None)
    ax.axvline(0.0, color="k", lw=0.6, ls=":", label="centre")
    ax.set_xlabel(f"alpha ({label})")
    ax.set_ylabel("loss")
    handles, names = ax.get_legend_handles_labels()
    if accuracy is not None:
        ax2 = ax.twinx()
        ax2.plot(alpha, accuracy, color=OKABE_ITO["orange"], lw=1.2, label="accuracy")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(-0.02, 1.02)
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.set_title(title)
    ax.legend(handles, names, loc="upper left", fontsize=6)
    return fig


def contour_png(*args: Any, **kwargs: Any) -> bytes:
    """PNG bytes of :func:`contour_figure`."""
    return render(contour_figure(*args, **kwargs))


def surface_png(*args: Any, **kwargs: Any) -> bytes:
    """PNG bytes of :func:`surface_figure`."""
    return render(surface_figure(*args, **kwargs))


def profile_png(*args: Any, **kwargs: Any) -> bytes:
    """PNG bytes of :func:`profile_figure`."""
    return render(profile_figure(*args, **kwargs))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``numpy.savez_compressed`` to bytes (plain arrays only: loads with
    ``allow_pickle=False``)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def vtk_bytes(alpha: np.ndarray, beta: np.ndarray | None, loss: np.ndarray,
              extra: dict[str, np.ndarray] | None = None) -> bytes:
    """A legacy ASCII VTK ``STRUCTURED_GRID`` (ParaView opens it), as Li et al.'s
    ``h52vtp`` writes for the surface: points ``(alpha, beta, loss)``, point data ``loss``,
    ``log_loss`` (log10, when every value is positive) and ``extra`` arrays of the
    same shape. Non-finite values are written as the largest finite one (VTK readers
    reject NaN in coordinates)."""
    b = np.zeros(1) if beta is None else beta
    z = loss.reshape(b.size, alpha.size)
    finite = z[np.isfinite(z)]
    fill = float(finite.max()) if finite.size else 0.0
    z = np.where(np.isfinite(z), z, fill)
    n = z.size
    lines = ["# vtk DataFile Version 3.0", "landscope loss slice", "ASCII",
             "DATASET STRUCTURED_GRID", f"DIMENSIONS {alpha.size} {b.size} 1",
             f"POINTS {n} double"]
    for i in range(b.size):  # x varies fastest
        for j in range(alpha.size):
            lines.append(f"{alpha[j]:.17g} {b[i]:.17g} {z[i, j]:.17g}")
    lines.append(f"POINT_DATA {n}")
    scalars = {"loss": z}
    if finite.size and float(z.min()) > 0:
        scalars["log_loss"] = np.log10(z)
    for k, v in (extra or {}).items():
        vv = v.reshape(z.shape)
        scalars[k] = np.where(np.isfinite(vv), vv, 0.0)
    for name, arr in scalars.items():
        lines += [f"SCALARS {name} double 1", "LOOKUP_TABLE default"]
        lines += [f"{x:.17g}" for x in arr.reshape(-1)]
    return ("\n".join(lines) + "\n").encode()
