"""Runner of the ``minimizer_manifold`` job kind (Cooper's theorem, THEORY.md section 2).

Stages (fractions of the job's progress): ``fit`` (0 - 0.40), ``rank`` (0.40 - 0.65),
``hessian`` (0.65 - 0.75), ``walk`` (0.75 - 0.97), ``plots`` (0.97 - 1).

Everything numerical runs in float64 on the problem's device, on copies; the problem
(float32 or float64) is not modified.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..context import RunContext
from ..options.minimizer_manifold import OPTIONS
from ..output import Artifact, RunOutput
from ..output import json_float as _f
from ..plots import caption_text
from ..problem import Problem
from .fit import FitResult, levenberg_marquardt
from .jacobian import ResidualFunction
from .plots import singular_value_artifacts
from .rank import Linearization, Route, hessian_nullity
from .theory import theory_block
from .walk import walk_manifold

__all__ = ["DEFAULT_OPTIONS", "choose_route", "run_minimizer_manifold"]

DEFAULT_OPTIONS: dict[str, Any] = OPTIONS.defaults()
"""Defaults, derived from the kind's option table ``diagnostics/options/minimizer_manifold.py``."""

SPECTRUM_IN_RESULT_MAX = 1024
"""Singular values are listed in the result up to this many; all go to the artifact."""


def choose_route(num_equations: int, num_params: int, memory_bytes: float) -> Route:
    """``"dense"`` when the dense route's peak fits ``memory_bytes``, else ``"gram"``.

    The dense route holds ``J`` (``8 m P`` bytes) and its thin SVD (``U``, ``V``: about
    as much again), so its peak is taken as ``3 * 8 m P``.
    """
    return "dense" if 3 * 8 * num_equations * num_params <= memory_bytes else "gram"


def _fit_block(fit: FitResult, tol: float, max_steps: int, P: int, m: int) -> dict[str, Any]:
    if fit.interpolated:
        msg = (f"Interpolated: loss {fit.final_loss:.3e} <= tolerance {tol:.1e} after "
               f"{fit.steps} Levenberg-Marquardt steps.")
    else:
        why = {
            "stalled": "the loss stopped decreasing (a nonzero minimum or a flat region)",
            "step_budget_exhausted": f"the step budget ({max_steps}) ran out",
        }[fit.status]
        msg = (f"Not interpolating: final loss {fit.final_loss:.3e} > tolerance {tol:.1e}; "
               f"{why}.")
        if m > P:
            msg += (f" rN = {m} > P = {P}: the model has fewer parameters than equations, "
                    "so generic data admit no exact fit.")
    hist = fit.loss_history
    if len(hist) > 200:
        hist = hist[:100] + hist[-100:]
    return {
        "method": "levenberg_marquardt",
        "initial_loss": _f(fit.initial_loss),
        "final_loss": _f(fit.final_loss),
        "tolerance": tol,
        "interpolated": fit.interpolated,
        "status": fit.status,
        "steps": fit.steps,
        "max_steps": max_steps,
        "rejected_steps": fit.rejected,
        "final_damping": _f(fit.damping),
        "loss_history": [_f(v) for v in hist],
        "message": msg,
    }


def run_minimizer_manifold(problem: Problem, options: dict[str, Any], ctx: RunContext) -> RunOutput:
    """Fit to zero loss, measure the Jacobian rank, compare with ``P - rN``, walk ``M``.

    Args:
        problem: model, parameters (float32 or float64), data and ``loss == "mse"``.
        options: see :data:`DEFAULT_OPTIONS` and ``docs/kinds/minimizer_manifold.md``.
        ctx: progress, cancellation and the seed of the walk's random directions.

    Returns:
        ``RunOutput`` with the JSON result (``fit``, ``rank``, ``dimension``,
        ``hessian``, ``walk``, ``theory``, ...) and the artifacts ``singular_values.png``, ``.svg``
        and ``singular_values.json``.

    Raises:
        ValueError: for a loss other than mse or bad options.
    """
    if problem.loss != "mse":
        raise ValueError(
            "minimizer_manifold needs the squared loss (mse): Cooper's theorem is about "
            f"exact fits; got {problem.loss}."
        )
    opts = OPTIONS.resolve(options)
    mon = ctx.monitor
    memory_bytes = float(opts["memory_mb"]) * 2**20
    fn = ResidualFunction(problem, chunk_size=opts["chunk_size"], memory_bytes=memory_bytes)
    P, N, r, m = fn.num_params, fn.num_samples, fn.num_outputs, fn.num_equations
    route: Route = (
        choose_route(m, P, memory_bytes) if opts["route"] == "auto" else opts["route"]
    )
    tol = float(opts["fit_tol"])
    rtol = opts["rank_rtol"]
    mon.report("fit", 0.0, f"P = {P}, rN = {m}, route {route}", force=True)

    # 1. fit
    fit = levenberg_marquardt(
        fn, fn.initial_point(), route=route, tol=tol, max_steps=opts["fit_max_steps"],
        rtol=rtol, monitor=mon.sub(0.0, 0.40, "fit"),
    )
    mon.check()

    # 2. rank at the fitted point
    mon.report("rank", 0.40, f"{route} Jacobian at the fitted point", force=True)
    lin = fit.linearization
    if lin is None or lin.route != route:
        lin = Linearization(fn, fit.theta, route, rtol=rtol, monitor=mon.sub(0.40, 0.65, "rank"))
    rk = lin.rank_result
    svals = rk.singular_values

    # 3. Hessian nullity
    exact = P <= opts["hessian_exact_max_params"]
    mon.report("hessian", 0.65, "exact Hessian" if exact else "Hessian from the Gram matrix",
               force=True)
    hn = hessian_nullity(lin, exact=exact, monitor=mon.sub(0.65, 0.75, "hessian"))

    # 4. walk
    mon.report("walk", 0.75, f"{opts['walk_steps']} steps along null(J)", force=True)
    walk: dict[str, Any]
    if not fit.interpolated:
        walk = {"performed": False, "reason": "no exact fit was reached: nothing to walk on"}
    elif opts["walk_steps"] == 0 and not opts["control_step"]:
        walk = {"performed": False, "reason": "walk_steps = 0 and control_step = false"}
    else:
        gen = torch.Generator(device=fn.device)
        gen.manual_seed(int(ctx.seed))
        w = walk_manifold(
            fn, lin, steps=opts["walk_steps"], step_length=float(opts["walk_step_length"]),
            tol=tol, retract_max_steps=opts["retract_max_steps"], generator=gen,
            control=bool(opts["control_step"]), rtol=rtol,
            monitor=mon.sub(0.75, 0.97, "walk"),
        )
        ctrl = None
        if w.control is not None:
            c = w.control
            ctrl = {
                "step_length": c.step_length,
                "loss_before": _f(c.loss_before),
                "loss_after": _f(c.loss_after),
                "loss_rise": _f(c.loss_rise),
                "tangent_loss_same_length": _f(c.tangent_loss),
            }
        walk = {
            "performed": True,
            "reason": w.stopped_reason,
            "steps_requested": w.steps_requested,
            "steps_done": w.steps_done,
            "step_length": w.step_length,
            "path_length": _f(w.path_length),
            "displacement": _f(w.displacement),
            "max_loss": _f(w.max_loss),
            "max_loss_before_retraction": _f(w.max_loss_before_retraction),
            "max_retraction_correction": _f(w.max_retraction_correction),
            "max_retraction_steps": w.max_retraction_steps,
            "within_tolerance": w.max_loss <= tol,
            "losses": [_f(v) for v in w.losses],
            "control": ctrl,
        }

    # 5. theory and result
    theory = theory_block(
        model=problem.model, x=problem.x, loss=problem.loss, num_params=P, num_samples=N,
        num_outputs=r, interpolated=fit.interpolated, rank=lin.rank,
        hessian_nullity=hn.nullity,
    )
    predicted = P - m
    measured = P - lin.rank if fit.interpolated else None
    sv_list = [float(v) for v in svals.tolist()]
    rank_block = {
        "rank": lin.rank,
        "route": route,
        "rule": rk.rule,
        "rtol": rk.rtol,
        "threshold": _f(rk.threshold),
        "num_singular_values": len(sv_list),
        "largest": _f(sv_list[0]) if sv_list else None,
        "smallest": _f(sv_list[-1]) if sv_list else None,
        "full_row_rank": lin.rank == m,
        "gap": {
            "index": lin.rank,
            "sigma_above": _f(rk.sigma_above),
            "sigma_below": _f(rk.sigma_below),
            "ratio": _f(rk.gap_ratio),
            "margin_above_threshold": _f(rk.sigma_above / rk.threshold)
            if rk.sigma_above is not None and rk.threshold > 0 else None,
        },
        "singular_values": [_f(v) for v in sv_list]
        if len(sv_list) <= SPECTRUM_IN_RESULT_MAX else None,
    }
    hess_block = {
        "method": hn.method,
        "nullity": hn.nullity,
        "tolerance": _f(hn.tolerance),
        "rule": hn.rule,
        "largest_eigenvalue": _f(hn.largest_eigenvalue),
        "smallest_eigenvalue": _f(hn.smallest_eigenvalue),
        "residual_part_norm": _f(hn.residual_part_norm),
    }
    result: dict[str, Any] = {
        "num_params": P,
        "num_samples": N,
        "num_outputs": r,
        "num_equations": m,
        "input_dtype": str(problem.dtype).removeprefix("torch."),
        "compute_dtype": "float64",
        "device": str(fn.device),
        "route": route,
        "fit": _fit_block(fit, tol, opts["fit_max_steps"], P, m),
        "rank": rank_block,
        "dimension": {
            "predicted": predicted,
            "measured": measured,
            "jacobian_nullity": P - lin.rank,
            "hessian_nullity": hn.nullity,
            "agrees": (measured == predicted) if measured is not None else None,
            "hessian_agrees": (hn.nullity == P - lin.rank) if fit.interpolated else None,
        },
        "hessian": hess_block,
        "walk": walk,
        "theory": theory,
    }

    # artifacts
    mon.report("plots", 0.97, "singular-value plot", force=True)
    figures = singular_value_artifacts(
        rk, title=f"J at the fitted point: rank {lin.rank}, P - rN = {predicted}, "
        f"measured {measured if measured is not None else 'n/a'}",
        caption=caption_text(
            what="Singular values of the Jacobian J of the outputs at the fitted point",
            num_params=P, num_samples=N, loss=problem.loss,
            dtype=f"{result['input_dtype']} input, float64 compute",
            method=f"{route} route, rule {rk.rule}"),
    )
    sv_json = json.dumps({
        "singular_values": sv_list, "rank": lin.rank, "threshold": rk.threshold,
        "rtol": rk.rtol, "rule": rk.rule, "route": route,
    }).encode()
    mon.report("done", 1.0, "done", force=True)
    return RunOutput(
        result=result,
        artifacts=[
            *figures,
            Artifact("singular_values.json", "application/json", sv_json),
        ],
    )
