"""SDK classes of hessian_spectrum read real runner results and reject malformed ones."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from landscope._exceptions import InvalidResponseError
from landscope.kinds.hessian_spectrum import HessianSpectrumOptions, HessianSpectrumResult
from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.hessian import run_hessian_spectrum


def _result(mode: str) -> dict[str, object]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randn(16, 1, dtype=torch.float64)
    pr = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")
    opts = HessianSpectrumOptions(mode=mode, top_k=2, bottom_k=1, density_probes=3,  # type: ignore[arg-type]
                                  density_steps=8, blocks=True).to_json()
    out = run_hessian_spectrum(pr, opts, RunContext())
    return json.loads(json.dumps(out.result))  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["exact", "iterative"])
def test_from_json_reads_runner_output(mode: str) -> None:
    data = _result(mode)
    res = HessianSpectrumResult.from_json(data)
    assert res.exact is (mode == "exact")
    assert res.converged and res.status == "converged"
    assert res.top.eigenvalues == tuple(data["top"]["eigenvalues"])  # type: ignore[index]
    assert res.sharpness == res.top.eigenvalues[0]
    assert res.theory.verdict in ("minimum", "saddle", "inconclusive")
    assert res.blocks is not None and [b.name for b in res.blocks] == ["0", "2"]
    assert res.density is not None and len(res.density.grid) == 512
    assert res.trace is not None and res.trace.estimate is not None
    assert res.ggn_split is not None and len(res.ggn_split.top) == 2


def test_from_json_rejects_malformed() -> None:
    data = _result("exact")
    bad = dict(data, status="done")
    with pytest.raises(InvalidResponseError, match="status"):
        HessianSpectrumResult.from_json(bad)
    bad = dict(data, num_params="41")
    with pytest.raises(InvalidResponseError, match="num_params"):
        HessianSpectrumResult.from_json(bad)


def test_options_validate_locally() -> None:
    with pytest.raises(ValueError, match="tol"):
        HessianSpectrumOptions(tol=0.0)
    with pytest.raises(ValueError, match="max_basis"):
        HessianSpectrumOptions(top_k=10, bottom_k=5, max_basis=10)
    assert HessianSpectrumOptions(top_k=3).to_json()["top_k"] == 3
