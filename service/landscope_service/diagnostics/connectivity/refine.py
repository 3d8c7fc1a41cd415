"""Which pairs to refine: cheap bounds on all pairs, then MST edges first.

The connectivity answer (N_lambda at every lambda, the merge heights, the components)
depends on the barrier matrix only through its minimum spanning tree (see
:mod:`.mergetree`). Optimised paths are expensive, so:

1. every pair gets a cheap upper bound (the linear path, and the aligned linear path
   when alignment is on);
2. ``strategy="mst"``: repeatedly take the MST of the current upper bounds and refine
   (with the optimised path finders) those of its edges not refined yet; lowering a
   bound can bring another pair into the tree, which is then refined in the next
   round. Once every MST edge is refined (the tree is *stable*), a pair left unrefined
   can still change the answer only if an optimised path would take it below the
   bottleneck ``D_ij`` of the tree path between its ends (minus the noise level
   ``tol``). Its optimised barrier is predicted optimistically as
   ``max(L_i, L_j) + r (linear_ij - max(L_i, L_j))`` with ``r`` the smallest ratio
   of optimised to linear excess seen on the pairs refined so far; pairs predicted below
   ``D_ij - tol`` can lower a merge. Per round, for every tree edge above the noise
   level, the unrefined pair across that edge's cut with the lowest prediction is
   refined (one per edge, so a bypass found for an edge makes the other pairs across
   it moot), and the loop continues until no pair qualifies or the budget is spent.
   The prediction is a heuristic, not a bound: a pair whose optimised path would beat it could still
   change the answer, so the result is exact only relative to it.
3. ``strategy="exact"``: as ``mst``, but beyond the stable tree the prediction is the
   only sound lower bound, ``max(L_i, L_j)`` (no path between two minima stays below the
   higher of them). A pair across a tree edge of height ``h`` is refined while
   ``max(L_i, L_j) < h - tol``. When no pair qualifies, no unrefined pair can lower any
   merge height by more than ``tol`` whatever its optimised path, so N_lambda and the
   merge heights equal those of refining all pairs (with the same path finders, up to the
   noise level), usually at a fraction of the cost when barriers are low; when every
   barrier is high above the minima it refines up to every pair.
4. ``strategy="all"`` refines every pair (the reference the benchmark compares with);
   ``strategy="none"`` keeps the cheap bounds.

Each round is one call of the caller's ``refine_fn`` on a list of pairs, so that the
runner can send a round to the executor as one group of subtasks.
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
        barrier: highest loss along the path (upper bound on the minimax barrier).
        num_loss_evals, num_grad_evals: work spent.
        ts, losses: the profile along the path.
    """

    i: int
    j: int
    method: str
    barrier: float
    num_loss_evals: int
    num_grad_evals: int
    ts: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


PairFn = Callable[[list[Pair]], list[list[PairOutcome]]]
"""``fn(pairs) -> outcomes``: for each pair, the list of paths found for it."""


@dataclass
class RefineReport:
    """Upper bounds on the barrier of every pair and the work spent on them.

    Attributes:
        strategy: the strategy used.
        bounds: ``(M, M)`` best upper bound per pair (diagonal: the minima's losses).
        cheap: ``(M, M)`` the cheap (linear) bounds.
        best: for each pair, its best outcome.
        outcomes: every outcome per pair.
        refined: pairs given an optimised path.
        rounds: refinement rounds (executor calls after the cheap one).
        mst_stable: every edge of the final MST was refined.
        budget_exhausted: refinement stopped on the budget.
        num_loss_evals, num_grad_evals: totals over all outcomes.
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
        }


def _pairs(m: int) -> list[Pair]:
    return [(i, j) for i in range(m) for j in range(i + 1, m)]


def _candidates(
    L: np.ndarray, bounds: np.ndarray, cheap: np.ndarray, done: set[Pair], tol: float,
    *, optimistic: bool = True,
) -> list[Pair]:
    """For each tree edge above the noise level, the best unrefined pair across it.

    Removing a tree edge ``e = (u, v)`` of height ``h_e`` splits the minima into two
    sides; only a pair across the cut with an optimised barrier below ``h_e - tol``
    can lower that merge. Among the unrefined pairs across the cut, the one with the
    lowest optimistic prediction ``max(L_i, L_j) + r (linear_ij - max(L_i, L_j))`` is
    chosen (``r``: the smallest ratio of optimised to linear excess seen so far), if
    that prediction is below ``h_e - tol``. One pair per edge and round. With
    ``optimistic=False`` the prediction is the lower bound ``max(L_i, L_j)`` itself.
    """
    if not done:
        return []
    floor = np.maximum.outer(L, L)
    ratios = []
    for i, j in done:
        ex = cheap[i, j] - floor[i, j]
        if np.isfinite(ex) and ex > 0:
            ratios.append(max(0.0, (bounds[i, j] - floor[i, j]) / ex))
    r = min(ratios, default=0.0) if optimistic else 0.0
    ex_all = cheap - floor
    pred = np.where(
        np.isfinite(ex_all), floor + r * np.where(np.isfinite(ex_all), ex_all, 0), floor
    )
    m = L.shape[0]
    tree = minimum_spanning_edges(L.tolist(), bounds)
    chosen: list[tuple[float, Pair]] = []
    for k, (h, u, v) in enumerate(tree):
        if h - floor[u, v] <= tol:
            continue
        uf = UnionFind(m)
        for k2, (_, a, b) in enumerate(tree):
            if k2 != k:
                uf.union(a, b)
        side = [uf.find(x) == uf.find(u) for x in range(m)]
        best: tuple[float, Pair] | None = None
        for i in range(m):
            for j in range(i + 1, m):
                if side[i] == side[j] or (i, j) in done:
                    continue
                if pred[i, j] < h - tol and (best is None or pred[i, j] < best[0]):
                    best = (float(pred[i, j]), (i, j))
        if best is not None and best[1] not in {p for _, p in chosen}:
            chosen.append(best)
    return [p for _, p in sorted(chosen)]


def refine_barriers(
    losses: Sequence[float],
    cheap_fn: PairFn,
    refine_fn: PairFn,
    *,
    strategy: Strategy = "exact",
    budget_pairs: int | None = None,
    on_round: Callable[[int, int], None] | None = None,
    beyond_mst: bool = True,
    rel_tol: float = 0.0,
) -> RefineReport:
    """Upper bounds on all pairwise barriers, refining the pairs that matter first.

    Args:
        losses: losses of the ``M`` minima.
        cheap_fn: cheap paths for a list of pairs (called once, on all pairs).
        refine_fn: optimised paths for a list of pairs (called once per round).
        strategy: ``"exact"``, ``"mst"``, ``"all"`` or ``"none"``.
        budget_pairs: most pairs to refine (None: no limit).
        on_round: called with ``(pairs refined so far, pairs total)`` after each call.
        beyond_mst: once the tree is stable, also refine the non-tree pairs that could
            still lower a merge height under the optimistic prediction (see module doc).
        rel_tol: height changes up to ``tol = rel_tol * spread`` (the noise level;
            spread = largest finite cheap bound minus lowest loss, as in
            :func:`.mergetree.build_merge_tree`) do not count as changes.

    Returns:
        The :class:`RefineReport`.
    """
    if strategy not in ("exact", "mst", "all", "none"):
        raise ValueError(
            f"strategy must be 'exact', 'mst', 'all' or 'none', got {strategy!r}."
        )
    if budget_pairs is not None and budget_pairs < 0:
        raise ValueError(f"budget_pairs must be >= 0, got {budget_pairs}.")
    L = np.asarray(losses, dtype=np.float64)
    m = int(L.shape[0])
    pairs = _pairs(m)
    outcomes: dict[Pair, list[PairOutcome]] = {p: [] for p in pairs}
    bounds = np.full((m, m), np.inf)
    np.fill_diagonal(bounds, L)
    best: dict[Pair, PairOutcome] = {}

    def absorb(batch: list[Pair], results: list[list[PairOutcome]]) -> None:
        if len(results) != len(batch):
            raise RuntimeError(f"Expected {len(batch)} pair results, got {len(results)}.")
        for p, outs in zip(batch, results, strict=True):
            for o in outs:
                outcomes[p].append(o)
                if p not in best or o.barrier < best[p].barrier:
                    best[p] = o
            if p in best:
                bounds[p] = bounds[p[::-1]] = min(bounds[p], best[p].barrier)

    if pairs:
        absorb(pairs, cheap_fn(pairs))
    cheap = bounds.copy()
    finite = cheap[np.isfinite(cheap)]
    tol = rel_tol * float(finite.max() - L.min()) if finite.size else 0.0
    refined: list[Pair] = []
    rounds = 0
    budget_hit = False
    remaining = np.inf if budget_pairs is None else budget_pairs
    total = len(pairs)
    if on_round is not None:
        on_round(0, total)

    if strategy == "all" and pairs:
        todo = sorted(pairs, key=lambda p: -bounds[p])
        if len(todo) > remaining:
            todo = todo[: int(remaining)]
            budget_hit = True
        if todo:
            absorb(todo, refine_fn(todo))
            refined.extend(todo)
            rounds = 1
            if on_round is not None:
                on_round(len(refined), total)
    elif strategy in ("mst", "exact"):
        done: set[Pair] = set()
        while True:
            tree = minimum_spanning_edges(L.tolist(), bounds)
            todo = [(i, j) for w, i, j in sorted(tree, key=lambda e: -e[0]) if (i, j) not in done]
            if not todo and (beyond_mst or strategy == "exact"):
                todo = _candidates(L, bounds, cheap, done, tol,
                                   optimistic=strategy == "mst")
            if not todo:
                break
            if remaining <= 0:
                budget_hit = True
                break
            if len(todo) > remaining:
                todo = todo[: int(remaining)]
                budget_hit = True
            absorb(todo, refine_fn(todo))
            done.update(todo)
            refined.extend(todo)
            remaining -= len(todo)
            rounds += 1
            if on_round is not None:
                on_round(len(refined), total)
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
    )
