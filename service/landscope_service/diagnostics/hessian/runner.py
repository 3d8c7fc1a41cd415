"""Runner of the ``hessian_spectrum`` job kind: one product budget, several outputs.

The mode: ``exact`` or ``iterative`` as asked; ``auto`` runs the one the cost model
(:mod:`..cost`) finds cheaper -- exact only when ``P <= exact_threshold`` and the dense
build plus ``eigh`` is estimated faster than the iterative run.

Iterative mode:

1. One thick-restart Lanczos run (:func:`.lanczos.lanczos_extremes`) from a Rademacher
   start vector finds the top-k and bottom-k eigenpairs. Because its start vector is a
   Rademacher probe, the run is also the first SLQ probe (nodes, weights) and the first
   Hutchinson sample of the trace.
2. ``density_probes`` independent probes run as pieces through ``ctx.executor`` (fanned
   out over workers by the service): each is ``density_steps`` Lanczos steps giving SLQ
   nodes and weights, and its first product ``H g`` gives a plain Hutchinson sample, a
   sample deflated by the Ritz vectors of step 1 (:func:`.trace.deflated_sample`) and one
   sample of every layer block's trace -- all without further products
   (:func:`.stages.probe_piece`).
3. Optional: the Gauss-Newton / residual split of the extreme Ritz vectors (one GGN product
   each, :func:`.stages.ggn_split`) and per-layer block top eigenvalues.

Exact mode: the dense Hessian from ``P`` blocked products (:func:`.exact.dense_hessian`,
progress and cancellation per block) and ``eigh``.

The ``theory`` block is built in :mod:`.theory`, the JSON blocks and artifacts in
:mod:`.assemble`; ``status`` is ``not_converged`` when the extremes did not converge or a
probe's Ritz value fell outside them (flags, never warning text).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..context import RunContext
from ..cost import choose_hessian_mode
from ..options.hessian_spectrum import OPTIONS
from ..output import RunOutput
from ..output import json_float as _f
from ..problem import Problem
from .assemble import artifacts, density_json, eig_block
from .blocks import ParamGroup, parameter_groups
from .exact import dense_hessian, exact_spectrum
from .hvp import gradient, resolve_variant
from .lanczos import EigenResult, lanczos_extremes
from .operators import BlockOperator, HessianOperator
from .stages import ggn_split, probe_piece
from .theory import THEORY_STATEMENTS, hessian_theory
from .trace import summarize_samples

__all__ = ["DEFAULT_OPTIONS", "THEORY_STATEMENTS", "probe_piece", "run_hessian_spectrum"]


DEFAULT_OPTIONS: dict[str, Any] = OPTIONS.defaults()
"""Defaults, derived from the kind's option table ``diagnostics/options/hessian_spectrum.py``."""

_DEFLATION_TOL = 1e-3
_DEFLATION_MAX = 64
BASIS_MEMORY_BYTES = 2 << 30
"""Memory budget of the Lanczos basis (``max_basis * P`` numbers) and, in float64, of the
deflation vectors shipped to the probes: large models get a smaller basis (more restarts,
never an out-of-memory error); ``max_basis_used`` in the result says what was used."""


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
    # "auto": the mode the cost model finds cheaper (the service passes the mode its
    # submit-time estimate chose, with the pool's measured rates)
    exact = choose_hessian_mode(p, problem.num_samples, opts) == "exact"
    groups = parameter_groups(problem.params) if opts["blocks"] else []
    if exact:
        return _run_exact(problem, opts, ctx, k_top, k_bot, loss_value, grad_norm, groups)
    return _run_iterative(problem, opts, ctx, k_top, k_bot, loss_value, grad_norm, groups,
                          warnings)



def _run_exact(problem: Problem, opts: dict[str, Any], ctx: RunContext, k_top: int, k_bot: int,
               loss_value: float, grad_norm: float, groups: list[ParamGroup]) -> RunOutput:
    mon = ctx.monitor
    p = problem.num_params
    hess = dense_hessian(problem, variant=str(opts["hvp"]),
                         monitor=mon.sub(0.0, 0.6, "dense_hessian"))
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
        ggn_top, n1 = ggn_split(problem, vt, evals[top_idx], mon)
        ggn_bot, n2 = ggn_split(problem, vb, evals[bot_idx], mon)
        ggn_products = n1 + n2
    mon.report("summaries", 0.8, "density and blocks", force=True)
    density = None
    if opts["density"]:
        density = density_json([evals], [np.full(p, 1.0 / p)], opts, thr, p, 0, 0, True)
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
    theory = hessian_theory(problem, opts, lam_min=float(evals[0]), lam_max=float(evals[-1]),
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
        "top": eig_block(evals[top_idx], res_all[top_idx], float(opts["tol"]), norm),
        "bottom": eig_block(evals[bot_idx], res_all[bot_idx], float(opts["tol"]), norm),
        "trace": trace,
        "density": density,
        "negative": {"count": neg_count, "count_estimate": float(neg_count),
                     "mass": _f(neg_count / p), "threshold": _f(thr), "exact": True},
        "ggn_split": {"top": ggn_top, "bottom": ggn_bot} if opts["ggn_split"] else None,
        "blocks": blocks,
        "products": {"total": p + ggn_products, "dense": p, "extremes": 0, "probes": 0,
                     "ggn": ggn_products, "blocks": 0},
        "ritz_bounds": None,
        "warnings": [],
        "theory": theory,
    }
    files = artifacts(density, result, opts, evecs[:, top_idx.tolist()],
                      evecs[:, bot_idx.tolist()], dtype=str(problem.dtype))
    mon.report("done", 1.0, "done", force=True)
    return RunOutput(result=result, artifacts=files)



def _run_iterative(problem: Problem, opts: dict[str, Any], ctx: RunContext, k_top: int,
                   k_bot: int, loss_value: float, grad_norm: float, groups: list[ParamGroup],
                   warnings: list[str]) -> RunOutput:
    mon = ctx.monitor
    p = problem.num_params
    # imported here: dataparallel imports this package's operators
    from ..dataparallel import ShardedHessianOperator, resolve_shards

    variant = resolve_variant(problem, str(opts["hvp"]))
    shards = resolve_shards(int(opts["parallel"]["shards"]), ctx.executor, problem)
    op: HessianOperator | ShardedHessianOperator = (
        HessianOperator(problem, variant) if shards <= 1 else
        ShardedHessianOperator(problem, ctx.executor, shards, variant, monitor=mon))
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
    ritz_bound_violated = False  # a probe's Ritz value outside the reported extremes
    if nodes:
        max_node = float(max(np.max(n) for n in nodes))
        min_node = float(min(np.min(n) for n in nodes))
        ritz_bounds = {"max_node": _f(max_node), "min_node": _f(min_node)}
        slack = max(10 * tol * max(norm, 1e-300), 1e-12)
        if eig is not None and k_top and max_node > float(eig.top[0]) + slack:
            ritz_bound_violated = True
            warnings.append(f"A probe's Ritz value {max_node:.6g} exceeds the reported top "
                            f"eigenvalue {float(eig.top[0]):.6g}: the top eigenvalue is wrong.")
        if eig is not None and k_bot and min_node < float(eig.bottom[0]) - slack:
            ritz_bound_violated = True
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
        density = density_json(nodes, weights, opts, thr, p, steps, probe_products, False)
    # ---- GGN split
    mon.report("ggn_split", 0.85, "Gauss-Newton / residual split", force=True)
    ggn_top: list[dict[str, float | None]] = []
    ggn_bot: list[dict[str, float | None]] = []
    ggn_products = 0
    if opts["ggn_split"] and eig is not None and eig.top_vectors is not None:
        mon.check()
        ggn_top, n1 = ggn_split(problem, eig.top_vectors, eig.top, mon)
        mon.check()
        ggn_bot, n2 = ggn_split(problem, eig.bottom_vectors
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
    theory = hessian_theory(problem, opts, lam_min=lam_min, lam_max=lam_max,
                     bottom_converged=bool(eig is not None and k_bot and eig.converged),
                     min_ritz=min_ritz, negative_count=neg_est, index_exact=False,
                     loss_value=loss_value, grad_norm=grad_norm, ggn_parts=ggn_top + ggn_bot,
                     norm=norm, nonzero_count=None,
                     index_bounds=(None if density is None else
                                   (float(density["negative_count_bounds"][0] or 0.0),
                                    float(density["negative_count_bounds"][1] or 0.0))))
    converged = (eig is None or eig.converged) and not ritz_bound_violated
    status = "converged" if converged else "not_converged"
    top_json = eig_block(eig.top, eig.top_residuals, tol, norm) if eig is not None else (
        eig_block(np.zeros(0), np.zeros(0), tol, norm))
    bot_json = eig_block(eig.bottom, eig.bottom_residuals, tol, norm) if eig is not None else (
        eig_block(np.zeros(0), np.zeros(0), tol, norm))
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
        "parallel": ({"shards": [{"samples": list(b), "ran_on": w} for b, w in
                                 zip(op.bounds, op.ran_on, strict=False)]}
                     if isinstance(op, ShardedHessianOperator) else None),
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
                     + block_products, "dense": 0, "extremes": extremes_products,
                     "probes": probe_products, "ggn": ggn_products, "blocks": block_products},
        "ritz_bounds": ritz_bounds,
        "warnings": warnings,
        "theory": theory,
    }
    files = artifacts(density, result, opts,
                      eig.top_vectors if eig is not None else None,
                      eig.bottom_vectors if eig is not None else None,
                      dtype=str(problem.dtype))
    mon.report("done", 1.0, "done", force=True)
    return RunOutput(result=result, artifacts=files)

