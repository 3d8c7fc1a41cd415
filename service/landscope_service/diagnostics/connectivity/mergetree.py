"""From minima and pairwise barriers to N_lambda, merge heights and the merge tree.

Given ``M`` minima with losses ``L_i`` and a symmetric matrix of barriers ``B_ij``
(upper bounds on the minimax barrier, ``B_ij >= max(L_i, L_j)``), two minima lie in the
same component of ``Omega(lambda) = {theta : L(theta) <= lambda}`` when they are joined
by a chain of pairs with barriers ``<= lambda`` (THEORY.md, section 1). Restricted to
the minima,

    N_lambda = #{i : L_i <= lambda}  -  #{MST edges e : w_e <= lambda},

where the MST is a minimum spanning tree of the complete graph weighted by ``B``
(single linkage: the components of the threshold graph ``{B_ij <= lambda}`` are those of
the MST's threshold graph, because the MST contains a minimax path between every pair).
The MST edge weights are the exact merge heights; the bottleneck (largest edge) of the
MST path between ``i`` and ``j`` is the single-linkage (minimax) distance.

The merge tree follows the elder rule of 0-dimensional persistent homology of the
sublevel filtration (Edelsbrunner & Harer, "Computational Topology", VII.1): a
component is born at its lowest minimum; when two components merge at height ``h``,
the one with the higher minimum (birth ``b_young``) dies, giving the bar
``[b_young, h)`` of persistence ``h - b_young``; the global lowest minimum never dies.

Noise level ``tol`` (:func:`noise_level`): a merge with persistence ``< tol`` is
treated as numerical noise: its effective height is lowered to ``b_young``, i.e. the
younger minimum is counted as part of the older component from its birth. The level is
set by what was resolved, never by straight-line bounds: a user's absolute tolerance in
loss units if given, else ``max(tau * S, LOSS_SCALE_FRACTION * L_ref)`` with ``S`` the
spread of the resolved heights (the minima's losses and the merge heights of refined
pairs, minus the lowest minimum) and ``L_ref`` the loss of the zero output when the
objective has a data set (none for analytic functions). With ``tol = 0`` the raw counts
are reported; they are always reported beside the effective ones.

The MST is built with Kruskal's algorithm on a union-find
(``scipy.sparse.csgraph.minimum_spanning_tree`` is not used because it reads zero
weights, common here, as missing edges).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..output import json_float

__all__ = [
    "LOSS_SCALE_FRACTION",
    "Merge",
    "MergeTree",
    "UnionFind",
    "bottleneck_matrix",
    "build_merge_tree",
    "default_lambda_grid",
    "minimum_spanning_edges",
    "noise_level",
    "resolved_spread",
]

LOSS_SCALE_FRACTION = 1e-3
"""Fraction of the zero-output loss below which a persistence is not resolved."""


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, i: int, j: int) -> bool:
        """Join the sets of ``i`` and ``j``; False if they were already one set."""
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        if self.size[ri] < self.size[rj]:
            ri, rj = rj, ri
        self.parent[rj] = ri
        self.size[ri] += self.size[rj]
        return True


def _as_matrix(losses: Sequence[float], barriers: Any) -> tuple[np.ndarray, np.ndarray]:
    L = np.asarray(losses, dtype=np.float64)
    B = np.array(barriers, dtype=np.float64)
    m = L.shape[0]
    if L.ndim != 1:
        raise ValueError(f"Shape mismatch: losses must be (M,), got {L.shape}.")
    if B.shape != (m, m):
        raise ValueError(f"Shape mismatch: expected barriers ({m}, {m}), got {B.shape}.")
    if not np.all(np.isfinite(L)):
        raise ValueError("The losses of the minima must be finite.")
    B = np.where(np.isnan(B), np.inf, B)
    B = np.minimum(B, B.T)  # symmetric: the better of the two directions
    # A path's maximum includes its endpoints.
    B = np.maximum(B, np.maximum.outer(L, L))
    np.fill_diagonal(B, L)
    return L, B


def minimum_spanning_edges(losses: Sequence[float], barriers: Any) -> list[tuple[float, int, int]]:
    """Kruskal's MST (a forest if some barriers are infinite) as ``(w, i, j)``, sorted.

    Ties are broken by ``(w, i, j)`` so the result is deterministic.
    """
    L, B = _as_matrix(losses, barriers)
    m = L.shape[0]
    cand = sorted(
        (float(B[i, j]), i, j) for i in range(m) for j in range(i + 1, m) if np.isfinite(B[i, j])
    )
    uf = UnionFind(m)
    return [(w, i, j) for w, i, j in cand if uf.union(i, j)]


def bottleneck_matrix(losses: Sequence[float], barriers: Any) -> np.ndarray:
    """Minimax (single-linkage) distances: ``D_ij = min over chains max edge``.

    ``D_ii = L_i``; ``inf`` between minima that no finite chain joins.
    """
    L, _ = _as_matrix(losses, barriers)
    m = L.shape[0]
    D = np.full((m, m), np.inf)
    np.fill_diagonal(D, L)
    members = {i: [i] for i in range(m)}
    uf = UnionFind(m)
    for w, i, j in minimum_spanning_edges(losses, barriers):
        ri, rj = uf.find(i), uf.find(j)
        for p in members[ri]:
            for q in members[rj]:
                D[p, q] = D[q, p] = w
        uf.union(i, j)
        merged = members.pop(ri) + members.pop(rj)
        members[uf.find(i)] = merged
    return D


@dataclass(frozen=True)
class Merge:
    """One MST edge seen as a merge of two components.

    Attributes:
        height: the merge height ``w`` (barrier of the MST edge).
        effective_height: ``height``, or the younger birth if the merge is noise.
        edge: the two minima of the MST edge.
        survivor: lowest minimum of the surviving (older) component.
        absorbed: lowest minimum of the dying (younger) component.
        persistence: ``height - birth of the younger component``.
        noise: True when ``persistence`` is below the noise level.
        members: the minima of the merged component, sorted.
    """

    height: float
    effective_height: float
    edge: tuple[int, int]
    survivor: int
    absorbed: int
    persistence: float
    noise: bool
    members: tuple[int, ...]


@dataclass
class MergeTree:
    """The merge tree (H0 barcode, disconnectivity graph) of ``M`` minima.

    Attributes:
        losses: ``L_i``.
        barriers: the symmetrised barrier matrix used (``B_ii = L_i``).
        merges: MST edges in order of height.
        threshold: the relative persistence threshold ``tau``.
        scale: the spread of heights the threshold is relative to.
        noise_tol: the absolute noise level actually used.
    """

    losses: np.ndarray
    barriers: np.ndarray
    merges: list[Merge]
    threshold: float
    scale: float
    noise_tol: float = 0.0
    _deaths: dict[int, float] = field(default_factory=dict)

    @property
    def num_minima(self) -> int:
        return int(self.losses.shape[0])

    @property
    def global_min(self) -> float:
        return float(self.losses.min())

    @property
    def tolerance(self) -> float:
        """Absolute height tolerance (the noise level)."""
        return self.noise_tol

    def barcode(self) -> list[tuple[int, float, float | None]]:
        """H0 bars ``(minimum, birth, death)``; death None for the immortal bar(s)."""
        out: list[tuple[int, float, float | None]] = []
        for i in range(self.num_minima):
            out.append((i, float(self.losses[i]), self._deaths.get(i)))
        return out

    def _uf_at(self, lam: float, effective: bool) -> tuple[UnionFind, list[int]]:
        # Union the lowest minima of the two merging components (not the edge's ends):
        # both are alive from the effective height on, also for noise merges lowered
        # to the younger birth, so each merge joins two alive vertices.
        uf = UnionFind(self.num_minima)
        for mg in self.merges:
            h = mg.effective_height if effective else mg.height
            if h <= lam:
                uf.union(mg.survivor, mg.absorbed)
        alive = [i for i in range(self.num_minima) if self.losses[i] <= lam]
        return uf, alive

    def n_lambda(self, lam: float, *, effective: bool = True) -> int:
        """Number of components of ``Omega(lam)`` holding at least one of the minima."""
        uf, alive = self._uf_at(lam, effective)
        return len({uf.find(i) for i in alive})

    def components(self, lam: float, *, effective: bool = True) -> list[list[int]]:
        """Members of each component at ``lam``, each sorted, ordered by lowest loss."""
        uf, alive = self._uf_at(lam, effective)
        groups: dict[int, list[int]] = {}
        for i in alive:
            groups.setdefault(uf.find(i), []).append(i)
        comps = [sorted(g) for g in groups.values()]
        comps.sort(key=lambda g: (min(float(self.losses[i]) for i in g), g[0]))
        return comps

    def contains_global_min(self, lam: float, *, effective: bool = True) -> list[bool]:
        """For each of :meth:`components`, whether it holds a lowest minimum.

        A component holds a global minimum when its lowest loss is within the noise
        level (and ``1e-12`` absolute) of the lowest loss found.
        A component without one is a spurious valley (relative to the minima found).
        """
        tol = max(self.tolerance, 1e-12)
        return [
            min(float(self.losses[i]) for i in g) <= self.global_min + tol
            for g in self.components(lam, effective=effective)
        ]

    def merge_heights(self, *, effective: bool = False) -> list[float]:
        """Barrier heights of the merges (``effective=True``: noise merges lowered)."""
        return [m.effective_height if effective else m.height for m in self.merges]

    def to_json(self) -> dict[str, Any]:
        """JSON form (finite floats or None)."""

        return {
            "threshold": self.threshold,
            "scale": json_float(self.scale),
            "noise_level": json_float(self.noise_tol),
            "merges": [
                {
                    "height": json_float(m.height),
                    "effective_height": json_float(m.effective_height),
                    "edge": list(m.edge),
                    "survivor": m.survivor,
                    "absorbed": m.absorbed,
                    "persistence": json_float(m.persistence),
                    "noise": m.noise,
                    "members": list(m.members),
                }
                for m in self.merges
            ],
            "barcode": [
                {"minimum": i, "birth": json_float(b), "death": json_float(d)}
                for i, b, d in self.barcode()
            ],
        }


def build_merge_tree(
    losses: Sequence[float],
    barriers: Any,
    *,
    threshold: float = 1e-2,
    scale: float | None = None,
    tolerance: float | None = None,
) -> MergeTree:
    """Merge tree of the minima from their barrier matrix.

    Args:
        losses: ``L_i`` of the ``M`` minima.
        barriers: ``(M, M)`` barriers; NaN or inf for pairs without a path. Made
            symmetric (the smaller of ``B_ij`` and ``B_ji``) and raised to at least
            ``max(L_i, L_j)``.
        threshold: relative persistence threshold ``tau >= 0``.
        scale: spread the threshold is relative to; default: the largest finite
            barrier minus the lowest loss (1 if that is 0).
        tolerance: the absolute noise level; if given it replaces ``threshold * scale``
            (see :func:`noise_level`).

    Returns:
        The :class:`MergeTree`.

    Example:
        Two minima at 0 joined at height 1, a third at 0.5 joined to the first at 2:
        ``n_lambda`` is 2 at 0.5 and 1.5, 1 at 2 (merge heights 1 and 2).
    """
    if not threshold >= 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}.")
    L, B = _as_matrix(losses, barriers)
    m = L.shape[0]
    if scale is None:
        fin = B[np.isfinite(B)]
        spread = float(fin.max() - L.min()) if fin.size else 0.0
        scale = spread if spread > 0 else 1.0
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale}.")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}.")
    tol = threshold * scale if tolerance is None else float(tolerance)
    uf = UnionFind(m)
    low = {i: i for i in range(m)}  # root -> lowest minimum of its component
    members = {i: [i] for i in range(m)}
    merges: list[Merge] = []
    deaths: dict[int, float] = {}
    for w, i, j in minimum_spanning_edges(L.tolist(), B):
        ri, rj = uf.find(i), uf.find(j)
        li, lj = low[ri], low[rj]
        old, young = (li, lj) if (L[li], li) <= (L[lj], lj) else (lj, li)
        persistence = w - float(L[young])
        noise = persistence < tol
        eff = float(L[young]) if noise else w
        uf.union(i, j)
        r = uf.find(i)
        mem = sorted(members.pop(ri) + members.pop(rj))
        members[r] = mem
        low.pop(ri, None)
        low.pop(rj, None)
        low[r] = old
        deaths[young] = eff
        merges.append(
            Merge(
                height=w,
                effective_height=eff,
                edge=(i, j),
                survivor=old,
                absorbed=young,
                persistence=persistence,
                noise=bool(noise),
                members=tuple(mem),
            )
        )
    return MergeTree(
        losses=L,
        barriers=B,
        merges=merges,
        threshold=threshold,
        scale=float(scale),
        noise_tol=tol,
        _deaths=deaths,
    )


def resolved_spread(
    losses: Sequence[float], barriers: Any, refined: Iterable[tuple[int, int]]
) -> float:
    """Spread of the resolved heights: the highest of the minima's losses and of the
    merge heights carried by refined pairs, minus the lowest loss (1 if that is 0).

    Merges carried by an unrefined (straight-line) bound are left out: one far minimum
    or one bad straight line must not raise the noise level of every merge.
    """
    L, B = _as_matrix(losses, barriers)
    done = {(min(p), max(p)) for p in refined}
    tops = [float(L.max())]
    tops += [w for w, i, j in minimum_spanning_edges(L.tolist(), B) if (i, j) in done]
    spread = max(tops) - float(L.min())
    return spread if spread > 0 else 1.0


def noise_level(
    losses: Sequence[float],
    barriers: Any,
    refined: Iterable[tuple[int, int]],
    *,
    threshold: float,
    abs_tol: float | None = None,
    loss_scale: float | None = None,
) -> tuple[float, dict[str, Any]]:
    """The noise level of merges and how it was set.

    ``abs_tol`` (loss units) if given; else ``max(threshold * S, LOSS_SCALE_FRACTION *
    loss_scale)`` with ``S`` = :func:`resolved_spread` and ``loss_scale`` the loss of the
    zero output (None: no such term).

    Returns:
        ``(tol, rule)`` with ``rule`` a JSON description of the terms.
    """
    if abs_tol is not None:
        if not (math.isfinite(abs_tol) and abs_tol >= 0):
            raise ValueError(f"noise_tol must be finite and >= 0, got {abs_tol}.")
        return float(abs_tol), {"rule": "absolute", "noise_level": float(abs_tol)}
    s = resolved_spread(losses, barriers, refined)
    rel = threshold * s
    floor = LOSS_SCALE_FRACTION * loss_scale if loss_scale is not None else 0.0
    tol = max(rel, floor)
    return tol, {
        "rule": "relative",
        "noise_level": tol,
        "threshold": threshold,
        "resolved_spread": s,
        "loss_scale": loss_scale,
        "loss_scale_fraction": LOSS_SCALE_FRACTION if loss_scale is not None else None,
        "set_by": "loss_scale" if floor > rel else "resolved_spread",
    }


def default_lambda_grid(losses: Sequence[float], barriers: Any, num: int = 64) -> list[float]:
    """Uniform grid from just below the lowest minimum to just above the top merge.

    The span ``[min L, max(top merge height, max L)]`` is widened by 5% on each side
    so that both the empty level set and the fully merged one appear.
    """
    if num < 2:
        raise ValueError(f"num must be >= 2, got {num}.")
    L, B = _as_matrix(losses, barriers)
    heights = [w for w, _, _ in minimum_spanning_edges(L.tolist(), B)]
    lo = float(L.min())
    hi = max([float(L.max()), *heights])
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return [float(v) for v in np.linspace(lo - 0.05 * span, hi + 0.05 * span, num)]
