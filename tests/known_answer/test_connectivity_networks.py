"""Known answers on networks, through the job runner.

Loss convention: the runner uses the problem's loss, PyTorch's mean-reduced mse, i.e.
``L = (N r)^-1 sum_mu |W_L ... W_1 x_mu - y_mu|^2``. With ``X = I`` the sum of squares
is ``N r`` times it: equal for widths (1, 1, 1) and (1, 2, 1) (N = r = 1), four times
smaller for (2, 3, 2) (N = r = 2). Heights below are in the mean convention.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.connectivity import (
    align_flat,
    flat_params,
    hidden_layers,
    run_level_set_connectivity,
)

DT = torch.float64
FAST_NEB = {"images": 5, "cycles": 3, "steps": 120}


def linear_net(*widths: int) -> nn.Sequential:
    layers = [nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths)]
    return nn.Sequential(*layers).to(DT)


def problem_for(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Problem:
    return Problem(model, {k: p.detach() for k, p in model.named_parameters()}, x, y, "mse")


def run_given(problem: Problem, minima: list[dict[str, torch.Tensor]], **options):
    blobs = {f"blob{k}": m for k, m in enumerate(minima)}
    ctx = RunContext(load_params=lambda ref: blobs[ref], seed=0)
    opts = {"minima": list(blobs), "num_trained": 0, "paths": {"methods": ["neb"], "neb": FAST_NEB}}
    opts.update(options)
    return run_level_set_connectivity(problem, opts, ctx).result


def test_linear_111_two_components_merging_at_one() -> None:
    model = linear_net(1, 1, 1)
    prob = problem_for(model, torch.ones(1, 1, dtype=DT), torch.ones(1, 1, dtype=DT))

    def mk(w1: float, w2: float) -> dict[str, torch.Tensor]:
        return {
            "0.weight": torch.tensor([[w1]], dtype=DT),
            "1.weight": torch.tensor([[w2]], dtype=DT),
        }

    minima = [mk(1, 1), mk(-1, -1), mk(2, 0.5), mk(-0.5, -2)]
    res = run_given(prob, minima, lambda_grid=[-0.1, 1e-3, 0.5, 0.99, 1.01, 2.0])
    ps = res["parameter_space"]
    assert ps["n_lambda"] == [0, 2, 2, 2, 1, 1]
    # Components: each sign branch of w1 w2 = 1 is one component below height 1.
    assert sorted(map(sorted, ps["components"][1])) == [[0, 2], [1, 3]]
    heights = sorted(h for h in ps["merge_heights"])
    assert heights[-1] == pytest.approx(1.0, abs=1e-3)  # the saddle at the origin
    assert heights[-2] < 1e-3
    assert res["barriers_are_upper_bounds"] is True
    # The minimax barrier across branches is exactly 1: no path may do better.
    assert min(ps["barriers"][0][1], ps["barriers"][2][3]) >= 1.0 - 1e-9
    assert res["theory"]["freeman_bruna_linear"]["applies"] is False
    assert res["theory"]["freeman_bruna_linear"]["hypotheses"]["width_condition"] is False


def test_linear_121_connected_at_zero() -> None:
    model = linear_net(1, 2, 1)
    prob = problem_for(model, torch.ones(1, 1, dtype=DT), torch.ones(1, 1, dtype=DT))

    def mk(u: list[float], v: list[float]) -> dict[str, torch.Tensor]:
        return {
            "0.weight": torch.tensor([[u[0]], [u[1]]], dtype=DT),
            "1.weight": torch.tensor([v], dtype=DT),
        }

    minima = [mk([1, 0], [1, 0]), mk([-1, 0], [-1, 0]), mk([0, 2], [0, 0.5]), mk([0, -1], [0, -1])]
    res = run_given(prob, minima, lambda_grid=[1e-2, 0.5, 1.5])
    ps = res["parameter_space"]
    assert ps["n_lambda"] == [1, 1, 1]
    # The straight segment between opposite signs crosses the origin (loss 1) ...
    # (a certified upper bound: the highest sample plus its resolution, rel. 1e-4)
    assert 1.0 - 1e-12 <= ps["pairs"][0]["linear"] <= 1.0 + 1e-3
    # ... while the optimised path keeps the loss near 0 (rotation within w1 . w2 = 1).
    assert max(h for h in ps["merge_heights"]) < 1e-2
    fb = res["theory"]["freeman_bruna_linear"]
    assert fb["applies"] is True and fb["predicted_n_lambda"] == 1 and fb["agrees"] is True


def test_linear_232_connected_freeman_bruna() -> None:
    model = linear_net(2, 3, 2)
    x = torch.eye(2, dtype=DT)
    y = torch.diag(torch.tensor([2.0, 1.0], dtype=DT))
    prob = problem_for(model, x, y)
    gen = torch.Generator().manual_seed(3)
    minima = []
    for k in range(4):
        w1 = torch.randn(3, 2, generator=gen, dtype=DT)
        w2 = y @ torch.linalg.pinv(w1)  # W2 W1 = Y: zero loss
        sign = -1.0 if k % 2 else 1.0
        minima.append({"0.weight": sign * w1, "1.weight": sign * w2})
    res = run_given(prob, minima, lambda_grid=[2e-2, 1.0])
    assert all(m["loss"] < 1e-20 for m in res["minima"])
    ps = res["parameter_space"]
    assert ps["n_lambda"] == [1, 1]
    # Connected at 0 up to the path finder's resolution: the optimised paths stay below
    # 2e-2 where the straight segments between these minima rise to 0.3 - 0.95.
    assert max(ps["merge_heights"]) < 2e-2
    assert max(p["linear"] for p in ps["pairs"]) > 0.25
    fb = res["theory"]["freeman_bruna_linear"]
    assert fb["applies"] is True and fb["agrees"] is True
    assert fb["hypotheses"]["hidden_widths"] == [3] and fb["hypotheses"]["min_n0_nL"] == 2


def test_linear_232_default_options_confirmed() -> None:
    """Freeman & Bruna: (2, 3, 2) linear, hidden width 3 > min(2, 2): N_lambda = 1 for
    every lambda >= 0 (the minima's losses are ~1e-31, so the levels start at 1e-20),
    found with the default path options, and the check says "confirmed"."""
    model = linear_net(2, 3, 2)
    x = torch.eye(2, dtype=DT)
    y = torch.diag(torch.tensor([2.0, 1.0], dtype=DT))
    prob = problem_for(model, x, y)
    gen = torch.Generator().manual_seed(3)
    minima = []
    for k in range(4):
        w1 = torch.randn(3, 2, generator=gen, dtype=DT)
        w2 = y @ torch.linalg.pinv(w1)
        sign = -1.0 if k % 2 else 1.0
        minima.append({"0.weight": sign * w1, "1.weight": sign * w2})
    blobs = {f"blob{k}": mm for k, mm in enumerate(minima)}
    ctx = RunContext(load_params=lambda ref: blobs[ref], seed=0)
    grid = [1e-20, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0]
    res = run_level_set_connectivity(
        prob, {"minima": list(blobs), "num_trained": 0, "lambda_grid": grid}, ctx
    ).result
    ps = res["parameter_space"]
    assert ps["n_lambda"] == [1] * len(grid)
    # Every merge is a real path below the noise level (not a lowered straight line).
    assert max(ps["merge_heights"]) < ps["noise_level"]
    assert all(src != "direct" or p["refined"] for p, src in [
        (p, ps["barrier_source"][p["i"]][p["j"]]) for p in ps["pairs"]
    ] if p["linear"] > ps["noise_level"] and src == "direct")
    fb = res["theory"]["freeman_bruna_linear"]
    assert fb["applies"] is True and fb["verdict"] == "confirmed" and fb["agrees"] is True
    # The raw counts stay beside the effective ones.
    assert ps["n_lambda_raw"][-1] == 1


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)
    ).to(DT)


def _permuted(params: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p1, p2 = torch.randperm(5, generator=g), torch.randperm(4, generator=g)
    out = dict(params)
    out["0.weight"], out["0.bias"] = params["0.weight"][p1], params["0.bias"][p1]
    out["2.weight"], out["2.bias"] = params["2.weight"][p2][:, p1], params["2.bias"][p2]
    out["4.weight"] = params["4.weight"][:, p2]
    return out


def test_alignment_recovers_a_permuted_copy() -> None:
    model = _mlp()
    p = {k: v.detach() for k, v in model.named_parameters()}
    q = _permuted(p, 1)
    prob = problem_for(model, torch.randn(16, 3, dtype=DT), torch.randn(16, 2, dtype=DT))
    ta = flat_params(prob)
    tb = torch.cat([q[k].reshape(-1) for k in p])
    assert not torch.equal(ta, tb)
    aligned, perms = align_flat(model, p, ta, tb)
    assert torch.equal(aligned, ta)
    assert [len(x) for x in perms] == [layer.width for layer in hidden_layers(model)]


def test_permuted_copy_one_component_modulo_permutation() -> None:
    model = _mlp()
    p = {k: v.detach() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=gen, dtype=DT)
    prob = problem_for(model, x, model(x).detach())  # p is a zero-loss minimum
    res = run_given(prob, [p, _permuted(p, 1)], align=True, lambda_grid=[1e-12, 1e-3])
    loss = res["minima"][0]["loss"]
    assert loss < 1e-25
    mp = res["modulo_permutation"]
    assert mp is not None and res["alignment"]["done"] is True
    # Aligned copy is identical: barrier = the endpoints' loss, one component.
    assert mp["barriers_aligned"][0][1] == pytest.approx(loss, abs=1e-25)
    assert mp["n_lambda"] == [1, 1]
    # In parameter space the straight line between the copies climbs well above 0.
    assert res["parameter_space"]["pairs"][0]["linear"] > 1e-3
