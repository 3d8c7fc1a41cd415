"""Full-batch gradient descent with optional sharpness tracking (the sweep's common frame).

``theta_{t+1} = theta_t - eta * grad L(theta_t)`` on the full, fixed data set, so a seed
gives the same run every time. Every ``sharpness_every`` steps (and at the end) the top
Hessian eigenvalue of the loss being trained is measured by Lanczos (top-1), started from
the previous measurement's eigenvector (warm start). The loop checks for cancellation and
reports progress at every step it measures and at least every 1% of the steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..hessian.lanczos import lanczos_extremes
from ..hessian.operators import HessianOperator
from ..monitor import Monitor
from ..problem import Problem, flatten, unflatten

__all__ = ["GDRun", "gradient_descent", "loss_and_grad", "top_eigenvalue"]


@dataclass
class GDRun:
    """One gradient-descent run.

    Attributes:
        theta: final flat parameters (the last finite point when diverged).
        losses: the loss before each step and after the last, ``(steps + 1)`` values (fewer
            when it diverged).
        sharpness_steps: steps at which lambda_max was measured.
        sharpness: lambda_max at those steps.
        sharpness_converged: whether each measurement met the Lanczos tolerance.
        diverged: the loss became non-finite or exceeded ``divergence_factor`` times its
            initial value; the run stopped there.
        steps_done: steps taken.
        kept: flat parameters at the steps asked for in ``keep_at`` (those reached).
    """

    theta: Tensor
    losses: list[float]
    diverged: bool
    steps_done: int
    sharpness_steps: list[int] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    sharpness_converged: list[bool] = field(default_factory=list)
    kept: dict[int, Tensor] = field(default_factory=dict)


def top_eigenvalue(problem: Problem, theta: Tensor, *, tol: float, max_products: int,
                   v0: Tensor | None = None, seed: int = 0,
                   monitor: Monitor | None = None) -> tuple[float, Tensor, bool]:
    """lambda_max of the Hessian at ``theta`` (Lanczos top-1): value, eigenvector, converged."""
    at = Problem(model=problem.model, params={k: v.detach() for k, v in
                                              unflatten(theta, problem.params).items()},
                 x=problem.x, y=problem.y, loss=problem.loss, batch_size=problem.batch_size,
                 buffers=problem.buffers)
    op = HessianOperator(at)
    res = lanczos_extremes(op, k_top=1, tol=tol, max_products=max(2, max_products),
                           max_basis=min(max(4, max_products), 400), seed=seed, v0=v0,
                           return_vectors=True, monitor=monitor)
    assert res.top_vectors is not None
    return float(res.top[0]), res.top_vectors[:, 0].detach(), bool(res.converged)


def loss_and_grad(problem: Problem, theta: Tensor) -> tuple[float, Tensor]:
    """Full-data loss and its gradient at flat ``theta``."""
    x = theta.detach().requires_grad_(True)
    loss = problem.full_loss(unflatten(x, problem.params))
    (g,) = torch.autograd.grad(loss, x)
    return float(loss.detach()), g.detach()


def gradient_descent(problem: Problem, *, lr: float, steps: int,
                     sharpness_every: int | None = None, lanczos_tol: float = 1e-6,
                     lanczos_max_products: int = 200, divergence_factor: float = 1e6,
                     seed: int = 0, keep_at: frozenset[int] = frozenset(),
                     monitor: Monitor | None = None) -> GDRun:
    """Full-batch GD from ``problem.params`` (module doc).

    Args:
        problem: the problem; its parameters are the start.
        lr: eta.
        steps: steps to take.
        sharpness_every: measure lambda_max every this many steps (and after the last);
            None: never.
        lanczos_tol, lanczos_max_products: each measurement's tolerance and budget.
        divergence_factor: stop as diverged above this many times the initial loss.
        seed: seed of the first Lanczos start vector.
        keep_at: steps whose parameters to keep (``run.kept``).
        monitor: progress (fraction of steps) and cancellation.
    """
    mon = monitor or Monitor()
    theta = flatten(problem.params).detach().clone()
    run = GDRun(theta=theta, losses=[], diverged=False, steps_done=0)
    v: Tensor | None = None
    report_every = max(1, steps // 100)

    def measure(step: int) -> None:
        nonlocal v
        lam, v, ok = top_eigenvalue(problem, theta, tol=lanczos_tol,
                                    max_products=lanczos_max_products, v0=v, seed=seed,
                                    monitor=mon)
        run.sharpness_steps.append(step)
        run.sharpness.append(lam)
        run.sharpness_converged.append(ok)

    loss0: float | None = None
    for step in range(steps + 1):
        mon.check()
        loss, g = loss_and_grad(problem, theta)
        if loss0 is None:
            loss0 = loss
        if not math.isfinite(loss) or loss > divergence_factor * max(loss0, 1e-300):
            run.diverged = True
            break
        run.losses.append(loss)
        run.theta = theta
        if step in keep_at:
            run.kept[step] = theta.clone()
        if sharpness_every is not None and (step % sharpness_every == 0 or step == steps):
            measure(step)
        if step == steps:
            break
        theta = theta - lr * g
        run.steps_done = step + 1
        if step % report_every == 0 or step + 1 == steps:
            mon.report("train", (step + 1) / steps, f"step {step + 1}/{steps}")
    return run
