"""Known answers of ``sweep`` (float64; each assertion states its tolerance).

* Edge of stability on a 2-16-16-1 tanh network fitting 32 points of
  ``sin(2 x1) cos(x2)`` with the mean squared error: full-batch GD at eta = 0.3 drives
  lambda_max to 2/eta (last-third mean within 5% on 3/3 seeds, Cohen et al. 2021); at
  eta = 0.02 lambda_max stays far below 2/eta (ratio < 0.95 on every seed) and the verdict
  says "not reached".
* Invariance: a copy of a trained network with its hidden units permuted has the same
  lambda_max (1e-9 relative) and an aligned linear barrier of 0 (1e-9), while its raw
  barrier is positive.
* Consistency: in a width sweep the aligned barrier is at most the raw one in every pair.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscope_service.diagnostics import Monitor, Problem, RunContext, flatten, unflatten
from landscope_service.diagnostics.sweep.runner import linear_barrier, run_sweep
from landscope_service.diagnostics.sweep.train import gradient_descent, top_eigenvalue
from landscope_service.diagnostics.sweep.variants import init_params

DT = torch.float64


def _problem(hidden: tuple[int, ...] = (16, 16)) -> Problem:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, dtype=DT, generator=gen)
    y = torch.sin(2 * x[:, :1]) * torch.cos(x[:, 1:])
    layers: list[nn.Module] = []
    fan_in = 2
    for w in hidden:
        layers += [nn.Linear(fan_in, w), nn.Tanh()]
        fan_in = w
    layers.append(nn.Linear(fan_in, 1))
    model = nn.Sequential(*layers)
    return Problem(model, init_params(model, 0, dtype=DT, device=torch.device("cpu")), x, y,
                   "mse")


EOS_TRAIN = {"steps": 600, "sharpness_every": 20, "lanczos_tol": 1e-8,
             "lanczos_max_products": 200}


def test_edge_of_stability_reached_at_large_lr() -> None:
    r = run_sweep(_problem(), {"claim": "edge_of_stability", "seeds": 3,
                               "learning_rates": [0.3], "train": EOS_TRAIN},
                  RunContext(seed=0)).result
    runs = r["variants"][0]["runs"]
    assert len(runs) == 3
    for run in runs:
        assert run["status"] == "held", run["ratio"]
        assert abs(run["lambda_max_last_third"] / (2 / 0.3) - 1) <= 0.05
        assert run["last_third_converged"]
        # the loss is non-monotone at the edge
        assert run["loss_increases"] > 0
    assert (r["verdict"], r["held"], r["seeds"]) == ("supported", 3, 3)
    lo, hi = r["effect"]["interval"]
    assert 0.95 <= lo <= r["effect"]["value"] <= hi <= 1.05
    assert r["claim_statement"]["source"].startswith("Cohen")


def test_edge_of_stability_not_reached_at_small_lr() -> None:
    r = run_sweep(_problem(), {"claim": "edge_of_stability", "seeds": 3,
                               "learning_rates": [0.02],
                               "train": {**EOS_TRAIN, "steps": 300}},
                  RunContext(seed=0)).result
    runs = r["variants"][0]["runs"]
    assert all(run["status"] == "not_reached" and run["ratio"] < 0.95 for run in runs)
    # GD below the edge: the loss falls monotonically
    assert all(run["loss_increases"] == 0 for run in runs)
    assert r["verdict"] == "inconclusive"
    assert r["held"] == 0
    assert "not reached at lr=0.02" in r["detail"] and "ratio" in r["detail"]


def _permute_hidden(params: dict[str, torch.Tensor], perm: torch.Tensor) -> dict[str, torch.Tensor]:
    out = dict(params)
    out["0.weight"] = params["0.weight"][perm]
    out["0.bias"] = params["0.bias"][perm]
    out["2.weight"] = params["2.weight"][:, perm]
    return out


def test_permuted_copy_same_sharpness_and_zero_aligned_barrier() -> None:
    prob = _problem((12,))
    run = gradient_descent(prob, lr=0.1, steps=300)
    trained = unflatten(run.theta, prob.params)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    permuted = _permute_hidden(trained, perm)
    a, b = flatten(trained), flatten(permuted)
    assert float((a - b).abs().max()) > 1e-2  # a different point of parameter space
    kw = {"tol": 1e-10, "max_products": 300}
    lam_a, _, ok_a = top_eigenvalue(prob, a, seed=1, **kw)
    lam_b, _, ok_b = top_eigenvalue(prob, b, seed=2, **kw)
    assert ok_a and ok_b
    assert abs(lam_a - lam_b) <= 1e-9 * abs(lam_a)
    bar = linear_barrier(Problem(prob.model, trained, prob.x, prob.y, "mse"), a, b, 33)
    assert bar["aligned"] <= 1e-9
    assert bar["matched"] <= 1e-9
    assert bar["raw"] > 1e-3  # without alignment the line leaves the minimum


def test_aligned_barrier_never_above_raw() -> None:
    r = run_sweep(_problem((6,)), {"claim": "width_barriers", "seeds": 3,
                                   "widths": [1, 3], "train": {"steps": 300, "lr": 0.1}},
                  RunContext(seed=0)).result
    pairs = [p for v in r["variants"] for p in v["pairs"]]
    assert len(pairs) == 6
    for p in pairs:
        assert p["aligned_barrier"] <= p["raw_barrier"]
        assert p["aligned_barrier"] >= 0.0
    assert r["verdict"] in ("supported", "not_supported", "inconclusive")
    assert [v["params"]["hidden"] for v in r["variants"]] == [[6], [18]]
    assert r["seeds"] == 3 and 0 <= r["held"] <= 3


def test_progress_monotone_and_cancel() -> None:
    seen: list[float] = []
    mon = Monitor(progress=lambda st, f, m: seen.append(f), min_interval=0.0)
    run_sweep(_problem((4,)), {"claim": "edge_of_stability", "seeds": 3,
                               "learning_rates": [0.1, 0.2],
                               "train": {"steps": 20, "sharpness_every": 5}},
              RunContext(monitor=mon))
    assert seen == sorted(seen) and seen[-1] == 1.0
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 30

    from landscope_service.diagnostics import Cancelled

    with pytest.raises(Cancelled):
        run_sweep(_problem((4,)), {"claim": "edge_of_stability", "seeds": 3,
                                   "train": {"steps": 10_000}},
                  RunContext(monitor=Monitor(should_cancel=cancel, min_interval=0.0)))
    assert calls["n"] == 31  # stopped inside the first training loop


def test_smoothness_along_gradient_of_a_quadratic() -> None:
    """A linear model with mse has a quadratic loss: along -g the gradient change per unit
    step is |H g| / |g| for every step, and L(theta - eta g) = L - eta |g|^2 +
    eta^2 g'Hg / 2; both against the dense Hessian (1e-10 relative)."""
    from landscope_service.diagnostics.sweep.runner import smoothness_along_gradient
    from landscope_service.diagnostics.sweep.train import loss_and_grad

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, dtype=DT, generator=gen)
    y = torch.randn(20, 2, dtype=DT, generator=gen)
    model = nn.Sequential(nn.Linear(3, 2))
    prob = Problem(model, init_params(model, 0, dtype=DT, device=torch.device("cpu")), x, y,
                   "mse")
    theta = flatten(prob.params)
    hess = torch.autograd.functional.hessian(
        lambda t: prob.full_loss(unflatten(t, prob.params)), theta)
    loss0, g = loss_and_grad(prob, theta)
    etas = [0.05, 0.2, 1.0]
    out = smoothness_along_gradient(prob, theta, etas)
    beta = float((hess @ g).norm() / g.norm())
    assert out["beta"] is not None and abs(out["beta"] - beta) <= 1e-10 * beta
    curve = [loss0] + [loss0 - e * float(g @ g) + e * e * float(g @ hess @ g) / 2 for e in etas]
    rng = max(curve) - min(curve)
    assert out["loss_range"] is not None and abs(out["loss_range"] - rng) <= 1e-10 * rng


def test_batch_norm_sweep_measures_both_variants() -> None:
    r = run_sweep(_problem((8,)), {"claim": "batch_norm", "seeds": 3, "measure_points": 3,
                                   "train": {"steps": 20, "lr": 0.1}},
                  RunContext(seed=0)).result
    assert [v["name"] for v in r["variants"]] == ["plain", "batchnorm"]
    # 2*8 + 8 + 8 + 1 without; + 2*8 batch-norm scale and shift with
    assert [v["params"]["num_params"] for v in r["variants"]] == [33, 49]
    for v in r["variants"]:
        for run in v["runs"]:
            assert [p["step"] for p in run["points"]] == [0, 10, 20]
            assert run["beta"] is not None and run["beta"] > 0
    held = sum(b["beta"] < a["beta"] for a, b in zip(r["variants"][0]["runs"],
                                                     r["variants"][1]["runs"], strict=True))
    assert r["held"] == held and r["seeds"] == 3
    assert r["claim_statement"]["source"].startswith("Santurkar")


def test_nonconvex_fraction_known_cases() -> None:
    """A linear model with mse is convex along every slice (fraction 0). For
    L(w1, w2) = (w2 w1 - 1)^2 at w1 = w2 = 0.5 (x = y = 1), a filter-normalised direction is
    (+-0.5, +-0.5): with equal signs L(a) = (0.25 (1 + a)^2 - 1)^2 has L'' < 0 near a = 0
    (non-convex), with opposite signs L(a) = (0.75 + 0.25 a^2)^2 is convex."""
    from landscope_service.diagnostics.slice.directions import random_filter_normalized
    from landscope_service.diagnostics.sweep.runner import nonconvex_fraction

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 3, dtype=DT, generator=gen)
    lin = nn.Sequential(nn.Linear(3, 2))
    prob = Problem(lin, init_params(lin, 0, dtype=DT, device=torch.device("cpu")), x,
                   torch.randn(20, 2, dtype=DT, generator=gen), "mse")
    frac, flags = nonconvex_fraction(prob, flatten(prob.params), slices=6, points=21, seed=0)
    assert frac == 0.0 and flags == [False] * 6

    two = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False))
    params = {"0.weight": torch.full((1, 1), 0.5, dtype=DT),
              "1.weight": torch.full((1, 1), 0.5, dtype=DT)}
    prob2 = Problem(two, params, torch.ones(1, 1, dtype=DT), torch.ones(1, 1, dtype=DT), "mse")
    theta = flatten(params)
    expected = []
    for k in range(8):
        d = random_filter_normalized(prob2, 1, seed=k).vectors[0]
        assert torch.allclose(d.abs(), torch.full((2,), 0.5, dtype=DT), atol=1e-12)
        expected.append(bool(d[0] * d[1] > 0))
    assert True in expected and False in expected  # both cases occur
    frac2, flags2 = nonconvex_fraction(prob2, theta, slices=8, points=21, seed=0)
    assert flags2 == expected and frac2 == sum(expected) / 8


def test_skip_connection_variants() -> None:
    from landscope_service.diagnostics.sweep.variants import ScaledResidual, deepen

    base = _problem((6,))
    plain = deepen(base.model, 3, residual=False)
    resid = deepen(base.model, 3, residual=True)
    assert sum(isinstance(m, nn.Linear) for m in plain) == 4
    blocks = [m for m in resid if isinstance(m, ScaledResidual)]
    assert len(blocks) == 2 and all(abs(b.scale - 3 ** -0.5) <= 1e-15 for b in blocks)
    # the residual block computes x + f(x)/sqrt(3)
    p = init_params(resid, 1, dtype=DT, device=torch.device("cpu"))
    z = torch.randn(4, 6, dtype=DT)
    w, b = p["2.0.weight"], p["2.0.bias"]
    out = torch.func.functional_call(blocks[0], {"0.weight": w, "0.bias": b}, (z,))
    assert torch.allclose(out, z + torch.tanh(z @ w.T + b) / 3 ** 0.5, atol=1e-14)
    r = run_sweep(base, {"claim": "skip_connections", "seeds": 3, "depths": [3],
                         "slices": 2, "slice_points": 9,
                         "train": {"steps": 10, "lr": 0.05, "lanczos_max_products": 300}},
                  RunContext(seed=0)).result
    assert [v["name"] for v in r["variants"]] == ["plain depth 3", "residual depth 3"]
    for v in r["variants"]:
        for run in v["runs"]:
            assert run["eig_converged"]
            assert run["lambda_min"] <= run["lambda_max"]
            assert run["eig_ratio"] == pytest.approx(abs(run["lambda_min"] / run["lambda_max"]))
            assert len(run["nonconvex_slices"]) == 2
    held = sum(b["lambda_max"] < a["lambda_max"] for a, b in
               zip(r["variants"][0]["runs"], r["variants"][1]["runs"], strict=True))
    assert r["held"] == held
