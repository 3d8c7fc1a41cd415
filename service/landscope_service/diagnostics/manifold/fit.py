"""Fitting to zero loss: full-batch Levenberg-Marquardt on the residuals, in float64.

Minimise ``F(theta) = 1/2 ||R(theta)||^2`` (so ``L = 2F/m``). Each step solves

    (J^T J + mu I) delta = -J^T R

through :meth:`Linearization.lm_step` (the ``m x m`` form when ``m <= P``), and the
damping follows Nielsen's rule (K. Madsen, H. B. Nielsen, O. Tingleff, *Methods for
non-linear least squares problems*, 2nd ed. 2004, section 3.2): with gain ratio

    rho = (F(theta) - F(theta + delta)) / (L(0) - L(delta)),
    L(0) - L(delta) = 1/2 ||R||^2 - 1/2 ||R + J delta||^2,

a step with ``rho > 0`` is accepted and ``mu <- mu * max(1/3, 1 - (2 rho - 1)^3)``,
``nu <- 2``; otherwise ``mu <- mu * nu``, ``nu <- 2 nu``. Initial ``mu = 1e-3 *
max_i diag(J^T J)_i``, estimated by ``1e-3 * sigma_max^2``. As ``mu -> 0`` the step is
Gauss-Newton's and convergence to a zero of ``R`` is quadratic when ``J`` has full row
rank there.

Stopping: ``L <= tol`` (interpolated); the step budget spent; or stalled: the damping
grew past ``1e16 sigma_max^2``, the accepted step fell below ``1e-15 (||theta|| +
1e-15)``, or an accepted step lowered ``F`` by less than ``1e-12 F``. Stalling is what
happens at a nonzero local minimum, e.g. when ``rN > P``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..monitor import Monitor
from .jacobian import ResidualFunction
from .rank import Linearization, Route

__all__ = ["FitResult", "FitStatus", "levenberg_marquardt"]

FitStatus = Literal["interpolated", "stalled", "step_budget_exhausted"]


@dataclass
class FitResult:
    """Outcome of :func:`levenberg_marquardt`.

    Attributes:
        theta: final point (flat float64).
        status: ``"interpolated"`` (loss <= tol), ``"stalled"`` (no further decrease is
            possible: a nonzero minimum or a singular region) or
            ``"step_budget_exhausted"``.
        initial_loss, final_loss: mean squared error ``||R||^2 / m``.
        steps: Jacobians evaluated (accepted or rejected trial steps both count as one
            iteration only when a new Jacobian was built).
        rejected: trial steps rejected.
        damping: final ``mu``.
        loss_history: loss after every accepted step (the initial loss first).
        linearization: the factorisation at ``theta`` when the loop ended with one
            (reused by the rank stage), else None.
    """

    theta: Tensor
    status: FitStatus
    initial_loss: float
    final_loss: float
    steps: int
    rejected: int
    damping: float
    loss_history: list[float] = field(default_factory=list)
    linearization: Linearization | None = None

    @property
    def interpolated(self) -> bool:
        return self.status == "interpolated"


def levenberg_marquardt(
    fn: ResidualFunction,
    theta0: Tensor,
    *,
    route: Route,
    tol: float,
    max_steps: int,
    rtol: float | None = None,
    monitor: Monitor | None = None,
    gram_outer_chunk: int | None = None,
) -> FitResult:
    """Drive ``L(theta) = ||R(theta)||^2 / m`` to at most ``tol`` by Levenberg-Marquardt.

    Args:
        fn: residual function (float64).
        theta0: starting point (flat float64; not modified).
        route: how ``J`` is handled: ``"dense"`` or ``"gram"`` (see
            :class:`Linearization`).
        tol: target loss (> 0).
        max_steps: maximum number of Jacobian evaluations (>= 0).
        rtol: rank tolerance passed to the linearisations.
        monitor: progress (``loss`` in the message) and cancellation.
        gram_outer_chunk: outer block size of the Gram route.

    Returns:
        A :class:`FitResult`.

    Example:
        A 1-4-1 tanh net with biases fits 3 points: ``status == "interpolated"`` within a
        few steps, with ``final_loss < 1e-20``.
    """
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number > 0, got {tol}.")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}.")
    mon = monitor if monitor is not None else Monitor()
    # cancellation inside Jacobian / Gram builds, without their progress messages
    quiet = Monitor(should_cancel=mon.should_cancel, min_interval=mon.min_interval)
    theta = theta0.detach().clone()
    res = fn.residual(theta)
    m = fn.num_equations
    loss = float(res @ res) / m
    initial = loss
    history = [loss]
    if not math.isfinite(loss):
        raise RuntimeError(f"The initial loss is not finite ({loss}).")
    if loss <= tol:
        return FitResult(theta, "interpolated", initial, loss, 0, 0, 0.0, history)
    mu: float | None = None
    nu = 2.0
    steps = rejected = 0
    lin: Linearization | None = None
    status: FitStatus = "step_budget_exhausted"
    log_start = math.log10(max(initial, 1e-300))
    log_goal = math.log10(tol)
    while steps < max_steps:
        mon.check()
        lin = Linearization(fn, theta, route, rtol=rtol, monitor=quiet,
                            gram_outer_chunk=gram_outer_chunk)
        steps += 1
        smax2 = float(lin.rank_result.singular_values[0]) ** 2
        if smax2 == 0.0:
            status = "stalled"
            break
        if mu is None:
            mu = 1e-3 * smax2
        F = 0.5 * float(res @ res)
        accepted = False
        while True:
            mon.check()
            delta = lin.lm_step(mu)
            Jd = lin.J(delta)
            pred = F - 0.5 * float((res + Jd) @ (res + Jd))
            new_theta = theta + delta
            new_res = fn.residual(new_theta)
            F_new = 0.5 * float(new_res @ new_res)
            rho = (F - F_new) / pred if pred > 0 else -1.0
            if math.isfinite(F_new) and rho > 0:
                mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                accepted = True
                break
            rejected += 1
            mu *= nu
            nu *= 2.0
            if mu > 1e16 * smax2:
                break
        if not accepted:
            status = "stalled"
            break
        step_norm = float(torch.linalg.vector_norm(delta))
        theta, res = new_theta, new_res
        loss = 2.0 * F_new / m
        history.append(loss)
        lin = None
        frac = (log_start - math.log10(max(loss, 1e-300))) / max(log_start - log_goal, 1e-12)
        mon.report("fit", frac, f"step {steps}: loss {loss:.3e}")
        if loss <= tol:
            status = "interpolated"
            break
        tiny_step = step_norm <= 1e-15 * (float(torch.linalg.vector_norm(theta)) + 1e-15)
        if tiny_step or F - F_new <= 1e-12 * F:
            status = "stalled"
            break
    return FitResult(
        theta=theta,
        status=status,
        initial_loss=initial,
        final_loss=loss,
        steps=steps,
        rejected=rejected,
        damping=0.0 if mu is None else mu,
        loss_history=history,
        linearization=lin,
    )
