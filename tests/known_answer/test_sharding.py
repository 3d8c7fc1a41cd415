"""Known answer: losses, gradients and Hessian products cut into 2 and 3 shards of
batches, whose partial sums are added, equal the unsharded ones (float64, 1e-10
relative): evaluate's loss and gradient, hessian_spectrum's top-5 (Lanczos) and trace
(Hutchinson, same probes), and the loss along one connectivity path (a straight line
between two parameter points). The shards run through the core's LocalExecutor here; the
service's fan-out executor runs the same piece functions on other workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from landscope_service.diagnostics.dataparallel import (
    ShardedHessianOperator,
    shard_bounds,
    sharded_loss_grad,
)
from landscope_service.diagnostics.executor import LocalExecutor
from landscope_service.diagnostics.hessian.hvp import gradient
from landscope_service.diagnostics.hessian.lanczos import lanczos_extremes
from landscope_service.diagnostics.hessian.operators import HessianOperator
from landscope_service.diagnostics.hessian.trace import hutchinson
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.schemas import DataSchema

TOL = 1e-10
MLP = {"type": "mlp", "input_dim": 3, "hidden": [6], "output_dim": 2, "activation": "tanh",
       "bias": True}


def _problem(data: dict[str, Any], batch_size: int = 5, **kw: Any) -> Any:
    req = {"kind": "evaluate", "model": {"architecture": MLP, "init_seed": 2},
           "data": DataSchema().load(data), "loss": "mse", "dtype": "float64",
           "batch_size": batch_size}
    return build_problem(req, lambda b: b"", device=torch.device("cpu"),
                         dtype=torch.float64, **kw)


def _inline(n: int = 37) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {"inline": {"x": rng.normal(size=(n, 3)).tolist(),
                       "y": rng.normal(size=(n, 2)).tolist()}}


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= TOL * scale


def test_shards_follow_batch_boundaries() -> None:
    problem = _problem(_inline(37))  # 8 batches of 5 (the last 2)
    assert shard_bounds(problem, 2) == [(0, 20), (20, 37)]
    assert shard_bounds(problem, 3) == [(0, 15), (15, 25), (25, 37)]
    assert shard_bounds(problem, 20) == [(5 * i, min(5 * i + 5, 37)) for i in range(8)]
    with pytest.raises(ValueError):
        shard_bounds(problem, 0)


@pytest.mark.parametrize("shards", [2, 3])
def test_evaluate_loss_and_gradient(shards: int) -> None:
    problem = _problem(_inline())
    loss, g, where = sharded_loss_grad(problem, LocalExecutor(), shards)
    _close(loss, problem.full_loss().detach())
    _close(g, gradient(problem))
    assert len(where) == shards and all(":" in w for w in where)


@pytest.mark.parametrize("shards", [2, 3])
def test_hessian_top5_trace_and_block_products(shards: int) -> None:
    problem = _problem(_inline())
    exact = HessianOperator(problem, "forward_over_reverse")
    sharded = ShardedHessianOperator(problem, LocalExecutor(), shards,
                                     variant="forward_over_reverse")
    block = torch.randn(problem.num_params, 4, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0))
    _close(sharded @ block, exact @ block)
    top_exact = lanczos_extremes(exact, k_top=5, tol=1e-12, seed=1)
    top_sharded = lanczos_extremes(sharded, k_top=5, tol=1e-12, seed=1)
    _close(torch.as_tensor(np.asarray(top_sharded.top)),
           torch.as_tensor(np.asarray(top_exact.top)))
    dense = torch.func.hessian(lambda v: problem.full_loss(
        {k: t for k, t in zip(problem.params, _split(v, problem.params), strict=True)}))(
        torch.cat([t.reshape(-1) for t in problem.params.values()]))
    want = sorted(torch.linalg.eigvalsh(dense).tolist(), reverse=True)[:5]
    assert np.allclose(top_sharded.top, want, rtol=1e-8, atol=1e-10)
    tr_exact = hutchinson(exact, 6, seed=4)
    tr_sharded = hutchinson(sharded, 6, seed=4)
    assert abs(tr_sharded.estimate - tr_exact.estimate) <= TOL * max(1, abs(tr_exact.estimate))
    assert len(sharded.ran_on) == shards and sharded.num_products > 0


def _split(v: torch.Tensor, like: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for t in like.values():
        out.append(v[i:i + t.numel()].reshape(t.shape))
        i += t.numel()
    return out


@pytest.mark.parametrize("shards", [2, 3])
def test_loss_along_a_connectivity_path(shards: int) -> None:
    problem = _problem(_inline())
    a = problem.params
    b = {k: t + 0.3 * torch.randn(t.shape, dtype=t.dtype,
                                  generator=torch.Generator().manual_seed(9))
         for k, t in a.items()}
    for t in np.linspace(0.0, 1.0, 7):
        point = {k: (1 - t) * a[k] + t * b[k] for k in a}
        loss, g, _ = sharded_loss_grad(problem, LocalExecutor(), shards, params=point)
        _close(loss, problem.full_loss(point).detach())
        _close(g, gradient(problem, point))


def test_a_streamed_data_set_shards_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(29, 3), dtype=np.uint8)
    y = rng.normal(size=(29, 2))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    transform = {"mean": [100.0, 120.0, 90.0], "std": [50.0, 60.0, 70.0]}
    streamed = _problem({"blob": "sha256:" + "d" * 64, "format": "npz",
                         "transform": transform}, batch_size=4,
                        blob_file=lambda b: tmp_path / "d.npz")
    for shards in (2, 3):
        loss, g, _ = sharded_loss_grad(streamed, LocalExecutor(), shards)
        _close(loss, streamed.full_loss().detach())
        _close(g, gradient(streamed))


@pytest.mark.parametrize("shards", [2, 3])
def test_the_parallel_option_of_evaluate_and_hessian_spectrum(shards: int) -> None:
    from landscope_service.diagnostics import RunContext, run_evaluate, run_hessian_spectrum

    problem = _problem(_inline())
    plain = run_evaluate(problem, {}, RunContext()).result
    split = run_evaluate(problem, {"parallel": {"shards": shards}}, RunContext()).result
    for key in ("loss", "grad_norm"):
        assert abs(split[key] - plain[key]) <= TOL * max(1.0, abs(plain[key])), key
    for key in ("min", "max"):
        assert abs(split["per_sample_loss"][key] - plain["per_sample_loss"][key]) <= TOL
    assert [s["samples"] for s in split["parallel"]["shards"]] == [
        list(b) for b in shard_bounds(problem, shards)]
    assert "parallel" not in plain

    opts = {"mode": "iterative", "top_k": 5, "bottom_k": 0, "tol": 1e-12, "hvp":
            "forward_over_reverse", "density_probes": 2, "density_steps": 10}
    h_plain = run_hessian_spectrum(problem, opts, RunContext(seed=3)).result
    h_split = run_hessian_spectrum(problem, {**opts, "parallel": {"shards": shards}},
                                   RunContext(seed=3)).result
    top_p, top_s = h_plain["top"]["eigenvalues"], h_split["top"]["eigenvalues"]
    assert np.allclose(top_s, top_p, rtol=TOL, atol=TOL)
    t_p, t_s = h_plain["trace"]["estimate"], h_split["trace"]["estimate"]
    assert abs(t_s - t_p) <= 1e-8 * max(1.0, abs(t_p))
    assert len(h_split["parallel"]["shards"]) == shards and h_plain["parallel"] is None
