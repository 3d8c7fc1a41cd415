"""Full-batch gradient descent with optional sharpness tracking (the sweep's common frame).

``theta_{t+1} = theta_t - eta * grad L(theta_t)`` on the full, fixed data set, so a seed
gives the same run every time. Every ``sharpness_every`` steps (and at the end) the top
Hessian eigenvalue of the loss being trained is measured by Lanczos (top-1), started from
the previous measurement's eigenvector (warm start). The loop checks for cancellation and
reports progress at every step it measures and at least every 1% of the steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..hessian.lanczos import lanczos_extremes
from ..hessian.operators import HessianOperator
from ..monitor import Monitor
from ..problem import Problem, flatten, unflatten

__all__ = ["GDRun", "SGDRun", "gradient_descent", "loss_and_grad", "problem_at", "sgd",
           "top_eigenvalue"]


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


def problem_at(problem: Problem, theta: Tensor) -> Problem:
    """The same problem with its parameters set to the flat vector ``theta`` (detached)."""
    return dataclasses.replace(problem, params={k: v.detach() for k, v in
                                                unflatten(theta, problem.params).items()})


def top_eigenvalue(problem: Problem, theta: Tensor, *, tol: float, max_products: int,
                   v0: Tensor | None = None, seed: int = 0,
                   monitor: Monitor | None = None) -> tuple[float, Tensor, bool]:
    """lambda_max of the Hessian at ``theta`` (Lanczos top-1): value, eigenvector, converged."""
    op = HessianOperator(problem_at(problem, theta))
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
                     weight_decay: float = 0.0, monitor: Monitor | None = None) -> GDRun:
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
        weight_decay: L2 decay ``wd``: the step is ``theta - lr * (g + wd * theta)`` (the
            gradient of ``L + wd/2 |theta|^2``); ``losses`` stay the data loss ``L``.
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
        theta = theta - lr * (g + weight_decay * theta) if weight_decay else theta - lr * g
        run.steps_done = step + 1
        if step % report_every == 0 or step + 1 == steps:
            mon.report("train", (step + 1) / steps, f"step {step + 1}/{steps}")
    return run


@dataclass
class SGDRun:
    """One minibatch SGD run stopped at a target training loss.

    Attributes:
        theta: final flat parameters (the last finite point when diverged).
        losses: the full-data loss at the start and after every epoch.
        epoch_steps: the step count at each entry of ``losses``.
        matched: the full-data loss reached ``target_loss`` before ``max_steps``.
        diverged: the loss became non-finite or exceeded ``divergence_factor`` times its
            initial value.
        steps_done: SGD steps taken (up to ``theta``, the last finite point, when diverged).
    """

    theta: Tensor
    losses: list[float]
    epoch_steps: list[int]
    matched: bool
    diverged: bool
    steps_done: int


def sgd(problem: Problem, *, lr: float, batch_size: int, max_steps: int, target_loss: float,
        weight_decay: float = 0.0, divergence_factor: float = 1e6, seed: int = 0,
        monitor: Monitor | None = None) -> SGDRun:
    """Minibatch SGD from ``problem.params`` until the full-data loss is at most
    ``target_loss`` (checked after every epoch) or ``max_steps`` steps are taken.

    Each epoch visits a fresh random permutation of the samples (``torch.Generator`` seeded
    with ``seed``) in batches of ``batch_size`` (the last may be smaller), so a seed gives
    the same run every time; with ``batch_size >= N`` this is full-batch gradient descent.
    A step is ``theta <- theta - lr * (g_B + weight_decay * theta)``, ``g_B`` the gradient of
    the batch's mean loss. The loop checks for cancellation every step and reports progress
    (the fraction of ``max_steps``, monotone) at least every 1% of them.
    """
    mon = monitor or Monitor()
    n = problem.num_samples
    b = max(1, min(int(batch_size), n))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    theta = flatten(problem.params).detach().clone()
    loss0 = float(problem.full_loss(unflatten(theta, problem.params)).detach())
    run = SGDRun(theta=theta, losses=[loss0], epoch_steps=[0], matched=loss0 <= target_loss,
                 diverged=not math.isfinite(loss0), steps_done=0)
    report_every = max(1, max_steps // 100)
    step = 0
    while not run.matched and not run.diverged and step < max_steps:
        order = torch.randperm(n, generator=gen).to(problem.x.device)
        for start in range(0, n, b):
            if step >= max_steps:
                break
            mon.check()
            idx = order[start:start + b]
            x = theta.detach().requires_grad_(True)
            loss = problem.loss_fn(unflatten(x, problem.params), problem.x[idx], problem.y[idx])
            (g,) = torch.autograd.grad(loss, x)
            theta = theta - lr * (g.detach() + weight_decay * theta)
            step += 1
            if step % report_every == 0 or step == max_steps:
                mon.report("train", step / max_steps, f"step {step}/{max_steps}")
        full = float(problem.full_loss(unflatten(theta, problem.params)).detach())
        if not math.isfinite(full) or full > divergence_factor * max(loss0, 1e-300):
            run.diverged = True
            break
        run.theta, run.steps_done = theta, step
        run.losses.append(full)
        run.epoch_steps.append(step)
        run.matched = full <= target_loss
    return run
