"""Runner of the ``hessian_spectrum`` job kind: one product budget, several outputs.

Iterative mode (``P > exact_threshold``):

1. One thick-restart Lanczos run (:func:`.lanczos.lanczos_extremes`) from a Rademacher
   start vector finds the top-k and bottom-k eigenpairs. Because its start vector is a
   Rademacher probe, the run is also the first SLQ probe (nodes, weights) and the first
   Hutchinson sample of the trace.
2. ``density_probes`` independent probes run as pieces through ``ctx.executor`` (fanned
   out over workers by the service): each is ``density_steps`` Lanczos steps giving SLQ
   nodes and weights, and its first product ``H g`` gives a plain Hutchinson sample, a
   sample deflated by the Ritz vectors of step 1 (:func:`.trace.deflated_sample`) and one
   sample of every layer block's trace -- all without further products.
3. Optional: the Gauss-Newton / residual split of the extreme Ritz vectors (one GGN product
   each) and per-layer block top eigenvalues.

Exact mode (``P <= exact_threshold``): the dense Hessian (``torch.func``) and ``eigh``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..context import RunContext
from ..monitor import Monitor
from ..options.hessian_spectrum import OPTIONS
from ..output import Artifact, RunOutput
from ..output import json_float as _f
from ..output import json_floats as _fl
from ..problem import Problem
from .blocks import ParamGroup, parameter_groups
from .density import (
    default_sigma,
    negative_mass,
    negative_mass_bounds,
    slq_density,
    slq_moments,
)
from .exact import dense_hessian, exact_spectrum
from .hvp import gradient, resolve_variant
from .krylov import rademacher
from .lanczos import EigenResult, lanczos_extremes
from .operators import BlockOperator, GGNOperator, HessianOperator
from .plots import density_png
from .slq import lanczos_quadrature
from .trace import deflated_sample, summarize_samples

__all__ = ["DEFAULT_OPTIONS", "probe_piece", "run_hessian_spectrum"]

DEFAULT_OPTIONS: dict[str, Any] = OPTIONS.defaults()
"""Defaults, derived from the kind's option table ``diagnostics/options/hessian_spectrum.py``."""

_DEFLATION_TOL = 1e-3
_DEFLATION_MAX = 64
BASIS_MEMORY_BYTES = 2 << 30
"""Memory budget of the Lanczos basis (``max_basis * P`` numbers) and, in float64, of the
deflation vectors shipped to the probes: large models get a smaller basis (more restarts,
never an out-of-memory error); ``max_basis_used`` in the result says what was used."""

THEORY_STATEMENTS = {
    "psd": "THEORY.md section 3: near a minimum the Hessian is positive semi-definite; a "
    "negative eigenvalue means a saddle, and the number of negative eigenvalues is its "
    "Morse index.",
    "split": "THEORY.md section 3: H = G + R, with G = J^T (d2 l) J the Gauss-Newton part "
    "(positive semi-definite for mse and cross-entropy) and R the residual part.",
    "zero_loss": "THEORY.md sections 2-3: at a zero-loss minimizer of the squared loss the "
    "residual part vanishes and H is proportional to J^T J, so H has at most r*N nonzero "
    "(positive) eigenvalues and at least P - r*N zero ones.",
}


# --------------------------------------------------------------------------- pieces
def probe_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """One independent probe: SLQ nodes/weights and trace samples (an executor piece).

    Payload: ``seed`` (int), ``steps`` (int), ``hvp`` (variant), ``deflation`` (``(P, k)``
    tensor or None), ``deflation_values`` (``(k,)`` tensor or None), ``groups``
    (list of ``[start, stop]``).

    Returns:
        ``nodes``, ``weights`` (lists), ``plain`` and ``deflated`` trace samples,
        ``blocks`` (per-group samples of the block trace) and ``products``.
    """
    op = HessianOperator(problem, str(payload["hvp"]))
    p = int(op.shape[0])
    g = rademacher(p, int(payload["seed"]), dtype=op.dtype, device=op.device)
    quad = lanczos_quadrature(op, g, int(payload["steps"]), seed=int(payload["seed"]),
                              monitor=monitor, stage="probe")
    g64 = g.to(torch.float64)
    hg = quad.first_product.to(torch.float64) * math.sqrt(p)
    defl = payload.get("deflation")
    vals = payload.get("deflation_values")
    plain, deflated = deflated_sample(
        g64, hg, None if defl is None else defl.to(torch.float64),
        None if vals is None else vals.to(torch.float64),
    )
    blocks = [float(g64[a:b] @ hg[a:b]) for a, b in payload.get("groups", [])]
    return {
        "nodes": [float(x) for x in quad.nodes],
        "weights": [float(x) for x in quad.weights],
        "plain": plain,
        "deflated": deflated,
        "blocks": blocks,
        "products": int(quad.products),
    }


# --------------------------------------------------------------------------- helpers
def _ggn_split(problem: Problem, vectors: Tensor, values: np.ndarray,
               monitor: Monitor | None = None) -> tuple[list[dict[str, float | None]], int]:
    """Rayleigh quotients of the GGN and residual on unit Ritz vectors."""
    if vectors.shape[1] == 0:
        return [], 0
    ggn = GGNOperator(problem)
    cols = []
    for j in range(vectors.shape[1]):
        if monitor is not None:
            monitor.check()
        cols.append(ggn @ vectors[:, j])
    gv = torch.stack(cols, dim=1)
    v64 = vectors.to(torch.float64)
    norms = (v64 * v64).sum(0)
    parts = ((v64 * gv.to(torch.float64)).sum(0) / norms).cpu().numpy()
    out = [{"eigenvalue": _f(lam), "ggn": _f(gq), "residual": _f(lam - gq)}
           for lam, gq in zip(values, parts, strict=True)]
    return out, ggn.num_products


def _theory(
    problem: Problem,
    opts: dict[str, Any],
    *,
    lam_min: float | None,
    lam_max: float | None,
    bottom_converged: bool,
    min_ritz: float | None,
    negative_count: float | None,
    index_exact: bool,
    loss_value: float,
    grad_norm: float,
    ggn_parts: list[dict[str, float | None]],
    norm: float,
    nonzero_count: int | None,
    index_bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    tol_abs = float(opts["negative_tol"]) * max(norm, 1e-300)
    notes: list[str] = []
    predictions: list[dict[str, Any]] = []
    applies = [THEORY_STATEMENTS["psd"], THEORY_STATEMENTS["split"]]
    # verdict: a Ritz value below -tol proves negative curvature (Rayleigh quotient)
    if min_ritz is not None and min_ritz < -tol_abs:
        verdict = "saddle"
    elif lam_min is not None and bottom_converged:
        verdict = "minimum"
    else:
        verdict = "inconclusive"
        notes.append("The bottom of the spectrum was not computed or did not converge: no "
                     "verdict on negative curvature.")
    predictions.append({
        "statement": "A minimum has no eigenvalue below -tol; a saddle has at least one.",
        "predicted": "lambda_min >= -tol at a minimum",
        "measured": {"lambda_min": _f(lam_min), "tol": _f(tol_abs)},
        "consistent": None,
    })
    if verdict == "saddle":
        notes.append(
            f"Negative curvature found: lambda_min <= {min_ritz:.6g} < -tol = {-tol_abs:.3g}. "
            + ("Morse index (exact count of eigenvalues below -tol): "
               f"{int(negative_count or 0)}." if index_exact else
               f"Morse index estimate (P * negative mass of the SLQ density): "
               f"{negative_count if negative_count is not None else 'n/a'}"
               + (f", quadrature bracket [{index_bounds[0]:.4g}, {index_bounds[1]:.4g}]."
                  if index_bounds is not None else "."))
        )
    crit_tol = 1e-4 * max(1.0, abs(loss_value))
    if grad_norm > crit_tol:
        notes.append(f"The gradient norm is {grad_norm:.3g}: this is not a critical point, so "
                     "the verdict describes the local curvature, not a critical point's type.")
    if ggn_parts:
        ggn_min = min(float(p["ggn"]) for p in ggn_parts if p["ggn"] is not None)
        predictions.append({
            "statement": THEORY_STATEMENTS["split"],
            "predicted": "v^T G v >= 0 for every vector v",
            "measured": {"min_ggn_rayleigh_quotient": _f(ggn_min)},
            "consistent": bool(ggn_min >= -tol_abs),
        })
    if problem.loss == "mse":
        applies.append(THEORY_STATEMENTS["zero_loss"])
        r = int(np.prod(problem.y.shape[1:])) if problem.y.ndim > 1 else 1
        rn = r * problem.num_samples
        at_zero = loss_value <= 1e-8
        measured: dict[str, Any] = {"loss": _f(loss_value), "rN": rn,
                                    "num_params": problem.num_params}
        if nonzero_count is not None:
            measured["eigenvalues_above_tol"] = nonzero_count
        if ggn_parts:
            measured["max_abs_residual_part"] = _f(max(abs(float(p["residual"] or 0.0))
                                                       for p in ggn_parts))
        consistent = None
        if at_zero and nonzero_count is not None:
            consistent = bool(nonzero_count <= rn)
        if not at_zero:
            notes.append("The loss is not zero: the zero-loss statement of sections 2-3 "
                         "(residual part 0, at most r*N nonzero eigenvalues) does not apply here.")
        predictions.append({
            "statement": THEORY_STATEMENTS["zero_loss"],
            "predicted": f"at zero loss: at most rN = {rn} nonzero eigenvalues, residual 0",
            "measured": measured,
            "consistent": consistent,
        })
    return {
        "applies": applies,
        "predictions": predictions,
        "measured": {
            "lambda_max": _f(lam_max),
            "lambda_min": _f(lam_min),
            "negative_tol": _f(tol_abs),
            "index_estimate": _f(negative_count),
            "index_bounds": None if index_bounds is None else [_f(index_bounds[0]),
                                                              _f(index_bounds[1])],
            "index_exact": index_exact,
            "grad_norm": _f(grad_norm),
            "loss": _f(loss_value),
        },
        "verdict": verdict,
        "notes": notes,
    }


def _eig_block(values: np.ndarray, residuals: np.ndarray, tol: float, norm: float
               ) -> dict[str, Any]:
    conv = [bool(r <= tol * max(norm, 1e-300)) for r in residuals]
    return {"eigenvalues": _fl(values), "residuals": _fl(residuals), "converged": conv}


def _density_json(nodes: list[np.ndarray], weights: list[np.ndarray], opts: dict[str, Any],
                  threshold: float, p: int, steps: int, products: int, exact: bool
                  ) -> dict[str, Any]:
    sigma = opts["density_sigma"]
    if sigma is None:
        every = np.concatenate([np.asarray(n, dtype=np.float64) for n in nodes])
        sigma = opts["density_sigma_scale"] * default_sigma(float(every.min()),
                                                            float(every.max()))
    dens = slq_density(nodes, weights, grid_points=int(opts["density_grid_points"]),
                       sigma=sigma)
    mom, mom_se = slq_moments(nodes, weights, 2)
    mass, mass_se = negative_mass(nodes, weights, threshold)
    lo, hi = negative_mass_bounds(nodes, weights, threshold) if not exact else (mass, mass)
    return {
        "grid": _fl(dens.grid),
        "values": _fl(dens.values),
        "sigma": _f(dens.sigma),
        "nodes": [_fl(n) for n in nodes],
        "weights": [_fl(w) for w in weights],
        "num_probes": len(nodes),
        "steps": steps,
        "num_products": products,
        "moments": _fl(mom),
        "moments_std_error": _fl(mom_se),
        "negative_mass": _f(mass),
        "negative_mass_std_error": _f(mass_se),
        "negative_count_estimate": _f(mass * p),
        "negative_mass_bounds": [_f(lo), _f(hi)],
        "negative_count_bounds": [_f(lo * p), _f(hi * p)],
        "exact": exact,
    }


# --------------------------------------------------------------------------- runner
def run_hessian_spectrum(problem: Problem, options: dict[str, Any], ctx: RunContext
                         ) -> RunOutput:
    """Extreme eigenvalues, trace, spectral density, negative mass and GGN split.

    Args:
        problem: model, parameters (their device and dtype are used), data and loss.
        options: the kind's options (missing keys take :data:`DEFAULT_OPTIONS`).
        ctx: monitor (progress, cancellation), executor (probe fan-out) and seed.

    Returns:
        :class:`RunOutput` with the JSON result (see ``docs/kinds/hessian_spectrum.md``)
        and the artifacts ``density.png`` and, when asked, ``eigenvectors.safetensors``.

    Raises:
        ValueError: on bad options.
        Cancelled: when the monitor says so, between products.
    """
    opts = OPTIONS.resolve(options)
    p = problem.num_params
    k_top = min(int(opts["top_k"]), p)
    k_bot = min(int(opts["bottom_k"]), p)
    mon = ctx.monitor
    warnings: list[str] = []
    mon.report("gradient", 0.0, "loss and gradient", force=True)
    with torch.no_grad():
        loss_value = float(problem.full_loss())
    grad_norm = float(torch.linalg.vector_norm(gradient(problem).to(torch.float64)))
    exact = opts["mode"] == "exact" or (opts["mode"] == "auto"
                                        and p <= int(opts["exact_threshold"]))
    groups = parameter_groups(problem.params) if opts["blocks"] else []
    if exact:
        return _run_exact(problem, opts, ctx, k_top, k_bot, loss_value, grad_norm, groups)
    return _run_iterative(problem, opts, ctx, k_top, k_bot, loss_value, grad_norm, groups,
                          warnings)


def _run_exact(problem: Problem, opts: dict[str, Any], ctx: RunContext, k_top: int, k_bot: int,
               loss_value: float, grad_norm: float, groups: list[ParamGroup]) -> RunOutput:
    mon = ctx.monitor
    p = problem.num_params
    hess = dense_hessian(problem, monitor=mon.sub(0.0, 0.6, "dense_hessian"))
    mon.check()
    mon.report("eigh", 0.6, f"eigendecomposition of a {p}x{p} matrix", force=True)
    evals_t, evecs = exact_spectrum(hess)
    h64 = hess.to(torch.float64)
    evals = evals_t.cpu().numpy()
    norm = float(np.max(np.abs(evals))) if evals.size else 0.0
    top_idx = np.arange(p - 1, p - 1 - k_top, -1)
    bot_idx = np.arange(0, k_bot)
    res_all = torch.linalg.vector_norm(h64 @ evecs - evecs * evals_t, dim=0).cpu().numpy()
    thr = float(opts["negative_tol"]) * max(norm, 1e-300)
    neg_count = int(np.sum(evals < -thr))
    nonzero = int(np.sum(np.abs(evals) > thr))
    ggn_top: list[dict[str, float | None]] = []
    ggn_bot: list[dict[str, float | None]] = []
    ggn_products = 0
    if opts["ggn_split"]:
        vt = evecs[:, top_idx.tolist()].to(problem.dtype)
        vb = evecs[:, bot_idx.tolist()].to(problem.dtype)
        ggn_top, n1 = _ggn_split(problem, vt, evals[top_idx], mon)
        ggn_bot, n2 = _ggn_split(problem, vb, evals[bot_idx], mon)
        ggn_products = n1 + n2
    mon.report("summaries", 0.8, "density and blocks", force=True)
    density = None
    if opts["density"]:
        density = _density_json([evals], [np.full(p, 1.0 / p)], opts, thr, p, 0, 0, True)
    trace_val = float(evals.sum())
    trace = None
    if opts["trace"]:
        trace = {"estimate": _f(trace_val), "std_error": 0.0, "ci95": [_f(trace_val)] * 2,
                 "method": "exact", "exact": _f(trace_val), "hutchpp": None, "hutchinson": None}
    blocks = None
    if groups:
        blocks = []
        for g in groups:
            sub = h64[g.start : g.stop, g.start : g.stop]
            ev = torch.linalg.eigvalsh(sub)
            blocks.append({"name": g.name, "params": list(g.params), "size": g.size,
                           "top_eigenvalue": _f(float(ev[-1])), "residual": 0.0,
                           "converged": True, "trace": _f(float(torch.trace(sub))),
                           "trace_std_error": 0.0})
    theory = _theory(problem, opts, lam_min=float(evals[0]), lam_max=float(evals[-1]),
                     bottom_converged=True, min_ritz=float(evals[0]),
                     negative_count=float(neg_count), index_exact=True,
                     loss_value=loss_value, grad_norm=grad_norm,
                     ggn_parts=ggn_top + ggn_bot, norm=norm, nonzero_count=nonzero)
    lam_min, lam_max = float(evals[0]), float(evals[-1])
    result = {
        "status": "converged",
        "exact": True,
        "num_params": p,
        "num_samples": problem.num_samples,
        "loss": problem.loss,
        "loss_value": _f(loss_value),
        "grad_norm": _f(grad_norm),
        "hvp_variant": None,
        "max_basis_used": None,
        "tol": _f(float(opts["tol"])),
        "tol_requested": _f(float(opts["tol"])),
        "norm_estimate": _f(norm),
        "sharpness": _f(lam_max),
        "lambda_min": _f(lam_min),
        "condition_number": _f(lam_max / lam_min) if lam_min > thr else None,
        "top": _eig_block(evals[top_idx], res_all[top_idx], float(opts["tol"]), norm),
        "bottom": _eig_block(evals[bot_idx], res_all[bot_idx], float(opts["tol"]), norm),
        "trace": trace,
        "density": density,
        "negative": {"count": neg_count, "count_estimate": float(neg_count),
                     "mass": _f(neg_count / p), "threshold": _f(thr), "exact": True},
        "ggn_split": {"top": ggn_top, "bottom": ggn_bot} if opts["ggn_split"] else None,
        "blocks": blocks,
        "products": {"total": ggn_products, "extremes": 0, "probes": 0, "ggn": ggn_products,
                     "blocks": 0},
        "ritz_bounds": None,
        "warnings": [],
        "theory": theory,
    }
    artifacts = _artifacts(density, result, opts, evecs[:, top_idx.tolist()],
                           evecs[:, bot_idx.tolist()])
    mon.report("done", 1.0, "done", force=True)
    return RunOutput(result=result, artifacts=artifacts)


def _run_iterative(problem: Problem, opts: dict[str, Any], ctx: RunContext, k_top: int,
                   k_bot: int, loss_value: float, grad_norm: float, groups: list[ParamGroup],
                   warnings: list[str]) -> RunOutput:
    mon = ctx.monitor
    p = problem.num_params
    variant = resolve_variant(problem, str(opts["hvp"]))
    op = HessianOperator(problem, variant)
    tol = float(opts["tol"])
    want_vectors = bool(opts["ggn_split"] or opts["return_eigenvectors"])
    eig: EigenResult | None = None
    itemsize = torch.empty((), dtype=op.dtype).element_size()
    block = int(opts["block_size"])
    need = k_top + k_bot + 2 * block
    max_basis = max(int(opts["max_basis"]), need)
    by_memory = BASIS_MEMORY_BYTES // max(1, p * itemsize)
    max_basis_used = min(max_basis, max(need + 8, int(by_memory)))
    if k_top + k_bot > 0:
        eig = lanczos_extremes(
            op, k_top=k_top, k_bottom=k_bot, tol=tol, max_products=int(opts["max_products"]),
            max_basis=max_basis_used, seed=ctx.seed, return_vectors=want_vectors,
            monitor=mon.sub(0.0, 0.5, "extremes"), stage="extremes", block_size=block,
        )
        if not eig.converged:
            worst = float(np.max(np.concatenate([eig.top_residuals, eig.bottom_residuals]))
                          / max(eig.norm_estimate, 1e-300))
            warnings.append(
                f"NOT CONVERGED: the extreme eigenvalues did not reach the residual tolerance "
                f"{eig.tol:g} (relative to ||H||) within max_products={opts['max_products']} "
                f"products; worst relative residual {worst:.2e}. The eigenvalues are Ritz "
                "values (inner bounds), not converged eigenvalues; raise max_products or tol."
            )
    norm = eig.norm_estimate if eig is not None else 0.0
    tol_requested = tol
    if eig is not None:
        tol = eig.tol
    # ---- deflation subspace: Ritz vectors of the extremes run already accurate
    defl_vecs: Tensor | None = None
    defl_vals: Tensor | None = None
    if eig is not None:
        rel = eig.ritz_residuals / max(norm, 1e-300)
        sel = np.nonzero(rel <= _DEFLATION_TOL)[0]
        cap = int(min(_DEFLATION_MAX, BASIS_MEMORY_BYTES // 4 // max(1, 8 * p)))
        if sel.size > cap:
            order = np.argsort(-np.abs(eig.ritz_values[sel]))
            sel = np.sort(sel[order[:cap]])
        if sel.size:
            s_sel = torch.as_tensor(eig.ritz_vectors_t[:, sel], dtype=op.dtype, device=op.device)
            defl_vecs = eig.run.basis[: eig.run.size].T @ s_sel
            defl_vals = torch.as_tensor(eig.ritz_values[sel], dtype=torch.float64,
                                        device=op.device)
    # ---- probes (density + trace), fanned out
    nodes: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    plain: list[float] = []
    deflated: list[float] = []
    block_samples: list[list[float]] = []
    probe_products = 0
    steps = int(opts["density_steps"]) if opts["density"] else 1
    first = eig.run.first_product if eig is not None else None
    if eig is not None and eig.num_restarts == 0 and first is not None:
        # the extremes run's start vector is a Rademacher probe: reuse it
        run = eig.run
        nodes.append(eig.ritz_values.copy())
        weights.append(eig.ritz_vectors_t[0, :] ** 2)
        q1 = run.basis[0].to(torch.float64)
        hq1 = first.to(torch.float64)
        plain.append(float(p * (q1 @ hq1)))
        block_samples.append([float(p * (q1[g.start:g.stop] @ hq1[g.start:g.stop]))
                              for g in groups])
    if opts["density"] or opts["trace"]:
        payloads = [
            {"seed": int(ctx.seed) + 1 + i, "steps": steps, "hvp": variant,
             "deflation": defl_vecs, "deflation_values": defl_vals,
             "groups": [[g.start, g.stop] for g in groups]}
            for i in range(int(opts["density_probes"]))
        ]
        outs = ctx.executor.map(probe_piece, problem, payloads, mon.sub(0.5, 0.85, "probes"))
        for o in outs:
            nodes.append(np.asarray(o["nodes"], dtype=np.float64))
            weights.append(np.asarray(o["weights"], dtype=np.float64))
            plain.append(float(o["plain"]))
            deflated.append(float(o["deflated"]))
            block_samples.append([float(x) for x in o["blocks"]])
            probe_products += int(o["products"])
    if eig is None and nodes:  # no extremes run: the probes' Ritz values bound ||H||
        norm = float(max(np.max(np.abs(n)) for n in nodes))
    thr = float(opts["negative_tol"]) * max(norm, 1e-300)
    # ---- Ritz bounds: every probe's nodes lie inside [lambda_min, lambda_max]
    ritz_bounds = None
    if nodes:
        max_node = float(max(np.max(n) for n in nodes))
        min_node = float(min(np.min(n) for n in nodes))
        ritz_bounds = {"max_node": _f(max_node), "min_node": _f(min_node)}
        slack = max(10 * tol * max(norm, 1e-300), 1e-12)
        if eig is not None and k_top and max_node > float(eig.top[0]) + slack:
            warnings.append(f"A probe's Ritz value {max_node:.6g} exceeds the reported top "
                            f"eigenvalue {float(eig.top[0]):.6g}: the top eigenvalue is wrong.")
        if eig is not None and k_bot and min_node < float(eig.bottom[0]) - slack:
            warnings.append(f"A probe's Ritz value {min_node:.6g} is below the reported bottom "
                            f"eigenvalue {float(eig.bottom[0]):.6g}: the bottom is wrong.")
    # ---- trace
    trace: dict[str, Any] | None = None
    if opts["trace"] and plain:
        hutch = summarize_samples(np.asarray(plain), 0.0, method="hutchinson",
                                  num_products=0)
        trace = {"hutchinson": hutch.to_json(), "hutchpp": None, "exact": None}
        best = hutch
        if deflated and defl_vals is not None:
            dpp = summarize_samples(np.asarray(deflated), float(defl_vals.sum()),
                                    method="deflated", num_products=0,
                                    deflation_rank=int(defl_vals.numel()))
            trace["hutchpp"] = dpp.to_json()
            if dpp.std_error <= hutch.std_error or not math.isfinite(hutch.std_error):
                best = dpp
        trace.update({"estimate": _f(best.estimate), "std_error": _f(best.std_error),
                      "ci95": [_f(best.ci95[0]), _f(best.ci95[1])], "method": best.method})
    density = None
    if opts["density"] and nodes:
        density = _density_json(nodes, weights, opts, thr, p, steps, probe_products, False)
    # ---- GGN split
    mon.report("ggn_split", 0.85, "Gauss-Newton / residual split", force=True)
    ggn_top: list[dict[str, float | None]] = []
    ggn_bot: list[dict[str, float | None]] = []
    ggn_products = 0
    if opts["ggn_split"] and eig is not None and eig.top_vectors is not None:
        mon.check()
        ggn_top, n1 = _ggn_split(problem, eig.top_vectors, eig.top, mon)
        mon.check()
        ggn_bot, n2 = _ggn_split(problem, eig.bottom_vectors
                                 if eig.bottom_vectors is not None else eig.top_vectors[:, :0],
                                 eig.bottom, mon)
        ggn_products = n1 + n2
    # ---- blocks
    blocks = None
    block_products = 0
    if groups:
        blocks = []
        arr = np.asarray(block_samples, dtype=np.float64) if block_samples else None
        for i, g in enumerate(groups):
            bop = BlockOperator(op, g.start, g.stop)
            r = lanczos_extremes(bop, k_top=1, k_bottom=0, tol=tol,
                                 max_products=int(opts["block_max_products"]),
                                 max_basis=min(int(opts["max_basis"]), g.size),
                                 seed=ctx.seed + 10_000 + i,
                                 monitor=mon.sub(0.9 + 0.1 * i / len(groups),
                                                 0.9 + 0.1 * (i + 1) / len(groups), "blocks"),
                                 stage="blocks")
            block_products += r.num_products
            if not r.converged:
                warnings.append(f"NOT CONVERGED: block {g.name!r} top eigenvalue "
                                f"(residual {float(r.top_residuals[0]):.2e}).")
            tr = tse = None
            if arr is not None and arr.shape[0]:
                est = summarize_samples(arr[:, i], 0.0, method="hutchinson", num_products=0)
                tr, tse = _f(est.estimate), _f(est.std_error)
            blocks.append({"name": g.name, "params": list(g.params), "size": g.size,
                           "top_eigenvalue": _f(r.top[0]), "residual": _f(r.top_residuals[0]),
                           "converged": r.converged, "trace": tr, "trace_std_error": tse})
    # ---- negative curvature and theory
    min_ritz = None
    if eig is not None and eig.ritz_values.size:
        min_ritz = float(eig.ritz_values[0])
    if nodes:
        m = float(min(np.min(n) for n in nodes))
        min_ritz = m if min_ritz is None else min(min_ritz, m)
    neg_est = density["negative_count_estimate"] if density else None
    conv_neg = 0
    if eig is not None and k_bot:
        conv_neg = int(np.sum((eig.bottom < -thr)
                              & (eig.bottom_residuals <= tol * max(norm, 1e-300))))
    if neg_est is not None:
        neg_est = max(float(neg_est), float(conv_neg))
    lam_min = float(eig.bottom[0]) if eig is not None and k_bot else None
    lam_max = float(eig.top[0]) if eig is not None and k_top else None
    theory = _theory(problem, opts, lam_min=lam_min, lam_max=lam_max,
                     bottom_converged=bool(eig is not None and k_bot and eig.converged),
                     min_ritz=min_ritz, negative_count=neg_est, index_exact=False,
                     loss_value=loss_value, grad_norm=grad_norm, ggn_parts=ggn_top + ggn_bot,
                     norm=norm, nonzero_count=None,
                     index_bounds=(None if density is None else
                                   (float(density["negative_count_bounds"][0] or 0.0),
                                    float(density["negative_count_bounds"][1] or 0.0))))
    status = "converged" if (eig is None or eig.converged) else "not_converged"
    if any(w.startswith("A probe's Ritz value") for w in warnings):
        status = "not_converged"
    top_json = _eig_block(eig.top, eig.top_residuals, tol, norm) if eig is not None else (
        _eig_block(np.zeros(0), np.zeros(0), tol, norm))
    bot_json = _eig_block(eig.bottom, eig.bottom_residuals, tol, norm) if eig is not None else (
        _eig_block(np.zeros(0), np.zeros(0), tol, norm))
    extremes_products = eig.num_products if eig is not None else 0
    result = {
        "status": status,
        "exact": False,
        "num_params": p,
        "num_samples": problem.num_samples,
        "loss": problem.loss,
        "loss_value": _f(loss_value),
        "grad_norm": _f(grad_norm),
        "hvp_variant": variant,
        "max_basis_used": max_basis_used,
        "tol": _f(tol),
        "tol_requested": _f(tol_requested),
        "norm_estimate": _f(norm),
        "sharpness": _f(lam_max),
        "lambda_min": _f(lam_min),
        "condition_number": (_f(lam_max / lam_min) if lam_min is not None and lam_max
                             is not None and lam_min > thr else None),
        "top": top_json,
        "bottom": bot_json,
        "trace": trace,
        "density": density,
        "negative": {"count": None, "count_estimate": _f(neg_est),
                     "mass": density["negative_mass"] if density else None,
                     "threshold": _f(thr), "exact": False,
                     "converged_negative_ritz_values": conv_neg},
        "ggn_split": {"top": ggn_top, "bottom": ggn_bot} if opts["ggn_split"] else None,
        "blocks": blocks,
        "products": {"total": extremes_products + probe_products + ggn_products
                     + block_products, "extremes": extremes_products, "probes": probe_products,
                     "ggn": ggn_products, "blocks": block_products},
        "ritz_bounds": ritz_bounds,
        "warnings": warnings,
        "theory": theory,
    }
    artifacts = _artifacts(density, result, opts,
                           eig.top_vectors if eig is not None else None,
                           eig.bottom_vectors if eig is not None else None)
    mon.report("done", 1.0, "done", force=True)
    return RunOutput(result=result, artifacts=artifacts)


def _artifacts(density: dict[str, Any] | None, result: dict[str, Any], opts: dict[str, Any],
               top_vectors: Tensor | None, bottom_vectors: Tensor | None) -> list[Artifact]:
    arts: list[Artifact] = []
    if density is not None:
        grid = np.asarray([x if x is not None else np.nan for x in density["grid"]])
        vals = np.asarray([x if x is not None else 0.0 for x in density["values"]])
        title = ("Hessian spectrum (exact)" if result["exact"] else
                 f"Hessian spectral density (SLQ, {density['num_probes']} probes)")
        top = [x for x in result["top"]["eigenvalues"] if x is not None]
        bottom = [x for x in result["bottom"]["eigenvalues"] if x is not None]
        label = "exact eigenvalues, Gaussian-broadened" if result["exact"] else "SLQ density"
        png = density_png(grid, vals, top=top, bottom=bottom, title=title, label=label)
        arts.append(Artifact("density.png", "image/png", png))
    if opts["return_eigenvectors"]:
        from safetensors.torch import save

        tensors: dict[str, Tensor] = {}
        if top_vectors is not None:
            tensors["top"] = top_vectors.T.contiguous().cpu()
            tensors["top_eigenvalues"] = torch.tensor(
                [x or 0.0 for x in result["top"]["eigenvalues"]], dtype=torch.float64)
        if bottom_vectors is not None:
            tensors["bottom"] = bottom_vectors.T.contiguous().cpu()
            tensors["bottom_eigenvalues"] = torch.tensor(
                [x or 0.0 for x in result["bottom"]["eigenvalues"]], dtype=torch.float64)
        arts.append(Artifact("eigenvectors.safetensors", "application/octet-stream",
                             save(tensors, metadata={"layout": "rows are unit eigenvectors "
                                                     "in flatten(params) order"})))
    return arts
