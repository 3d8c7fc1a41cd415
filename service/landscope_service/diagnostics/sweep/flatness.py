"""Flatness claims of ``sweep``: ``batch_size`` (Keskar et al. 2017) and ``weight_decay``.

Measures at the end of a run (``theta``), all of the data loss's Hessian ``H``:

- ``lambda_max``: Lanczos top-1, with its convergence flag;
- ``epsilon_sharpness``: Keskar et al. (2017), ``100 (max_{z in C} L(theta + z) - L) / (1 +
  L)`` over the box ``C = {|z_i| <= eps (|theta_i| + 1)}``. The maximum is searched by
  scipy's L-BFGS-B from a seeded random point of the box (at most ``3 iters + 1`` loss
  and gradient evaluations), so the number is a *lower bound* of the box maximum (the
  best point found), as in the paper;
- ``fn_curvature``: the mean of ``d^T H d`` over filter-normalised random directions ``d``
  (Li et al. 2018, as ``landscape_slice`` draws them), exact Hessian-vector products;
- ``trace``: ``tr(H)``, exact from ``P`` unit vectors when ``P <= trace_probes``, else
  Hutchinson with ``trace_probes`` Rademacher probes (``trace_method`` says which).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from scipy.stats import spearmanr

from ..connectivity.minima import init_params as init_like
from ..context import RunContext
from ..hessian.operators import HessianOperator
from ..hessian.trace import exact_trace, hutchinson
from ..monitor import Monitor
from ..output import json_float, json_floats
from ..problem import Problem
from ..slice.directions import random_filter_normalized
from .train import gradient_descent, loss_and_grad, problem_at, sgd, top_eigenvalue
from .verdict import effect_summary, verdict

__all__ = ["batch_size_claim", "batch_size_piece", "epsilon_sharpness", "fn_curvature",
           "hessian_trace", "weight_decay_claim", "weight_decay_piece"]

PINNED_BAND = 0.05
"""batch_size: a run whose final lambda_max is at least (1 - 5%) * 2/eta is pinned at the
stability limit of its step size (a confound, THEORY.md section 4)."""


def epsilon_sharpness(prob: Problem, theta: torch.Tensor, *, eps: float, iters: int,
                      seed: int = 0, monitor: Monitor | None = None) -> float:
    """Keskar et al.'s epsilon-sharpness at ``theta`` (module doc): a lower bound of the box
    maximum, never negative (``theta`` itself is in the box)."""
    mon = monitor or Monitor()
    t = theta.detach().to(torch.float64).cpu().numpy()
    half = eps * (np.abs(t) + 1.0)
    loss0, _ = loss_and_grad(prob, theta)
    best = [loss0]

    def neg(z: np.ndarray) -> tuple[float, np.ndarray]:
        mon.check()
        step = torch.from_numpy(np.ascontiguousarray(z)).to(theta.dtype).to(theta.device)
        loss, g = loss_and_grad(prob, theta + step)
        if math.isfinite(loss):
            best[0] = max(best[0], loss)
        return -loss, -g.to(torch.float64).cpu().numpy()

    rng = np.random.default_rng(seed)
    z0 = rng.uniform(-half, half)
    # maxfun bounds the work: a line search may evaluate several points per iteration
    minimize(neg, z0, jac=True, method="L-BFGS-B", bounds=Bounds(-half, half),
             options={"maxiter": int(iters), "maxfun": 3 * int(iters) + 1})
    return 100.0 * (best[0] - loss0) / (1.0 + loss0)


def fn_curvature(prob: Problem, theta: torch.Tensor, *, directions: int,
                 seed: int = 0, monitor: Monitor | None = None) -> list[float]:
    """``d^T H d`` for ``directions`` filter-normalised random ``d`` (seeds ``seed``, ...)."""
    mon = monitor or Monitor()
    at = problem_at(prob, theta)
    op = HessianOperator(at)
    out = []
    for k in range(directions):
        mon.check()
        d = random_filter_normalized(at, 1, seed=seed + k).vectors[0]
        out.append(float(d @ (op @ d)))
        mon.report("curvature", (k + 1) / directions, f"direction {k + 1}/{directions}")
    return out


def hessian_trace(prob: Problem, theta: torch.Tensor, *, probes: int, seed: int = 0,
                  monitor: Monitor | None = None) -> tuple[float, str]:
    """``tr(H)`` at ``theta``: exact when ``P <= probes``, else Hutchinson (module doc)."""
    op = HessianOperator(problem_at(prob, theta))
    if prob.num_params <= probes:
        return exact_trace(op, monitor=monitor).estimate, "exact"
    return hutchinson(op, probes, seed=seed, monitor=monitor).estimate, "hutchinson"


def _flatness(prob: Problem, theta: torch.Tensor, payload: dict[str, Any], seed: int,
              monitor: Monitor) -> dict[str, Any]:
    """lambda_max, epsilon-sharpness, filter-normalised curvature and (if asked) the trace."""
    lam, _, ok = top_eigenvalue(prob, theta, tol=float(payload["lanczos_tol"]),
                                max_products=int(payload["lanczos_max_products"]), seed=seed,
                                monitor=monitor.sub(0.0, 0.4))
    eps = epsilon_sharpness(prob, theta, eps=float(payload["epsilon"]),
                            iters=int(payload["sharpness_iters"]), seed=seed,
                            monitor=monitor.sub(0.4, 0.6))
    curv = fn_curvature(prob, theta, directions=int(payload["slices"]), seed=seed,
                        monitor=monitor.sub(0.6, 0.8))
    out = {"lambda_max": lam, "eig_converged": ok, "epsilon_sharpness": eps,
           "fn_curvature": float(np.mean(curv)), "fn_curvatures": curv}
    if payload.get("trace_probes"):
        tr, method = hessian_trace(prob, theta, probes=int(payload["trace_probes"]),
                                   seed=seed, monitor=monitor.sub(0.8, 1.0))
        out.update(trace=tr, trace_method=method)
    return out


def _seeded(problem: Problem, seed: int) -> Problem:
    return dataclasses.replace(problem, params=init_like(problem, seed))


def batch_size_piece(problem: Problem, payload: dict[str, Any],
                     monitor: Monitor) -> dict[str, Any]:
    """SGD at ``(batch_size, lr)`` from seed ``seed`` to the matched loss; flatness measures
    at the end."""
    seed, lr, b = int(payload["seed"]), float(payload["lr"]), int(payload["batch_size"])
    prob = _seeded(problem, seed)
    loss0 = float(prob.full_loss().detach())
    target = (float(payload["target_loss"]) if payload.get("target_loss") is not None
              else float(payload["target_fraction"]) * loss0)
    run = sgd(prob, lr=lr, batch_size=b, max_steps=int(payload["steps"]), target_loss=target,
              divergence_factor=float(payload["divergence_factor"]), seed=seed,
              monitor=monitor.sub(0.0, 0.7))
    meas = _flatness(prob, run.theta, payload, seed, monitor.sub(0.7, 1.0))
    return {"seed": seed, "lr": lr, "batch_size": min(b, prob.num_samples),
            "target_loss": target, "matched": run.matched, "diverged": run.diverged,
            "steps_done": run.steps_done, "losses": run.losses, **meas}


def weight_decay_piece(problem: Problem, payload: dict[str, Any],
                       monitor: Monitor) -> dict[str, Any]:
    """Full-batch GD with L2 weight decay ``wd`` from seed ``seed``; flatness measures of the
    data loss at the end."""
    seed, wd = int(payload["seed"]), float(payload["weight_decay"])
    prob = _seeded(problem, seed)
    run = gradient_descent(prob, lr=float(payload["lr"]), steps=int(payload["steps"]),
                           weight_decay=wd,
                           divergence_factor=float(payload["divergence_factor"]),
                           monitor=monitor.sub(0.0, 0.7))
    meas = _flatness(prob, run.theta, payload, seed, monitor.sub(0.7, 1.0))
    return {"seed": seed, "weight_decay": wd, "diverged": run.diverged,
            "steps_done": run.steps_done, "initial_loss": run.losses[0] if run.losses else None,
            "final_loss": run.losses[-1] if run.losses else None,
            "weight_norm": float(run.theta.norm()), **meas}


# ------------------------------------------------------------------------ verdicts
def _run_json(r: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The JSON of one run: ``keys`` copied (floats sanitised), the measures always."""
    out: dict[str, Any] = {}
    for k in (*keys, "seed", "diverged", "steps_done", "lambda_max", "eig_converged",
                     "epsilon_sharpness", "fn_curvature"):
        v = r.get(k)
        out[k] = json_float(v) if isinstance(v, float) else v
    out["fn_curvatures"] = json_floats(r["fn_curvatures"])
    return out


def _compare(lo: list[dict[str, Any]], hi: list[dict[str, Any]], margin: float
             ) -> tuple[int, int, list[float]]:
    """Per seed: held when ``hi``'s lambda_max is below ``lo``'s by more than ``margin``
    (relative); against otherwise (ties count against). Diverged or unmeasured pairs are
    skipped. Returns held, against and the ratios ``lo / hi``."""
    held = against = 0
    ratios: list[float] = []
    for a, b in zip(lo, hi, strict=True):
        la, lb = a["lambda_max"], b["lambda_max"]
        if a["diverged"] or b["diverged"] or la is None or lb is None:
            continue
        if lb < la - margin * max(abs(la), abs(lb)):
            held += 1
        else:
            against += 1
        if lb > 0:
            ratios.append(la / lb)
    return held, against, ratios


def _spearman(xs: list[float], ys: list[float | None]) -> float | None:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    if len(pts) < 3 or len({x for x, _ in pts}) < 2 or len({y for _, y in pts}) < 2:
        return None
    return json_float(float(spearmanr([x for x, _ in pts], [y for _, y in pts]).statistic))


def _common_confounds(variants: list[dict[str, Any]], deciding: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """``diverged`` (blocking) and ``unconverged_eigenvalues`` (blocking when a deciding run
    is unconverged)."""
    out: list[dict[str, Any]] = []
    diverged = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                if r["diverged"]]
    if diverged:
        out.append({"name": "diverged", "blocking": True,
                    "detail": "diverged: " + ", ".join(diverged) + "; lower the learning "
                    "rate."})
    unconv = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
              if not r["diverged"] and not r["eig_converged"]]
    if unconv:
        out.append({"name": "unconverged_eigenvalues",
                    "blocking": any(not r["diverged"] and not r["eig_converged"]
                                    for r in deciding),
                    "detail": "lambda_max not converged: " + ", ".join(unconv)
                    + "; raise train.lanczos_max_products."})
    return out


def _measure_payload(opts: dict[str, Any], trace: bool) -> dict[str, Any]:
    tr = opts["train"]
    return {"lanczos_tol": tr["lanczos_tol"], "lanczos_max_products": tr["lanczos_max_products"],
            "divergence_factor": tr["divergence_factor"], "epsilon": opts["epsilon"],
            "sharpness_iters": opts["sharpness_iters"], "slices": opts["slices"],
            "trace_probes": opts["trace_probes"] if trace else 0}


def batch_size_claim(problem: Problem, opts: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Keskar et al.: at a matched loss, larger lr/B ends flatter (module doc)."""
    n = int(opts["seeds"])
    tr = opts["train"]
    nsamp = problem.num_samples
    combos = sorted({(min(int(b), nsamp), float(lr)) for b in opts["batch_sizes"]
                     for lr in opts["learning_rates"]}, key=lambda c: (c[1] / c[0], c))
    base = {**_measure_payload(opts, trace=False), "steps": tr["steps"],
            "target_loss": opts["target_loss"], "target_fraction": opts["target_fraction"]}
    payloads = [{**base, "batch_size": b, "lr": lr, "seed": ctx.seed + s}
                for b, lr in combos for s in range(n)]
    results = ctx.executor.map(batch_size_piece, problem, payloads, ctx.monitor.sub(0.0, 0.98))
    variants: list[dict[str, Any]] = []
    for j, (b, lr) in enumerate(combos):
        runs = []
        for r in results[j * n:(j + 1) * n]:
            row = _run_json(r, ("target_loss", "matched"))
            losses = list(r["losses"])
            row.update(initial_loss=json_float(losses[0]) if losses else None,
                       final_loss=json_float(losses[-1]) if losses else None,
                       losses=json_floats(losses), lr=lr, threshold=2.0 / lr,
                       pinned=(r["lambda_max"] is not None and not r["diverged"]
                               and r["lambda_max"] >= (1 - PINNED_BAND) * 2.0 / lr))
            runs.append(row)
        variants.append({"name": f"B={b} lr={lr:g}",
                         "rule": f"the base network, minibatch SGD with batch size {b} at "
                         f"eta={lr:g} (lr/B = {lr / b:.4g}) until the full-data loss reaches "
                         "the matched target", "params": {"batch_size": b, "lr": lr,
                                                          "lr_over_b": lr / b},
                         "runs": runs})
    if len(variants) < 2:
        raise ValueError("batch_size needs at least two distinct (batch size, learning rate) "
                         f"combinations; batch sizes above N = {nsamp} become N.")
    small, large = variants[0], variants[-1]  # smallest and largest lr/B
    margin = 2 * float(tr["lanczos_tol"])
    held, against, ratios = _compare(small["runs"], large["runs"], margin)
    confounds = _common_confounds(variants, small["runs"] + large["runs"])
    unmatched = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                 if not r["diverged"] and not r["matched"]]
    if unmatched:
        confounds.append({"name": "unmatched_loss", "blocking": True,
                          "detail": "stopped at the step cap above the target loss: "
                          + ", ".join(unmatched) + "; raise train.steps or the target."})
    pinned = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
              if r["pinned"]]
    if pinned:
        confounds.append({"name": "pinned_at_2_over_eta", "blocking": True,
                          "detail": "lambda_max within 5% of (or above) 2/eta: "
                          + ", ".join(pinned) + "; the step size, not the batch noise, "
                          "sets this sharpness (lower the learning rate)."})
    blocking = any(c["blocking"] for c in confounds)
    v = verdict(held, against, n, blocking_confounds=blocking)
    xs = [float(var["params"]["lr_over_b"]) for var in variants for _ in var["runs"]]
    rho = {m: _spearman(xs, [r[m] for var in variants for r in var["runs"]])
           for m in ("lambda_max", "epsilon_sharpness", "fn_curvature")}
    return {
        "held": held, "seeds": n, "verdict": v,
        "detail": (f"lambda_max lower at {large['name']} (largest lr/B) than at "
                   f"{small['name']} (smallest) on {held}/{n} seeds; Spearman with lr/B: "
                   + ", ".join(f"{m} {'undefined' if r is None else f'{r:.3g}'}"
                               for m, r in rho.items())),
        "effect": effect_summary(f"lambda_max at {small['name']} / at {large['name']}, median "
                                 "over seeds (above 1: larger lr/B is flatter)", ratios,
                                 seed=ctx.seed),
        "spearman": rho["lambda_max"], "spearman_measures": rho,
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["batch_size"],
                   "predicted": "at a matched loss, lambda_max, epsilon-sharpness and the "
                                "filter-normalised curvature fall as lr/B grows",
                   "measured": {var["name"]: [r["lambda_max"] for r in var["runs"]]
                                for var in variants},
                   "notes": "epsilon-sharpness is a lower bound of the box maximum (L-BFGS-B "
                            "from one random start); lambda_max differences within "
                            "2 x lanczos_tol (relative) count as ties, against the claim."},
    }


def weight_decay_claim(problem: Problem, opts: dict[str, Any], ctx: RunContext
                       ) -> dict[str, Any]:
    """The notes: weight decay broadens the minimum (lower lambda_max and trace)."""
    n = int(opts["seeds"])
    tr = opts["train"]
    decays = sorted({float(w) for w in opts["weight_decays"]})
    if len(decays) < 2:
        raise ValueError("weight_decay needs at least two distinct weight_decays.")
    base = {**_measure_payload(opts, trace=True), "steps": tr["steps"], "lr": tr["lr"]}
    payloads = [{**base, "weight_decay": w, "seed": ctx.seed + s}
                for w in decays for s in range(n)]
    results = ctx.executor.map(weight_decay_piece, problem, payloads,
                               ctx.monitor.sub(0.0, 0.98))
    variants: list[dict[str, Any]] = []
    for j, w in enumerate(decays):
        runs = [_run_json(r, ("initial_loss", "final_loss", "weight_norm", "trace",
                              "trace_method")) for r in results[j * n:(j + 1) * n]]
        variants.append({"name": f"wd={w:g}",
                         "rule": f"the base network, full-batch GD at eta={float(tr['lr']):g} "
                         f"on L + ({w:g}/2) |theta|^2 (step theta <- theta - eta (g + {w:g} "
                         "theta)); measures are of the data loss L", "params":
                         {"weight_decay": w, "lr": float(tr["lr"])}, "runs": runs})
    none, most = variants[0], variants[-1]
    held, against, ratios = _compare(none["runs"], most["runs"], 2 * float(tr["lanczos_tol"]))
    confounds = _common_confounds(variants, none["runs"] + most["runs"])
    meds = [float(np.median(fl)) for fl in
            ([r["final_loss"] for r in var["runs"] if r["final_loss"] is not None]
             for var in variants) if fl]
    if len(meds) >= 2 and max(meds) > 10 * max(min(meds), 1e-12):
        confounds.append({"name": "unmatched_loss", "blocking": False,
                          "detail": f"median final data losses per decay {json_floats(meds)} "
                          "differ by more than 10x: the decays end at unlike points."})
    blocking = any(c["blocking"] for c in confounds)
    v = verdict(held, against, n, blocking_confounds=blocking)
    xs = [w for w in decays for _ in range(n)]
    rho = {m: _spearman(xs, [r[m] for var in variants for r in var["runs"]])
           for m in ("lambda_max", "trace", "epsilon_sharpness", "fn_curvature")}
    return {
        "held": held, "seeds": n, "verdict": v,
        "detail": (f"lambda_max lower at {most['name']} than at {none['name']} on {held}/{n} "
                   "seeds; Spearman with the decay: "
                   + ", ".join(f"{m} {'undefined' if r is None else f'{r:.3g}'}"
                               for m, r in rho.items())),
        "effect": effect_summary(f"lambda_max at {none['name']} / at {most['name']}, median "
                                 "over seeds (above 1: decay flattens)", ratios, seed=ctx.seed),
        "spearman": rho["lambda_max"], "spearman_measures": rho,
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["weight_decay"],
                   "predicted": "lambda_max and tr(H) of the data loss fall as the decay grows",
                   "measured": {var["name"]: [r["lambda_max"] for r in var["runs"]]
                                for var in variants},
                   "notes": "the Hessian of the trained objective is H + wd I; raw lambda_max "
                            "is not invariant to rescaling, so a decay that shrinks the "
                            "weights of a ReLU network can raise it (compare fn_curvature)."},
    }
