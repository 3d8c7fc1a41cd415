"""Job kind ``evaluate``: loss, gradient norm, parameter count, per-sample losses."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import grad

from .context import RunContext
from .dataparallel import resolve_shards, sharded_evaluate
from .options.evaluate import OPTIONS
from .output import RunOutput
from .problem import Problem

__all__ = ["evaluate", "run_evaluate"]


def evaluate(problem: Problem, ctx: RunContext | None = None) -> dict[str, Any]:
    """Full-data loss ``L``, ``||grad L||_2`` and the per-sample loss summary.

    Everything is accumulated over ``problem.batches()``, so memory is bounded by the
    batch size. Sums are kept as tensors and read back once at the end (no host syncs
    inside the loop).
    """
    ctx = ctx or RunContext()
    params = problem.params
    grad_fn = grad(problem.loss_fn)
    loss = torch.zeros((), dtype=problem.dtype, device=problem.device)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    lo = torch.full((), math.inf, dtype=problem.dtype, device=problem.device)
    hi = torch.full((), -math.inf, dtype=problem.dtype, device=problem.device)
    total = problem.num_batches
    for i, (xb, yb, w) in enumerate(problem.batches()):  # one batch held at a time
        ctx.monitor.check()
        with torch.no_grad():
            per = problem.per_sample_loss(params, xb, yb)
        loss = loss + per.sum() / problem.num_samples
        lo = torch.minimum(lo, per.min())
        hi = torch.maximum(hi, per.max())
        g = grad_fn(params, xb, yb)
        for k in grads:
            grads[k] = grads[k] + w * g[k]
        ctx.monitor.report("evaluate", (i + 1) / total, f"batch {i + 1}/{total}")
    grad_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values()))  # type: ignore[arg-type]
    values = {
        "loss": float(loss),
        "grad_norm": float(grad_norm),
        "min": float(lo),
        "max": float(hi),
    }
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"Non-finite {', '.join(bad)} at these parameters: the model diverges on this data."
        )
    return {
        "loss": values["loss"],
        "grad_norm": values["grad_norm"],
        "num_params": problem.num_params,
        "num_samples": problem.num_samples,
        "per_sample_loss": {"min": values["min"], "mean": values["loss"], "max": values["max"]},
    }


def run_evaluate(problem: Problem, options: dict[str, Any], ctx: RunContext) -> RunOutput:
    """Runner of the ``evaluate`` job kind (options: ``options/evaluate.py``)."""
    opts = OPTIONS.resolve(options)
    tol = float(opts["stationary_tol"])
    shards = resolve_shards(int(opts["parallel"]["shards"]), ctx.executor, problem)
    if shards > 1:
        values = sharded_evaluate(problem, ctx.executor, shards, monitor=ctx.monitor)
        bad = [k for k in ("loss", "grad_norm", "min", "max") if not math.isfinite(values[k])]
        if bad:
            raise FloatingPointError(f"Non-finite {', '.join(bad)} at these parameters: the "
                                     "model diverges on this data.")
        out = {"loss": values["loss"], "grad_norm": values["grad_norm"],
               "num_params": problem.num_params, "num_samples": problem.num_samples,
               "per_sample_loss": {"min": values["min"], "mean": values["loss"],
                                   "max": values["max"]},
               "parallel": {"shards": values["shards"]}}
        ctx.monitor.report("evaluate", 1.0, f"{shards} shards", force=True)
    else:
        out = evaluate(problem, ctx)
    out["theory"] = {
        "applies": [],
        "measured": {"grad_norm": out["grad_norm"], "stationary": out["grad_norm"] <= tol},
        "notes": [
            f"A critical point has zero gradient; 'stationary' means grad_norm <= {tol:g}. "
            "Whether it is a minimum or a saddle is what hessian_spectrum measures.",
            "At a global minimizer of the squared loss with an exact fit, the loss is 0 "
            "(THEORY.md section 2); minimizer_manifold measures that set.",
        ],
    }
    return RunOutput(result=out)
