"""Exact mode's dense Hessian from blocked products, against ``torch.func.hessian``.

float64 throughout; every assertion states its tolerance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import hessian

from landscope_service.diagnostics import Cancelled, Monitor, Problem
from landscope_service.diagnostics.hessian import dense_hessian, exact
from landscope_service.diagnostics.problem import flatten, unflatten

DT = torch.float64


def _conv_bn(batch_size: int | None) -> Problem:
    """A small conv net with batch norm (eval mode: running statistics), 10 classes."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(),
        nn.Linear(2 * 3 * 3, 5), nn.Tanh(), nn.Linear(5, 4),
    ).to(DT).eval()
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d)
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, 1, 5, 5, generator=g, dtype=DT)
    y = torch.randint(0, 4, (37,), generator=g)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return Problem(model, params, x, y, "cross_entropy", batch_size=batch_size,
                   buffers=buffers)


def _reference(pr: Problem) -> torch.Tensor:
    theta = flatten(pr.params)

    def loss(t: torch.Tensor) -> torch.Tensor:
        return pr.full_loss(unflatten(t, pr.params))

    return hessian(loss)(theta)  # type: ignore[no-any-return]


@pytest.mark.parametrize("variant", ["auto", "double_backward", "vmap_forward_over_reverse",
                                     "reverse_over_reverse"])
@pytest.mark.parametrize("batch_size", [None, 10])
@pytest.mark.parametrize("block_size", [5, 200])
def test_blocked_dense_hessian_matches_torch_func(variant: str, batch_size: int | None,
                                                  block_size: int) -> None:
    pr = _conv_bn(batch_size)
    ref = _reference(pr)
    got = dense_hessian(pr, block_size=block_size, variant=variant)
    assert got.shape == (pr.num_params, pr.num_params) and got.dtype == DT
    # float64 known answer: entries are O(1); 1e-10 absolute covers summation-order rounding
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(got, got.T, rtol=0, atol=0)


def test_progress_per_block_and_monotone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "BLOCK_SECONDS", 1e9)  # blocks keep their asked size
    pr = _conv_bn(None)
    p = pr.num_params
    seen: list[tuple[str, float, str]] = []
    mon = Monitor(progress=lambda s, f, m: seen.append((s, f, m)), min_interval=0.0)
    dense_hessian(pr, block_size=40, monitor=mon)
    fracs = [f for s, f, _ in seen if s == "dense_hessian"]
    blocks = -(-p // 40)
    # one report before the first block, then one per block, ending at 1
    assert len(fracs) == blocks + 1
    assert fracs[0] == 0.0 and fracs[-1] == 1.0
    assert fracs == sorted(fracs)
    assert seen[1][2].startswith(f"40/{p} columns")


def test_slow_products_get_smaller_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "BLOCK_SECONDS", 1e-12)  # every product "too slow"
    pr = _conv_bn(None)
    seen: list[float] = []
    mon = Monitor(progress=lambda s, f, m: seen.append(f), min_interval=0.0)
    got = dense_hessian(pr, block_size=40, variant="double_backward", monitor=mon)
    # the first block has the asked 40 columns, every later block one column
    assert len(seen) == 1 + 1 + (pr.num_params - 40)
    assert seen[1] == pytest.approx(40 / pr.num_params) and seen == sorted(seen)
    torch.testing.assert_close(got, _reference(pr), rtol=0, atol=1e-10)


def test_a_variant_that_fails_leaves_the_build_to_the_other(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = exact.make_hvp

    def make(problem: Problem, variant: str = "auto", block_size: int = 8):  # type: ignore[no-untyped-def]
        if variant == "vmap_forward_over_reverse":
            def broken(v: torch.Tensor) -> torch.Tensor:
                raise RuntimeError("vmap: no batching rule")
            return broken
        return real(problem, variant, block_size=block_size)

    monkeypatch.setattr(exact, "make_hvp", make)
    pr = _conv_bn(None)
    # float64 known answer, 1e-10 absolute, built by double backward alone
    torch.testing.assert_close(dense_hessian(pr, block_size=7), _reference(pr), rtol=0,
                               atol=1e-10)


def test_cancel_is_honoured_between_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "BLOCK_SECONDS", 1e9)
    pr = _conv_bn(None)
    blocks_done = []

    def progress(stage: str, frac: float, msg: str) -> None:
        blocks_done.append(frac)

    mon = Monitor(progress=progress, should_cancel=lambda: len(blocks_done) >= 3,
                  min_interval=0.0)
    with pytest.raises(Cancelled):
        dense_hessian(pr, block_size=10, monitor=mon)
    # the start report plus two blocks ran; the check before the third block stopped it
    assert len(blocks_done) == 3
    assert blocks_done[-1] == pytest.approx(20 / pr.num_params)


def test_validation() -> None:
    pr = _conv_bn(None)
    with pytest.raises(ValueError, match="block_size"):
        dense_hessian(pr, block_size=0)
    with pytest.raises(ValueError, match="Unknown HVP variant"):
        dense_hessian(pr, variant="finite_differences")
    with pytest.raises(ValueError, match="mode='iterative'"):
        dense_hessian(pr, max_bytes=1000)
