"""Small MLPs against the dense Hessian of ``torch.func.hessian`` (float64).

Cases: tanh, relu and quadratic activations, with and without bias, mse and
cross-entropy. Each assertion states its tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscope_service.diagnostics import Problem, RunContext, flatten, unflatten
from landscope_service.diagnostics.hessian import (
    GGNOperator,
    HessianOperator,
    lanczos_extremes,
    lanczos_quadrature,
    rademacher,
    run_hessian_spectrum,
)

DT = torch.float64


class Quadratic(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * x


ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU, "quadratic": Quadratic}


def _mlp_problem(act: str, bias: bool, loss: str, seed: int = 0) -> Problem:
    torch.manual_seed(seed)
    n0, h, r, n = 4, 6, 3, 32
    model = nn.Sequential(nn.Linear(n0, h, bias=bias), ACTS[act](), nn.Linear(h, h, bias=bias),
                          ACTS[act](), nn.Linear(h, r, bias=bias)).to(DT)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n, n0, generator=g, dtype=DT)
    y = (torch.randint(0, r, (n,), generator=g) if loss == "cross_entropy"
         else torch.randn(n, r, generator=g, dtype=DT))
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return Problem(model, params, x, y, loss)  # type: ignore[arg-type]


def _dense(pr: Problem) -> Tensor:
    theta = flatten(pr.params)
    h = torch.func.hessian(lambda t: pr.loss_fn(unflatten(t, pr.params), pr.x, pr.y))(theta)
    return 0.5 * (h + h.T)


CASES = [(a, b, lo) for a in ACTS for b in (True, False) for lo in ("mse", "cross_entropy")]


@pytest.mark.parametrize(("act", "bias", "loss"), CASES)
def test_extremes_against_dense(act: str, bias: bool, loss: str) -> None:
    pr = _mlp_problem(act, bias, loss)
    h = _dense(pr)
    ev = torch.linalg.eigvalsh(h).numpy()
    norm = float(np.abs(ev).max())
    v = torch.randn(h.shape[0], 3, dtype=DT, generator=torch.Generator().manual_seed(9))
    # the default operator reproduces H V to 1e-12 relative to ||H||
    torch.testing.assert_close(HessianOperator(pr) @ v, h @ v, rtol=0, atol=1e-12 * norm)
    res = lanczos_extremes(HessianOperator(pr), k_top=3, k_bottom=3, tol=1e-11, seed=1)
    assert res.status == "converged"
    blk = lanczos_extremes(HessianOperator(pr), k_top=3, k_bottom=3, tol=1e-11, seed=1,
                           block_size=4)
    assert blk.status == "converged"
    # top-3 and bottom-3 within 1e-8 relative to max(|lambda|, 1e-2 ||H||): eigenvalues
    # below 1e-2 ||H|| (relu zeros, the bottom of a PSD spectrum) are judged against 1e-2 ||H||
    for got, want in ((res.top, ev[::-1][:3]), (res.bottom, ev[:3]),
                      (blk.top, ev[::-1][:3]), (blk.bottom, ev[:3])):
        scale = np.maximum(np.abs(want), 1e-2 * norm)
        assert np.all(np.abs(got - want) <= 1e-8 * scale), (got, want)
    # the reported residuals are true residual norms within 1e-9 ||H||
    assert np.all(res.top_residuals <= 1e-11 * norm * 1.0001)


@pytest.mark.parametrize(("act", "bias", "loss"), [("tanh", True, "mse"),
                                                  ("quadratic", False, "cross_entropy"),
                                                  ("relu", True, "cross_entropy")])
def test_runner_iterative_against_dense(act: str, bias: bool, loss: str) -> None:
    pr = _mlp_problem(act, bias, loss, seed=1)
    h = _dense(pr)
    ev = torch.linalg.eigvalsh(h).numpy()
    out = run_hessian_spectrum(pr, {"mode": "iterative", "top_k": 2, "bottom_k": 2,
                                    "tol": 1e-10, "density_probes": 12, "density_steps": 20},
                               RunContext(seed=4))
    res = out.result
    assert res["status"] == "converged" and res["warnings"] == []
    norm = float(np.abs(ev).max())
    # extremes within 1e-8 relative to max(|lambda|, 1e-2 ||H||)
    for got, want in ((res["top"]["eigenvalues"], ev[::-1][:2]),
                      (res["bottom"]["eigenvalues"], ev[:2])):
        assert np.all(np.abs(np.asarray(got) - want) <= 1e-8 * np.maximum(np.abs(want),
                                                                           1e-2 * norm))
    # trace estimates within 3 standard errors of the exact trace
    tr = float(ev.sum())
    for key in ("hutchinson", "hutchpp"):
        est = res["trace"][key]
        assert abs(est["estimate"] - tr) <= 3 * est["std_error"], (key, est, tr)
    # density's first two moments (P^-1 tr H^k) within 3 standard errors of the exact ones
    for k in (1, 2):
        m, se = res["density"]["moments"][k - 1], res["density"]["moments_std_error"][k - 1]
        assert abs(m - float(np.mean(ev ** k))) <= 3 * se
    # the quadrature bracket of the negative count holds the exact count (3 SE of noise)
    p = ev.size
    thr = res["negative"]["threshold"]
    true_neg = int(np.sum(ev < -thr))
    lo, hi = res["density"]["negative_count_bounds"]
    se = res["density"]["negative_mass_std_error"] * p
    assert lo - 3 * se - 0.5 <= true_neg <= hi + 3 * se + 0.5
    # every probe's Ritz values lie inside [lambda_min, lambda_max] (to 1e-10 ||H||)
    assert res["ritz_bounds"]["max_node"] <= ev[-1] + 1e-10 * norm
    assert res["ritz_bounds"]["min_node"] >= ev[0] - 1e-10 * norm
    # the broadened density integrates to 1 (trapezoid rule, 1e-3)
    grid, vals = np.asarray(res["density"]["grid"]), np.asarray(res["density"]["values"])
    assert abs(float(np.trapezoid(vals, grid)) - 1.0) <= 1e-3


def test_quadrature_is_exact_for_low_degree_moments() -> None:
    pr = _mlp_problem("tanh", True, "cross_entropy", seed=2)
    h = _dense(pr)
    p = h.shape[0]
    g = rademacher(p, 11, dtype=DT, device=torch.device("cpu"))
    quad = lanczos_quadrature(HessianOperator(pr), g, 8)
    q = g / math.sqrt(p)
    # Gauss quadrature with m = 8 nodes is exact for degree < 16: check 1..10 to 1e-10 rel
    hk = torch.eye(p, dtype=DT)
    for k in range(1, 11):
        hk = hk @ h
        exact = float(q @ hk @ q)
        approx = float(np.sum(quad.weights * quad.nodes ** k))
        assert approx == pytest.approx(exact, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_exact_mode_matches_dense(loss: str) -> None:
    pr = _mlp_problem("tanh", True, loss, seed=3)
    ev = torch.linalg.eigvalsh(_dense(pr)).numpy()
    res = run_hessian_spectrum(pr, {"top_k": 3, "bottom_k": 3, "blocks": True},
                               RunContext()).result
    assert res["exact"] is True
    # exact eigenvalues and trace to 1e-10 relative / 1e-12 absolute
    np.testing.assert_allclose(res["top"]["eigenvalues"], ev[::-1][:3], rtol=1e-10)
    np.testing.assert_allclose(res["bottom"]["eigenvalues"], ev[:3], rtol=1e-10, atol=1e-14)
    assert res["trace"]["estimate"] == pytest.approx(float(ev.sum()), rel=1e-10, abs=1e-14)
    # exact-mode density moments equal the spectrum's to 1e-12
    assert res["density"]["moments"][0] == pytest.approx(float(ev.mean()), rel=1e-12, abs=1e-15)
    assert res["density"]["moments"][1] == pytest.approx(float((ev ** 2).mean()), rel=1e-12)
    thr = 1e-5 * float(np.abs(ev).max())
    assert res["negative"]["count"] == int(np.sum(ev < -thr))
    # block traces sum to the full trace (diagonal blocks cover the diagonal), 1e-10 rel
    assert sum(b["trace"] for b in res["blocks"]) == pytest.approx(float(ev.sum()), rel=1e-10)


def _residual_hessian(pr: Problem) -> Tensor:
    """R = sum_mu sum_k (dL/df_k)(x_mu) d^2 f_k(x_mu)/dtheta^2, built independently."""
    theta = flatten(pr.params)
    out = pr.forward(pr.params, pr.x).detach().requires_grad_(True)
    from landscope_service.diagnostics.problem import loss_value

    gout = torch.autograd.grad(loss_value(pr.loss, out, pr.y), out)[0].detach()

    def contracted(t: Tensor) -> Tensor:
        return (pr.forward(unflatten(t, pr.params), pr.x) * gout).sum()

    r = torch.func.hessian(contracted)(theta)
    return 0.5 * (r + r.T)


@pytest.mark.parametrize(("act", "loss"), [("tanh", "mse"), ("tanh", "cross_entropy"),
                                           ("quadratic", "mse")])
def test_ggn_plus_residual_is_hessian(act: str, loss: str) -> None:
    pr = _mlp_problem(act, True, loss, seed=4)
    h = _dense(pr)
    p = h.shape[0]
    g_dense = GGNOperator(pr) @ torch.eye(p, dtype=DT)
    g_dense = 0.5 * (g_dense + g_dense.T)
    r_dense = _residual_hessian(pr)
    scale = float(torch.linalg.matrix_norm(h, 2))
    # H = G + R to 1e-12 ||H||
    torch.testing.assert_close(g_dense + r_dense, h, rtol=0, atol=1e-12 * scale)
    # G is positive semi-definite (smallest eigenvalue >= -1e-12 ||H||)
    assert float(torch.linalg.eigvalsh(g_dense)[0]) >= -1e-12 * scale
    # closed form of G: mse -> 2/(N r) J^T J; cross-entropy -> J^T blockdiag(diag p - pp^T)/N J
    jac = torch.func.jacrev(lambda t: pr.forward(unflatten(t, pr.params), pr.x))(
        flatten(pr.params))  # (N, r, P)
    n, r = jac.shape[0], jac.shape[1]
    if loss == "mse":
        g_ref = 2.0 / (n * r) * torch.einsum("nrp,nrq->pq", jac, jac)
    else:
        prob = torch.softmax(pr.forward(pr.params, pr.x), dim=1)
        lam = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]
        g_ref = torch.einsum("nrp,nrs,nsq->pq", jac, lam, jac) / n
    torch.testing.assert_close(g_dense, g_ref, rtol=0, atol=1e-12 * scale)
    # the runner's split on the top eigenvector sums to the eigenvalue (1e-10 relative)
    res = run_hessian_spectrum(pr, {"mode": "exact", "top_k": 2, "bottom_k": 1},
                               RunContext()).result
    for part in res["ggn_split"]["top"] + res["ggn_split"]["bottom"]:
        assert part["ggn"] + part["residual"] == pytest.approx(part["eigenvalue"], rel=1e-10)
        assert part["ggn"] >= -1e-12 * scale
