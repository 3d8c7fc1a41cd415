"""to_pandas() on tabular results and _repr_html_ on results, from real runner results.

Known answer: the eigenvalue frame of an exact hessian_spectrum equals the extremes of
the dense float64 Hessian (torch.func.hessian, eigvalsh) to 1e-8.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import torch
from torch import nn

from landscope import LandscopeError
from landscope.kinds.hessian_spectrum import HessianSpectrumOptions, HessianSpectrumResult
from landscope.kinds.level_set_connectivity import (
    LevelSetConnectivityOptions,
    LevelSetConnectivityResult,
    NEBOptions,
    PathOptions,
    TrainOptions,
)
from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.connectivity import run_level_set_connectivity
from landscope_service.diagnostics.hessian import run_hessian_spectrum

DT = torch.float64


def _problem() -> tuple[Problem, nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).to(DT)
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    y = torch.randn(12, 1, generator=torch.Generator().manual_seed(2), dtype=DT)
    params = {k: p.detach() for k, p in model.named_parameters()}
    return Problem(model, params, x, y, "mse"), model, x, y


@pytest.fixture(scope="module")
def spectrum() -> tuple[HessianSpectrumResult, torch.Tensor]:
    prob, model, x, y = _problem()
    opts = HessianSpectrumOptions(mode="exact", top_k=3, bottom_k=2).to_json()
    out = run_hessian_spectrum(prob, opts, RunContext())
    res = HessianSpectrumResult.from_json(json.loads(json.dumps(out.result)))
    names = [k for k, _ in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def loss(v: torch.Tensor) -> torch.Tensor:
        chunks, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            chunks[n] = v[i:i + s.numel()].reshape(s)
            i += s.numel()
        pred = torch.func.functional_call(model, chunks, (x,))
        return ((pred - y) ** 2).mean()

    evals = torch.linalg.eigvalsh(torch.func.hessian(loss)(flat))
    return res, evals


def test_eigenvalue_frame_matches_the_dense_hessian(spectrum: Any) -> None:
    res, evals = spectrum
    df = res.to_pandas()
    assert list(df.columns) == ["end", "rank", "eigenvalue", "residual", "converged"]
    top = df[df["end"] == "top"].sort_values("rank")["eigenvalue"].to_numpy()
    bottom = df[df["end"] == "bottom"].sort_values("rank")["eigenvalue"].to_numpy()
    assert top == pytest.approx(evals.flip(0)[:3].numpy(), abs=1e-8)
    assert bottom == pytest.approx(evals[:2].numpy(), abs=1e-8)
    assert df["converged"].all()


def test_repr_html_is_the_escaped_summary(spectrum: Any) -> None:
    res, _ = spectrum
    page = res._repr_html_()
    assert page.startswith("<div><strong>HessianSpectrumResult</strong>")
    assert "<th style='text-align:left'>sharpness</th>" in page
    assert f"{res.sharpness:.6g}" in page
    assert "top.eigenvalues" in page and "<script" not in page
    from landscope._frames import summary_html

    class Evil(HessianSpectrumResult):
        pass

    evil = Evil(**{**res.__dict__, "loss": "<script>alert(1)</script>"})
    assert "<script>" not in summary_html(evil) and "&lt;script&gt;" in summary_html(evil)


@pytest.fixture(scope="module")
def connectivity() -> LevelSetConnectivityResult:
    prob, *_ = _problem()
    opts = LevelSetConnectivityOptions(
        num_trained=3, paths=PathOptions(neb=NEBOptions(cycles=1, steps=20)),
        lambda_grid_size=8, train=TrainOptions(steps=60)).to_json()
    out = run_level_set_connectivity(prob, opts, RunContext(seed=3))
    return LevelSetConnectivityResult.from_json(json.loads(json.dumps(out.result)))


def test_connectivity_frames(connectivity: LevelSetConnectivityResult) -> None:
    res = connectivity
    nl = res.to_pandas()
    assert list(zip(nl["lambda"], nl["n_lambda"], strict=True)) == res.n_lambda_table()
    assert list(nl["n_lambda_raw"]) == list(res.parameter_space.n_lambda_raw)
    bar = res.to_pandas("barriers")
    m = res.num_minima
    assert len(bar) == m * (m - 1) // 2
    for row in bar.itertuples():
        assert row.barrier == res.parameter_space.barrier(row.i, row.j)
    mins = res.to_pandas("minima")
    assert list(mins["loss"]) == [mn.loss for mn in res.minima]
    with pytest.raises(ValueError, match="table must be"):
        res.to_pandas("pairs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="align=True"):
        res.to_pandas(space="permutation")
    assert "LevelSetConnectivityResult" in res._repr_html_()


def test_without_pandas_a_clear_error(spectrum: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(LandscopeError, match=r"landscope\[pandas\]"):
        spectrum[0].to_pandas()
