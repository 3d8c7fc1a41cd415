"""Unit tests of the rank rule, the residual map and its Jacobian (closed forms)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Problem
from landscope_service.diagnostics.manifold import (
    EPS64,
    Linearization,
    ResidualFunction,
    default_rtol,
    hessian_nullity,
    numerical_rank,
)


def test_default_rtol_rules() -> None:
    assert default_rtol("dense", 10, 41) == pytest.approx(41 * EPS64)
    assert default_rtol("gram", 2000, 10**6) == pytest.approx(math.sqrt(10**6 * EPS64))
    with pytest.raises(ValueError, match="route"):
        default_rtol("svd", 1, 1)  # type: ignore[arg-type]


def test_numerical_rank_cut_and_gap() -> None:
    s = torch.tensor([1.0, 1e-3, 1e-9, 1e-14, 0.0], dtype=torch.float64)
    # dense: rtol = 5 * eps = 1.1e-15 -> 1e-14 kept, 0 cut
    d = numerical_rank(s, route="dense", num_rows=5, num_cols=5)
    assert d.rank == 4 and d.gap_ratio is None  # the value below the cut is exactly 0
    assert d.sigma_above == 1e-14 and d.sigma_below == 0.0
    # gram: rtol = sqrt(5 eps) = 3.3e-8 -> 1e-9 cut
    g = numerical_rank(s, route="gram", num_rows=5, num_cols=5)
    assert g.rank == 2 and g.gap_ratio == pytest.approx(1e6)
    assert g.threshold == pytest.approx(math.sqrt(5 * EPS64))
    assert "sqrt" in g.rule
    # caller's rtol, unsorted input
    u = numerical_rank(s.flip(0), route="dense", num_rows=5, num_cols=5, rtol=1e-4)
    assert u.rank == 2 and "set by the caller" in u.rule
    assert torch.equal(u.singular_values, s)


def test_numerical_rank_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="vector"):
        numerical_rank(torch.ones(2, 2), route="dense", num_rows=2, num_cols=2)
    with pytest.raises(ValueError, match="rtol"):
        numerical_rank(torch.ones(2), route="dense", num_rows=2, num_cols=2, rtol=0.0)
    assert numerical_rank(torch.zeros(3), route="dense", num_rows=3, num_cols=3).rank == 0


def _linear_problem(n0: int, r: int, N: int, rank_x: int) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n0, r, bias=False)).double()
    basis = torch.randn(rank_x, n0, dtype=torch.float64)
    x = torch.randn(N, rank_x, dtype=torch.float64) @ basis  # rank(X) = rank_x
    y = torch.randn(N, r, dtype=torch.float64)
    return Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")


def test_jacobian_of_a_linear_layer_is_the_kronecker_product() -> None:
    # H(x) = W x: dH_k(x_mu)/dW[k', j] = delta_{k k'} x_mu[j]; row mu*r + k, column k'*n0 + j
    prob = _linear_problem(n0=5, r=3, N=6, rank_x=2)
    fn = ResidualFunction(prob, chunk_size=4)
    J = fn.jacobian(fn.initial_point())
    expected = torch.zeros(18, 15, dtype=torch.float64)
    for mu in range(6):
        for k in range(3):
            expected[mu * 3 + k, k * 5 : (k + 1) * 5] = prob.x[mu]
    assert torch.equal(J, expected)
    # rank(J) = r rank(X) = 6 on both routes
    for route in ("dense", "gram"):
        assert Linearization(fn, fn.initial_point(), route).rank == 6  # type: ignore[arg-type]


def test_residual_and_loss_match_pytorch_mse() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(7, 3), torch.randn(7, 2)
    prob = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")
    fn = ResidualFunction(prob, chunk_size=3)
    theta = fn.initial_point()
    assert theta.dtype == torch.float64
    with torch.no_grad():
        ref = torch.nn.functional.mse_loss(model.double()(x.double()), y.double())
    assert float(fn.loss(theta)) == pytest.approx(float(ref), rel=1e-12)
    R = fn.residual(theta)
    with torch.no_grad():
        assert torch.allclose(R, (model(x.double()) - y.double()).reshape(-1))


def test_hessian_at_an_exact_fit_is_gauss_newton() -> None:
    # Linear least squares with realisable targets: R = X W^T - Y is zero at W*, and
    # H = (2/m) J^T J exactly; nullity = P - rank(J) = 15 - 6.
    prob = _linear_problem(n0=5, r=3, N=6, rank_x=2)
    W = torch.randn(3, 5, dtype=torch.float64)
    prob = Problem(prob.model, {"0.weight": W}, prob.x, prob.x @ W.T, "mse")
    fn = ResidualFunction(prob)
    lin = Linearization(fn, fn.initial_point(), "dense")
    hn = hessian_nullity(lin, exact=True)
    assert hn.method == "exact" and hn.nullity == 9
    assert hn.residual_part_norm is not None and hn.residual_part_norm < 1e-13
    J = fn.jacobian(fn.initial_point())
    H = fn.loss_hessian(fn.initial_point())
    assert torch.allclose(H, (2 / 18) * J.T @ J, atol=1e-14)
    g = hessian_nullity(lin, exact=False)
    assert g.method == "gram" and g.nullity == 9


def test_residual_function_rejects_bad_input() -> None:
    model = nn.Sequential(nn.Linear(2, 3))
    x = torch.randn(4, 2)
    ce = Problem(model, dict(model.named_parameters()), x, torch.tensor([0, 1, 2, 0]),
                 "cross_entropy")
    with pytest.raises(ValueError, match="squared loss"):
        ResidualFunction(ce)
    bad = Problem(model, dict(model.named_parameters()), x, torch.randn(4, 2), "mse")
    with pytest.raises(ValueError, match="Shape mismatch"):
        ResidualFunction(bad)
    ok = Problem(model, dict(model.named_parameters()), x, torch.randn(4, 3), "mse")
    fn = ResidualFunction(ok)
    with pytest.raises(ValueError, match="Shape mismatch"):
        fn.residual(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="float64"):
        fn.residual(torch.zeros(fn.num_params, dtype=torch.float32))
    with pytest.raises(ValueError, match="chunk_size"):
        ResidualFunction(ok, chunk_size=0)
