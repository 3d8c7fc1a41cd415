"""Which pairs to refine: cheap bounds on all pairs, then MST edges first.

The connectivity answer (N_lambda at every lambda, the merge heights, the components)
depends on the barrier matrix only through its minimum spanning tree (see
:mod:`.mergetree`). Optimised paths are expensive, so:

1. every pair gets a cheap upper bound (the certified linear path, and the aligned
   linear path when alignment is on);
2. repeatedly take the MST of the current upper bounds and refine (with the optimised
   path finders) those of its edges not refined yet; lowering a bound can bring another
   pair into the tree, which is then refined in the next round.
3. Once every MST edge is refined (the tree is *stable*), a pair left unrefined can
   still change the answer only if an optimised path would take it below the height
   ``h`` of a tree edge across whose cut it lies, by more than the noise level ``tol``
   (from ``noise_fn``: set by what was resolved, see :func:`.mergetree.noise_level`).

   * ``strategy="exact"``: a pair qualifies when its sound lower bound
     ``max(L_i, L_j)`` (no path between two minima stays below the higher of them) is
     below ``h - tol``. When no pair qualifies, no unrefined pair can lower any merge
     height by more than ``tol`` whatever its optimised path, so N_lambda and the merge
     heights equal those of refining all pairs (same path finders, up to the noise level).
   * ``strategy="mst"``: a pair qualifies when an optimistic prediction
     ``max(L_i, L_j) + r (linear_ij - max(L_i, L_j))`` (``r`` the smallest ratio of
     optimised to linear excess seen so far) is below ``h - tol``: a heuristic, exact only
     relative to it.

   Among the qualifying pairs of an edge, the lowest predictions go first (the likeliest
   bypass, so the final tree is found early): ``per_edge`` of them in the first round,
   ``growth`` times more each further round (few wide rounds, each one batch of subtasks,
   even when most pairs qualify).
4. ``strategy="all"`` refines every pair (the reference the benchmark compares with);
   ``strategy="none"`` keeps the cheap bounds.

Every refined pair gets a target ``max(L_i, L_j) + target_tol / 2``: its path finder may
stop once its band is below it (a lower barrier could change no merge). After every
round a snapshot (``history``) records the merge tree so far and the level intervals
that can still change (``open_levels``, sound for ``exact`` and ``all``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .mergetree import UnionFind, minimum_spanning_edges

__all__ = ["PairOutcome", "RefineReport", "Strategy", "refine_barriers"]

Strategy = Literal["exact", "mst", "all", "none"]
Pair = tuple[int, int]


@dataclass
class PairOutcome:
    """One path found for a pair.

    Attributes:
        i, j: the minima (``i < j``).
        method: path finder (``linear``, ``bezier``, ``neb``).
        barrier: highest loss sampled along the path; ``barrier + resolution`` bounds
            the path maximum, hence the minimax barrier, from above.
        num_loss_evals, num_grad_evals: work spent.
        ts, losses: the profile along the path.
        resolution: the path maximum lies in ``[barrier - resolution, barrier]``.
        bracketed: the maximum lies next to the highest sample (see :mod:`.profile`).
    """

    i: int
    j: int
    method: str
    barrier: float
    num_loss_evals: int
    num_grad_evals: int
    ts: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    resolution: float = 0.0
    bracketed: bool = True

    @property
    def upper(self) -> float:
        """``barrier + resolution``: the certified upper bound on the path maximum."""
        return self.barrier + self.resolution


PairFn = Callable[[list[Pair]], list[list[PairOutcome]]]
"""``fn(pairs) -> outcomes``: for each pair, the list of paths found for it."""

RefineFn = Callable[[list[Pair], list[float]], list[list[PairOutcome]]]
"""``fn(pairs, targets) -> outcomes``; a pair's path finder may stop once its barrier is
at or below its target (a lower barrier could change no merge by more than the noise)."""

NoiseFn = Callable[[np.ndarray, set[Pair]], float]
"""``fn(bounds, refined) -> noise level`` (see :func:`.mergetree.noise_level`)."""


@dataclass
class RefineReport:
    """Upper bounds on the barrier of every pair and the work spent on them.

    Attributes:
        strategy: the strategy used.
        bounds: ``(M, M)`` best certified upper bound (``barrier + resolution``) per pair
            (diagonal: the minima's losses).
        cheap: ``(M, M)`` the cheap (linear) bounds.
        best: for each pair, its best outcome.
        outcomes: every outcome per pair.
        refined: pairs given an optimised path.
        rounds: refinement rounds (executor calls after the cheap one).
        mst_stable: every edge of the final MST was refined.
        budget_exhausted: refinement stopped on the budget.
        num_loss_evals, num_grad_evals: totals over all outcomes.
        noise_tol: the noise level when refinement stopped.
        history: after each round, the merge heights so far and the levels that can
            still change (``open_levels``: ``[lower, upper)`` per merge that an unrefined
            pair could still lower by more than the noise level).
    """

    strategy: str
    bounds: np.ndarray
    cheap: np.ndarray
    best: dict[Pair, PairOutcome]
    outcomes: dict[Pair, list[PairOutcome]]
    refined: list[Pair]
    rounds: int
    mst_stable: bool
    budget_exhausted: bool
    num_loss_evals: int
    num_grad_evals: int
    noise_tol: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        m = self.bounds.shape[0]
        return {
            "strategy": self.strategy,
            "pairs_total": m * (m - 1) // 2,
            "pairs_refined": len(self.refined),
            "refined_pairs": [list(p) for p in self.refined],
            "rounds": self.rounds,
            "mst_stable": self.mst_stable,
            "budget_exhausted": self.budget_exhausted,
            "num_loss_evals": self.num_loss_evals,
            "num_grad_evals": self.num_grad_evals,
            "rounds_log": self.history,
        }


def _pairs(m: int) -> list[Pair]:
    return [(i, j) for i in range(m) for j in range(i + 1, m)]


def _predictions(
    L: np.ndarray, bounds: np.ndarray, cheap: np.ndarray, done: set[Pair]
) -> np.ndarray:
    """Optimistic prediction of every pair's optimised barrier.

    ``max(L_i, L_j) + r (linear_ij - max(L_i, L_j))`` with ``r`` the smallest ratio of
    optimised to linear excess seen on the refined pairs (0 before any).
    """
    floor = np.maximum.outer(L, L)
    ratios = []
    for i, j in done:
        ex = cheap[i, j] - floor[i, j]
        if np.isfinite(ex) and ex > 0:
            ratios.append(max(0.0, (bounds[i, j] - floor[i, j]) / ex))
    r = min(ratios, default=0.0)
    ex_all = cheap - floor
    finite = np.isfinite(ex_all)
    return np.where(finite, floor + r * np.where(finite, ex_all, 0), floor)


def _cuts(
    L: np.ndarray, bounds: np.ndarray, done: set[Pair], tol: float, lower: np.ndarray
) -> list[tuple[float, float, np.ndarray]]:
    """For each tree edge above the noise level: ``(height, lowest lower, candidates)``.

    Removing a tree edge of height ``h`` splits the minima in two sides; only a pair
    across the cut whose optimised barrier is below ``h - tol`` can lower that merge.
    ``candidates`` is a boolean ``(M, M)`` mask (upper triangle) of the unrefined pairs
    across the cut with ``lower_ij < h - tol``; ``lowest lower`` the smallest such
    ``lower_ij`` (``inf`` if none), i.e. the merge may still move down to it.
    """
    m = L.shape[0]
    floor = np.maximum.outer(L, L)
    tree = minimum_spanning_edges(L.tolist(), bounds)
    not_done = np.triu(np.ones((m, m), dtype=bool), 1)
    for i, j in done:
        not_done[i, j] = False
    out: list[tuple[float, float, np.ndarray]] = []
    for k, (h, u, v) in enumerate(tree):
        if h - floor[u, v] <= tol:
            continue
        uf = UnionFind(m)
        for k2, (_, a, b) in enumerate(tree):
            if k2 != k:
                uf.union(a, b)
        root = uf.find(u)
        side = np.array([uf.find(x) == root for x in range(m)])
        mask = (side[:, None] != side[None, :]) & not_done & (lower < h - tol)
        low = float(lower[mask].min()) if mask.any() else np.inf
        out.append((h, low, mask))
    return out


def _candidates(
    L: np.ndarray,
    bounds: np.ndarray,
    cheap: np.ndarray,
    done: set[Pair],
    tol: float,
    *,
    optimistic: bool = True,
    per_edge: int = 1,
) -> list[Pair]:
    """For each tree edge above the noise level, the most promising unrefined pairs.

    A pair qualifies for an edge of height ``h`` when it crosses the edge's cut, is
    unrefined and its lower estimate is below ``h - tol``: with ``optimistic=True`` the
    estimate is the prediction of :func:`_predictions` (a heuristic), otherwise the sound
    lower bound ``max(L_i, L_j)`` (no path between two minima stays below the higher).
    Among the qualifying pairs of an edge, the ``per_edge`` with the lowest prediction
    are chosen (the likeliest bypass first, so the final tree is found early).
    """
    if not done:
        return []
    pred = _predictions(L, bounds, cheap, done)
    lower = pred if optimistic else np.maximum.outer(L, L)
    chosen: dict[Pair, float] = {}
    for _, _, mask in _cuts(L, bounds, done, tol, lower):
        idx = np.argwhere(mask)
        if idx.size == 0:
            continue
        order = np.argsort(pred[idx[:, 0], idx[:, 1]], kind="stable")[:per_edge]
        for i, j in idx[order]:
            chosen.setdefault((int(i), int(j)), float(pred[i, j]))
    return [p for p, _ in sorted(chosen.items(), key=lambda kv: (kv[1], kv[0]))]


def _snapshot(
    L: np.ndarray,
    bounds: np.ndarray,
    done: set[Pair],
    tol: float,
    rounds: int,
    sound: bool,
) -> dict[str, Any]:
    """The merge tree so far and the levels that can still change (JSON)."""
    tree = minimum_spanning_edges(L.tolist(), bounds)
    lower = np.maximum.outer(L, L)
    open_levels: list[list[float]] = []
    for h, low, _ in _cuts(L, bounds, done, tol, lower):
        if np.isfinite(low):
            open_levels.append([float(low), float(h)])
    for h, i, j in tree:
        if (i, j) not in done and h - lower[i, j] > tol:
            open_levels.append([float(lower[i, j]), float(h)])
    return {
        "round": rounds,
        "pairs_refined": len(done),
        "merge_heights": [float(h) for h, _, _ in tree],
        "merge_edges": [[i, j] for _, i, j in tree],
        "noise_level": float(tol),
        "open_levels": sorted(open_levels) if sound else None,
    }


def refine_barriers(
    losses: Sequence[float],
    cheap_fn: PairFn,
    refine_fn: RefineFn,
    *,
    strategy: Strategy = "exact",
    budget_pairs: int | None = None,
    on_round: Callable[[int, int, dict[str, Any]], None] | None = None,
    beyond_mst: bool = True,
    noise_fn: NoiseFn | None = None,
    target_tol: float = 0.0,
    per_edge: int = 1,
    growth: float = 2.0,
) -> RefineReport:
    """Upper bounds on all pairwise barriers, refining the pairs that matter first.

    Args:
        losses: losses of the ``M`` minima.
        cheap_fn: cheap paths for a list of pairs (called once, on all pairs).
        refine_fn: optimised paths for a list of pairs and their targets ``max(L_i, L_j)
            + target_tol`` (called once per round).
        strategy: ``"exact"``, ``"mst"``, ``"all"`` or ``"none"``.
        budget_pairs: most pairs to refine (None: no limit).
        on_round: called with ``(pairs refined so far, pairs total, snapshot)`` after
            each call; the snapshot is the merge tree so far and the levels that can
            still change (also kept in ``history``).
        beyond_mst: once the tree is stable, also refine the non-tree pairs that could
            still lower a merge height under the optimistic prediction (``mst`` only).
        noise_fn: the noise level from the current bounds and refined pairs (default:
            0); height changes up to it do not count as changes.
        target_tol: a level known before refinement, at most the final noise level; a
            path finder may stop once a pair's band is within half of it of the pair's
            lower bound ``max(L_i, L_j)`` (half, so the certified barrier lands clearly
            below the noise level).
        per_edge: pairs per tree edge in the first round beyond the tree; multiplied by
            ``growth`` every further round (the likeliest bypasses first, then wider
            rounds, so few rounds finish even when most pairs qualify).
        growth: factor of ``per_edge`` from round to round (>= 1).

    Returns:
        The :class:`RefineReport`.
    """
    if strategy not in ("exact", "mst", "all", "none"):
        raise ValueError(
            f"strategy must be 'exact', 'mst', 'all' or 'none', got {strategy!r}."
        )
    if budget_pairs is not None and budget_pairs < 0:
        raise ValueError(f"budget_pairs must be >= 0, got {budget_pairs}.")
    if per_edge < 1 or not growth >= 1:
        raise ValueError(f"per_edge >= 1 and growth >= 1 required, got {per_edge}, {growth}.")
    L = np.asarray(losses, dtype=np.float64)
    m = int(L.shape[0])
    pairs = _pairs(m)
    outcomes: dict[Pair, list[PairOutcome]] = {p: [] for p in pairs}
    bounds = np.full((m, m), np.inf)
    np.fill_diagonal(bounds, L)
    best: dict[Pair, PairOutcome] = {}
    history: list[dict[str, Any]] = []

    def absorb(batch: list[Pair], results: list[list[PairOutcome]]) -> None:
        if len(results) != len(batch):
            raise RuntimeError(f"Expected {len(batch)} pair results, got {len(results)}.")
        for p, outs in zip(batch, results, strict=True):
            for o in outs:
                outcomes[p].append(o)
                if p not in best or o.upper < best[p].upper:
                    best[p] = o
            if p in best:
                bounds[p] = bounds[p[::-1]] = min(bounds[p], best[p].upper)

    def noise(done: set[Pair]) -> float:
        return float(noise_fn(bounds, done)) if noise_fn is not None else 0.0

    def targets(batch: list[Pair]) -> list[float]:
        return [float(max(L[i], L[j]) + 0.5 * target_tol) for i, j in batch]

    if pairs:
        absorb(pairs, cheap_fn(pairs))
    cheap = bounds.copy()
    refined: list[Pair] = []
    rounds = 0
    budget_hit = False
    remaining = np.inf if budget_pairs is None else budget_pairs
    total = len(pairs)
    done: set[Pair] = set()
    sound = strategy in ("exact", "all")

    def report_round() -> None:
        snap = _snapshot(L, bounds, done, noise(done), rounds, sound)
        history.append(snap)
        if on_round is not None:
            on_round(len(refined), total, snap)

    report_round()
    if strategy == "all" and pairs:
        todo = sorted(pairs, key=lambda p: -bounds[p])
        if len(todo) > remaining:
            todo = todo[: int(remaining)]
            budget_hit = True
        if todo:
            absorb(todo, refine_fn(todo, targets(todo)))
            refined.extend(todo)
            done.update(todo)
            rounds = 1
            report_round()
    elif strategy in ("mst", "exact"):
        width = float(per_edge)
        while True:
            tree = minimum_spanning_edges(L.tolist(), bounds)
            todo = [(i, j) for w, i, j in sorted(tree, key=lambda e: -e[0]) if (i, j) not in done]
            if not todo and (beyond_mst or strategy == "exact"):
                todo = _candidates(
                    L, bounds, cheap, done, noise(done),
                    optimistic=strategy == "mst", per_edge=int(width),
                )
                width *= growth
            if not todo:
                break
            if remaining <= 0:
                budget_hit = True
                break
            if len(todo) > remaining:
                todo = todo[: int(remaining)]
                budget_hit = True
            absorb(todo, refine_fn(todo, targets(todo)))
            done.update(todo)
            refined.extend(todo)
            remaining -= len(todo)
            rounds += 1
            report_round()
    tree = minimum_spanning_edges(L.tolist(), bounds)
    refined_set = set(refined)
    stable = all((i, j) in refined_set for _, i, j in tree) if strategy != "none" else False
    all_out = [o for outs in outcomes.values() for o in outs]
    return RefineReport(
        strategy=strategy,
        bounds=bounds,
        cheap=cheap,
        best=best,
        outcomes=outcomes,
        refined=refined,
        rounds=rounds,
        mst_stable=stable,
        budget_exhausted=budget_hit,
        num_loss_evals=sum(o.num_loss_evals for o in all_out),
        num_grad_evals=sum(o.num_grad_evals for o in all_out),
        noise_tol=noise(done),
        history=history,
    )
