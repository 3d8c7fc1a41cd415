"""Figures: the disconnectivity graph (merge tree) and the loss profiles along paths.

Drawn in the shared style (:mod:`..plots`: column width, caption line, Okabe-Ito colours,
PNG and SVG) with the object API on an Agg canvas, so that worker processes do not
accumulate state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from ..plots import GREY, OKABE_ITO, color, new_figure, render, set_caption, styled
from .mergetree import MergeTree

__all__ = ["merge_tree_figure", "merge_tree_png", "path_profiles_figure",
           "path_profiles_png"]

INSET_RATIO = 0.1
"""Linear scale: an inset zooms on the optimised/aligned curves when their highest loss
is below this fraction of the highest (linear-path) loss."""


def _leaf_order(tree: MergeTree) -> list[int]:
    """Leaves ordered so that every merged component is contiguous."""
    groups: dict[int, list[int]] = {i: [i] for i in range(tree.num_minima)}
    owner = {i: i for i in range(tree.num_minima)}
    for m in tree.merges:
        ga, gb = owner[m.edge[0]], owner[m.edge[1]]
        first, second = (ga, gb) if tree.losses[ga] <= tree.losses[gb] else (gb, ga)
        groups[first] = groups[first] + groups.pop(second)
        for i in groups[first]:
            owner[i] = first
    order: list[int] = []
    for g in sorted(groups.values(), key=lambda g: float(tree.losses[g[0]])):
        order.extend(g)
    return order


def merge_tree_png(
    tree: MergeTree,
    *,
    title: str = "Disconnectivity graph",
    lambdas: Sequence[float] | None = None,
    caption: str = "",
) -> bytes:
    """PNG bytes of :func:`merge_tree_figure`."""
    return render(merge_tree_figure(tree, title=title, lambdas=lambdas, caption=caption))


def merge_tree_figure(
    tree: MergeTree,
    *,
    title: str = "Disconnectivity graph",
    lambdas: Sequence[float] | None = None,
    caption: str = "",
) -> Figure:
    """Disconnectivity graph at the barrier heights.

    Each minimum is a vertical line from its loss up to the height where its component
    merges; horizontal bars join components at the merge's barrier height (raw, never
    noise-lowered). Merges below the noise level are drawn dashed in grey and labelled
    "noise"; a dotted line marks the noise level above the lowest minimum. Dotted grey
    horizontal lines mark ``lambdas`` if given.
    """
    with styled():
        fig = new_figure("double" if tree.num_minima > 24 else "column",
                         aspect=0.45 if tree.num_minima > 24 else 0.8)
        # with a caption, the title leads the caption
        _draw_merge_tree(fig, tree, title="" if caption else title, lambdas=lambdas)
        if caption:
            set_caption(fig, caption)
    return fig


def _draw_merge_tree(fig: Figure, tree: MergeTree, *, title: str,
                     lambdas: Sequence[float] | None) -> None:
    order = _leaf_order(tree)
    xpos = {leaf: float(k) for k, leaf in enumerate(order)}
    ax = fig.add_subplot(1, 1, 1)
    node_x = dict(xpos)
    node_y = {i: float(tree.losses[i]) for i in range(tree.num_minima)}
    owner = {i: i for i in range(tree.num_minima)}
    noise_drawn = False
    for m in tree.merges:
        ra, rb = owner[m.edge[0]], owner[m.edge[1]]
        h = m.height
        style: dict[str, Any] = (
            {"color": GREY, "ls": "--", "lw": 1.0} if m.noise
            else {"color": OKABE_ITO["blue"], "lw": 1.5}
        )
        for r in (ra, rb):
            ax.plot([node_x[r], node_x[r]], [node_y[r], h], **style)
        label = "noise merge" if m.noise and not noise_drawn else None
        noise_drawn = noise_drawn or m.noise
        ax.plot([node_x[ra], node_x[rb]], [h, h], label=label, **style)
        new_x = 0.5 * (node_x[ra] + node_x[rb])
        root = m.survivor
        for i in m.members:
            owner[i] = root
        node_x[root], node_y[root] = new_x, h
    roots = {owner[i] for i in range(tree.num_minima)}
    top = max([*(m.height for m in tree.merges), *tree.losses.tolist()])
    bottom = float(tree.losses.min())
    span = top - bottom if top > bottom else 1.0
    for r in roots:
        ax.plot([node_x[r], node_x[r]], [node_y[r], top + 0.1 * span],
                color=OKABE_ITO["blue"], lw=1.5)
        right = node_x[r] > 0.5 * (len(order) - 1)  # label on the side with room
        ax.annotate("one component" if len(roots) == 1 else "component",
                    (node_x[r], top + 0.1 * span), xytext=(-3 if right else 3, -2),
                    textcoords="offset points", ha="right" if right else "left", va="top",
                    fontsize=6, color=OKABE_ITO["blue"])
    for leaf in order:
        ax.plot([xpos[leaf]], [float(tree.losses[leaf])], "o", color=OKABE_ITO["orange"],
                ms=4)
    if tree.tolerance > 0:
        ax.axhline(bottom + tree.tolerance, color=OKABE_ITO["vermillion"], ls=":", lw=0.8,
                   label=f"noise level {tree.tolerance:.3g}")
    if lambdas is not None:
        for lam in lambdas:
            ax.axhline(lam, color=GREY, ls=":", lw=0.6, alpha=0.6)
    if noise_drawn or tree.tolerance > 0:  # above the axes, clear of the tree
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=6,
                  frameon=False, borderaxespad=0.2)
    ax.set_xticks([xpos[i] for i in order])
    many = len(order) > 12  # every minimum keeps its label: turned and smaller
    ax.set_xticklabels([str(i) for i in order], rotation=90 if many else 0,
                       fontsize=5 if len(order) > 30 else None)
    if many:
        ax.grid(False, axis="x")
    ax.set_xlabel("minimum")
    ax.set_ylabel("loss (merge barrier height)")
    ax.set_ylim(bottom - 0.05 * span, top + 0.12 * span)
    if title:
        ax.set_title(title, pad=16 if (noise_drawn or tree.tolerance > 0) else 6)


def path_profiles_png(
    profiles: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    title: str = "Loss along paths",
    max_curves: int = 24,
    log: bool | None = None,
    floor: float | None = None,
    caption: str = "",
) -> bytes:
    """PNG bytes of :func:`path_profiles_figure`."""
    return render(path_profiles_figure(profiles, title=title, max_curves=max_curves,
                                       log=log, floor=floor, caption=caption))


def path_profiles_figure(
    profiles: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    title: str = "Loss along paths",
    max_curves: int = 24,
    log: bool | None = None,
    floor: float | None = None,
    caption: str = "",
) -> Figure:
    """Loss against the path coordinate for each ``(label, ts, losses)``.

    Labels ending in ``linear`` are dashed, labels containing ``aligned`` dotted; the curves
    of one pair (the label's first word) share a colour. On a
    linear axis, when the optimised and aligned paths stay below ``INSET_RATIO`` of the
    highest loss (straight-line bumps dwarf them), an inset shows them at their own scale.
    More than six curves make the figure double width.

    Args:
        log: logarithmic loss axis of ``loss - floor`` (so zero-loss minima and barriers
            many decades apart are visible); None: on when the positive losses span more
            than three decades.
        floor: subtracted before the log (default: just below the lowest loss).
    """
    shown = list(profiles[:max_curves])
    with styled():
        fig = new_figure("double" if len(shown) > 6 else "column", aspect=0.62
                         if len(shown) > 6 else 0.8)
        # with a caption, the title leads the caption and the legend takes its place
        _draw_profiles(fig, shown, title="" if caption else title, log=log, floor=floor)
        if caption:
            set_caption(fig, caption)
    return fig


def _draw_profiles(fig: Figure, shown: list[tuple[str, Sequence[float], Sequence[float]]],
                   *, title: str, log: bool | None, floor: float | None) -> None:
    ax = fig.add_subplot(1, 1, 1)
    all_v = [float(v) for _, _, ls in shown for v in ls if math.isfinite(float(v))]
    lo = min(all_v, default=0.0)
    hi = max(all_v, default=1.0)
    if log is None:
        pos = [v for v in all_v if v > 0]
        log = bool(pos) and lo >= 0 and max(pos) > 1e3 * min(pos)
    base = 0.0
    if log:
        base = floor if floor is not None else (lo - 1e-3 * max(hi - lo, 1e-300) if lo < 0 else 0.0)
        ax.set_yscale("log")
    tiny = max(1e-300, 1e-12 * max(abs(hi - base), 1e-300))
    low: list[tuple[int, str, Sequence[float], Sequence[float]]] = []
    pairs: dict[str, int] = {}  # one colour per pair of minima, one line style per path
    for label, ts, losses in shown:
        k = pairs.setdefault(label.split(" ", 1)[0], len(pairs))
        style = "--" if label.endswith("linear") else (":" if "aligned" in label else "-")
        ys = [max(float(v) - base, tiny) if log else float(v) for v in losses]
        ax.plot(list(ts), ys, style, lw=1.2, label=label, color=color(k))
        if not label.endswith("linear"):
            low.append((k, style, ts, ys))
    ax.set_xlabel("path coordinate t")
    ax.set_ylabel("loss" if not log else (f"loss - {base:.3g} (log)" if base else "loss (log)"))
    if title:
        ax.set_title(title, pad=18 if shown else 6)
    low_vals = [float(v) for _, _, _, ys in low for v in ys if math.isfinite(float(v))]
    if (not log and low_vals and len(low) < len(shown) and hi > lo
            and max(low_vals) - lo < INSET_RATIO * (hi - lo)):
        # room above the highest bump for the inset: the low curves at their own scale
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 1.1 * (hi - lo))
        inset = ax.inset_axes((0.55, 0.5, 0.42, 0.36))
        for k, style, ts, ys in low:
            inset.plot(list(ts), ys, style, lw=1.0, color=color(k))
        inset.text(0.5, 0.97, "zoom: optimised paths", transform=inset.transAxes,
                   ha="center", va="top", fontsize=5.5)
        inset.margins(y=0.25)
        inset.tick_params(labelsize=5.5)
        inset.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        inset.yaxis.get_offset_text().set_fontsize(5.5)
    if shown:  # above the axes, clear of the curves and the inset
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncols=min(6 if len(shown) > 6 else 3, len(shown)),
                  fontsize=6, frameon=False, borderaxespad=0.2, handlelength=1.8)
