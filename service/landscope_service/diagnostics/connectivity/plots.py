"""PNG plots: the disconnectivity graph (merge tree) and the loss profiles along paths.

Matplotlib with the Agg backend (no display), figures built with the object API and
closed after rendering, so that worker processes do not accumulate state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

from .mergetree import MergeTree

__all__ = ["merge_tree_png", "path_profiles_png"]


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
) -> bytes:
    """Disconnectivity graph at the barrier heights.

    Each minimum is a vertical line from its loss up to the height where its component
    merges; horizontal bars join components at the merge's barrier height (raw, never
    noise-lowered). Merges below the noise level are drawn dashed in grey and labelled
    "noise"; a dotted line marks the noise level above the lowest minimum. Dotted grey
    horizontal lines mark ``lambdas`` if given.
    """
    order = _leaf_order(tree)
    xpos = {leaf: float(k) for k, leaf in enumerate(order)}
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    node_x = dict(xpos)
    node_y = {i: float(tree.losses[i]) for i in range(tree.num_minima)}
    owner = {i: i for i in range(tree.num_minima)}
    noise_drawn = False
    for m in tree.merges:
        ra, rb = owner[m.edge[0]], owner[m.edge[1]]
        h = m.height
        style: dict[str, Any] = (
            {"color": "0.55", "ls": "--", "lw": 1.0} if m.noise else {"color": "C0", "lw": 1.5}
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
        ax.plot([node_x[r], node_x[r]], [node_y[r], top + 0.1 * span], color="C0", lw=1.5)
    for leaf in order:
        ax.plot([xpos[leaf]], [float(tree.losses[leaf])], "o", color="C1", ms=4)
    if tree.tolerance > 0:
        ax.axhline(bottom + tree.tolerance, color="C3", ls=":", lw=0.8,
                   label=f"noise level {tree.tolerance:.3g}")
    if lambdas is not None:
        for lam in lambdas:
            ax.axhline(lam, color="0.7", ls=":", lw=0.8)
    if noise_drawn or tree.tolerance > 0:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xticks([xpos[i] for i in order])
    ax.set_xticklabels([str(i) for i in order])
    ax.set_xlabel("minimum")
    ax.set_ylabel("loss (merge barrier height)")
    ax.set_ylim(bottom - 0.05 * span, top + 0.12 * span)
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def path_profiles_png(
    profiles: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    title: str = "Loss along paths",
    max_curves: int = 24,
    log: bool | None = None,
    floor: float | None = None,
) -> bytes:
    """Loss against the path coordinate for each ``(label, ts, losses)``.

    Labels ending in ``linear`` are dashed, labels containing ``aligned`` dotted.

    Args:
        log: logarithmic loss axis of ``loss - floor`` (so zero-loss minima and barriers
            many decades apart are visible); None: on when the positive losses span more
            than three decades.
        floor: subtracted before the log (default: just below the lowest loss).
    """
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    shown = list(profiles[:max_curves])
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
    for k, (label, ts, losses) in enumerate(shown):
        style = "--" if label.endswith("linear") else (":" if "aligned" in label else "-")
        ys = [max(float(v) - base, tiny) if log else float(v) for v in losses]
        ax.plot(list(ts), ys, style, lw=1.2, label=label, color=f"C{k % 10}")
    if shown:
        ax.legend(fontsize=6, ncol=2)
    ax.set_xlabel("path coordinate t")
    ax.set_ylabel("loss" if not log else (f"loss - {base:.3g} (log)" if base else "loss (log)"))
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
