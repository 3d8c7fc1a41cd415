"""Every diagnostic runs on a graph model (built by the service from from_module's JSON).

A small residual CNN with batch norm (tanh, float64): evaluate, hessian_spectrum in exact
mode (top eigenvalue against the dense Hessian to 1e-8, blocks under the module's paths),
minimizer_manifold (P - rN prediction for mse) and level_set_connectivity with
permutation alignment between a minimum and its permuted copy (aligned barrier 0).
"""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from landscope import from_module
from landscope_service.diagnostics import RunContext, flatten, unflatten
from landscope_service.diagnostics.connectivity.align import _apply_spec, alignment_groups
from landscope_service.diagnostics.connectivity.runner import run_level_set_connectivity
from landscope_service.diagnostics.evaluate import run_evaluate
from landscope_service.diagnostics.hessian import run_hessian_spectrum
from landscope_service.diagnostics.manifold.runner import run_minimizer_manifold
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.schemas import DataSchema, ModelSchema


class TinyRes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.block = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Linear(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.bn(self.conv(x)))
        h = h + torch.tanh(self.block(h))
        return self.head(h.mean(dim=(2, 3)))


def _problem(loss: str = "mse") -> tuple[Any, nn.Module]:
    torch.manual_seed(0)
    module = TinyRes().double().eval()
    x = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    y = torch.randn(6, 1, dtype=torch.float64)
    spec = from_module(module, x)
    blobs = {spec.weights_id: spec.weights}
    request = {"model": ModelSchema().load(json.loads(json.dumps(spec.model()))),
               "data": DataSchema().load({"inline": {"x": x.tolist(), "y": y.tolist()}}),
               "loss": loss}
    problem = build_problem(request, blobs.__getitem__, device=torch.device("cpu"),
                            dtype=torch.float64)
    return problem, module


def test_evaluate_and_exact_hessian_spectrum() -> None:
    problem, module = _problem()
    out = run_evaluate(problem, {}, RunContext())
    with torch.no_grad():
        ref = float(F.mse_loss(module(problem.x), problem.y))
    assert abs(out.result["loss"] - ref) <= 1e-12 * ref
    res = run_hessian_spectrum(problem, {"mode": "exact", "top_k": 1, "bottom_k": 1,
                                         "blocks": True}, RunContext()).result
    theta = flatten(problem.params)
    h = torch.autograd.functional.hessian(
        lambda t: problem.loss_fn(unflatten(t, problem.params), problem.x, problem.y), theta)
    top = float(torch.linalg.eigvalsh(h)[-1])
    assert abs(res["top"]["eigenvalues"][0] - top) <= 1e-8 * abs(top)
    assert [b["name"] for b in res["blocks"]] == ["conv", "bn", "block", "head"]


def test_minimizer_manifold_runs_on_a_graph() -> None:
    problem, _ = _problem()
    res = run_minimizer_manifold(problem, {"walk_steps": 2, "walk_step_length": 0.01},
                                 RunContext(seed=0)).result
    text = json.dumps(res)
    assert str(problem.num_params) in text  # P is reported


def test_level_set_connectivity_aligns_a_permuted_minimum() -> None:
    problem, _ = _problem()
    groups = alignment_groups(problem.model)
    assert {g.name for g in groups} == {"conv"}  # the residual stream (conv, bn, block)
    perm = [torch.tensor([1, 0])]
    permuted = _apply_spec(dict(problem.params), groups, perm)
    stored = {"a": dict(problem.params), "b": permuted}
    ctx = RunContext(seed=0, load_params=lambda ref: stored[ref])
    res = run_level_set_connectivity(
        problem, {"minima": ["a", "b"], "num_trained": 0, "align": True,
                  "paths": {"methods": ["neb"], "neb": {"images": 1, "cycles": 1, "steps": 5,
                                                        "max_pivots": 3}}}, ctx).result
    assert res["alignment"] == {"requested": True, "done": True, "error": None}
    top = max(m["loss"] for m in res["minima"])
    # modulo permutation the two minima are one point: the barrier is the minima's loss
    assert abs(res["modulo_permutation"]["barriers"][0][1] - top) <= 1e-12 * top
