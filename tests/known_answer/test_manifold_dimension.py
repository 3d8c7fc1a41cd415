"""Known answers of minimizer_manifold: dimension of the zero-loss set (Cooper).

For smooth nonlinear nets fitted exactly to generic data the measured dimension
``P - rank(J)`` equals ``P - rN`` (the expected value is written out by hand below, not
recomputed from the code under test); the Hessian nullity at the fit equals it too,
since ``H = (2/(rN)) J^T J`` there. Underparameterised nets are reported as not
interpolating; a linear net has a larger zero set (rank(J) <= r (n0 + 1)).
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Monitor, Problem, RunContext
from landscope_service.diagnostics.manifold import run_minimizer_manifold

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _mlp(widths: list[int], act: type[nn.Module] | None, bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(act() if act is not None else nn.Identity())
    return nn.Sequential(*layers)


def _problem(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str,
             dtype: torch.dtype = torch.float64) -> Problem:
    model = model.to(device=device, dtype=dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    return Problem(model, params, x.to(device, dtype), y.to(device, dtype), "mse")


def _run(problem: Problem, **options: object) -> dict:
    out = run_minimizer_manifold(problem, dict(options), RunContext(monitor=Monitor()))
    json.dumps(out.result, allow_nan=False)  # JSON only, finite floats
    return out.result


# (widths, activation, bias, N, P by hand, expected dimension P - rN by hand)
CASES = [
    ([3, 8, 1], nn.Tanh, True, 10, 41, 31),        # the example
    ([3, 8, 1], nn.Tanh, False, 10, 32, 22),
    ([4, 5, 3], nn.Tanh, False, 4, 35, 23),        # r = 3: 35 - 12
    ([2, 6, 6, 2], nn.Softplus, False, 7, 60, 46),  # 12 + 36 + 12; rN = 14
    ([3, 10, 1], nn.Softplus, True, 15, 51, 36),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("widths", "act", "bias", "N", "P", "expected"), CASES)
def test_smooth_nets_measured_dimension_is_P_minus_rN(
    device: str, widths: list[int], act: type[nn.Module], bias: bool, N: int, P: int,
    expected: int,
) -> None:
    torch.manual_seed(1)
    model = _mlp(widths, act, bias)
    x = torch.randn(N, widths[0])
    y = torch.randn(N, widths[-1])
    res = _run(_problem(model, x, y, device), walk_steps=0, control_step=False)
    assert res["num_params"] == P
    assert res["fit"]["interpolated"] is True
    assert res["fit"]["final_loss"] <= 1e-20
    assert res["dimension"]["predicted"] == expected
    assert res["dimension"]["measured"] == expected
    assert res["dimension"]["hessian_nullity"] == expected
    assert res["hessian"]["method"] == "exact"
    # the cut is not a borderline call: kept values are far above the threshold
    assert res["rank"]["gap"]["margin_above_threshold"] > 1e6
    th = res["theory"]
    assert th["applies"] is True and th["agrees"] is True
    assert th["predicted_dimension"] == th["measured_dimension"] == expected


def test_float32_problem_is_fitted_in_float64() -> None:
    torch.manual_seed(2)
    model = _mlp([3, 8, 1], nn.Tanh, True)
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    prob = _problem(model, x, y, "cpu", torch.float32)
    before = {k: v.clone() for k, v in prob.params.items()}
    res = _run(prob, walk_steps=0, control_step=False)
    assert res["input_dtype"] == "float32" and res["compute_dtype"] == "float64"
    # float32 could not reach 1e-20; float64 does
    assert res["fit"]["final_loss"] <= 1e-20
    assert res["dimension"]["measured"] == 31
    for k, v in prob.params.items():  # the problem is untouched
        assert v.dtype == torch.float32 and torch.equal(v, before[k])


def test_underparameterised_is_reported_as_not_interpolating() -> None:
    torch.manual_seed(0)
    model = _mlp([3, 3, 1], nn.Tanh, True)  # P = 12 + 4 = 16
    x, y = torch.randn(30, 3), torch.randn(30, 1)  # rN = 30 > P
    res = _run(_problem(model, x, y, "cpu"), fit_max_steps=60)
    fit = res["fit"]
    assert res["num_params"] == 16
    assert fit["interpolated"] is False
    assert fit["status"] in ("stalled", "step_budget_exhausted")
    assert fit["final_loss"] > 1e-3
    assert "Not interpolating" in fit["message"] and "rN = 30 > P = 16" in fit["message"]
    assert res["dimension"]["predicted"] == -14
    assert res["dimension"]["measured"] is None and res["dimension"]["agrees"] is None
    assert res["walk"]["performed"] is False
    hyp = {h["name"]: h for h in res["theory"]["hypotheses"]}
    assert hyp["overparameterised (P >= rN)"]["holds"] is False
    assert res["theory"]["applies"] is False
    assert any("no exact fit" in n for n in res["theory"]["notes"])


@pytest.mark.parametrize("device", DEVICES)
def test_linear_network_zero_set_is_larger_than_P_minus_rN(device: str) -> None:
    # H(x) = W2 (W1 x + b1) + b2 realises only affine maps R^3 -> R: rank(J) <= 4.
    torch.manual_seed(3)
    model = _mlp([3, 8, 1], None, True)  # Linear, Identity, Linear: P = 41
    x = torch.randn(10, 3, dtype=torch.float64)
    A, b = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, dtype=torch.float64)
    y = x @ A.T + b  # realisable targets, so an exact fit exists
    res = _run(_problem(model, x, y, device), walk_steps=2)
    assert res["fit"]["interpolated"] is True
    assert res["rank"]["rank"] == 4
    assert res["dimension"]["predicted"] == 31
    assert res["dimension"]["measured"] == 37 > 31
    assert res["dimension"]["hessian_nullity"] == 37
    th = res["theory"]
    assert th["applies"] is False and th["agrees"] is False
    hyp = {h["name"]: h for h in th["hypotheses"]}
    assert hyp["smooth nonlinear activation"]["holds"] is False
    assert any("GL(n_l)" in n and "r (n0 + 1) = 4" in n for n in th["notes"])
    # the larger zero set is walkable too
    assert res["walk"]["steps_done"] == 2 and res["walk"]["within_tolerance"] is True


def test_linear_network_without_bias_two_hidden_layers() -> None:
    # H(x) = W3 W2 W1 x, x in R^2: rank(J) = r n0 = 2; P = 8 + 16 + 4 = 28, rN = 6.
    torch.manual_seed(4)
    model = _mlp([2, 4, 4, 1], None, False)
    x = torch.randn(6, 2, dtype=torch.float64)
    y = x @ torch.tensor([[0.7], [-1.3]], dtype=torch.float64)
    res = _run(_problem(model, x, y, "cpu"), walk_steps=0, control_step=False)
    assert res["fit"]["interpolated"] is True
    assert res["dimension"]["predicted"] == 22
    assert res["dimension"]["measured"] == 26


def test_relu_theory_does_not_apply_but_is_measured() -> None:
    torch.manual_seed(5)
    model = _mlp([3, 8, 1], nn.ReLU, True)
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    res = _run(_problem(model, x, y, "cpu"), walk_steps=0, control_step=False)
    th = res["theory"]
    assert th["applies"] is False
    hyp = {h["name"]: h for h in th["hypotheses"]}
    assert hyp["smooth nonlinear activation"]["holds"] is False
    assert "ReLU" in hyp["smooth nonlinear activation"]["detail"]
    assert any("piecewise-linear" in n for n in th["notes"])
    assert res["dimension"]["measured"] is not None  # measured anyway


def test_quadratic_activation_rank_bounded_by_polynomial_space() -> None:
    # Two-layer quadratic net, no biases: H(x) = x^T (sum_j a_j w_j w_j^T) x spans the
    # 3 (3 + 1) / 2 = 6 quadratic forms of R^3, so rank(J) <= 6 < rN = 10.
    class Quadratic(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z**2

    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 8, bias=False), Quadratic(), nn.Linear(8, 1, bias=False))
    x = torch.randn(10, 3, dtype=torch.float64)
    Q = torch.randn(3, 3, dtype=torch.float64)
    y = ((x @ (Q + Q.T)) * x).sum(1, keepdim=True)  # a realisable quadratic form
    res = _run(_problem(model, x, y, "cpu"), walk_steps=0, control_step=False)
    assert res["fit"]["interpolated"] is True
    assert res["rank"]["rank"] == 6
    assert res["dimension"]["measured"] == 32 - 6
    hyp = {h["name"]: h for h in res["theory"]["hypotheses"]}
    assert hyp["smooth nonlinear activation"]["holds"] is True
    assert hyp["expressive enough (polynomial activation)"]["holds"] is False
    assert res["theory"]["applies"] is False
