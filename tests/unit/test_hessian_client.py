"""SDK classes of hessian_spectrum read real runner results and reject malformed ones."""

from __future__ import annotations

import json
import math

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


def test_density_sigma_scale_end_to_end() -> None:
    """The option added through the one options table: SDK class, API schema, runner.

    Known answer (float64, exact mode): with scale s the broadening is s times the
    default ``sqrt(1e-5 * max(1, width))`` of the Ritz nodes, and the density equals the
    closed form ``sum_i w_i N(x; lambda_i, sigma) / probes`` on the grid (to 1e-12).
    """
    from landscope_service.jobs.kinds.hessian_spectrum import HessianSpectrumOptionsSchema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    pr = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")
    densities = {}
    for scale in (1.0, 3.0):
        opts = HessianSpectrumOptions(mode="exact", density_sigma_scale=scale)
        sent = {"mode": "exact"} | ({} if scale == 1.0 else {"density_sigma_scale": scale})
        assert opts.to_json() == sent  # the default is not sent
        loaded = HessianSpectrumOptionsSchema().load(opts.to_json())
        assert loaded["density_sigma_scale"] == scale
        res = HessianSpectrumResult.from_json(
            json.loads(json.dumps(run_hessian_spectrum(pr, loaded, RunContext()).result)))
        assert res.density is not None
        densities[scale] = res.density
    d1, d3 = densities[1.0], densities[3.0]
    nodes = [v for probe in d1.nodes for v in probe if v is not None]
    width = max(nodes) - min(nodes)
    assert d1.sigma == pytest.approx(math.sqrt(1e-5 * max(1.0, width)), rel=1e-12)
    assert d3.sigma == pytest.approx(3.0 * d1.sigma, rel=1e-12)  # type: ignore[operator]
    for d in (d1, d3):
        sig = float(d.sigma)  # type: ignore[arg-type]
        for g, value in zip(d.grid[::64], d.values[::64], strict=True):
            expect = sum(float(w) * math.exp(-0.5 * ((float(g) - float(n)) / sig) ** 2)
                         for ns, ws in zip(d.nodes, d.weights, strict=True)
                         for n, w in zip(ns, ws, strict=True)
                         ) / (len(d.nodes) * sig * math.sqrt(2 * math.pi))
            assert value == pytest.approx(expect, rel=1e-12, abs=1e-300)
    with pytest.raises(ValueError, match="density_sigma_scale"):
        HessianSpectrumOptions(density_sigma_scale=0.0)
    with pytest.raises(ValueError, match="density_sigma_scale"):
        run_hessian_spectrum(pr, {"density_sigma_scale": -1.0}, RunContext())
