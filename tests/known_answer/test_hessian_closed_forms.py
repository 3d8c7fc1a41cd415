"""Closed-form Hessians: linear least squares and a deep-linear saddle of known index.

float64 throughout; every assertion states its tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.hessian import (
    GGNOperator,
    HessianOperator,
    dense_hessian,
    lanczos_extremes,
    run_hessian_spectrum,
)

DT = torch.float64


def _problem(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "mse",
             batch_size: int | None = None) -> Problem:
    model = model.to(DT)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return Problem(model, params, x, y, loss, batch_size=batch_size)  # type: ignore[arg-type]


def _least_squares_hessian(x: torch.Tensor, r: int, bias: bool) -> torch.Tensor:
    """H of L = (N r)^-1 sum_mu ||W x_mu + b - y_mu||^2 in flatten order [W (r x n0), b].

    Per output k the pair (W_k, b_k) sees the Gram matrix 2 Xa^T Xa / (N r), Xa = [X, 1];
    outputs do not couple.
    """
    n, n0 = x.shape
    xa = torch.cat([x, torch.ones(n, 1, dtype=DT)], 1) if bias else x
    a = 2 * xa.T @ xa / (n * r)
    p = r * n0 + (r if bias else 0)
    h = torch.zeros(p, p, dtype=DT)
    for k in range(r):
        idx = list(range(k * n0, (k + 1) * n0)) + ([r * n0 + k] if bias else [])
        h[np.ix_(idx, idx)] = a
    return h


@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_least_squares_dense_and_products(r: int, bias: bool, batch_size: int | None) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=g, dtype=DT)
    y = torch.randn(30, r, generator=g, dtype=DT)
    pr = _problem(nn.Sequential(nn.Linear(4, r, bias=bias)), x, y, batch_size=batch_size)
    ref = _least_squares_hessian(x, r, bias)
    # dense Hessian equals the closed form to 1e-12 (absolute; entries are O(1))
    torch.testing.assert_close(dense_hessian(pr), ref, rtol=0, atol=1e-12)
    v = torch.randn(ref.shape[0], 5, generator=g, dtype=DT)
    for variant in ("double_backward", "forward_over_reverse", "reverse_over_reverse",
                    "vmap_forward_over_reverse"):
        op = HessianOperator(pr, variant)
        # every HVP variant reproduces H V to 1e-12 absolute
        torch.testing.assert_close(op @ v, ref @ v, rtol=0, atol=1e-12)
        assert op.num_products == 5
    # a linear model has no residual part: G = H to 1e-12
    torch.testing.assert_close(GGNOperator(pr) @ v, ref @ v, rtol=0, atol=1e-12)


def test_least_squares_lanczos_extremes() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 12, generator=g, dtype=DT) * torch.linspace(0.2, 3, 12, dtype=DT)
    y = torch.randn(50, 1, generator=g, dtype=DT)
    pr = _problem(nn.Sequential(nn.Linear(12, 1)), x, y)
    ev = torch.linalg.eigvalsh(_least_squares_hessian(x, 1, True)).numpy()
    res = lanczos_extremes(HessianOperator(pr), k_top=3, k_bottom=2, tol=1e-11, seed=0)
    assert res.status == "converged"
    # eigenvalues within 1e-8 relative
    np.testing.assert_allclose(res.top, ev[::-1][:3], rtol=1e-8)
    np.testing.assert_allclose(res.bottom, ev[:2], rtol=1e-8)


@pytest.mark.parametrize("hidden", [1, 3])
def test_deep_linear_saddle_known_index(hidden: int) -> None:
    """L = (N r)^-1 sum ||W2 W1 x - y||^2 at W1 = W2 = 0 (a critical point).

    The Hessian is [[0, B], [B^T, 0]] with B the bilinear form -2/(N r) tr(W2 W1 X^T Y):
    eigenvalues +-2 sigma_j(X^T Y)/(N r), each `hidden` times, zeros otherwise, so the
    Morse index is hidden * rank(X^T Y).
    """
    g = torch.Generator().manual_seed(3)
    n, n0, r = 20, 4, 3
    x = torch.randn(n, n0, generator=g, dtype=DT)
    y = torch.randn(n, r, generator=g, dtype=DT)
    model = nn.Sequential(nn.Linear(n0, hidden, bias=False), nn.Linear(hidden, r, bias=False))
    pr = _problem(model, x, y)
    pr.params = {k: torch.zeros_like(v) for k, v in pr.params.items()}
    sv = torch.linalg.svdvals(x.T @ y).numpy() * 2 / (n * r)
    p = pr.num_params
    expected = np.sort(np.concatenate([np.repeat(sv, hidden), -np.repeat(sv, hidden),
                                       np.zeros(p - 2 * hidden * sv.size)]))
    index = hidden * int(np.sum(sv > 1e-12))
    out = run_hessian_spectrum(pr, {"mode": "exact", "top_k": 2, "bottom_k": 2}, RunContext())
    res = out.result
    # exact spectrum equals the closed form to 1e-12 absolute
    np.testing.assert_allclose(res["density"]["nodes"][0], expected, atol=1e-12)
    assert res["negative"]["count"] == index
    assert res["theory"]["verdict"] == "saddle"
    assert res["grad_norm"] == pytest.approx(0.0, abs=1e-14)
    if hidden == 1:
        # iterative path: bottom eigenvalue -2 sigma_max/(N r) to 1e-8 relative, saddle verdict
        it = run_hessian_spectrum(pr, {"mode": "iterative", "top_k": 1, "bottom_k": 1,
                                       "tol": 1e-10, "density_probes": 4}, RunContext(seed=5))
        r2 = it.result
        assert r2["status"] == "converged"
        assert r2["bottom"]["eigenvalues"][0] == pytest.approx(-sv[0], rel=1e-8)
        assert r2["top"]["eigenvalues"][0] == pytest.approx(sv[0], rel=1e-8)
        assert r2["theory"]["verdict"] == "saddle"
        # SLQ index estimate within 3 standard errors of the true index (+-0.5 rounding)
        est = r2["negative"]["count_estimate"]
        se = r2["density"]["negative_mass_std_error"] * p
        assert abs(est - index) <= 3 * se + 0.5
        # the Chebyshev-Markov-Stieltjes bracket holds the true index (3 SE of probe noise)
        lo, hi = r2["density"]["negative_count_bounds"]
        assert lo - 3 * se - 0.5 <= index <= hi + 3 * se + 0.5


def test_block_lanczos_resolves_repeated_eigenvalues() -> None:
    """r = 3 outputs: every eigenvalue of H = I_3 (x) 2 Xa^T Xa / (3N) is triple.

    A single start vector sees one direction per eigenspace; a block of 3 finds all copies.
    """
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 10, generator=g, dtype=DT) * torch.linspace(0.3, 2, 10, dtype=DT)
    y = torch.randn(40, 3, generator=g, dtype=DT)
    pr = _problem(nn.Sequential(nn.Linear(10, 3)), x, y)
    ev = torch.linalg.eigvalsh(_least_squares_hessian(x, 3, True)).numpy()
    res = lanczos_extremes(HessianOperator(pr), k_top=4, k_bottom=3, tol=1e-11, seed=0,
                           block_size=3)
    assert res.status == "converged"
    # the triple top eigenvalue three times and the next one; the triple bottom: 1e-8 rel
    np.testing.assert_allclose(res.top, ev[::-1][:4], rtol=1e-8)
    np.testing.assert_allclose(res.bottom, ev[:3], rtol=1e-8)
