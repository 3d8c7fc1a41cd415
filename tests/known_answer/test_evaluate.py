"""evaluate against closed forms (float64; tolerance 1e-12 relative)."""

from __future__ import annotations

import pytest
import torch

from landscope_service.diagnostics import Cancelled, Monitor, Problem, RunContext
from landscope_service.diagnostics.evaluate import evaluate, run_evaluate


def _linear_problem(batch_size: int | None) -> tuple[Problem, torch.Tensor, torch.Tensor,
                                                      torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 4, generator=g, dtype=torch.float64)
    w = torch.randn(2, 4, generator=g, dtype=torch.float64)
    y = torch.randn(37, 2, generator=g, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False)).double()
    prob = Problem(model, {"0.weight": w}, x, y, "mse", batch_size=batch_size)
    return prob, x, w, y


@pytest.mark.parametrize("batch_size", [None, 5, 37, 100])
def test_linear_least_squares_closed_form(batch_size: int | None) -> None:
    prob, x, w, y = _linear_problem(batch_size)
    r = x @ w.T - y
    n, out = y.shape
    loss = (r**2).sum() / (n * out)
    grad = 2 * r.T @ x / (n * out)  # d/dW of mean squared error
    per = (r**2).mean(dim=1)
    res = evaluate(prob)
    assert res["loss"] == pytest.approx(float(loss), rel=1e-12)
    assert res["grad_norm"] == pytest.approx(float(grad.norm()), rel=1e-12)
    assert res["per_sample_loss"]["min"] == pytest.approx(float(per.min()), rel=1e-12)
    assert res["per_sample_loss"]["max"] == pytest.approx(float(per.max()), rel=1e-12)
    assert res["num_params"] == 8 and res["num_samples"] == 37


def test_cross_entropy_matches_torch() -> None:
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 4)).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (20,), generator=g)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    res = evaluate(Problem(model, params, x, y, "cross_entropy", batch_size=6))
    assert res["loss"] == pytest.approx(float(loss.detach()), rel=1e-12)
    assert res["grad_norm"] == pytest.approx(float(torch.sqrt(sum((g**2).sum() for g in grads))),
                                             rel=1e-12)


def test_runner_reports_progress_and_theory() -> None:
    prob, *_ = _linear_problem(10)
    seen: list[tuple[str, float]] = []
    ctx = RunContext(monitor=Monitor(progress=lambda s, f, m: seen.append((s, f)),
                                     min_interval=0.0))
    out = run_evaluate(prob, {"stationary_tol": 1e-6}, ctx)
    assert seen[-1] == ("evaluate", 1.0) and len(seen) == 4
    assert out.result["theory"]["measured"]["stationary"] is False


def test_runner_honours_cancellation() -> None:
    prob, *_ = _linear_problem(10)
    ctx = RunContext(monitor=Monitor(should_cancel=lambda: True, min_interval=0.0))
    with pytest.raises(Cancelled):
        run_evaluate(prob, {}, ctx)
