"""The Gram route (J J^T from blocks, J never formed) and the dense route agree.

Both ranks, both Gram matrices, and the leading singular values, wherever both run;
including rank-deficient J (linear nets), m > P (the P x P normal matrix), r > 1 and
block sizes that do not divide N.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Monitor, Problem, RunContext
from landscope_service.diagnostics.manifold import (
    Linearization,
    ResidualFunction,
    run_minimizer_manifold,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _problem(layers: list[nn.Module], N: int, n0: int, r: int, device: str,
             seed: int) -> Problem:
    torch.manual_seed(seed)
    model = nn.Sequential(*layers).double().to(device)
    x = torch.randn(N, n0, dtype=torch.float64, device=device)
    y = torch.randn(N, r, dtype=torch.float64, device=device)
    return Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")


CASES = {
    "tanh_wide": (lambda: [nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)], 10, 3, 1, 10),
    "softplus_r2": (lambda: [nn.Linear(4, 6), nn.Softplus(), nn.Linear(6, 2)], 9, 4, 2, 18),
    "tanh_tall": (lambda: [nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)], 25, 2, 1, 13),
    "linear_deficient": (lambda: [nn.Linear(3, 8), nn.Linear(8, 1)], 12, 3, 1, 4),
    "tanh_deep": (lambda: [nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(),
                           nn.Linear(6, 2)], 11, 3, 2, 22),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [1, 4, None])
@pytest.mark.parametrize("case", sorted(CASES))
def test_gram_and_dense_agree(case: str, chunk: int | None, device: str) -> None:
    layers, N, n0, r, expected_rank = CASES[case]
    prob = _problem(layers(), N, n0, r, device, seed=11)
    fn = ResidualFunction(prob, chunk_size=chunk)
    theta = fn.initial_point()
    dense = Linearization(fn, theta, "dense")
    gram = Linearization(fn, theta, "gram", gram_outer_chunk=3)
    assert dense.rank == gram.rank == expected_rank
    # Gram matrix equals J J^T (or J^T J when m > P) of the dense J
    J = fn.jacobian(theta)
    side = fn.gram_side()
    K = fn.gram(theta, side, outer_chunk=3)
    ref = J @ J.T if side == "rows" else J.T @ J
    assert torch.allclose(K, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
    k = expected_rank
    sd = dense.rank_result.singular_values[:k]
    sg = gram.rank_result.singular_values[:k]
    assert torch.allclose(sg, sd, rtol=1e-6)
    # projector onto range(J^T) agrees too
    g = torch.randn(fn.num_params, dtype=torch.float64, device=device,
                    generator=torch.Generator(device=device).manual_seed(0))
    assert torch.allclose(dense.project_row_space(g), gram.project_row_space(g), atol=1e-8)


@pytest.mark.parametrize("case", ["tanh_wide", "softplus_r2", "linear_deficient"])
def test_runner_routes_agree(case: str) -> None:
    layers, N, n0, r, _ = CASES[case]
    results = {}
    for route in ("dense", "gram"):
        prob = _problem(layers(), N, n0, r, "cpu", seed=12)
        if case == "linear_deficient":  # realisable targets so that the fit is exact
            A = torch.randn(n0, r, dtype=torch.float64)
            prob = Problem(prob.model, prob.params, prob.x, prob.x @ A + 0.3, "mse")
        out = run_minimizer_manifold(
            prob, {"route": route, "walk_steps": 1, "hessian_exact_max_params": 0},
            RunContext(monitor=Monitor()),
        )
        results[route] = out.result
    d, g = results["dense"], results["gram"]
    assert d["route"] == "dense" and g["route"] == "gram"
    assert d["fit"]["interpolated"] and g["fit"]["interpolated"]
    assert d["rank"]["rank"] == g["rank"]["rank"]
    assert d["dimension"]["measured"] == g["dimension"]["measured"]
    assert g["hessian"]["method"] == "gram"
    assert g["dimension"]["hessian_nullity"] == d["dimension"]["hessian_nullity"]
    assert "sqrt" in g["rank"]["rule"] and "sqrt" not in d["rank"]["rule"]
