"""PNG plots: the disconnectivity graph (merge tree) and the loss profiles along paths.

Matplotlib with the Agg backend (no display), figures built with the object API and
closed after rendering, so that worker processes do not accumulate state.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

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
    """Disconnectivity graph: each minimum a vertical line from its loss up to the
    height where its component merges; horizontal bars join components at the merge
    (effective) heights. Dotted horizontal lines mark ``lambdas`` if given.
    """
    order = _leaf_order(tree)
    xpos = {leaf: float(k) for k, leaf in enumerate(order)}
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    # Position and base height of the current node of each component (by root minimum).
    node_x = dict(xpos)
    node_y = {i: float(tree.losses[i]) for i in range(tree.num_minima)}
    owner = {i: i for i in range(tree.num_minima)}
    for m in tree.merges:
        ra, rb = owner[m.edge[0]], owner[m.edge[1]]
        h = m.effective_height
        for r in (ra, rb):
            ax.plot([node_x[r], node_x[r]], [node_y[r], h], color="C0", lw=1.5)
        ax.plot([node_x[ra], node_x[rb]], [h, h], color="C0", lw=1.5)
        new_x = 0.5 * (node_x[ra] + node_x[rb])
        root = m.survivor
        for i in m.members:
            owner[i] = root
        node_x[root], node_y[root] = new_x, h
    roots = {owner[i] for i in range(tree.num_minima)}
    top = max([*(m.effective_height for m in tree.merges), *tree.losses.tolist()])
    bottom = float(tree.losses.min())
    span = top - bottom if top > bottom else 1.0
    for r in roots:
        ax.plot([node_x[r], node_x[r]], [node_y[r], top + 0.1 * span], color="C0", lw=1.5)
    for leaf in order:
        ax.plot([xpos[leaf]], [float(tree.losses[leaf])], "o", color="C1", ms=4)
    if lambdas is not None:
        for lam in lambdas:
            ax.axhline(lam, color="0.7", ls=":", lw=0.8)
    ax.set_xticks([xpos[i] for i in order])
    ax.set_xticklabels([str(i) for i in order])
    ax.set_xlabel("minimum")
    ax.set_ylabel("loss (merge height)")
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
) -> bytes:
    """Loss against the path coordinate for each ``(label, ts, losses)``."""
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for k, (label, ts, losses) in enumerate(profiles[:max_curves]):
        style = "--" if label.endswith("linear") else "-"
        ax.plot(list(ts), list(losses), style, lw=1.2, label=label, color=f"C{k % 10}")
    if profiles:
        ax.legend(fontsize=6, ncol=2)
    ax.set_xlabel("path coordinate t")
    ax.set_ylabel("loss")
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
