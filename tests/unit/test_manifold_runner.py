"""Runner contract of minimizer_manifold: progress, cancellation, JSON, artifacts, SDK."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from landscope.kinds.minimizer_manifold import MinimizerManifoldResult
from landscope_service.diagnostics import Cancelled, Monitor, Problem, RunContext
from landscope_service.diagnostics.manifold import activation_facts, run_minimizer_manifold


def _problem(loss: str = "mse") -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(10, 3)
    y = torch.randn(10, 1) if loss == "mse" else torch.zeros(10, dtype=torch.long)
    return Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, loss)  # type: ignore[arg-type]


def test_progress_json_artifacts_and_sdk_roundtrip() -> None:
    seen: list[tuple[str, float, str]] = []
    mon = Monitor(progress=lambda s, f, m: seen.append((s, f, m)), min_interval=0.0)
    out = run_minimizer_manifold(_problem(), {"walk_steps": 2}, RunContext(monitor=mon))
    stages = [s for s, _, _ in seen]
    for stage in ("fit", "rank", "hessian", "walk", "plots", "done"):
        assert stage in stages
    fracs = [f for _, f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    text = json.dumps(out.result, allow_nan=False)
    names = {a.name: a for a in out.artifacts}
    assert names["singular_values.png"].data[:8] == b"\x89PNG\r\n\x1a\n"
    sv = json.loads(names["singular_values.json"].data)
    assert len(sv["singular_values"]) == 10 and sv["rank"] == 10
    typed = MinimizerManifoldResult.from_json(json.loads(text))
    assert typed.dimension.measured == typed.dimension.predicted == 31
    assert typed.fit.status == "interpolated" and typed.walk.steps_done == 2
    assert typed.walk.control is not None and typed.walk.control.loss_rise is not None
    assert typed.theory.applies and typed.theory.hypotheses[0].name == "squared loss"
    assert typed.rank.singular_values is not None and len(typed.rank.singular_values) == 10


def test_cancellation_is_honoured() -> None:
    mon = Monitor(should_cancel=lambda: True, min_interval=0.0)
    with pytest.raises(Cancelled):
        run_minimizer_manifold(_problem(), {}, RunContext(monitor=mon))


def test_runner_rejects_cross_entropy_and_bad_options() -> None:
    with pytest.raises(ValueError, match="squared loss"):
        run_minimizer_manifold(_problem("cross_entropy"), {}, RunContext())
    with pytest.raises(ValueError, match="Unknown options"):
        run_minimizer_manifold(_problem(), {"top_k": 1}, RunContext())
    with pytest.raises(ValueError, match="walk_steps"):
        run_minimizer_manifold(_problem(), {"walk_steps": -1}, RunContext())
    with pytest.raises(TypeError, match="fit_max_steps"):
        run_minimizer_manifold(_problem(), {"fit_max_steps": 1.5}, RunContext())


def test_sdk_rejects_a_malformed_result() -> None:
    from landscope._exceptions import InvalidResponseError

    out = run_minimizer_manifold(_problem(), {"walk_steps": 0}, RunContext())
    data = json.loads(json.dumps(out.result))
    data["rank"]["rank"] = "ten"
    with pytest.raises(InvalidResponseError, match="rank"):
        MinimizerManifoldResult.from_json(data)


def test_activation_facts_by_class_name() -> None:
    class Quadratic(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z**2

    class Weird(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z.abs()

    assert activation_facts(nn.Sequential(nn.Linear(2, 2), nn.Tanh())).kind == "smooth"
    q = activation_facts(nn.Sequential(nn.Linear(2, 2), Quadratic(), nn.Linear(2, 2),
                                       Quadratic()))
    assert q.kind == "polynomial" and q.polynomial_degree == 4
    assert activation_facts(nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU())).kind == \
        "piecewise_linear"
    assert activation_facts(nn.Sequential(nn.Linear(2, 2), nn.Identity())).kind == "linear"
    assert activation_facts(nn.Sequential(nn.Tanh(), nn.ReLU())).kind == "mixed"
    u = activation_facts(nn.Sequential(nn.Linear(2, 2), Weird()))
    assert u.kind == "unknown" and u.unknown == ("Weird",)


def test_duplicate_points_break_the_distinctness_hypothesis() -> None:
    prob = _problem()
    x = prob.x.clone()
    x[1] = x[0]
    dup = Problem(prob.model, prob.params, x, prob.y, "mse")
    out = run_minimizer_manifold(dup, {"walk_steps": 0, "fit_max_steps": 30}, RunContext())
    hyp = {h["name"]: h for h in out.result["theory"]["hypotheses"]}
    assert hyp["distinct data points"]["holds"] is False
    assert out.result["theory"]["applies"] is False
