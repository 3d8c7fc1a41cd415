"""The connectivity runner's contract: pieces through the executor, progress, cancel,
JSON-only results, artifacts, batch norm, the options schema and the submit check."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch
from marshmallow import ValidationError
from torch import nn

from landscope_service.diagnostics import Cancelled, LocalExecutor, Monitor, Problem, RunContext
from landscope_service.diagnostics.connectivity import (
    DEFAULT_OPTIONS,
    Objective,
    pair_piece,
    problem_objective,
    run_level_set_connectivity,
    train_piece,
)
from landscope_service.jobs.kinds.base import SubmitContext
from landscope_service.jobs.kinds.level_set_connectivity import (
    KIND,
    LevelSetConnectivityOptionsSchema,
)

DT = torch.float64
SMALL = {
    "num_trained": 3,
    "train": {"steps": 60, "lr": 0.05},
    "paths": {
        "methods": ["neb", "bezier"],
        "neb": {"cycles": 2, "steps": 30},
        "bezier": {"steps": 30},
        # a contract test, not a resolution test: fewer certification rounds
        "linear": {"refine_rounds": 6, "rel_resolution": 1e-3},
    },
    "lambda_grid_size": 16,
}


def _problem(model: nn.Module, n: int = 24, batch_size: int | None = None) -> Problem:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=gen, dtype=DT)
    y = torch.sin(2 * x[:, :1]) * x[:, 1:]
    params = {k: p.detach() for k, p in model.named_parameters()}
    return Problem(model, params, x, y, "mse", batch_size=batch_size)


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 1)).to(DT)


class RecordingExecutor(LocalExecutor):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def map(self, fn, problem, payloads, monitor):  # type: ignore[no-untyped-def]
        for p in payloads:  # payloads must be JSON values and tensors only
            for v in p.values():
                if not isinstance(v, torch.Tensor):
                    json.dumps(v)
        self.calls.append((fn.__name__, len(payloads)))
        return super().map(fn, problem, payloads, monitor)


def _finite_json(x: Any) -> None:
    if isinstance(x, float):
        assert math.isfinite(x)
    elif isinstance(x, dict):
        for v in x.values():
            _finite_json(v)
    elif isinstance(x, list):
        for v in x:
            _finite_json(v)
    else:
        assert x is None or isinstance(x, str | int | bool)


def test_runner_contract() -> None:
    ex = RecordingExecutor()
    seen: list[tuple[str, float, str]] = []
    ctx = RunContext(
        monitor=Monitor(progress=lambda s, f, m: seen.append((s, f, m)), min_interval=0),
        executor=ex,
        seed=5,
    )
    out = run_level_set_connectivity(_problem(_mlp()), dict(SMALL, align=True), ctx)
    res = out.result
    _finite_json(res)
    json.dumps(res, allow_nan=False)
    names = [c[0] for c in ex.calls]
    assert names[0] == "train_piece" and ex.calls[0][1] == 3
    assert set(names[1:]) == {"pair_piece"}
    assert {a.name for a in out.artifacts} == {
        "barriers.json",
        "path_profiles.json",
        "merge_tree.png",
        "merge_tree.svg",
        "path_profiles.png",
        "path_profiles.svg",
    }
    for a in out.artifacts:
        if a.name.endswith(".png"):
            assert a.data[:8] == b"\x89PNG\r\n\x1a\n"
        elif a.name.endswith(".svg"):
            assert b"<svg" in a.data
        else:
            json.loads(a.data)
    assert res["barriers_are_upper_bounds"] is True and res["num_minima"] == 3
    ps = res["parameter_space"]
    assert len(ps["n_lambda"]) == 16 and ps["n_lambda"][-1] == 1 and ps["n_lambda"][0] == 0
    mp = res["modulo_permutation"]
    # Modulo permutation barriers are never above the parameter-space ones.
    for i in range(3):
        for j in range(3):
            assert mp["barriers"][i][j] <= ps["barriers"][i][j] + 1e-12
    assert all(a >= b for a, b in zip(ps["n_lambda"], mp["n_lambda"], strict=True))
    stages = [s for s, _, _ in seen]
    assert "train_minima" in stages and "refine" in stages and stages[-1] == "done"
    assert any("minima trained" in m for _, _, m in seen)
    assert any("pairs done" in m for _, _, m in seen)
    fractions = [f for _, f, _ in seen]
    assert fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    assert res["theory"]["two_layer_relu_scale"]["applies"] is True
    assert res["theory"]["two_layer_relu_scale"]["predicted_excess_scale"] == pytest.approx(5**-0.5)
    # Same seed, same answer.
    again = run_level_set_connectivity(
        _problem(_mlp()), dict(SMALL, align=True), RunContext(seed=5)
    )
    assert again.result["parameter_space"]["barriers"] == ps["barriers"]


def test_runner_cancellation() -> None:
    ctx = RunContext(monitor=Monitor(should_cancel=lambda: True, min_interval=0))
    with pytest.raises(Cancelled):
        run_level_set_connectivity(_problem(_mlp()), SMALL, ctx)


def test_pieces_are_plain_functions_of_json_and_tensors() -> None:
    prob = _problem(_mlp())
    mon = Monitor()
    r = train_piece(prob, {"index": 0, "seed": 1, "optimizer": "sgd", "steps": 20, "lr": 0.05}, mon)
    assert r["theta"].shape == (prob.num_params,) and r["loss"] >= 0
    r2 = train_piece(
        prob, {"index": 0, "seed": 1, "optimizer": "sgd", "steps": 20, "lr": 0.05}, mon
    )
    assert torch.equal(r["theta"], r2["theta"])
    pr = pair_piece(
        prob,
        {
            "i": 0,
            "j": 1,
            "theta_a": r["theta"],
            "theta_b": -r["theta"],
            "methods": ["linear"],
            "seed": 0,
        },
        mon,
    )
    assert pr["paths"][0]["method"] == "linear" and pr["paths"][0]["barrier"] >= r["loss"]


def test_given_minima_shape_errors() -> None:
    prob = _problem(_mlp())
    bad = {k: v.clone() for k, v in prob.params.items()}
    bad["0.weight"] = torch.zeros(3, 2, dtype=DT)
    ctx = RunContext(load_params=lambda ref: bad)
    with pytest.raises(ValueError, match=r"shape mismatch for 0\.weight"):
        run_level_set_connectivity(prob, {"minima": ["a"], "num_trained": 1}, ctx)
    with pytest.raises(ValueError, match="At least 2 minima"):
        run_level_set_connectivity(prob, {"num_trained": 1}, RunContext())


@pytest.mark.parametrize("batch_size", [None, 8])
def test_batchnorm_statistics_recomputed_at_each_point(batch_size: int | None) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).to(DT)
    prob = _problem(model, n=24, batch_size=batch_size)
    obj = problem_objective(prob)
    theta = torch.cat([p.reshape(-1) for p in prob.params.values()])
    # Reference: statistics of the whole data set at theta (one batch), or cumulative
    # per-batch averages (several batches), then the loss in evaluation mode.
    ref_model = nn.Sequential(
        nn.Linear(2, 4), nn.BatchNorm1d(4, momentum=None), nn.Tanh(), nn.Linear(4, 1)
    ).to(DT)
    ref_model.load_state_dict(model.state_dict())
    if batch_size is None:
        ref_model.train()
        ref = torch.nn.functional.mse_loss(ref_model(prob.x), prob.y)
    else:
        ref_model.train()
        with torch.no_grad():
            for xb, _, _ in prob.batches():
                ref_model(xb)
        ref_model.eval()
        ref = sum(
            torch.nn.functional.mse_loss(ref_model(xb), yb) * w for xb, yb, w in prob.batches()
        )
    assert float(obj.value(theta)) == pytest.approx(float(ref.detach()), rel=1e-10)
    # The problem's own buffers and the model's are untouched.
    assert torch.equal(model[1].running_mean, torch.zeros(4, dtype=DT))
    out = run_level_set_connectivity(prob, dict(SMALL, num_trained=2), RunContext())
    assert out.result["batchnorm_statistics"].startswith("recomputed")


def test_objective_validation() -> None:
    obj = Objective(lambda t: (t**2).sum())
    with pytest.raises(ValueError, match="Shape mismatch"):
        obj.values(torch.zeros(3))
    v, g = obj.values_and_grads(torch.ones(2, 3))
    assert torch.equal(v, torch.full((2,), 3.0)) and torch.equal(g, torch.full((2, 3), 2.0))
    assert obj.num_grad_evals == 2


# ------------------------------------------------------------------- kind / schema
def _ctx(arch: dict[str, Any], bad: set[str] = frozenset()) -> SubmitContext:  # type: ignore[assignment]
    def check_weights(ref: str) -> None:
        if ref in bad:
            raise ValueError(
                f"Weights {ref} do not match: 0.weight has shape (3, 2), expected (5, 2)."
            )

    return SubmitContext(
        num_params=21,
        num_samples=24,
        input_dim=2,
        output_dim=1,
        loss="mse",
        architecture=arch,
        param_shapes={},
        check_weights=check_weights,
    )


def test_schema_defaults_equal_runner_defaults() -> None:
    assert LevelSetConnectivityOptionsSchema().load({}) == DEFAULT_OPTIONS
    assert KIND.name == "level_set_connectivity"
    assert KIND.runner.endswith("runner:run_level_set_connectivity")


@pytest.mark.parametrize(
    "options, field",
    [
        ({"num_trained": 1}, "num_trained"),
        ({"num_trained": 2.0}, "num_trained"),
        ({"minima": ["sha256:a"], "num_trained": 0}, "num_trained"),
        ({"lambda_grid": []}, "lambda_grid"),
        ({"refine": {"budget_pairs": -1}}, "refine"),
        ({"paths": {"methods": []}}, "paths"),
        ({"paths": {"methods": ["linear"]}}, "paths"),
        ({"paths": {"neb": {"images": 40}}}, "paths"),
        ({"train": {"optimizer": "rmsprop"}}, "train"),
        ({"persistence_threshold": -0.1}, "persistence_threshold"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_schema_rejects(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        LevelSetConnectivityOptionsSchema().load(options)
    assert field in e.value.messages


def test_check_weights_and_alignment() -> None:
    opts = LevelSetConnectivityOptionsSchema().load({"minima": ["good", "bad"], "align": True})
    mlp = {"type": "mlp", "input_dim": 2, "hidden": [5], "output_dim": 1, "activation": "relu"}
    assert KIND.check is not None
    KIND.check(
        LevelSetConnectivityOptionsSchema().load({"minima": ["good"], "align": True}), _ctx(mlp)
    )
    with pytest.raises(ValidationError) as e:
        KIND.check(opts, _ctx(dict(mlp, residual=True), bad={"bad"}))
    assert e.value.messages["minima"] == {
        1: ["Weights bad do not match: 0.weight has shape (3, 2), expected (5, 2)."]
    }
    assert "residual" in e.value.messages["align"][0]
    conv = {
        "type": "sequential",
        "input_shape": [1, 4, 4],
        "layers": [{"type": "conv2d"}, {"type": "flatten"}],
    }
    with pytest.raises(ValidationError) as e:
        KIND.check(LevelSetConnectivityOptionsSchema().load({"align": True}), _ctx(conv))
    assert "conv2d" in e.value.messages["align"][0]
