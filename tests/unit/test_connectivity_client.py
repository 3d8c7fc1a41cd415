"""The SDK's typed classes for level_set_connectivity against the server's schema and a
real runner result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscope._exceptions import InvalidResponseError
from landscope.kinds.level_set_connectivity import (
    LevelSetConnectivityOptions,
    LevelSetConnectivityResult,
    NEBOptions,
    PathOptions,
    TrainOptions,
)
from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.connectivity import run_level_set_connectivity
from landscope_service.jobs.kinds.level_set_connectivity import LevelSetConnectivityOptionsSchema

DT = torch.float64


def test_options_defaults_match_server_schema() -> None:
    schema = LevelSetConnectivityOptionsSchema()
    assert LevelSetConnectivityOptions().to_json(full=True) == schema.load({})
    opts = LevelSetConnectivityOptions(
        num_trained=3,
        align=True,
        paths=PathOptions(methods=("neb", "bezier"), neb=NEBOptions(cycles=2)),
        lambda_grid=(0.0, 0.5),
    )
    assert schema.load(opts.to_json()) == opts.to_json(full=True)
    assert opts.to_json()["paths"] == {"methods": ["neb", "bezier"], "neb": {"cycles": 2}}


@pytest.fixture(scope="module")
def result_json() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).to(DT)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    prob = Problem(
        model, {k: p.detach() for k, p in model.named_parameters()}, x, x[:, :1] * x[:, 1:], "mse"
    )
    opts = LevelSetConnectivityOptions(
        num_trained=3,
        align=True,
        paths=PathOptions(neb=NEBOptions(cycles=2, steps=30)),
        lambda_grid_size=12,
        train=TrainOptions(steps=80),
    ).to_json()
    return run_level_set_connectivity(prob, opts, RunContext(seed=2)).result


def test_result_round_trip_and_helpers(result_json: dict) -> None:
    res = LevelSetConnectivityResult.from_json(result_json)
    assert res.num_minima == 3 and res.barriers_are_upper_bounds
    ps = res.parameter_space
    # The merge tree reproduces the server's counts at every grid level.
    assert [ps.n_lambda_at(lam) for lam in res.lambda_grid] == list(ps.n_lambda)
    assert [ps.n_lambda_at(lam, effective=False) for lam in res.lambda_grid] == list(
        ps.n_lambda_raw
    )
    assert [ps.components_at(lam) for lam in res.lambda_grid] == [
        sorted(sorted(c) for c in level) for level in ps.components
    ]
    assert res.n_lambda_table()[0] == (res.lambda_grid[0], ps.n_lambda[0])
    assert res.space("permutation").barriers_aligned is not None
    assert ps.barrier(0, 1) == result_json["parameter_space"]["barriers"][0][1]
    assert res.theory.freeman_bruna_linear.applies is False
    assert isinstance(res.spurious_valley_levels(), list)
    with pytest.raises(AttributeError):
        res.num_minima = 4  # type: ignore[misc]


def test_result_rejects_malformed(result_json: dict) -> None:
    bad = dict(result_json, num_minima="3")
    with pytest.raises(InvalidResponseError, match="num_minima"):
        LevelSetConnectivityResult.from_json(bad)
    bad2 = dict(result_json)
    del bad2["theory"]
    with pytest.raises(InvalidResponseError, match="theory"):
        LevelSetConnectivityResult.from_json(bad2)
    no_perm = dict(result_json, modulo_permutation=None)
    with pytest.raises(ValueError, match="align"):
        LevelSetConnectivityResult.from_json(no_perm).space("permutation")


def test_result_new_fields_typed(result_json: dict) -> None:
    res = LevelSetConnectivityResult.from_json(result_json)
    ps = res.parameter_space
    m = res.num_minima
    assert ps.barrier_source is not None and len(ps.barrier_source) == m
    assert {s for row in ps.barrier_source for s in row} <= {"direct", "chain", "minimum", None}
    assert ps.merge_heights_effective is not None
    assert len(ps.merge_heights_effective) == len(ps.merge_heights)
    assert ps.noise_level is not None and ps.noise_level >= 0
    assert ps.noise_rule is not None and ps.noise_rule["rule"] in ("relative", "absolute")
    # The matrix never exceeds a pair's own path bound (closure can only lower it).
    assert ps.barriers_direct is not None
    for i in range(m):
        for j in range(m):
            b, d = ps.barriers[i][j], ps.barriers_direct[i][j]
            assert b is not None and d is not None and b <= d + 1e-12
    assert all(p.resolution is not None and p.resolution >= 0 for p in ps.pairs)
    log = ps.refinement.rounds_log
    assert log and log[0].round == 0 and log[-1].pairs_refined == ps.refinement.pairs_refined
    fb = res.theory.freeman_bruna_linear
    assert fb.verdict is None and fb.agrees is None  # tanh network: nothing predicted
    assert res.guarantee.startswith("Every reported path barrier")
