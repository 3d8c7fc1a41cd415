"""Connectivity of given points of any differentiable function (no network needed).

:func:`pair_paths` runs the chosen path finders for one pair; :func:`analyze_points`
bounds every pairwise barrier (cheap linear bounds, then MST-first refinement) and
builds the merge tree. The job runner uses the same two pieces through its executor;
tests use them on analytic potentials (Müller-Brown, Himmelblau).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from .mergetree import MergeTree, build_merge_tree, cheap_spread
from .objective import Objective
from .paths import (
    BezierConfig,
    LinearConfig,
    NEBConfig,
    PathResult,
    bezier_path,
    linear_path,
    neb_path,
)
from .refine import PairOutcome, RefineReport, Strategy, refine_barriers

__all__ = [
    "PathConfigs",
    "analyze_points",
    "pair_paths",
    "path_configs",
    "to_outcome",
]

OPTIMISED_METHODS = ("bezier", "neb")


@dataclass(frozen=True)
class PathConfigs:
    """Configurations of the three path finders."""

    linear: LinearConfig = field(default_factory=LinearConfig)
    bezier: BezierConfig = field(default_factory=BezierConfig)
    neb: NEBConfig = field(default_factory=NEBConfig)


def path_configs(options: Mapping[str, Any] | None = None) -> PathConfigs:
    """:class:`PathConfigs` from ``{"linear": {...}, "bezier": {...}, "neb": {...}}``.

    Keys are the dataclass fields; missing keys keep their defaults; unknown keys raise
    ``ValueError``.
    """
    opts = dict(options or {})
    out: dict[str, Any] = {}
    for key, cls in (("linear", LinearConfig), ("bezier", BezierConfig), ("neb", NEBConfig)):
        sub = dict(opts.get(key) or {})
        allowed = set(cls.__dataclass_fields__)
        unknown = set(sub) - allowed
        if unknown:
            raise ValueError(f"Unknown {key} path option(s): {sorted(unknown)}.")
        out[key] = cls(**sub)
    return PathConfigs(**out)


def pair_paths(
    obj: Objective,
    a: Tensor,
    b: Tensor,
    methods: Sequence[str],
    configs: PathConfigs | None = None,
    *,
    seed: int = 0,
) -> list[PathResult]:
    """Run each method of ``methods`` (``linear``, ``bezier``, ``neb``) on ``(a, b)``."""
    cfg = configs or PathConfigs()
    out: list[PathResult] = []
    for m in methods:
        if m == "linear":
            out.append(linear_path(obj, a, b, cfg.linear))
        elif m == "bezier":
            out.append(bezier_path(obj, a, b, cfg.bezier, cfg.linear, seed=seed))
        elif m == "neb":
            out.append(neb_path(obj, a, b, cfg.neb, cfg.linear, seed=seed))
        else:
            raise ValueError(f"Unknown path method {m!r}: expected linear, bezier or neb.")
    return out


def to_outcome(i: int, j: int, r: PathResult) -> PairOutcome:
    return PairOutcome(
        i=i,
        j=j,
        method=r.method,
        barrier=r.barrier,
        num_loss_evals=r.num_loss_evals,
        num_grad_evals=r.num_grad_evals,
        ts=r.ts,
        losses=r.losses,
    )


def analyze_points(
    obj: Objective,
    points: Sequence[Tensor],
    *,
    methods: Sequence[str] = ("neb",),
    configs: PathConfigs | None = None,
    strategy: Strategy = "exact",
    budget_pairs: int | None = None,
    threshold: float = 1e-2,
    seed: int = 0,
) -> tuple[RefineReport, MergeTree, np.ndarray]:
    """Barrier bounds and merge tree of ``points`` (minima of ``obj``).

    Returns:
        ``(report, tree, losses)``.
    """
    if len(points) < 1:
        raise ValueError("At least one point is required.")
    losses = np.array([float(obj.value(p)) for p in points])

    def cheap(pairs: list[tuple[int, int]]) -> list[list[PairOutcome]]:
        return [
            [
                to_outcome(i, j, r)
                for r in pair_paths(obj, points[i], points[j], ["linear"], configs)
            ]
            for i, j in pairs
        ]

    def refine(pairs: list[tuple[int, int]]) -> list[list[PairOutcome]]:
        return [
            [
                to_outcome(i, j, r)
                for r in pair_paths(
                    obj, points[i], points[j], methods, configs, seed=seed + 7919 * i + j
                )
            ]
            for i, j in pairs
        ]

    report = refine_barriers(
        losses.tolist(),
        cheap,
        refine,
        strategy=strategy,
        budget_pairs=budget_pairs,
        rel_tol=threshold,
    )
    scale = cheap_spread(losses.tolist(), report.cheap)
    tree = build_merge_tree(losses.tolist(), report.bounds, threshold=threshold, scale=scale)
    return report, tree, losses
