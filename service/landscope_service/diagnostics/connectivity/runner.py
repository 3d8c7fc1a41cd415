"""Runner of the ``level_set_connectivity`` job kind.

Stages (progress stage names in brackets):

1. [``train_minima``] minima given as weight blobs are loaded; the others are trained
   from seeds, one subtask per minimum (``train_piece`` through ``ctx.executor``).
   Every minimum's loss is the full-data loss.
2. [``cheap_bounds``] the certified linear path of every pair (and of every aligned
   pair when ``align`` is on): one subtask per pair (``pair_piece``).
3. [``refine``] optimised paths (adaptive NEB and/or Bezier) for the pairs that can
   change the answer, minimum-spanning-tree edges first, within
   ``refine.budget_pairs`` (see :mod:`.refine`); one executor round per tree update,
   each followed by a progress message with the merge tree so far and how many merges
   can still move down.
4. Union-find over the best known bounds: N_lambda on the grid (raw and with the noise
   level of :func:`.mergetree.noise_level`), merge heights, merge tree, components; in
   parameter space and, with alignment, modulo permutation.

Every path maximum is certified up to its resolution (:mod:`.profile`), so every
barrier is an upper bound on the minimax barrier (a path found is one path, the minimax
path may be lower) under the stated curvature estimate; the result's ``guarantee`` says
exactly this.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..context import RunContext
from ..monitor import Monitor
from ..options.level_set_connectivity import OPTIONS
from ..output import Artifact, RunOutput
from ..output import json_float as _fin
from ..plots import caption_text, figure_artifacts
from ..problem import Problem, flatten
from .align import align_flat, hidden_layers
from .analysis import pair_paths, path_configs
from .mergetree import (
    MergeTree,
    bottleneck_matrix,
    build_merge_tree,
    default_lambda_grid,
    noise_level,
)
from .minima import init_params, minimize
from .objective import has_batchnorm, problem_objective
from .plots import merge_tree_figure, path_profiles_figure
from .refine import PairOutcome, RefineReport, refine_barriers
from .theory import theory_block

__all__ = [
    "DEFAULT_OPTIONS",
    "derive_seed",
    "pair_piece",
    "resolve_options",
    "run_level_set_connectivity",
    "train_piece",
]

DEFAULT_OPTIONS: dict[str, Any] = OPTIONS.defaults()
"""Defaults, derived from the option table ``diagnostics/options/level_set_connectivity.py``."""

BARRIER_NOTE = (
    "A pair's path barrier is the highest loss sampled along its path and resolution its "
    "certified margin: under the local curvature estimate between samples the maximum of "
    "the loss along the path lies in [barrier, barrier + resolution]. A path found is one "
    "path, so barrier + resolution is an upper bound on the true minimax barrier (min over "
    "paths of the max loss); the only lower bound is max(L_i, L_j). The barrier matrix "
    "gives each pair's best known upper bound (barrier + resolution), direct or through a "
    "chain of pairs (ultrametric closure, barrier_source). Merge heights are therefore "
    "upper bounds and n_lambda_raw is an upper bound on the number of components of the "
    "level set that contain the minima."
)

GUARANTEE = (
    "Every reported path barrier is at least the maximum of the loss along its path, up "
    "to its resolution (under the local curvature estimate between samples: "
    "curvature_safety times the largest curvature of the cubic interpolants of the "
    "interval and its neighbours). Every barrier-matrix entry and merge height is at least "
    "the true minimax barrier of its pair or merge, and n_lambda_raw is at least the true "
    "number of level-set components holding the sampled minima, under the same estimate."
)


def resolve_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` checked against the kind's option table and completed with defaults."""
    return OPTIONS.resolve(options)


def derive_seed(base: int, *keys: int) -> int:
    """A 31-bit seed from the run's base seed and integer keys (numpy SeedSequence)."""
    ss = np.random.SeedSequence([int(base) & 0xFFFFFFFF, *[int(k) for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


# ---------------------------------------------------------------------- pieces
def train_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Subtask: train one minimum from its seed.

    Payload: ``{"index", "seed", "optimizer", "steps", "lr", "momentum"}``.
    Result: ``{"index", "seed", "theta": flat tensor, "loss", "grad_norm",
    "num_grad_evals"}``.
    """
    torch.manual_seed(int(payload["seed"]))
    obj = problem_objective(problem)
    p0 = init_params(problem, int(payload["seed"]))
    theta0 = flatten({k: p0[k] for k in problem.params})
    res = minimize(
        obj,
        theta0,
        optimizer=payload["optimizer"],
        steps=int(payload["steps"]),
        lr=float(payload["lr"]),
        momentum=float(payload.get("momentum", 0.9)),
        monitor=monitor,
    )
    return {
        "index": int(payload["index"]),
        "seed": int(payload["seed"]),
        "theta": res.theta,
        "loss": res.loss,
        "grad_norm": res.grad_norm,
        "num_grad_evals": res.num_grad_evals,
    }


def pair_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Subtask: paths between two minima.

    Payload: ``{"i", "j", "theta_a", "theta_b", "methods", "paths": {linear, bezier,
    neb configs}, "seed", "target"}`` (``target``: optional level at or below which the
    path finder may stop). Result: ``{"i", "j", "paths": [{"method", "barrier",
    "resolution", "bracketed", "ts", "losses", "num_loss_evals", "num_grad_evals"}]}``.
    """
    monitor.check()
    obj = problem_objective(problem)
    device, dtype = problem.device, problem.dtype
    a = payload["theta_a"].to(device=device, dtype=dtype)
    b = payload["theta_b"].to(device=device, dtype=dtype)
    cfgs = path_configs(payload.get("paths"))
    target = payload.get("target")
    results = pair_paths(
        obj,
        a,
        b,
        list(payload["methods"]),
        cfgs,
        seed=int(payload["seed"]),
        target=None if target is None else float(target),
        check=monitor.check,
    )
    return {
        "i": int(payload["i"]),
        "j": int(payload["j"]),
        "paths": [
            {
                "method": r.method,
                "barrier": r.barrier,
                "resolution": r.resolution,
                "bracketed": r.bracketed,
                "ts": r.ts,
                "losses": r.losses,
                "num_loss_evals": r.num_loss_evals,
                "num_grad_evals": r.num_grad_evals,
            }
            for r in results
        ],
    }


# ---------------------------------------------------------------------- helpers
def _counting(parent: Monitor, start: float, stop: float, stage: str, noun: str) -> Monitor:
    def progress(_stage: str, frac: float, msg: str) -> None:
        parent.report(stage, start + (stop - start) * frac, msg.replace("pieces", noun))

    return Monitor(
        progress=progress if parent.progress is not None else None,
        should_cancel=parent.should_cancel,
        min_interval=parent.min_interval,
    )


def _matrix(b: np.ndarray) -> list[list[float | None]]:
    return [[_fin(v) for v in row] for row in b.tolist()]


def _scale(rule: Mapping[str, Any]) -> float:
    spread = rule.get("resolved_spread")
    return float(spread) if spread is not None else 1.0


def zero_output_loss(problem: Problem, like: Mapping[str, Tensor]) -> float | None:
    """The loss of the zero output (zero logits for cross-entropy) on the data set.

    A data-dependent loss unit for the noise level (:func:`.mergetree.noise_level`):
    for mse the mean square of the targets, for cross-entropy ``log C`` with ``C`` the
    number of classes. None when it is zero or not finite.
    """
    if problem.num_samples == 0:
        return None
    if problem.loss == "mse":
        value = float(problem.y.double().pow(2).mean())
    else:
        with torch.no_grad():
            out = problem.forward(dict(like), problem.x[:1])
        value = math.log(int(out.shape[1])) if out.ndim >= 2 else 0.0
    return value if math.isfinite(value) and value > 0 else None


def closure_matrix(
    losses: list[float], bounds: np.ndarray
) -> tuple[np.ndarray, list[list[str | None]]]:
    """Best known upper bound of every pair and where it comes from.

    A chain of paths through other minima is a path, so the minimax over chains of the
    direct bounds (the ultrametric closure, :func:`.mergetree.bottleneck_matrix`) is an
    upper bound too. Returns the closure and, per pair, ``"direct"`` (the pair's own path
    is the best), ``"chain"`` (a chain through other pairs is lower) or None (no bound).
    """
    closed = bottleneck_matrix(losses, bounds)
    m = len(losses)
    src: list[list[str | None]] = [[None] * m for _ in range(m)]
    for i in range(m):
        src[i][i] = "minimum"
        for j in range(m):
            if i == j or not math.isfinite(float(closed[i, j])):
                continue
            direct = float(min(bounds[i, j], bounds[j, i]))
            src[i][j] = "direct" if direct <= float(closed[i, j]) else "chain"
    return closed, src


def _space_json(
    tree: MergeTree, grid: list[float], report: RefineReport, rule: Mapping[str, Any]
) -> dict[str, Any]:
    losses = tree.losses.tolist()
    closed, source = closure_matrix(losses, tree.barriers)
    direct = np.where(np.eye(len(losses), dtype=bool), tree.losses, report.bounds)
    refined = set(report.refined)
    return {
        "barriers": _matrix(closed),
        "barrier_source": source,
        "barriers_direct": _matrix(direct),
        "barriers_linear": _matrix(
            np.where(np.eye(len(losses), dtype=bool), tree.losses, report.cheap)
        ),
        "n_lambda": [tree.n_lambda(lam) for lam in grid],
        "n_lambda_raw": [tree.n_lambda(lam, effective=False) for lam in grid],
        "components": [tree.components(lam) for lam in grid],
        "contains_global_min": [tree.contains_global_min(lam) for lam in grid],
        "merge_heights": [_fin(h) for h in tree.merge_heights()],
        "merge_heights_effective": [_fin(h) for h in tree.merge_heights(effective=True)],
        "noise_level": _fin(tree.tolerance),
        "noise_rule": dict(rule),
        "merge_tree": tree.to_json(),
        "refinement": report.to_json(),
        "pairs": [
            {
                "i": i,
                "j": j,
                "barrier": _fin(o.barrier),
                "resolution": _fin(o.resolution),
                "bracketed": bool(o.bracketed),
                "method": o.method,
                "linear": _fin(report.cheap[i, j]),
                "refined": (i, j) in refined,
            }
            for (i, j), o in sorted(report.best.items())
        ],
    }


# ---------------------------------------------------------------------- runner
def run_level_set_connectivity(
    problem: Problem, options: dict[str, Any], ctx: RunContext
) -> RunOutput:
    """Minima, paths, barrier bounds, N_lambda over a grid, merge tree, theory.

    Args:
        problem: model, parameters (their names, shapes, device and dtype are used),
            full data set and loss.
        options: see :data:`DEFAULT_OPTIONS` and ``docs/kinds/level_set_connectivity.md``.
        ctx: monitor, executor, base seed, parameter loader.

    Returns:
        :class:`RunOutput` with the JSON result and the artifacts ``barriers.json``,
        ``path_profiles.json``, ``merge_tree.png`` and ``path_profiles.png``.
    """
    opts = resolve_options(options)
    mon = ctx.monitor
    like = {k: v.detach() for k, v in problem.params.items()}
    obj = problem_objective(problem)
    device, dtype = problem.device, problem.dtype

    # ------------------------------------------------------------ minima
    thetas: list[Tensor] = []
    minima_info: list[dict[str, Any]] = []
    for ref in opts["minima"]:
        loaded = ctx.load_params(str(ref))
        missing = set(like) - set(loaded)
        extra = set(loaded) - set(like)
        if missing or extra:
            raise ValueError(
                f"Weights {ref!r} do not match the architecture: missing {sorted(missing)}, "
                f"unexpected {sorted(extra)}."
            )
        for k, v in like.items():
            if tuple(loaded[k].shape) != tuple(v.shape):
                raise ValueError(
                    f"Weights {ref!r}: shape mismatch for {k}: expected {tuple(v.shape)}, "
                    f"got {tuple(loaded[k].shape)}."
                )
        thetas.append(flatten({k: loaded[k].to(device=device, dtype=dtype) for k in like}))
        minima_info.append({"source": "given", "blob": str(ref), "seed": None})
    n_train = int(opts["num_trained"])
    mon.report("train_minima", 0.0, f"0/{n_train} minima trained", force=True)
    if n_train > 0:
        tr = opts["train"]
        payloads = [
            {
                "index": k,
                "seed": derive_seed(ctx.seed, 1, k),
                "optimizer": tr["optimizer"],
                "steps": int(tr["steps"]),
                "lr": float(tr["lr"]),
                "momentum": float(tr.get("momentum", 0.9)),
            }
            for k in range(n_train)
        ]
        trained = ctx.executor.map(
            train_piece,
            problem,
            payloads,
            _counting(mon, 0.0, 0.3, "train_minima", "minima trained"),
        )
        for r in sorted(trained, key=lambda r: int(r["index"])):
            thetas.append(r["theta"].to(device=device, dtype=dtype))
            minima_info.append({"source": "trained", "blob": None, "seed": int(r["seed"])})
    mon.report("train_minima", 0.3, f"{n_train}/{n_train} minima trained", force=True)
    mon.check()
    stack = torch.stack(thetas)
    losses_t, grads_t = obj.values_and_grads(stack)
    losses = [float(v) for v in losses_t.cpu().tolist()]
    gnorms = [float(v) for v in grads_t.norm(dim=1).cpu().tolist()]
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"A minimum has a non-finite loss: {losses}.")
    for idx, info in enumerate(minima_info):
        info.update({"index": idx, "loss": losses[idx], "grad_norm": gnorms[idx]})
    m = len(thetas)

    # ------------------------------------------------------------ alignment
    aligned: dict[tuple[int, int], Tensor] = {}
    align_error: str | None = None
    if opts["align"]:
        try:
            hidden_layers(problem.model)
        except TypeError as e:
            align_error = str(e)
        if align_error is None:
            for i in range(m):
                for j in range(i + 1, m):
                    aligned[(i, j)], _ = align_flat(
                        problem.model,
                        like,
                        thetas[i],
                        thetas[j],
                        seed=derive_seed(ctx.seed, 3, i, j),
                    )

    # ------------------------------------------------------------ pairs
    methods = list(opts["paths"]["methods"])
    path_opts = {k: opts["paths"][k] for k in ("linear", "bezier", "neb")}
    path_configs(path_opts)  # validate before any subtask
    n_pairs = m * (m - 1) // 2
    spaces = ["parameter"] + (["permutation"] if aligned else [])
    span = 0.6 / len(spaces)

    def make_fn(space: str, meths: list[str], stage: str, lo: float, hi: float) -> Any:
        # Progress of a stage: the share of all pairs done, so it never goes backwards
        # from one round to the next.
        done_pairs = [0]

        def fn(
            pairs: list[tuple[int, int]], targets: list[float] | None = None
        ) -> list[list[PairOutcome]]:
            payloads = [
                {
                    "i": i,
                    "j": j,
                    "theta_a": thetas[i],
                    "theta_b": aligned[(i, j)] if space == "permutation" else thetas[j],
                    "methods": meths,
                    "paths": path_opts,
                    "seed": derive_seed(ctx.seed, 2, i, j),
                    "target": None if targets is None else float(targets[k]),
                }
                for k, (i, j) in enumerate(pairs)
            ]
            total = max(n_pairs, 1)
            a = lo + (hi - lo) * min(done_pairs[0], total) / total
            b = lo + (hi - lo) * min(done_pairs[0] + len(pairs), total) / total
            done_pairs[0] += len(pairs)
            out = ctx.executor.map(
                pair_piece, problem, payloads, _counting(mon, a, b, stage, "pairs")
            )
            return [
                [
                    PairOutcome(
                        i=int(r["i"]),
                        j=int(r["j"]),
                        method=str(p["method"]),
                        barrier=float(p["barrier"]),
                        num_loss_evals=int(p["num_loss_evals"]),
                        num_grad_evals=int(p["num_grad_evals"]),
                        ts=list(p["ts"]),
                        losses=list(p["losses"]),
                        resolution=float(p["resolution"]),
                        bracketed=bool(p["bracketed"]),
                    )
                    for p in r["paths"]
                ]
                for r in out
            ]

        return fn

    tau = float(opts["persistence_threshold"])
    abs_tol = None if opts["noise_tol"] is None else float(opts["noise_tol"])
    loss_scale = zero_output_loss(problem, like)

    def noise_fn(bounds: np.ndarray, done: set[tuple[int, int]]) -> float:
        return noise_level(
            losses, bounds, done, threshold=tau, abs_tol=abs_tol, loss_scale=loss_scale
        )[0]

    target_tol = noise_level(
        losses, np.diag(losses), [], threshold=0.0, abs_tol=abs_tol, loss_scale=loss_scale
    )[0]
    reports: dict[str, RefineReport] = {}
    for s_idx, space in enumerate(spaces):
        base = 0.3 + s_idx * span
        mon.report("cheap_bounds", base, f"0/{n_pairs} pairs done ({space})", force=True)
        cheap_fn = make_fn(space, ["linear"], "cheap_bounds", base, base + 0.15 * span)
        refine_fn = make_fn(space, methods, "refine", base + 0.15 * span, base + span)
        lo_frac, hi_frac = base + 0.15 * span, base + span

        def on_round(
            done: int,
            total: int,
            snap: dict[str, Any],
            _s: str = space,
            _lo: float = lo_frac,
            _hi: float = hi_frac,
        ) -> None:
            n_open = len(snap["open_levels"] or [])
            mon.report(
                "refine",
                _lo + (_hi - _lo) * min(done, max(total, 1)) / max(total, 1),
                f"round {snap['round']} ({_s}): {done}/{total} pairs refined; "
                f"{len(snap['merge_heights'])} merges, {n_open} can still move down",
                force=True,
            )

        reports[space] = refine_barriers(
            losses,
            cheap_fn,
            refine_fn,
            strategy=opts["refine"]["strategy"],
            budget_pairs=opts["refine"]["budget_pairs"],
            beyond_mst=bool(opts["refine"]["beyond_mst"]),
            noise_fn=noise_fn,
            target_tol=target_tol,
            on_round=on_round,
            per_edge=int(opts["refine"]["per_edge"]),
            growth=float(opts["refine"]["growth"]),
        )
        mon.check()

    # ------------------------------------------------------------ aggregation
    # The noise level from what was resolved (minima and refined barriers), or the
    # user's absolute tolerance; never from the straight-line bounds.
    p_rep = reports["parameter"]
    tol, rule = noise_level(
        losses, p_rep.bounds, p_rep.refined, threshold=tau, abs_tol=abs_tol,
        loss_scale=loss_scale,
    )
    tree = build_merge_tree(losses, p_rep.bounds, threshold=tau, scale=_scale(rule), tolerance=tol)
    tree_perm: MergeTree | None = None
    rule_perm: dict[str, Any] | None = None
    if "permutation" in reports:
        both = np.minimum(p_rep.bounds, reports["permutation"].bounds)
        refined_both = set(p_rep.refined) | set(reports["permutation"].refined)
        tol_p, rule_perm = noise_level(
            losses, both, refined_both, threshold=tau, abs_tol=abs_tol, loss_scale=loss_scale
        )
        tree_perm = build_merge_tree(
            losses, both, threshold=tau, scale=_scale(rule_perm), tolerance=tol_p
        )
    if opts["lambda_grid"] is not None:
        grid = sorted(float(x) for x in opts["lambda_grid"])
        if not grid or not all(math.isfinite(x) for x in grid):
            raise ValueError("lambda_grid must be a non-empty list of finite numbers.")
    else:
        grid = default_lambda_grid(
            losses, reports["parameter"].bounds, int(opts["lambda_grid_size"])
        )
    param_json = _space_json(tree, grid, reports["parameter"], rule)
    perm_json: dict[str, Any] | None = None
    if tree_perm is not None and rule_perm is not None:
        perm_json = _space_json(tree_perm, grid, reports["permutation"], rule_perm)
        perm_json["barriers_aligned"] = _matrix(
            np.where(np.eye(m, dtype=bool), np.asarray(losses), reports["permutation"].bounds)
        )
    total_grads = sum(r.num_grad_evals for r in reports.values())
    total_loss = sum(r.num_loss_evals for r in reports.values())
    result: dict[str, Any] = {
        "num_minima": m,
        "minima": minima_info,
        "barriers_are_upper_bounds": True,
        "barrier_note": BARRIER_NOTE,
        "guarantee": GUARANTEE,
        "loss": problem.loss,
        "loss_convention": "PyTorch mean reduction (mse: mean over samples and outputs)",
        "batchnorm_statistics": "recomputed at every path point on the full data set"
        if has_batchnorm(problem.model)
        else None,
        "methods": methods,
        "lambda_grid": grid,
        "persistence_threshold": tau,
        "parameter_space": param_json,
        "modulo_permutation": perm_json,
        "alignment": {
            "requested": bool(opts["align"]),
            "done": bool(aligned),
            "error": align_error,
        },
        "work": {"num_grad_evals": total_grads, "num_loss_evals": total_loss},
        "theory": theory_block(problem.model, problem.loss, problem.num_samples, tree, grid),
    }
    if tree_perm is not None:
        result["theory"]["modulo_permutation_max_n_lambda"] = max(
            (tree_perm.n_lambda(lam) for lam in grid), default=0
        )

    # ------------------------------------------------------------ artifacts
    profiles: list[dict[str, Any]] = []
    for space, rep in reports.items():
        for (i, j), outs in sorted(rep.outcomes.items()):
            for o in outs:
                profiles.append(
                    {
                        "space": space,
                        "i": i,
                        "j": j,
                        "method": o.method,
                        "barrier": _fin(o.barrier),
                        "resolution": _fin(o.resolution),
                        "bracketed": bool(o.bracketed),
                        "ts": o.ts,
                        "losses": [_fin(v) for v in o.losses],
                    }
                )
    barriers_doc = {
        "note": BARRIER_NOTE,
        "losses": losses,
        "parameter_space": param_json["barriers"],
        "parameter_space_source": param_json["barrier_source"],
        "parameter_space_direct": param_json["barriers_direct"],
        "parameter_space_linear": param_json["barriers_linear"],
        "modulo_permutation": perm_json["barriers"] if perm_json is not None else None,
    }
    mst_pairs = {tuple(mg.edge) for mg in tree.merges}
    plot_profiles = []
    for (i, j), o in sorted(reports["parameter"].best.items()):
        if (i, j) in mst_pairs:
            lin = [x for x in reports["parameter"].outcomes[(i, j)] if x.method == "linear"]
            if lin and o.method != "linear":
                plot_profiles.append((f"{i}-{j} linear", lin[0].ts, lin[0].losses))
            plot_profiles.append((f"{i}-{j} {o.method}", o.ts, o.losses))
            if "permutation" in reports and (i, j) in reports["permutation"].best:
                pa = reports["permutation"].best[(i, j)]
                plot_profiles.append((f"{i}-{j} aligned {pa.method}", pa.ts, pa.losses))
    artifacts = [
        Artifact("barriers.json", "application/json", json.dumps(barriers_doc).encode()),
        Artifact(
            "path_profiles.json", "application/json", json.dumps({"profiles": profiles}).encode()
        ),
        *figure_artifacts("merge_tree", merge_tree_figure(tree, caption=caption_text(
            what=f"Disconnectivity graph of {m} minima: merges at the barrier heights "
            "(upper bounds), noise merges dashed", num_params=problem.num_params,
            num_samples=problem.num_samples, loss=problem.loss, dtype=str(problem.dtype),
            method="paths: " + ", ".join(methods),
            extra=[f"noise level {tree.tolerance:.3g}"]))),
        *figure_artifacts("path_profiles", path_profiles_figure(
            plot_profiles,
            log={"auto": None, "log": True, "linear": False}[str(opts["plot_log"])],
            caption=caption_text(
                what="Loss along the merge-tree (MST) paths: linear dashed, optimised solid, "
                "permutation-aligned dotted", num_params=problem.num_params,
                num_samples=problem.num_samples, loss=problem.loss, dtype=str(problem.dtype),
                method="paths: " + ", ".join(methods)))),
    ]
    mon.report("done", 1.0, f"{m} minima, {n_pairs} pairs", force=True)
    return RunOutput(result=result, artifacts=artifacts)
