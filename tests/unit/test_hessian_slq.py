"""One SLQ probe's typed result against a dense float64 matrix (tolerances stated inline)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from landscope_service.diagnostics.hessian import DenseOperator, QuadratureResult
from landscope_service.diagnostics.hessian.krylov import rademacher
from landscope_service.diagnostics.hessian.slq import lanczos_quadrature


def _matrix(p: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(p, p, generator=g, dtype=torch.float64)
    return 0.5 * (a + a.T)


@pytest.mark.parametrize("reorthogonalize", [False, True])
def test_typed_result_fields_hold_their_definitions(reorthogonalize: bool) -> None:
    a = _matrix(12, 3)
    v = rademacher(12, 4, dtype=torch.float64, device=torch.device("cpu"))
    quad = lanczos_quadrature(DenseOperator(a), v, 6, reorthogonalize=reorthogonalize)
    assert isinstance(quad, QuadratureResult)
    q1 = v / v.norm()
    assert torch.allclose(quad.q1, q1, rtol=0, atol=1e-15)
    # first_product is A q_1 itself (the trace estimators rely on it), to rounding
    assert torch.allclose(quad.first_product, a @ q1, rtol=0, atol=1e-13)
    assert quad.products == 6 and quad.nodes.shape == quad.weights.shape == (6,)
    assert abs(float(quad.weights.sum()) - 1.0) <= 1e-12
    assert np.all(np.diff(quad.nodes) > 0)
    # Gauss quadrature with m = 6 nodes is exact for degree <= 11: q1^T A^3 q1
    exact = float(q1 @ torch.linalg.matrix_power(a, 3) @ q1)
    assert abs(float(np.sum(quad.weights * quad.nodes**3)) - exact) <= 1e-10 * abs(exact) + 1e-10
    with pytest.raises(dataclasses.FrozenInstanceError):
        quad.products = 0  # type: ignore[misc]


def test_invariant_subspace_stops_early_and_is_exact() -> None:
    # A = diag(1, 2, 3, 4) and v in span(e1, e2): the Krylov space has dimension 2
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    v = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    quad = lanczos_quadrature(DenseOperator(a), v, 4)
    assert quad.nodes.size == 2
    np.testing.assert_allclose(quad.nodes, [1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(quad.weights, [0.5, 0.5], atol=1e-12)


def test_zero_steps_rejected() -> None:
    a = _matrix(4, 0)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        lanczos_quadrature(DenseOperator(a), torch.ones(4, dtype=torch.float64), 0)
