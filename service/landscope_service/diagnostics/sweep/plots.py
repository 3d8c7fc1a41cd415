"""Figures of ``sweep``: sharpness traces with their 2/eta lines (edge_of_stability), the
per-seed measure of every variant (box plots with the seeds drawn on them), interpolation
curves (width_barriers) and 1-D slices (skip_connections)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from ..output import Artifact
from ..plots import (
    caption_text,
    color,
    figure_artifacts,
    log_axis_wanted,
    new_figure,
    set_caption,
    styled,
)

__all__ = ["interpolation_figure", "seed_box_figure", "sharpness_figure", "slices_figure",
           "sweep_artifacts"]

_MEASURE = {"width_barriers": ("aligned_barrier", "aligned linear barrier"),
            "batch_norm": ("beta", "effective beta along -g"),
            "skip_connections": ("lambda_max", "lambda_max at the end"),
            "batch_size": ("lambda_max", "lambda_max at the matched loss"),
            "weight_decay": ("lambda_max", "lambda_max of the data loss at the end")}


def sharpness_figure(result: dict[str, Any], caption: str) -> Figure:
    """lambda_max against the step for every learning rate and seed, with 2/eta dashed."""
    with styled():
        fig = new_figure("column", 0.75)
        ax = fig.add_subplot()
        values: list[float] = []
        for i, var in enumerate(result["variants"]):
            lr = float(var["params"]["lr"])
            for k, run in enumerate(var["runs"]):
                pts = [(s, v) for s, v in zip(run["sharpness_steps"], run["sharpness"],
                                              strict=True) if v is not None and v > 0]
                if not pts:
                    continue
                values += [v for _, v in pts]
                ax.plot([s for s, _ in pts], [v for _, v in pts], color=color(i), lw=1.0,
                        alpha=0.85, label=f"eta = {lr:g}" if k == 0 else None)
            ax.axhline(2.0 / lr, color=color(i), ls="--", lw=1.0)
            values.append(2.0 / lr)
        if log_axis_wanted(values):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("lambda_max")
        ax.legend(loc="best")
        set_caption(fig, caption)
    return fig


def seed_box_figure(result: dict[str, Any], key: str, label: str, caption: str) -> Figure:
    """One box per variant of the per-seed (or per-pair) ``key``, the seeds drawn on it."""
    groups: list[list[float]] = []
    names: list[str] = []
    for var in result["variants"]:
        rows = var.get("pairs") if key == "aligned_barrier" else var["runs"]
        groups.append([float(r[key]) for r in rows or [] if r.get(key) is not None])
        names.append(str(var["name"]))
    with styled():
        fig = new_figure("column", 0.75)
        ax = fig.add_subplot()
        ax.boxplot(groups, tick_labels=names, widths=0.5)
        for i, g in enumerate(groups):
            ax.scatter([i + 1] * len(g), g, s=12, color=color(i), zorder=3)
        flat = [v for g in groups for v in g]
        if log_axis_wanted(flat):
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
        set_caption(fig, caption)
    return fig


def interpolation_figure(result: dict[str, Any], caption: str) -> Figure:
    """width_barriers: the loss along each pair's line, aligned solid and raw dashed, one
    colour per width."""
    with styled():
        fig = new_figure("column", 0.75)
        ax = fig.add_subplot()
        values: list[float] = []
        for i, var in enumerate(result["variants"]):
            for k, pair in enumerate(var.get("pairs") or []):
                for key, style in (("aligned_curve", "-"), ("raw_curve", "--")):
                    curve = pair.get(key) or {}
                    pts = [(t, v) for t, v in zip(curve.get("t", []), curve.get("loss", []),
                                                  strict=True) if t is not None and v is not None]
                    if not pts:
                        continue
                    values += [v for _, v in pts]
                    label = (f"{var['name']} ({'aligned' if style == '-' else 'raw'})"
                             if k == 0 else None)
                    ax.plot([t for t, _ in pts], [v for _, v in pts], ls=style, lw=1.0,
                            color=color(i), alpha=0.85, label=label)
        if log_axis_wanted(values):
            ax.set_yscale("log")
        ax.set_xlabel("t along the line from seed i to seed i+1")
        ax.set_ylabel("loss")
        ax.legend(loc="best", fontsize="small")
        set_caption(fig, caption)
    return fig


def slices_figure(result: dict[str, Any], caption: str) -> Figure:
    """skip_connections: the 1-D filter-normalised slices of each variant's first seed, one
    panel per variant (non-convex slices drawn solid, convex ones dotted)."""
    variants = result["variants"]
    with styled():
        fig = new_figure("double", 0.35)
        axes = fig.subplots(1, len(variants), sharey=True, squeeze=False)[0]
        for ax, (i, var) in zip(axes, enumerate(variants), strict=True):
            run = var["runs"][0] if var["runs"] else {}
            curves = run.get("slice_losses") or []
            flags = run.get("nonconvex_slices") or [False] * len(curves)
            for curve, bent in zip(curves, flags, strict=False):
                n = len(curve)
                xs = [-1 + 2 * j / (n - 1) for j in range(n)] if n > 1 else [0.0]
                ax.plot(xs, [float("nan") if v is None else v for v in curve],
                        ls="-" if bent else ":", lw=0.9, color=color(i), alpha=0.85)
            ax.set_title(str(var["name"]), fontsize="small")
            ax.set_xlabel("alpha")
        axes[0].set_ylabel("loss")
        set_caption(fig, caption)
    return fig


def sweep_artifacts(result: dict[str, Any], *, loss: str, dtype: str) -> list[Artifact]:
    """``sharpness.png/svg`` for edge_of_stability, ``seeds.png/svg`` for the others."""
    claim = result["claim"]
    extra = [f"verdict {result['verdict']} ({result['held']}/{result['seeds']})"]
    if claim == "edge_of_stability":
        cap = caption_text(what="lambda_max during full-batch GD, dashed: 2/eta",
                           num_params=result["num_params"], num_samples=result["num_samples"],
                           loss=loss, dtype=dtype, method="Lanczos top-1, warm-started",
                           extra=extra)
        return figure_artifacts("sharpness", sharpness_figure(result, cap))
    key, label = _MEASURE[claim]
    cap = caption_text(what=f"{label} per seed and variant", num_samples=result["num_samples"],
                       loss=loss, dtype=dtype, extra=extra)
    out = figure_artifacts("seeds", seed_box_figure(result, key, label, cap))
    if claim == "width_barriers":
        cap = caption_text(what="loss along the linear path between seed pairs (solid: "
                           "aligned, dashed: raw)", num_samples=result["num_samples"],
                           loss=loss, dtype=dtype, extra=extra)
        out += figure_artifacts("interpolation", interpolation_figure(result, cap))
    if claim == "skip_connections":
        cap = caption_text(what="1-D filter-normalised slices at the end, first seed of each "
                           "variant (solid: non-convex)", num_samples=result["num_samples"],
                           loss=loss, dtype=dtype, extra=extra)
        out += figure_artifacts("slices", slices_figure(result, cap))
    return out
