"""The hessian_spectrum runner: budget, status, progress, cancellation, fan-out, artifacts."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from landscope_service.diagnostics import (
    Cancelled,
    LocalExecutor,
    Monitor,
    Problem,
    RunContext,
)
from landscope_service.diagnostics.executor import PieceFn
from landscope_service.diagnostics.hessian import (
    BlockOperator,
    DenseOperator,
    HessianOperator,
    hutchinson,
    hutchpp,
    lanczos_extremes,
    parameter_groups,
    probe_piece,
    run_hessian_spectrum,
)


def _problem(dtype: torch.dtype = torch.float64, n: int = 24, width: int = 12) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, width), nn.Tanh(), nn.Linear(width, 3)).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g).to(dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y,
                   "cross_entropy")


def test_products_are_counted_and_shapes_checked() -> None:
    op = HessianOperator(_problem())
    p = op.shape[0]
    op @ torch.ones(p, dtype=torch.float64)
    op @ torch.ones(p, 3, dtype=torch.float64)
    assert op.num_products == 4
    with pytest.raises(ValueError, match="Shape mismatch"):
        op @ torch.ones(p + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="Unknown HVP variant"):
        HessianOperator(_problem(), "finite_differences")
    block = BlockOperator(op, 0, 10)
    block @ torch.ones(10, dtype=torch.float64)
    assert block.num_products == 1 and op.num_products == 5


def test_lanczos_validation() -> None:
    op = DenseOperator(torch.diag(torch.arange(10, dtype=torch.float64)))
    with pytest.raises(ValueError):
        lanczos_extremes(op, k_top=0, k_bottom=0)
    with pytest.raises(ValueError):
        lanczos_extremes(op, k_top=11)
    with pytest.raises(ValueError):
        lanczos_extremes(op, k_top=1, tol=0)


def test_not_converged_is_loud() -> None:
    out = run_hessian_spectrum(_problem(), {"mode": "iterative", "max_products": 5,
                                            "density_probes": 2, "density_steps": 4},
                               RunContext())
    res = out.result
    assert res["status"] == "not_converged"
    assert any(w.startswith("NOT CONVERGED") for w in res["warnings"])
    assert res["theory"]["verdict"] in ("saddle", "inconclusive")
    assert res["products"]["extremes"] <= 5


def test_result_is_strict_json_and_artifacts() -> None:
    out = run_hessian_spectrum(_problem(torch.float32), {
        "mode": "iterative", "density_probes": 3, "density_steps": 10, "blocks": True,
        "return_eigenvectors": True, "tol": 1e-4}, RunContext(seed=2))
    json.dumps(out.result, allow_nan=False)
    names = {a.name: a for a in out.artifacts}
    assert names["density.png"].data[:8] == b"\x89PNG\r\n\x1a\n"
    from safetensors.torch import load

    tensors = load(names["eigenvectors.safetensors"].data)
    p = _problem().num_params
    assert tensors["top"].shape == (5, p) and tensors["bottom"].shape == (1, p)
    assert out.result["hvp_variant"] == "double_backward"
    assert len(out.result["blocks"]) == 2
    theory = out.result["theory"]
    assert set(theory) == {"applies", "predictions", "measured", "verdict", "notes"}
    assert theory["verdict"] in ("minimum", "saddle", "inconclusive")


class RecordingExecutor:
    def __init__(self) -> None:
        self.calls: list[tuple[PieceFn, int]] = []
        self.inner = LocalExecutor()

    def map(self, fn: PieceFn, problem: Problem, payloads: Sequence[dict[str, Any]],
            monitor: Monitor) -> list[dict[str, Any]]:
        self.calls.append((fn, len(payloads)))
        return self.inner.map(fn, problem, payloads, monitor)


def test_probes_fan_out_through_the_executor() -> None:
    ex = RecordingExecutor()
    ctx = RunContext(executor=ex, seed=3)
    res = run_hessian_spectrum(_problem(), {"mode": "iterative", "density_probes": 5,
                                            "density_steps": 6}, ctx).result
    assert ex.calls == [(probe_piece, 5)]
    # the extremes run's start vector is one more probe
    assert res["density"]["num_probes"] == 6
    assert res["products"]["probes"] == 30


def test_progress_and_cancellation_inside_lanczos() -> None:
    seen: list[tuple[str, float]] = []
    polls = {"n": 0}

    def should_cancel() -> bool:
        polls["n"] += 1
        return polls["n"] > 3

    mon = Monitor(progress=lambda s, f, m: seen.append((s, f)), should_cancel=should_cancel,
                  min_interval=0.0)
    with pytest.raises(Cancelled):
        run_hessian_spectrum(_problem(), {"mode": "iterative"}, RunContext(monitor=mon))
    # cancelled between products, after a few, not before the first
    assert polls["n"] == 4
    seen2: list[tuple[str, float]] = []
    mon2 = Monitor(progress=lambda s, f, m: seen2.append((s, f)), min_interval=0.0)
    run_hessian_spectrum(_problem(), {"mode": "iterative", "density_probes": 2,
                                      "density_steps": 5}, RunContext(monitor=mon2))
    stages = [s for s, _ in seen2]
    assert "extremes" in stages and "probes" in stages and stages[-1] == "done"
    assert all(0.0 <= f <= 1.0 for _, f in seen2)


def test_trace_estimators_on_a_decaying_spectrum() -> None:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=torch.float64))
    ev = 1.0 / torch.arange(1, 201, dtype=torch.float64) ** 2
    a = DenseOperator(q @ torch.diag(ev) @ q.T)
    exact = float(ev.sum())
    h = hutchinson(a, 30, seed=1)
    hpp = hutchpp(a, 30, seed=1)
    # both within 3 standard errors; Hutch++ at least 5x tighter here (decaying spectrum)
    assert abs(h.estimate - exact) <= 3 * h.std_error
    assert abs(hpp.estimate - exact) <= 3 * hpp.std_error
    assert hpp.std_error * 5 <= h.std_error
    assert h.ci95[0] < h.estimate < h.ci95[1]


def test_parameter_groups() -> None:
    groups = parameter_groups(_problem().params)
    assert [g.name for g in groups] == ["0", "2"]
    assert groups[0].params == ("0.weight", "0.bias")
    assert groups[0].stop == groups[1].start and groups[1].stop == _problem().num_params


def test_float32_problem_matches_float64() -> None:
    r64 = lanczos_extremes(HessianOperator(_problem(torch.float64)), k_top=2, k_bottom=1,
                           tol=1e-10, seed=0)
    r32 = lanczos_extremes(HessianOperator(_problem(torch.float32)), k_top=2, k_bottom=1,
                           tol=1e-5, seed=0)
    # float32 products: eigenvalues agree to 1e-4 relative to ||H||
    norm = float(np.max(np.abs(r64.top)))
    assert np.all(np.abs(r32.top - r64.top) <= 1e-4 * norm)
    assert np.all(np.abs(r32.bottom - r64.bottom) <= 1e-4 * norm)


def test_density_png_is_written_by_plots() -> None:
    from landscope_service.diagnostics.hessian.plots import density_png

    png = density_png(np.linspace(-1, 1, 50), np.exp(-np.linspace(-1, 1, 50) ** 2), top=[0.9],
                      bottom=[-0.9], title="t")
    from PIL import Image

    assert Image.open(io.BytesIO(png)).size[0] == 680  # one paper column (3.4 in) at 200 dpi


def test_quadrature_without_reorthogonalisation_keeps_moments() -> None:
    """Finite-precision Lanczos past the loss of orthogonality: moments stay accurate."""
    from landscope_service.diagnostics.hessian import lanczos_quadrature, rademacher

    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(60, 60, generator=g, dtype=torch.float64))
    ev = torch.cat([torch.linspace(-1, 1, 55, dtype=torch.float64),
                    torch.tensor([5.0, 6.0, 7.0, 8.0, 9.0], dtype=torch.float64)])
    a = q @ torch.diag(ev) @ q.T
    v = rademacher(60, 2, dtype=torch.float64, device=torch.device("cpu"))
    u = v / v.norm()
    plain = lanczos_quadrature(DenseOperator(a), v, 50)
    full = lanczos_quadrature(DenseOperator(a), v, 50, reorthogonalize=True)
    ak = torch.eye(60, dtype=torch.float64)
    for k in range(1, 9):
        ak = ak @ a
        exact = float(u @ ak @ u)
        for quad in (plain, full):
            # degree <= 8 moments to 1e-9 relative to ||A||^k
            got = float(np.sum(quad.weights * quad.nodes ** k))
            assert abs(got - exact) <= 1e-9 * 9.0 ** k
    # nodes stay inside the spectrum (to 1e-9)
    assert plain.nodes.max() <= 9.0 + 1e-9 and plain.nodes.min() >= -1.0 - 1e-9


def test_minibatched_problem_gives_the_same_spectrum() -> None:
    full = _problem()
    batched = Problem(full.model, full.params, full.x, full.y, "cross_entropy", batch_size=5)
    opts = {"mode": "iterative", "top_k": 2, "bottom_k": 1, "tol": 1e-10,
            "density_probes": 2, "density_steps": 5, "ggn_split": True}
    a = run_hessian_spectrum(full, opts, RunContext(seed=1)).result
    b = run_hessian_spectrum(batched, opts, RunContext(seed=1)).result
    # several batches: products accumulate batch by batch (graph rebuilt per batch)
    assert a["hvp_variant"] == b["hvp_variant"] == "double_backward"
    c = run_hessian_spectrum(batched, {**opts, "hvp": "forward_over_reverse"},
                             RunContext(seed=1)).result
    np.testing.assert_allclose(c["top"]["eigenvalues"], a["top"]["eigenvalues"], rtol=1e-9)
    # same eigenvalues and GGN split to 1e-9 relative
    np.testing.assert_allclose(b["top"]["eigenvalues"], a["top"]["eigenvalues"], rtol=1e-9)
    np.testing.assert_allclose(b["bottom"]["eigenvalues"], a["bottom"]["eigenvalues"],
                               rtol=1e-9)
    assert b["ggn_split"]["top"][0]["ggn"] == pytest.approx(a["ggn_split"]["top"][0]["ggn"],
                                                            rel=1e-9)


def test_runner_block_size_matches_single_vector() -> None:
    opts = {"mode": "iterative", "top_k": 2, "bottom_k": 2, "tol": 1e-10,
            "density_probes": 2, "density_steps": 5}
    a = run_hessian_spectrum(_problem(), opts, RunContext(seed=1)).result
    b = run_hessian_spectrum(_problem(), {**opts, "block_size": 3}, RunContext(seed=1)).result
    assert b["status"] == "converged"
    # same extremes to 1e-9 relative; the block run multiplies in multiples of 3
    np.testing.assert_allclose(b["top"]["eigenvalues"], a["top"]["eigenvalues"], rtol=1e-9)
    np.testing.assert_allclose(b["bottom"]["eigenvalues"], a["bottom"]["eigenvalues"],
                               rtol=1e-9)
    assert b["products"]["extremes"] % 3 == 0


def test_basis_memory_budget_forces_restarts_not_failure(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from landscope_service.diagnostics.hessian import runner

    pr = _problem()
    monkeypatch.setattr(runner, "BASIS_MEMORY_BYTES", pr.num_params * 8 * 12)
    res = run_hessian_spectrum(pr, {"mode": "iterative", "top_k": 2, "bottom_k": 1,
                                    "tol": 1e-9, "density_probes": 2, "density_steps": 5},
                               RunContext()).result
    assert res["max_basis_used"] == 2 + 1 + 2 + 8
    assert res["status"] == "converged"
    ref = lanczos_extremes(HessianOperator(pr), k_top=2, k_bottom=1, tol=1e-11, seed=0)
    # thick restarts in the small basis reach the same eigenvalues (1e-8 relative)
    np.testing.assert_allclose(res["top"]["eigenvalues"], ref.top, rtol=1e-8)
    np.testing.assert_allclose(res["bottom"]["eigenvalues"], ref.bottom, rtol=1e-8)


def test_exact_mode_counts_its_dense_build_and_auto_follows_the_cost_model() -> None:
    from landscope_service.diagnostics.cost import choose_hessian_mode

    pr = _problem()
    p = pr.num_params
    opts = {"density_probes": 2, "density_steps": 4, "top_k": 2, "bottom_k": 1}
    res = run_hessian_spectrum(pr, {**opts, "mode": "exact"}, RunContext()).result
    assert res["exact"] is True
    assert res["products"]["dense"] == p
    assert res["products"]["total"] == p + res["products"]["ggn"] == p + 3
    from landscope.kinds.hessian_spectrum import HessianSpectrumResult

    assert HessianSpectrumResult.from_json(json.loads(json.dumps(res))).products.dense == p
    # auto runs what the cost model chooses: exact here (P = 87, a tiny iterative run
    # would still cost about as much); iterative when exact_threshold excludes exact
    for extra, want in (({}, choose_hessian_mode(p, pr.num_samples, opts)),
                        ({"exact_threshold": p - 1}, "iterative")):
        out = run_hessian_spectrum(pr, {**opts, **extra}, RunContext()).result
        assert out["exact"] is (want == "exact")
        if not out["exact"]:
            assert out["products"]["dense"] == 0
