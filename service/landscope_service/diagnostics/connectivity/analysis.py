"""Connectivity of given points of any differentiable function (no network needed).

:func:`batch_paths` runs the chosen path finders for many pairs as one batch
(:func:`pair_paths` for one); :func:`analyze_points` bounds every pairwise barrier
(cheap linear bounds, then MST-first refinement, one batch per round) and builds the
merge tree. The job runner uses the same two pieces through its executor;
tests use them on analytic potentials (Müller-Brown, Himmelblau).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .mergetree import MergeTree, build_merge_tree, noise_level
from .objective import Objective
from .paths import (
    BezierConfig,
    LinearConfig,
    NEBConfig,
    PathResult,
    bezier_path,
    linear_paths,
    neb_paths,
)
from .refine import PairOutcome, RefineReport, Strategy, refine_barriers

__all__ = [
    "PathConfigs",
    "analyze_points",
    "batch_paths",
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
    target: float | None = None,
    check: Callable[[], None] | None = None,
) -> list[PathResult]:
    """Run each method of ``methods`` (``linear``, ``bezier``, ``neb``) on ``(a, b)``."""
    return batch_paths(
        obj, [(a, b)], methods, configs, seeds=[seed], targets=[target], check=check
    )[0]


def batch_paths(
    obj: Objective,
    pairs: Sequence[tuple[Tensor, Tensor]],
    methods: Sequence[str],
    configs: PathConfigs | None = None,
    *,
    seeds: Sequence[int] | None = None,
    targets: Sequence[float | None] | None = None,
    check: Callable[[], None] | None = None,
) -> list[list[PathResult]]:
    """Paths of every method for many pairs; linear and NEB paths of all pairs are one
    batch (:func:`.paths.linear_paths`, :func:`.neb.neb_paths`), Bezier curves per pair.

    Returns:
        For each pair, its results in the order of ``methods``.

    ``check`` (e.g. a monitor's cancellation check) is called between NEB cycles.
    """
    cfg = configs or PathConfigs()
    n = len(pairs)
    sd = list(seeds) if seeds is not None else [0] * n
    tg = list(targets) if targets is not None else [None] * n
    for m in methods:
        if m not in ("linear", "bezier", "neb"):
            raise ValueError(f"Unknown path method {m!r}: expected linear, bezier or neb.")
    per: dict[str, list[PathResult]] = {}
    for m in dict.fromkeys(methods):
        if m == "linear":
            per[m] = linear_paths(obj, pairs, cfg.linear)
        elif m == "neb":
            per[m] = neb_paths(
                obj, pairs, cfg.neb, cfg.linear, seeds=sd, targets=tg, check=check
            )
        else:
            per[m] = [
                bezier_path(obj, a, b, cfg.bezier, cfg.linear, seed=s, target=t)
                for (a, b), s, t in zip(pairs, sd, tg, strict=True)
            ]
    return [[per[m][k] for m in methods] for k in range(n)]


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
        resolution=r.resolution,
        bracketed=r.bracketed,
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
    noise_tol: float | None = None,
    loss_scale: float | None = None,
    seed: int = 0,
    on_round: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> tuple[RefineReport, MergeTree, np.ndarray]:
    """Barrier bounds and merge tree of ``points`` (minima of ``obj``).

    Each refinement round is one batch of paths (:func:`batch_paths`). The noise level
    is :func:`.mergetree.noise_level` (``noise_tol`` absolute if given, else relative to
    the resolved spread and ``loss_scale``).

    Returns:
        ``(report, tree, losses)``.
    """
    if len(points) < 1:
        raise ValueError("At least one point is required.")
    losses = np.array([float(v) for v in obj.values(torch.stack(list(points))).tolist()])

    def cheap(pairs: list[tuple[int, int]]) -> list[list[PairOutcome]]:
        res = batch_paths(obj, [(points[i], points[j]) for i, j in pairs], ["linear"], configs)
        return [[to_outcome(i, j, r) for r in rs] for (i, j), rs in zip(pairs, res, strict=True)]

    def refine(pairs: list[tuple[int, int]], targets: list[float]) -> list[list[PairOutcome]]:
        res = batch_paths(
            obj,
            [(points[i], points[j]) for i, j in pairs],
            methods,
            configs,
            seeds=[seed + 7919 * i + j for i, j in pairs],
            targets=targets,
        )
        return [[to_outcome(i, j, r) for r in rs] for (i, j), rs in zip(pairs, res, strict=True)]

    def noise(bounds: np.ndarray, done: set[tuple[int, int]]) -> float:
        return noise_level(
            losses.tolist(), bounds, done, threshold=threshold, abs_tol=noise_tol,
            loss_scale=loss_scale,
        )[0]

    floor_tol = noise_level(
        losses.tolist(), np.diag(losses), [], threshold=0.0, abs_tol=noise_tol,
        loss_scale=loss_scale,
    )[0]
    report = refine_barriers(
        losses.tolist(),
        cheap,
        refine,
        strategy=strategy,
        budget_pairs=budget_pairs,
        noise_fn=noise,
        target_tol=floor_tol,
        on_round=on_round,
    )
    tree = build_merge_tree(losses.tolist(), report.bounds, tolerance=report.noise_tol)
    return report, tree, losses
