"""Known answers of the walk along the zero-loss manifold.

On M = {R = 0}: a tangent step t in null(J) leaves R = O(h^2), so L(theta + h t) = O(h^4)
(halving h divides the loss by ~16), and the Gauss-Newton retraction returns to L <= tol;
a step u orthogonal to null(J) gives R = h J u + O(h^2), L = O(h^2) (halving: ~4).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Monitor, Problem, RunContext
from landscope_service.diagnostics.manifold import (
    Linearization,
    ResidualFunction,
    levenberg_marquardt,
    run_minimizer_manifold,
    walk_manifold,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = 1e-20


def _fitted(device: str, route: str = "dense") -> tuple[Problem, ResidualFunction, Linearization]:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double().to(device)
    x = torch.randn(10, 3, dtype=torch.float64, device=device)
    y = torch.randn(10, 1, dtype=torch.float64, device=device)
    prob = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")
    fn = ResidualFunction(prob)
    fit = levenberg_marquardt(fn, fn.initial_point(), route=route, tol=TOL, max_steps=100)
    assert fit.interpolated
    return prob, fn, Linearization(fn, fit.theta, route)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("route", ["dense", "gram"])
def test_walk_stays_on_the_zero_set_and_control_step_leaves_it(device: str, route: str) -> None:
    prob, fn, lin = _fitted(device, route)
    gen = torch.Generator(device=device).manual_seed(0)
    h = 0.05
    w = walk_manifold(fn, lin, steps=6, step_length=h, tol=TOL, retract_max_steps=20,
                      generator=gen)
    assert w.steps_done == 6 and w.stopped_reason is None
    assert w.max_loss <= TOL
    # an independent check of the end point: PyTorch's own mse on the problem's model
    final = fn.params(w.final_theta)
    assert float(prob.loss_fn(final, prob.x, prob.y)) <= TOL
    # each step moves ~h (retraction corrections are O(h^2))
    assert w.path_length == pytest.approx(6 * h, rel=0.05)
    assert w.max_retraction_correction < 0.1 * h
    assert 0 < w.displacement <= w.path_length + 1e-12
    c = w.control
    assert c is not None
    assert c.loss_after > 1e6 * TOL  # the orthogonal step raises the loss
    assert c.loss_after > 100 * c.tangent_loss  # far more than a tangent step of equal length


def test_tangent_and_orthogonal_loss_orders() -> None:
    _, fn, lin = _fitted("cpu")
    g = torch.Generator().manual_seed(1)
    t = lin.project_null_space(torch.randn(fn.num_params, generator=g, dtype=torch.float64))
    u = lin.project_row_space(torch.randn(fn.num_params, generator=g, dtype=torch.float64))
    t, u = t / t.norm(), u / u.norm()
    assert float(lin.J(t).norm()) < 1e-10  # t is in null(J)
    theta = lin.theta
    hs = [1e-2, 5e-3]
    lt = [float(fn.loss(theta + h * t)) for h in hs]
    lu = [float(fn.loss(theta + h * u)) for h in hs]
    assert math.log2(lt[0] / lt[1]) == pytest.approx(4.0, abs=0.3)  # O(h^4)
    assert math.log2(lu[0] / lu[1]) == pytest.approx(2.0, abs=0.3)  # O(h^2)


def test_runner_walk_block() -> None:
    prob, _, _ = _fitted("cpu")
    out = run_minimizer_manifold(prob, {"walk_steps": 4, "walk_step_length": 0.02},
                                 RunContext(monitor=Monitor(), seed=3))
    w = out.result["walk"]
    assert w["performed"] is True and w["steps_done"] == 4
    assert w["within_tolerance"] is True and w["max_loss"] <= out.result["fit"]["tolerance"]
    assert w["path_length"] == pytest.approx(0.08, rel=0.05)
    assert w["control"]["loss_rise"] > 1e6 * out.result["fit"]["tolerance"]
    # same seed, same walk
    again = run_minimizer_manifold(prob, {"walk_steps": 4, "walk_step_length": 0.02},
                                   RunContext(monitor=Monitor(), seed=3))
    assert again.result["walk"]["displacement"] == w["displacement"]
