"""Runner of ``sweep``: one claim of THEORY.md section 4 tested over variants and seeds.

Every (variant, seed) run is a piece fanned out through ``ctx.executor``; progress counts
the pieces (the executor reports it, monotone). The verdict rules are in
``docs/kinds/sweep.md`` and in each claim's ``verdict_rule`` in the result.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from ..connectivity.align import align_flat
from ..connectivity.minima import init_params as init_like
from ..connectivity.objective import problem_objective
from ..connectivity.profile import LinearConfig, LineCurve, certify_profiles
from ..context import RunContext
from ..hessian.lanczos import lanczos_extremes
from ..hessian.operators import HessianOperator
from ..monitor import Monitor
from ..options.sweep import OPTIONS
from ..output import RunOutput, json_float, json_floats
from ..problem import Problem, unflatten
from ..slice.directions import random_filter_normalized
from .flatness import batch_size_claim, weight_decay_claim
from .train import gradient_descent, loss_and_grad, problem_at
from .variants import (
    BATCHNORM_RULE,
    DEPTH_RULE,
    WIDEN_RULE,
    check_plain_mlp,
    deepen,
    init_params,
    insert_batchnorm,
    variant_problem,
    widen,
)
from .verdict import effect_summary, majority, verdict

__all__ = ["CLAIM_STATEMENTS", "EOS_BAND", "barrier_piece", "bn_piece", "eos_piece",
           "nonconvex_fraction", "run_sweep", "skip_piece", "smoothness_along_gradient",
           "width_train_piece"]

EOS_BAND = 0.05
"""A run is at the edge when its last-third mean lambda_max is within 5% of 2/eta."""
EOS_EXCEEDED = 0.2
"""A run contradicts the claim when its last-third mean lambda_max sits more than 20% above
2/eta without diverging (between 5% and 20% above it is 'above_band': neither)."""

CLAIM_STATEMENTS: dict[str, dict[str, str]] = {
    "edge_of_stability": {
        "text": "Under full-batch gradient descent with step size eta, the top Hessian "
                "eigenvalue rises until it reaches about 2/eta and then hovers there, while "
                "the loss keeps falling non-monotonically.",
        "source": "Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient descent on neural "
                  "networks typically occurs at the edge of stability, ICLR; THEORY.md "
                  "section 4.",
    },
    "batch_size": {
        "text": "At a matched training loss, smaller batches (larger lr/B) end in flatter "
                "minima: smaller lambda_max and epsilon-sharpness. A sharpness pinned at "
                "2/eta is a confound, not a finding.",
        "source": "Keskar, Mudigere, Nocedal, Smelyanskiy, Tang (2017), On large-batch "
                  "training for deep learning: generalization gap and sharp minima, ICLR; "
                  "Jastrzebski et al. (2017), Three factors influencing minima in SGD; "
                  "THEORY.md section 4.",
    },
    "weight_decay": {
        "text": "Weight decay (adding a multiple of |theta|^2 to the loss) broadens the "
                "minimum: lambda_max and the trace of the data loss's Hessian fall as the "
                "decay grows.",
        "source": "The source notes, section 4 (shared/seed); Li, Xu, Taylor, Studer, Goldstein "
                  "(2018), Visualizing the loss landscape of neural nets, NeurIPS, section 5 "
                  "(weight decay and sharpness under filter normalisation).",
    },
    "width_barriers": {
        "text": "Wider networks have lower barriers between minima, especially after "
                "permutation alignment.",
        "source": "THEORY.md sections 1 and 4 (Draxler et al. 2018; Garipov et al. 2018; "
                  "Entezari et al. 2022; Ainsworth et al. 2023, Git Re-Basin).",
    },
    "batch_norm": {
        "text": "Batch normalisation makes the landscape smoother: a smaller effective "
                "beta-smoothness along the gradient (the change of the gradient per unit "
                "step along -g) and a narrower range of the loss along -g.",
        "source": "Santurkar, Tsipras, Ilyas, Madry (2018), How does batch normalization help "
                  "optimization?, NeurIPS; THEORY.md section 4.",
    },
    "skip_connections": {
        "text": "Deep plain networks have chaotic, non-convex loss slices and a large "
                "lambda_max; their residual versions (branch scaled about 1/sqrt(depth)) stay "
                "smooth.",
        "source": "Li, Xu, Taylor, Studer, Goldstein (2018), Visualizing the loss landscape of "
                  "neural nets, NeurIPS; THEORY.md section 4.",
    },
}

VERDICT_RULES = {
    "batch_size": (
        "Every (batch size B, learning rate eta) of batch_sizes x learning_rates trains the "
        "base network from each seed's initialisation by minibatch SGD until the full-data "
        "loss reaches the matched target (checked after each epoch; the step cap train.steps "
        "marks a run unmatched), then measures lambda_max, epsilon-sharpness and the "
        "filter-normalised curvature. A seed holds the claim when lambda_max at the largest "
        "lr/B is lower than at the smallest by more than 2 x lanczos_tol (relative), and "
        "contradicts it otherwise. supported: at least ceil(2n/3) of n seeds hold it; "
        "not_supported: at least ceil(2n/3) contradict it; inconclusive otherwise, or while "
        "a run diverged, was unmatched, had lambda_max pinned at 2/eta (within 5% or above), "
        "or a deciding eigenvalue did not converge."),
    "weight_decay": (
        "Each decay wd trains the base network from each seed's initialisation by full-batch "
        "GD on L + wd/2 |theta|^2 for train.steps steps, then measures lambda_max, tr(H), "
        "epsilon-sharpness and the filter-normalised curvature of the data loss L. A seed "
        "holds the claim when lambda_max at the largest decay is lower than at the smallest "
        "by more than 2 x lanczos_tol (relative), and contradicts it otherwise. supported: "
        "at least ceil(2n/3) of n seeds hold it; not_supported: at least ceil(2n/3) "
        "contradict it; inconclusive otherwise, or while a run diverged or a deciding "
        "eigenvalue did not converge."),
    "edge_of_stability": (
        "A run is held when the mean lambda_max over the last third of its measurements is "
        "within 5% of 2/eta; 'not_reached' below that band, 'above_band' up to 20% above "
        "2/eta, 'exceeded' more than 20% above it without diverging, 'diverged' when the loss "
        "blew up. supported: at some learning rate at least ceil(2n/3) of n seeds hold it; "
        "not_supported: otherwise, when at some learning rate at least ceil(2n/3) seeds "
        "exceeded 2/eta; inconclusive otherwise (e.g. the "
        "edge was not reached at any rate: raise eta or steps), or while a deciding run's "
        "last-third eigenvalues are unconverged."),
    "width_barriers": (
        "Seeds are paired cyclically (i, i+1 mod n) within each width. A pair holds the "
        "claim when its aligned barrier at the widest width is lower than at the narrowest; "
        "it contradicts it otherwise. supported: at least ceil(2n/3) of n pairs hold it; "
        "not_supported: at least ceil(2n/3) contradict it; inconclusive otherwise, or while "
        "a run diverged or the widths' final losses differ by more than 10x (unmatched "
        "loss)."),
    "batch_norm": (
        "Each seed trains the base network and its batch-norm variant by full-batch GD; at "
        "measure_points evenly spaced steps the effective beta = max over probe steps eta of "
        "|g(theta - eta g) - g(theta)| / (eta |g|) is measured, and its median over the "
        "points is the seed's beta. A seed holds the claim when beta with batch norm is "
        "lower than without, and contradicts it otherwise. supported: at least ceil(2n/3) "
        "of n seeds hold it; not_supported: at least ceil(2n/3) contradict it; "
        "inconclusive otherwise, or while a run diverged."),
    "skip_connections": (
        "Each seed trains the plain and the residual variant of every depth by full-batch GD "
        "and measures, at the end, lambda_max, |lambda_min/lambda_max| and the fraction of "
        "1-D filter-normalised slices that are non-convex. A seed holds the claim when, at "
        "the deepest depth, the residual variant has the lower lambda_max, and contradicts "
        "it otherwise. supported: at least ceil(2n/3) of n seeds hold it; not_supported: at "
        "least ceil(2n/3) contradict it; inconclusive otherwise, or while a run diverged or "
        "a deciding eigenvalue did not converge."),
}


# ------------------------------------------------------------------------ pieces
def eos_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """One full-batch GD run of the base network at ``payload["lr"]`` from seed ``seed``."""
    seed, lr = int(payload["seed"]), float(payload["lr"])
    params = init_like(problem, seed)
    prob = Problem(model=problem.model, params=params, x=problem.x, y=problem.y,
                   loss=problem.loss, batch_size=problem.batch_size, buffers=problem.buffers)
    run = gradient_descent(prob, lr=lr, steps=int(payload["steps"]),
                           sharpness_every=int(payload["sharpness_every"]),
                           lanczos_tol=float(payload["lanczos_tol"]),
                           lanczos_max_products=int(payload["lanczos_max_products"]),
                           divergence_factor=float(payload["divergence_factor"]), seed=seed,
                           monitor=monitor)
    return {"seed": seed, "lr": lr, "losses": run.losses, "diverged": run.diverged,
            "steps_done": run.steps_done, "sharpness_steps": run.sharpness_steps,
            "sharpness": run.sharpness, "sharpness_converged": run.sharpness_converged}


def width_train_piece(problem: Problem, payload: dict[str, Any],
                      monitor: Monitor) -> dict[str, Any]:
    """Train the width-``m`` variant from seed ``seed``; the flat minimum as ``theta``."""
    m, seed = float(payload["width"]), int(payload["seed"])
    prob = variant_problem(problem, widen(problem.model, m), seed)
    run = gradient_descent(prob, lr=float(payload["lr"]), steps=int(payload["steps"]),
                           divergence_factor=float(payload["divergence_factor"]),
                           monitor=monitor)
    return {"width": m, "seed": seed, "theta": run.theta, "diverged": run.diverged,
            "steps_done": run.steps_done, "final_loss": run.losses[-1] if run.losses else None,
            "initial_loss": run.losses[0] if run.losses else None}


def _sorted_curve(ts: torch.Tensor, values: torch.Tensor) -> dict[str, list[float]]:
    """A certified curve's samples ordered by t, as ``{"t", "loss"}`` lists."""
    order = torch.argsort(ts)
    return {"t": [float(t) for t in ts[order]], "loss": [float(v) for v in values[order]]}


def linear_barrier(prob: Problem, a: torch.Tensor, b: torch.Tensor,
                   points: int) -> dict[str, float]:
    """Certified linear barrier ``max_t L((1-t) a + t b) - max(L(a), L(b))``, raw and
    aligned (``b`` permuted by weight matching to ``a``; the aligned barrier is the lower of
    the matched and the unpermuted line, so it never exceeds the raw one)."""
    obj = problem_objective(prob)
    b_al, _ = align_flat(prob.model, prob.params, a, b)
    cert = certify_profiles(obj, [LineCurve(a, b), LineCurve(a, b_al)],
                            LinearConfig(num_points=points), like=a)
    ends = obj.values(torch.stack([a, b, b_al]))
    raw = float(cert[0].barrier) - float(torch.maximum(ends[0], ends[1]))
    matched = float(cert[1].barrier) - float(torch.maximum(ends[0], ends[2]))
    best = cert[1] if matched < raw else cert[0]
    return {"raw": max(raw, 0.0), "matched": max(matched, 0.0),
            "aligned": max(min(raw, matched), 0.0),
            "raw_curve": _sorted_curve(cert[0].ts, cert[0].values),
            "aligned_curve": _sorted_curve(best.ts, best.values),
            "raw_resolution": float(cert[0].resolution),
            "aligned_resolution": float(cert[1].resolution if matched < raw
                                        else cert[0].resolution)}


def barrier_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Raw and aligned linear barrier between two trained minima of one width."""
    monitor.check()
    m = float(payload["width"])
    prob = variant_problem(problem, widen(problem.model, m), 0)
    out = linear_barrier(prob, payload["theta_a"], payload["theta_b"],
                         int(payload["points"]))
    monitor.report("barriers", 1.0, f"width x{m:g}")
    return {"width": m, "pair": payload["pair"], **out}


def smoothness_along_gradient(prob: Problem, theta: torch.Tensor,
                              etas: list[float]) -> dict[str, float | None]:
    """Effective beta and loss range along ``-g`` at ``theta`` (Santurkar et al. 2018).

    ``beta = max_eta |g(theta - eta g) - g(theta)| / (eta |g|)`` (gradient change per
    unit of distance moved) and ``range = max - min`` of the loss over ``eta`` in
    ``{0} + etas``. Both are None where ``g = 0``.
    """
    loss0, g0 = loss_and_grad(prob, theta)
    gn = float(g0.norm())
    if not gn > 0:
        return {"beta": None, "loss_range": None, "grad_norm": gn}
    betas, losses = [], [loss0]
    for eta in etas:
        loss, g = loss_and_grad(prob, theta - eta * g0)
        betas.append(float((g - g0).norm()) / (eta * gn))
        losses.append(loss)
    return {"beta": max(betas), "loss_range": max(losses) - min(losses), "grad_norm": gn}


def bn_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Train the plain or batch-norm variant from seed ``seed``; smoothness along -g at
    evenly spaced steps of the run."""
    seed, steps, lr = int(payload["seed"]), int(payload["steps"]), float(payload["lr"])
    model = insert_batchnorm(problem.model) if payload["variant"] == "batchnorm" else (
        widen(problem.model, 1.0))
    prob = variant_problem(problem, model, seed)
    k = int(payload["measure_points"])
    at = sorted({round(i * steps / max(k - 1, 1)) for i in range(k)})
    run = gradient_descent(prob, lr=lr, steps=steps,
                           divergence_factor=float(payload["divergence_factor"]),
                           keep_at=frozenset(at), monitor=monitor.sub(0.0, 0.9))
    etas = [float(m) * lr for m in payload["probe_steps"]]
    points = []
    for step in sorted(run.kept):
        monitor.check()
        points.append({"step": step, **smoothness_along_gradient(prob, run.kept[step], etas)})
    monitor.report("smoothness", 1.0, f"seed {seed}")
    return {"variant": payload["variant"], "seed": seed, "diverged": run.diverged,
            "steps_done": run.steps_done, "initial_loss": run.losses[0] if run.losses else None,
            "final_loss": run.losses[-1] if run.losses else None, "points": points}


def nonconvex_fraction(prob: Problem, theta: torch.Tensor, *, slices: int, points: int,
                       seed: int, monitor: Monitor | None = None,
                       values: list[list[float]] | None = None) -> tuple[float, list[bool]]:
    """Fraction of ``slices`` 1-D filter-normalised random slices through ``theta`` (Li et
    al. 2018; directions as ``landscape_slice`` draws them, seeds ``seed``, ``seed + 1``,
    ...) whose loss on ``points`` points of [-1, 1] has a negative second difference
    (below ``-1e-9`` times the slice's largest loss: rounding is not curvature).
    ``values``: if given, each slice's losses are appended to it."""
    at = problem_at(prob, theta)
    alphas = torch.linspace(-1.0, 1.0, points, dtype=theta.dtype, device=theta.device)
    flags = []
    mon = monitor or Monitor()
    for k in range(slices):
        mon.check()
        mon.report("slices", k / slices, f"slice {k + 1}/{slices}")
        d = random_filter_normalized(at, 1, seed=seed + k).vectors[0]
        with torch.no_grad():
            vals = torch.stack([at.full_loss(unflatten(theta + a * d, prob.params))
                                for a in alphas])
        if values is not None:
            values.append([float(v) for v in vals])
        second = vals[2:] - 2 * vals[1:-1] + vals[:-2]
        tol = 1e-9 * float(vals.abs().max())
        flags.append(bool((second < -tol).any()))
    return sum(flags) / max(len(flags), 1), flags


def skip_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Train the depth-``depth`` plain or residual variant from ``seed``; measure lambda_max,
    lambda_min and the non-convex fraction of 1-D slices at the end."""
    seed, depth = int(payload["seed"]), int(payload["depth"])
    model = deepen(problem.model, depth, residual=bool(payload["residual"]))
    prob = variant_problem(problem, model, seed)
    run = gradient_descent(prob, lr=float(payload["lr"]), steps=int(payload["steps"]),
                           divergence_factor=float(payload["divergence_factor"]),
                           monitor=monitor.sub(0.0, 0.7))
    at = problem_at(prob, run.theta)
    eig = lanczos_extremes(HessianOperator(at), k_top=1, k_bottom=1,
                           tol=float(payload["lanczos_tol"]),
                           max_products=int(payload["lanczos_max_products"]),
                           max_basis=min(max(6, int(payload["lanczos_max_products"])), 400),
                           seed=seed, monitor=monitor.sub(0.7, 0.8))
    curves: list[list[float]] = []
    frac, flags = nonconvex_fraction(prob, run.theta, slices=int(payload["slices"]),
                                     points=int(payload["slice_points"]), seed=seed,
                                     monitor=monitor.sub(0.8, 1.0), values=curves)
    monitor.report("slices", 1.0, f"depth {depth} seed {seed}")
    lmax, lmin = float(eig.top[0]), float(eig.bottom[0])
    return {"depth": depth, "residual": bool(payload["residual"]), "seed": seed,
            "diverged": run.diverged, "steps_done": run.steps_done,
            "initial_loss": run.losses[0] if run.losses else None,
            "final_loss": run.losses[-1] if run.losses else None,
            "lambda_max": lmax, "lambda_min": lmin,
            "eig_ratio": abs(lmin / lmax) if lmax != 0 else None,
            "eig_converged": bool(eig.converged), "nonconvex_fraction": frac,
            "nonconvex_slices": flags, "slice_losses": curves, "num_params": prob.num_params}


# ------------------------------------------------------------------------ claims
def _eos_status(ratio: float | None, diverged: bool) -> str:
    if diverged:
        return "diverged"
    if ratio is None:
        return "unmeasured"
    if abs(ratio - 1.0) <= EOS_BAND:
        return "held"
    if ratio < 1.0:
        return "not_reached"
    return "exceeded" if ratio > 1.0 + EOS_EXCEEDED else "above_band"


def summarize_eos_run(res: dict[str, Any]) -> dict[str, Any]:
    """The measures of one edge-of-stability run: last-third mean lambda_max and its ratio
    to 2/eta, status, loss increases (the non-monotone loss at the edge)."""
    lr = float(res["lr"])
    steps = list(res["sharpness_steps"])
    lams = list(res["sharpness"])
    conv = list(res["sharpness_converged"])
    last = int(res["steps_done"])
    idx = [i for i, s in enumerate(steps) if s >= 2 * last / 3]
    if not idx and steps:
        idx = [len(steps) - 1]
    mean = float(np.mean([lams[i] for i in idx])) if idx else None
    ratio = mean / (2.0 / lr) if mean is not None else None
    losses = list(res["losses"])
    increases = sum(1 for a, b in itertools.pairwise(losses) if b > a)
    return {
        "seed": int(res["seed"]), "lr": lr, "threshold": 2.0 / lr,
        "status": _eos_status(ratio, bool(res["diverged"])),
        "lambda_max_last_third": json_float(mean), "ratio": json_float(ratio),
        "last_third_converged": all(conv[i] for i in idx) if idx else False,
        "diverged": bool(res["diverged"]), "steps_done": last,
        "initial_loss": json_float(losses[0]) if losses else None,
        "final_loss": json_float(losses[-1]) if losses else None,
        "loss_increases": increases,
        "sharpness_steps": steps, "sharpness": json_floats(lams),
        "sharpness_converged": conv,
        "losses": json_floats(losses),
    }


def _eos(problem: Problem, opts: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    tr = opts["train"]
    n = int(opts["seeds"])
    lrs = [float(v) for v in opts["learning_rates"]]
    payloads = [{"seed": ctx.seed + s, "lr": lr, "steps": tr["steps"],
                 "sharpness_every": tr["sharpness_every"], "lanczos_tol": tr["lanczos_tol"],
                 "lanczos_max_products": tr["lanczos_max_products"],
                 "divergence_factor": tr["divergence_factor"]}
                for lr in lrs for s in range(n)]
    results = ctx.executor.map(eos_piece, problem, payloads, ctx.monitor.sub(0.0, 0.98))
    runs = [summarize_eos_run(r) for r in results]
    variants: list[dict[str, Any]] = []
    for j, lr in enumerate(lrs):
        rs = runs[j * n:(j + 1) * n]
        variants.append({"name": f"lr={lr:g}", "rule": f"the base network, full-batch GD at "
                         f"eta={lr:g} (2/eta = {2 / lr:g})", "params": {"lr": lr},
                         "held": sum(r["status"] == "held" for r in rs),
                         "exceeded": sum(r["status"] == "exceeded" for r in rs),
                         "runs": rs})
    best = max(range(len(lrs)), key=lambda j: (variants[j]["held"], -j))
    worst_ex = max(range(len(lrs)), key=lambda j: (variants[j]["exceeded"], -j))
    held = int(variants[best]["held"])
    deciding = variants[best] if held >= majority(n) else variants[worst_ex]
    confounds: list[dict[str, Any]] = []
    diverged = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                if r["diverged"]]
    if diverged:
        confounds.append({"name": "diverged", "blocking": False,
                          "detail": "diverged (excluded from held): " + ", ".join(diverged)})
    unconv = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
              if not r["diverged"] and not r["last_third_converged"]]
    blocking = any(not r["diverged"] and not r["last_third_converged"]
                   for r in deciding["runs"])
    if unconv:
        confounds.append({"name": "unconverged_eigenvalues", "blocking": blocking,
                          "detail": "lambda_max not converged to lanczos_tol in the last "
                          "third: " + ", ".join(unconv) + "; raise lanczos_max_products."})
    against = int(variants[worst_ex]["exceeded"]) if held < majority(n) else 0
    v = verdict(held, against, n, blocking_confounds=blocking)
    ratios = [r["ratio"] for r in variants[best]["runs"] if r["ratio"] is not None]
    parts = []
    for var in variants:
        rats = [float(r["ratio"]) for r in var["runs"] if r["ratio"] is not None]
        med = f"median ratio {float(np.median(rats)):.3f}" if rats else "no ratio"
        if var["held"] >= majority(n):
            parts.append(f"held on {var['held']}/{n} seeds at {var['name']} ({med})")
        elif var["exceeded"] >= majority(n):
            parts.append(f"exceeded 2/eta on {var['exceeded']}/{n} seeds at {var['name']} "
                         f"({med})")
        else:
            counts = {st: sum(r["status"] == st for r in var["runs"])
                      for st in ("held", "not_reached", "above_band", "exceeded", "diverged")}
            lead = ("not reached" if counts["not_reached"] >= majority(n) else
                    "diverged" if counts["diverged"] >= majority(n) else "not settled")
            tally = ", ".join(f"{k} {v}/{n}" for k, v in counts.items() if v)
            parts.append(f"{lead} at {var['name']} ({tally}; {med})")
    return {
        "held": held, "seeds": n, "verdict": v, "detail": "; ".join(parts),
        "effect": effect_summary(f"lambda_max (last third) / (2/eta) at "
                                 f"{variants[best]['name']}, median over seeds", ratios,
                                 seed=ctx.seed),
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["edge_of_stability"],
                   "predicted": {v["name"]: 2.0 / float(v["params"]["lr"]) for v in variants},
                   "measured": {v["name"]: [r["lambda_max_last_third"] for r in v["runs"]]
                                for v in variants},
                   "notes": "predicted: 2/eta, the stability limit of GD on a quadratic; "
                            "measured: the last-third mean lambda_max per seed."},
    }


def _width(problem: Problem, opts: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    check_plain_mlp(problem.model, need_hidden=True)
    tr = opts["train"]
    n = int(opts["seeds"])
    widths = sorted({float(m) for m in opts["widths"]})
    if len(widths) < 2:
        raise ValueError("widths: give at least two different multipliers.")
    payloads = [{"width": m, "seed": ctx.seed + s, "lr": tr["lr"], "steps": tr["steps"],
                 "divergence_factor": tr["divergence_factor"]}
                for m in widths for s in range(n)]
    trained = ctx.executor.map(width_train_piece, problem, payloads,
                               ctx.monitor.sub(0.0, 0.75))
    pairs = [(i, (i + 1) % n) for i in range(n)]
    bpay = []
    for j, m in enumerate(widths):
        runs = trained[j * n:(j + 1) * n]
        for i, k in pairs:
            bpay.append({"width": m, "pair": [runs[i]["seed"], runs[k]["seed"]],
                         "theta_a": runs[i]["theta"], "theta_b": runs[k]["theta"],
                         "points": opts["barrier_points"]})
    bars = ctx.executor.map(barrier_piece, problem, bpay, ctx.monitor.sub(0.75, 0.98))
    variants: list[dict[str, Any]] = []
    for j, m in enumerate(widths):
        model = widen(problem.model, m)
        hidden = [mod.out_features for mod in model if isinstance(mod, torch.nn.Linear)][:-1]
        runs = trained[j * n:(j + 1) * n]
        bs = bars[j * n:(j + 1) * n]
        variants.append({
            "name": f"width x{m:g}", "rule": f"widen by {m:g}: {WIDEN_RULE}",
            "params": {"width": m, "hidden": hidden,
                       "num_params": sum(int(p.numel()) for p in
                                         init_params(model, 0, dtype=problem.dtype,
                                                     device=problem.device).values())},
            "runs": [{"seed": int(r["seed"]), "final_loss": json_float(r["final_loss"]),
                      "initial_loss": json_float(r["initial_loss"]),
                      "diverged": bool(r["diverged"]), "steps_done": int(r["steps_done"])}
                     for r in runs],
            "pairs": [{"seeds": b["pair"], "raw_barrier": json_float(b["raw"]),
                       "aligned_barrier": json_float(b["aligned"]),
                       "matched_barrier": json_float(b["matched"]),
                       "raw_resolution": json_float(b["raw_resolution"]),
                       "aligned_resolution": json_float(b["aligned_resolution"]),
                       "raw_curve": {"t": json_floats(b["raw_curve"]["t"]),
                                     "loss": json_floats(b["raw_curve"]["loss"])},
                       "aligned_curve": {"t": json_floats(b["aligned_curve"]["t"]),
                                         "loss": json_floats(b["aligned_curve"]["loss"])}}
                      for b in bs],
        })
    narrow, wide = variants[0], variants[-1]
    diffs = [float(a["aligned_barrier"] or 0.0) - float(b["aligned_barrier"] or 0.0)
             for a, b in zip(narrow["pairs"], wide["pairs"], strict=True)]
    held = sum(d > 0 for d in diffs)
    against = n - held
    confounds: list[dict[str, Any]] = []
    diverged = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                if r["diverged"]]
    if diverged:
        confounds.append({"name": "diverged", "blocking": True,
                          "detail": "diverged: " + ", ".join(diverged) + "; lower train.lr."})
    meds = [float(np.median([r["final_loss"] if r["final_loss"] is not None else math.inf
                             for r in v["runs"]])) for v in variants]
    lo, hi = min(meds), max(meds)
    if not math.isfinite(hi) or hi > 10 * max(lo, 1e-12):
        confounds.append({"name": "unmatched_loss", "blocking": True,
                          "detail": f"median final losses per width {json_floats(meds)} "
                          "differ by more than 10x; train longer (train.steps)."})
    blocking = any(c["blocking"] for c in confounds)
    v = verdict(held, against, n, blocking_confounds=blocking)
    xs = [float(var["params"]["width"]) for var in variants for _ in var["pairs"]]
    ys = [float(p["aligned_barrier"] or 0.0) for var in variants for p in var["pairs"]]
    rho = spearmanr(xs, ys).statistic if len(set(ys)) > 1 else math.nan
    raw_diffs = [float(a["raw_barrier"] or 0.0) - float(b["raw_barrier"] or 0.0)
                 for a, b in zip(narrow["pairs"], wide["pairs"], strict=True)]
    return {
        "held": held, "seeds": n, "verdict": v,
        "detail": (f"aligned barrier lower at {wide['name']} than at {narrow['name']} on "
                   f"{held}/{n} seed pairs; Spearman(width, aligned barrier) = "
                   f"{'undefined' if math.isnan(rho) else f'{rho:.3g}'}; raw barrier lower on "
                   f"{sum(d > 0 for d in raw_diffs)}/{n} pairs"),
        "effect": effect_summary(f"aligned barrier at {narrow['name']} minus at "
                                 f"{wide['name']}, median over seed pairs", diffs,
                                 seed=ctx.seed),
        "raw_effect": effect_summary(f"raw barrier at {narrow['name']} minus at "
                                     f"{wide['name']}, median over seed pairs", raw_diffs,
                                     seed=ctx.seed),
        "spearman": json_float(rho),
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["width_barriers"],
                   "predicted": "aligned barriers decrease with width",
                   "measured": {var["name"]: [p["aligned_barrier"] for p in var["pairs"]]
                                for var in variants},
                   "notes": "barriers are certified maxima along the line (the path maximum "
                            "lies within each barrier's resolution above it)."},
    }


def _median_or_none(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def _batch_norm(problem: Problem, opts: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    check_plain_mlp(problem.model, need_hidden=True)
    tr = opts["train"]
    n = int(opts["seeds"])
    names = ("plain", "batchnorm")
    payloads = [{"variant": v, "seed": ctx.seed + s, "lr": tr["lr"], "steps": tr["steps"],
                 "divergence_factor": tr["divergence_factor"],
                 "probe_steps": list(opts["probe_steps"]),
                 "measure_points": opts["measure_points"]} for v in names for s in range(n)]
    results = ctx.executor.map(bn_piece, problem, payloads, ctx.monitor.sub(0.0, 0.98))
    variants: list[dict[str, Any]] = []
    for j, name in enumerate(names):
        model = insert_batchnorm(problem.model) if name == "batchnorm" else problem.model
        runs = []
        for r in results[j * n:(j + 1) * n]:
            pts = r["points"]
            runs.append({
                "seed": int(r["seed"]), "diverged": bool(r["diverged"]),
                "steps_done": int(r["steps_done"]),
                "initial_loss": json_float(r["initial_loss"]),
                "final_loss": json_float(r["final_loss"]),
                "beta": json_float(_median_or_none([p["beta"] for p in pts])),
                "loss_range": json_float(_median_or_none([p["loss_range"] for p in pts])),
                "points": [{"step": int(p["step"]), "beta": json_float(p["beta"]),
                            "loss_range": json_float(p["loss_range"]),
                            "grad_norm": json_float(p["grad_norm"])} for p in pts]})
        variants.append({
            "name": name,
            "rule": ("the base network as given (no batch norm)" if name == "plain" else
                     f"insert batch norm: {BATCHNORM_RULE}"),
            "params": {"num_params": sum(int(p.numel()) for p in init_params(
                model, 0, dtype=problem.dtype, device=problem.device).values()),
                "lr": tr["lr"]},
            "runs": runs})
    plain, bn = variants[0]["runs"], variants[1]["runs"]
    ratios: list[float] = []
    held = against = 0
    for a, b in zip(plain, bn, strict=True):
        if a["beta"] is None or b["beta"] is None or a["diverged"] or b["diverged"]:
            continue
        if b["beta"] < a["beta"]:
            held += 1
        else:
            against += 1
        ratios.append(a["beta"] / b["beta"] if b["beta"] > 0 else math.inf)
    confounds: list[dict[str, Any]] = []
    diverged = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                if r["diverged"]]
    if diverged:
        confounds.append({"name": "diverged", "blocking": True,
                          "detail": "diverged: " + ", ".join(diverged) + "; lower train.lr."})
    meds = [m for m in (_median_or_none([r["final_loss"] for r in v["runs"]])
                        for v in variants) if m is not None]
    if len(meds) == 2 and max(meds) > 10 * max(min(meds), 1e-12):
        confounds.append({"name": "unmatched_loss", "blocking": False,
                          "detail": f"median final losses {json_floats(meds)} differ by more "
                          "than 10x (the runs are compared along their trajectories)."})
    blocking = any(c["blocking"] for c in confounds)
    v = verdict(held, against, n, blocking_confounds=blocking)
    ranges = [(a["loss_range"], b["loss_range"]) for a, b in zip(plain, bn, strict=True)
              if a["loss_range"] is not None and b["loss_range"] is not None]
    narrower = sum(b < a for a, b in ranges)
    return {
        "held": held, "seeds": n, "verdict": v,
        "detail": (f"effective beta lower with batch norm on {held}/{n} seeds (median "
                   "ratio plain/bn "
                   f"{f'{float(np.median(ratios)):.4g}' if ratios else 'not measured'}); "
                   f"loss range along -g narrower on {narrower}/{n} seeds"),
        "effect": effect_summary("effective beta without / with batch norm, median over seeds",
                                 ratios, seed=ctx.seed),
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["batch_norm"],
                   "predicted": "beta and the loss range along -g are smaller with batch norm",
                   "measured": {var["name"]: [r["beta"] for r in var["runs"]]
                                for var in variants},
                   "notes": "beta is a finite-difference estimate at the probe steps, not a "
                            "bound over all steps."},
    }


def _skip(problem: Problem, opts: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    check_plain_mlp(problem.model, need_hidden=True)
    tr = opts["train"]
    n = int(opts["seeds"])
    depths = sorted({int(d) for d in opts["depths"]})
    combos = [(d, res) for d in depths for res in (False, True)]
    payloads = [{"depth": d, "residual": res, "seed": ctx.seed + s, "lr": tr["lr"],
                 "steps": tr["steps"], "divergence_factor": tr["divergence_factor"],
                 "lanczos_tol": tr["lanczos_tol"],
                 "lanczos_max_products": tr["lanczos_max_products"],
                 "slices": opts["slices"], "slice_points": opts["slice_points"]}
                for d, res in combos for s in range(n)]
    results = ctx.executor.map(skip_piece, problem, payloads, ctx.monitor.sub(0.0, 0.98))
    variants: list[dict[str, Any]] = []
    for j, (d, res) in enumerate(combos):
        rs = results[j * n:(j + 1) * n]
        variants.append({
            "name": f"{'residual' if res else 'plain'} depth {d}",
            "rule": DEPTH_RULE if res else DEPTH_RULE.split("; residual:")[0],
            "params": {"depth": d, "residual": res, "num_params": int(rs[0]["num_params"])},
            "runs": [{"seed": int(r["seed"]), "diverged": bool(r["diverged"]),
                      "steps_done": int(r["steps_done"]),
                      "initial_loss": json_float(r["initial_loss"]),
                      "final_loss": json_float(r["final_loss"]),
                      "lambda_max": json_float(r["lambda_max"]),
                      "lambda_min": json_float(r["lambda_min"]),
                      "eig_ratio": json_float(r["eig_ratio"]),
                      "eig_converged": bool(r["eig_converged"]),
                      "nonconvex_fraction": json_float(r["nonconvex_fraction"]),
                      "nonconvex_slices": list(r["nonconvex_slices"]),
                      "slice_losses": [json_floats(c) for c in r["slice_losses"]]}
                     for r in rs]})
    plain, resid = variants[-2]["runs"], variants[-1]["runs"]
    held = against = 0
    ratios: list[float] = []
    for a, b in zip(plain, resid, strict=True):
        if a["diverged"] or b["diverged"] or a["lambda_max"] is None or b["lambda_max"] is None:
            continue
        if b["lambda_max"] < a["lambda_max"]:
            held += 1
        else:
            against += 1
        if b["lambda_max"] > 0:
            ratios.append(a["lambda_max"] / b["lambda_max"])
    confounds: list[dict[str, Any]] = []
    diverged = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
                if r["diverged"]]
    if diverged:
        confounds.append({"name": "diverged", "blocking": True,
                          "detail": "diverged: " + ", ".join(diverged) + "; lower train.lr."})
    unconv = [f"{v['name']} seed {r['seed']}" for v in variants for r in v["runs"]
              if not r["diverged"] and not r["eig_converged"]]
    if unconv:
        deciding = any(not r["diverged"] and not r["eig_converged"] for r in plain + resid)
        confounds.append({"name": "unconverged_eigenvalues", "blocking": deciding,
                          "detail": "lambda_max or lambda_min not converged: "
                          + ", ".join(unconv) + "; raise train.lanczos_max_products."})
    meds = [m for m in (_median_or_none([r["final_loss"] for r in v["runs"]])
                        for v in variants[-2:]) if m is not None]
    if len(meds) == 2 and max(meds) > 10 * max(min(meds), 1e-12):
        confounds.append({"name": "unmatched_loss", "blocking": False,
                          "detail": f"median final losses at the deepest depth {meds} differ "
                          "by more than 10x: sharpness is compared at unlike points."})
    blocking = any(c["blocking"] for c in confounds)
    v = verdict(held, against, n, blocking_confounds=blocking)
    nc = [(_median_or_none([r["nonconvex_fraction"] for r in var["runs"]]), var["name"])
          for var in variants]
    return {
        "held": held, "seeds": n, "verdict": v,
        "detail": (f"lambda_max lower with skips at depth {depths[-1]} on {held}/{n} seeds; "
                   "median non-convex slice fraction: "
                   + ", ".join(f"{name} {json_float(f)}" for f, name in nc)),
        "effect": effect_summary(f"lambda_max plain / residual at depth {depths[-1]}, median "
                                 "over seeds", ratios, seed=ctx.seed),
        "confounds": confounds, "variants": variants,
        "theory": {"applies": ["skip_connections"],
                   "predicted": "residual: lower lambda_max, |lambda_min/lambda_max| and "
                                "non-convex fraction than plain, more so with depth",
                   "measured": {var["name"]: [r["lambda_max"] for r in var["runs"]]
                                for var in variants},
                   "notes": "non-convexity is judged from second differences on the slice's "
                            "grid: a bump narrower than its spacing is not seen."},
    }


_CLAIMS = {"edge_of_stability": _eos, "width_barriers": _width, "batch_norm": _batch_norm,
           "skip_connections": _skip, "batch_size": batch_size_claim,
           "weight_decay": weight_decay_claim}


def run_sweep(problem: Problem, options: dict[str, Any] | None,
              ctx: RunContext | None = None) -> RunOutput:
    """Test one claim over variants and seeds (module doc).

    Returns:
        ``result``: ``claim``, ``claim_statement`` ``{text, source}``, ``verdict``,
        ``verdict_rule``, ``detail``, ``held``, ``seeds``, ``effect`` ``{name, value,
        interval, confidence}``, ``confounds`` ``[{name, blocking, detail}]``, ``variants``
        (per variant: ``name``, ``rule``, ``params``, per-seed ``runs`` with every measure),
        ``theory``.
    """
    ctx = ctx or RunContext()
    opts = OPTIONS.resolve(options)
    claim = str(opts["claim"])
    ctx.monitor.report("sweep", 0.0, claim, force=True)
    body = _CLAIMS[claim](problem, opts, ctx)
    ctx.monitor.report("sweep", 1.0, "verdict", force=True)
    result = {"claim": claim, "claim_statement": CLAIM_STATEMENTS[claim],
              "verdict_rule": VERDICT_RULES[claim], **body,
              "num_params": problem.num_params, "num_samples": problem.num_samples}
    artifacts = []
    if opts["plots"]:
        from .plots import sweep_artifacts

        artifacts = sweep_artifacts(result, loss=str(problem.loss),
                                    dtype=str(problem.dtype).removeprefix("torch."))
    return RunOutput(result=result, artifacts=artifacts)

