"""Problem: the empty data set rejected once; batch_sum equals the full-batch value."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import grad

from landscope_service.diagnostics.hessian import gradient, make_hvp
from landscope_service.diagnostics.hessian.operators import GGNOperator
from landscope_service.diagnostics.problem import Problem


def _problem(batch_size: int | None, n: int = 10) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.randn(n, 2, dtype=torch.float64)
    return Problem(model, params, x, y, batch_size=batch_size)


@pytest.mark.parametrize("shape", [(0, 3), ()])
def test_empty_data_set_rejected_at_construction(shape: tuple[int, ...]) -> None:
    model = nn.Linear(3, 1).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.zeros(shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"data set is empty.*at least one sample"):
        Problem(model, params, x, torch.zeros(shape[:1] + (1,) * bool(shape)))


@pytest.mark.parametrize(("batch_size", "batches"), [(None, 1), (10, 1), (20, 1), (3, 4), (1, 10)])
def test_num_batches_matches_batches(batch_size: int | None, batches: int) -> None:
    pr = _problem(batch_size)
    assert pr.num_batches == batches == len(list(pr.batches()))


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_batch_sum_is_the_full_batch_value(batch_size: int) -> None:
    full, split = _problem(None), _problem(batch_size)
    # tensors: the loss and its flat gradient, float64, to 1e-12
    assert torch.allclose(split.full_loss(), full.full_loss(), rtol=1e-12, atol=0)
    assert torch.allclose(gradient(split), gradient(full), rtol=1e-12, atol=1e-14)
    # dicts: the per-parameter gradient
    g_full = grad(full.loss_fn)(full.params, full.x, full.y)
    g_sum = split.batch_sum(lambda xb, yb: grad(split.loss_fn)(split.params, xb, yb))
    assert g_sum.keys() == g_full.keys()
    for k, g in g_full.items():
        assert torch.allclose(g_sum[k], g, rtol=1e-12, atol=1e-14), k
    # products built on batch_sum: every HVP variant and the GGN, against one batch
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(full.num_params, dtype=torch.float64, generator=gen)
    for variant in ("double_backward", "forward_over_reverse", "reverse_over_reverse"):
        ref = make_hvp(full, variant)(v)
        assert torch.allclose(make_hvp(split, variant)(v), ref, rtol=1e-10, atol=1e-12), variant
    assert torch.allclose(GGNOperator(split) @ v, GGNOperator(full) @ v, rtol=1e-10, atol=1e-12)


def test_batch_sum_weights_are_batch_fractions() -> None:
    # fn = 1 for every batch: the weights w_b = |b| / N add up to exactly one
    pr = _problem(3)
    one = pr.batch_sum(lambda xb, yb: torch.ones((), dtype=torch.float64))
    assert float(one) == pytest.approx(1.0, abs=1e-15)
    # fn = batch size: sum_b |b|^2 / N
    sizes = pr.batch_sum(lambda xb, yb: torch.tensor(float(len(xb)), dtype=torch.float64))
    assert float(sizes) == pytest.approx((3 * 9 + 1) / 10, abs=1e-14)
