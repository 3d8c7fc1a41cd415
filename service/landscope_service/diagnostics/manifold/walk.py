"""A walk along the zero-loss manifold, with an orthogonal control step.

At a point ``theta`` of ``M = {R = 0}`` the tangent space is ``null(J)`` (Cooper 2018,
THEORY.md section 2). One walk step:

1. draw ``g ~ N(0, I_P)`` (seeded), project it onto ``null(J)``: ``t = g - P_row g``, and
   normalise, ``t <- t / ||t||``;
2. move ``theta' = theta + h t``; since ``R(theta + h t) = R(theta) + h J t + O(h^2)`` and
   ``J t = 0``, the loss there is ``O(h^4)``;
3. retract to ``M`` by minimum-norm Gauss-Newton steps ``theta <- theta - J^+ R(theta)``
   until ``L <= tol`` (the correction is ``O(h^2)``).

Control: from the start point, one step of the same length along a unit direction in
``range(J^T)`` (orthogonal to ``null(J)``). There ``R = h J u + O(h^2)`` with
``||J u|| >= sigma_rank``, so the loss rises like ``h^2 sigma^2 / m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..monitor import Monitor
from .jacobian import ResidualFunction
from .rank import Linearization, Route

__all__ = ["ControlStep", "RetractResult", "WalkResult", "retract", "walk_manifold"]


@dataclass(frozen=True)
class RetractResult:
    """Outcome of :func:`retract`.

    Attributes:
        theta: the retracted point.
        loss: its loss.
        steps: Gauss-Newton steps taken.
        converged: ``loss <= tol``.
        linearization: the factorisation at ``theta`` (computed last; reusable).
    """

    theta: Tensor
    loss: float
    steps: int
    converged: bool
    linearization: Linearization


def retract(
    fn: ResidualFunction,
    theta: Tensor,
    *,
    route: Route,
    tol: float,
    max_steps: int,
    rtol: float | None = None,
    monitor: Monitor | None = None,
) -> RetractResult:
    """Project ``theta`` back onto ``{L <= tol}`` by minimum-norm Gauss-Newton steps.

    ``theta_{k+1} = theta_k - J_k^+ R(theta_k)``, with ``J^+`` the rank-cut pseudo-inverse
    (:meth:`Linearization.gauss_newton_step`); quadratically convergent near a regular
    point of ``M``, and each step is orthogonal to ``null(J_k)``, so the retraction is
    close to the orthogonal projection onto ``M``.

    Args:
        fn: residual function.
        theta: start (flat float64; not modified).
        route: ``"dense"`` or ``"gram"``.
        tol: loss target.
        max_steps: most Gauss-Newton steps (>= 1).
        rtol: rank tolerance override.
        monitor: cancellation.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
    th = theta.detach().clone()
    quiet = None if monitor is None else Monitor(should_cancel=monitor.should_cancel,
                                                 min_interval=monitor.min_interval)
    lin = Linearization(fn, th, route, rtol=rtol, monitor=quiet)
    m = fn.num_equations
    loss = float(lin.residual @ lin.residual) / m
    steps = 0
    while loss > tol and steps < max_steps:
        if monitor is not None:
            monitor.check()
        th = th + lin.gauss_newton_step()
        steps += 1
        lin = Linearization(fn, th, route, rtol=rtol, monitor=quiet)
        loss = float(lin.residual @ lin.residual) / m
        if not math.isfinite(loss):
            break
    return RetractResult(th, loss, steps, loss <= tol, lin)


@dataclass(frozen=True)
class ControlStep:
    """One step orthogonal to ``null(J)`` (in ``range(J^T)``) from the walk's start.

    Attributes:
        step_length: ``h``.
        loss_before: ``L(theta_0)``.
        loss_after: ``L(theta_0 + h u)``.
        loss_rise: ``loss_after - loss_before``.
        tangent_loss: ``L(theta_0 + h t)`` for the first tangent direction ``t`` of the
            walk, for comparison (None when the walk took no step).
    """

    step_length: float
    loss_before: float
    loss_after: float
    loss_rise: float
    tangent_loss: float | None


@dataclass
class WalkResult:
    """Outcome of :func:`walk_manifold`.

    Attributes:
        steps_requested, steps_done: walk steps asked for and completed.
        step_length: ``h``.
        path_length: sum of ``||theta_{k+1} - theta_k||`` over retracted points.
        displacement: ``||theta_K - theta_0||``.
        max_loss: largest loss over the retracted walk points (``theta_0`` included).
        max_loss_before_retraction: largest ``L(theta_k + h t_k)``.
        max_retraction_correction: largest ``||retract(theta_k + h t_k) - (theta_k + h t_k)||``.
        max_retraction_steps: most Gauss-Newton steps one retraction took.
        stopped_reason: None, or why the walk ended early (a failed retraction).
        losses: loss of each retracted point (``theta_0`` first).
        control: the orthogonal control step (None when not requested or rank 0).
        final_theta: ``theta_K``.
    """

    steps_requested: int
    steps_done: int
    step_length: float
    path_length: float
    displacement: float
    max_loss: float
    max_loss_before_retraction: float | None
    max_retraction_correction: float | None
    max_retraction_steps: int
    stopped_reason: str | None
    losses: list[float] = field(default_factory=list)
    control: ControlStep | None = None
    final_theta: Tensor | None = None


def _unit(v: Tensor) -> Tensor | None:
    n = torch.linalg.vector_norm(v)
    if not bool(n > 0):
        return None
    return v / n


def walk_manifold(
    fn: ResidualFunction,
    start: Linearization,
    *,
    steps: int,
    step_length: float,
    tol: float,
    retract_max_steps: int,
    generator: torch.Generator,
    control: bool = True,
    rtol: float | None = None,
    monitor: Monitor | None = None,
) -> WalkResult:
    """Walk ``steps`` times along random unit tangent directions, retracting each time.

    Args:
        fn: residual function.
        start: linearisation at the starting point (on ``M``, ``L <= tol``).
        steps: number of walk steps (>= 0).
        step_length: ``h`` (> 0), in parameter space (Euclidean norm).
        tol: loss tolerance of the retraction.
        retract_max_steps: Gauss-Newton steps allowed per retraction.
        generator: random source on the parameters' device (seeded by the caller).
        control: also take the orthogonal control step.
        rtol: rank tolerance override.
        monitor: progress (``walk`` stage) and cancellation.

    Returns:
        A :class:`WalkResult`.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    if not (step_length > 0 and math.isfinite(step_length)):
        raise ValueError(f"step_length must be a finite number > 0, got {step_length}.")
    m = fn.num_equations
    theta0 = start.theta
    loss0 = float(start.residual @ start.residual) / m
    P = fn.num_params

    def randn() -> Tensor:
        return torch.randn(P, generator=generator, device=theta0.device, dtype=theta0.dtype)

    lin = start
    theta = theta0
    losses = [loss0]
    path = 0.0
    max_before: float | None = None
    max_corr: float | None = None
    max_rsteps = 0
    stopped: str | None = None
    first_tangent_loss: float | None = None
    done = 0
    route = start.route
    for k in range(steps):
        if monitor is not None:
            monitor.check()
        t = _unit(lin.project_null_space(randn()))
        if t is None:
            stopped = "null(J) is trivial at this point: no tangent direction to walk along"
            break
        trial = theta + step_length * t
        trial_loss = float(fn.loss(trial))
        if first_tangent_loss is None:
            first_tangent_loss = trial_loss
        max_before = trial_loss if max_before is None else max(max_before, trial_loss)
        rr = retract(
            fn, trial, route=route, tol=tol, max_steps=retract_max_steps, rtol=rtol,
            monitor=monitor,
        )
        max_rsteps = max(max_rsteps, rr.steps)
        if not rr.converged:
            stopped = (
                f"retraction failed at step {k + 1}: loss {rr.loss:.3e} > tol {tol:.3e} "
                f"after {rr.steps} Gauss-Newton steps"
            )
            break
        corr = float(torch.linalg.vector_norm(rr.theta - trial))
        max_corr = corr if max_corr is None else max(max_corr, corr)
        path += float(torch.linalg.vector_norm(rr.theta - theta))
        theta, lin = rr.theta, rr.linearization
        losses.append(rr.loss)
        done += 1
        if monitor is not None:
            monitor.report("walk", (k + 1) / max(steps, 1), f"walk step {k + 1}/{steps}")
    ctrl: ControlStep | None = None
    if control and start.rank > 0:
        u = _unit(start.project_row_space(randn()))
        if u is not None:
            after = float(fn.loss(theta0 + step_length * u))
            ctrl = ControlStep(step_length, loss0, after, after - loss0, first_tangent_loss)
    return WalkResult(
        steps_requested=steps,
        steps_done=done,
        step_length=step_length,
        path_length=path,
        displacement=float(torch.linalg.vector_norm(theta - theta0)),
        max_loss=max(losses),
        max_loss_before_retraction=max_before,
        max_retraction_correction=max_corr,
        max_retraction_steps=max_rsteps,
        stopped_reason=stopped,
        losses=losses,
        control=ctrl,
        final_theta=theta,
    )
