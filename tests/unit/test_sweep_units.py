"""``sweep`` pieces that need no training: the widening rule, the verdict and bootstrap
helpers, the submit-time checks (422 naming ``claim``), and the SDK's typed result read
from a real runner result."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import torch
from torch import nn

import landscope
from landscope.kinds.sweep import SweepResult
from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.sweep.runner import run_sweep
from landscope_service.diagnostics.sweep.variants import (
    check_plain_mlp,
    init_params,
    variant_problem,
    widen,
)
from landscope_service.diagnostics.sweep.verdict import bootstrap_interval, majority, verdict

from support import AUTH_A

DT = torch.float64


def _mlp(*widths: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def test_widen_rule_names_and_shapes() -> None:
    base = _mlp(3, 5, 4, 2)
    wide = widen(base, 2.5)
    shapes = {k: tuple(v.shape) for k, v in wide.named_parameters()}
    # hidden 5 -> round(12.5) = 12, 4 -> 10; input 3 and output 2 unchanged
    assert shapes == {"0.weight": (12, 3), "0.bias": (12,), "2.weight": (10, 12),
                      "2.bias": (10,), "4.weight": (2, 10), "4.bias": (2,)}
    assert [type(m) for m in wide] == [type(m) for m in base]
    assert [m.out_features for m in widen(base, 0.01) if isinstance(m, nn.Linear)] == [1, 1, 2]
    p = init_params(wide, 7, dtype=DT, device=torch.device("cpu"))
    q = init_params(wide, 7, dtype=DT, device=torch.device("cpu"))
    assert all(torch.equal(p[k], q[k]) for k in p)
    bound = 1 / 12**0.5  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as nn.Linear draws
    assert float(p["2.weight"].abs().max()) <= bound


def test_widen_refuses_what_it_cannot_widen() -> None:
    with pytest.raises(ValueError, match="no hidden layer"):
        widen(nn.Sequential(nn.Linear(3, 1)), 2)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        check_plain_mlp(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)))


def test_variant_problem_keeps_data_and_loss() -> None:
    x = torch.randn(5, 3, dtype=DT)
    base = Problem(_mlp(3, 4, 1), {k: v.to(DT) for k, v in _mlp(3, 4, 1).named_parameters()},
                   x, torch.zeros(5, 1, dtype=DT), "mse")
    v = variant_problem(base, widen(base.model, 2), 1)
    assert v.num_params == 3 * 8 + 8 + 8 + 1
    assert v.x is base.x and v.loss == "mse" and v.dtype == DT
    assert torch.isfinite(v.full_loss())


def test_verdict_and_interval() -> None:
    assert [majority(n) for n in (3, 4, 5, 6)] == [2, 3, 4, 4]
    assert verdict(3, 0, 3, blocking_confounds=False) == "supported"
    assert verdict(2, 1, 3, blocking_confounds=False) == "supported"
    assert verdict(1, 2, 3, blocking_confounds=False) == "not_supported"
    assert verdict(1, 1, 3, blocking_confounds=False) == "inconclusive"
    assert verdict(3, 0, 3, blocking_confounds=True) == "inconclusive"
    assert bootstrap_interval([0.7, 0.7, 0.7]) == (0.7, 0.7)
    lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0], seed=0)
    assert 1.0 <= lo <= 3.0 <= hi <= 10.0  # the median 3 lies inside; within the data
    assert bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0], seed=0) == (lo, hi)  # seeded


BASE: dict[str, Any] = {
    "kind": "sweep",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [6],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"synthetic": {"name": "two_moons", "num_samples": 16, "seed": 0}},
    "loss": "mse",
}


def _req(options: dict[str, Any], **arch: Any) -> dict[str, Any]:
    req = copy.deepcopy(BASE)
    req["model"]["architecture"].update(arch)
    req["options"] = options
    return req


@pytest.mark.parametrize(("name", "body", "path"), [
    ("claim not offered", _req({"claim": "learning_rate_warmup"}), ["options", "claim"]),
    ("batch sizes all at N", _req({"claim": "batch_size", "batch_sizes": [16, 32]}),
     ["options", "batch_sizes"]),
    ("one decay", _req({"claim": "weight_decay", "weight_decays": [0.1, 0.1]}),
     ["options", "weight_decays"]),
    ("too many batch-size runs", _req({"claim": "batch_size", "seeds": 64,
                                       "batch_sizes": list(range(1, 17)),
                                       "learning_rates": [0.1, 0.2],
                                       "train": {"steps": 1000}}),
     ["options", "train", "steps"]),
    ("width of a residual mlp", _req({"claim": "width_barriers"}, residual=True, hidden=[2, 2]),
     ["options", "claim"]),
    ("batch norm in a batch-norm mlp", _req({"claim": "batch_norm"}, batchnorm=True),
     ["options", "claim"]),
    ("skips in a residual mlp", _req({"claim": "skip_connections"}, residual=True,
                                     hidden=[2, 2]), ["options", "claim"]),
    ("width without hidden layer", _req({"claim": "width_barriers"}, hidden=[]),
     ["options", "claim"]),
    ("fewer than 3 seeds", _req({"seeds": 2}), ["options", "seeds"]),
    ("one width", _req({"claim": "width_barriers", "widths": [2]}), ["options", "widths"]),
    ("too many steps", _req({"seeds": 64, "learning_rates": [0.1] * 16,
                             "train": {"steps": 100_000}}), ["options", "train", "steps"]),
])
def test_422_at_submit(http: Any, redis_client: Any, name: str, body: dict[str, Any],
                       path: list[str]) -> None:
    resp = http.post("/v1/jobs", json=body, headers=AUTH_A)
    assert resp.status_code == 422, resp.get_json()
    node = resp.get_json()["errors"]
    for key in path:
        assert key in node, (path, resp.get_json())
        node = node[key]
    assert redis_client.llen("cpu") == 0


def test_width_claim_on_plain_mlp_is_accepted(http: Any) -> None:
    resp = http.post("/v1/jobs", json=_req({"claim": "width_barriers"}), headers=AUTH_A)
    assert resp.status_code == 202, resp.get_json()


def test_sdk_reads_a_runner_result() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, dtype=DT, generator=gen)
    model = _mlp(2, 6, 1)
    prob = Problem(model, init_params(model, 0, dtype=DT, device=torch.device("cpu")), x,
                   torch.tanh(x[:, :1]), "mse")
    for opts in ({"claim": "edge_of_stability", "learning_rates": [0.1, 0.5],
                  "train": {"steps": 12, "sharpness_every": 4}},
                 {"claim": "width_barriers", "widths": [1, 2],
                  "train": {"steps": 12}, "barrier_points": 5},
                 {"claim": "batch_norm", "measure_points": 2, "train": {"steps": 6}},
                 {"claim": "skip_connections", "depths": [1, 2], "slices": 1,
                  "slice_points": 5, "train": {"steps": 4}}):
        raw = run_sweep(prob, opts, RunContext()).result
        res = SweepResult.from_json(raw)
        assert res.claim == opts["claim"] and res.seeds == 3
        assert res.verdict in ("supported", "not_supported", "inconclusive")
        assert len(res.variants) in (2, 4) and all(len(v.runs) == 3 for v in res.variants)
        assert res.claim_statement.source
        assert len(res.effect.interval) == 2
    bad = {**raw, "verdict": "maybe"}
    with pytest.raises(landscope.InvalidResponseError, match="verdict"):
        SweepResult.from_json(bad)


def test_figures() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, dtype=DT, generator=gen)
    model = _mlp(2, 4, 1)
    prob = Problem(model, init_params(model, 0, dtype=DT, device=torch.device("cpu")), x,
                   torch.tanh(x[:, :1]), "mse")
    out = run_sweep(prob, {"claim": "edge_of_stability", "learning_rates": [0.1, 0.5],
                           "train": {"steps": 8, "sharpness_every": 4}})
    assert [a.name for a in out.artifacts] == ["sharpness.png", "sharpness.svg"]
    assert out.artifacts[0].data[:4] == b"\x89PNG"
    svg = out.artifacts[1].data.decode()
    assert "eta = 0.1" in svg and "eta = 0.5" in svg
    out = run_sweep(prob, {"claim": "batch_norm", "measure_points": 2, "train": {"steps": 4}})
    assert [a.name for a in out.artifacts] == ["seeds.png", "seeds.svg"]
    assert "effective beta" in out.artifacts[1].data.decode()
    assert run_sweep(prob, {"claim": "batch_norm", "plots": False, "measure_points": 2,
                            "train": {"steps": 2}}).artifacts == []
    out = run_sweep(prob, {"claim": "width_barriers", "widths": [1, 2], "barrier_points": 5,
                           "train": {"steps": 6}})
    names = [a.name for a in out.artifacts]
    assert names == ["seeds.png", "seeds.svg", "interpolation.png", "interpolation.svg"]
    assert "width x2 (aligned)" in out.artifacts[3].data.decode()
    for var in out.result["variants"]:
        for pair in var["pairs"]:
            for key in ("raw_curve", "aligned_curve"):  # ordered samples, ends included
                ts = pair[key]["t"]
                assert ts == sorted(ts) and ts[0] == 0.0 and ts[-1] == 1.0
                assert len(pair[key]["loss"]) == len(ts)
            # the certified barrier: highest sample + resolution, above the higher end
            peak = max(pair["raw_curve"]["loss"])
            ends = max(pair["raw_curve"]["loss"][0], pair["raw_curve"]["loss"][-1])
            bound = peak + pair["raw_resolution"] - ends
            assert abs(max(bound, 0.0) - pair["raw_barrier"]) <= 1e-9 * max(1.0, peak)
    out = run_sweep(prob, {"claim": "skip_connections", "depths": [2], "slices": 2,
                           "slice_points": 5, "train": {"steps": 2}})
    assert [a.name for a in out.artifacts][2:] == ["slices.png", "slices.svg"]
    for var in out.result["variants"]:
        for run in var["runs"]:
            assert [len(c) for c in run["slice_losses"]] == [5, 5]
