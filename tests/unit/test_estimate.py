"""Submit-time cost estimates and the mode ``auto`` chooses by them."""

from __future__ import annotations

from typing import Any

import pytest

from landscope_service.diagnostics.cost import (
    DEFAULT_RATES,
    choose_hessian_mode,
    hessian_estimate,
    rates_from_samples,
)
from landscope_service.jobs.estimate import estimate_job, pool_rates

from support import AUTH_A, evaluate_request


def test_small_mlp_is_exact_cnn_sized_is_iterative() -> None:
    small = hessian_estimate(353, 64, {"top_k": 3, "bottom_k": 2, "blocks": True})
    assert small["mode"] == "exact"
    assert small["products"] == {"typical": 358, "max": 358}   # P columns + 5 GGN products
    # the conv net of issue 11 (P ~ 1.9k, N = 1,437): under exact_threshold, yet the dense
    # build (P products plus eigh) costs more than the iterative run's ~830 products
    cnn = hessian_estimate(1946, 1437, {})
    assert cnn["mode"] == "iterative"
    ex, it = cnn["modes"]["exact"], cnn["modes"]["iterative"]
    assert ex["seconds"]["typical"] > it["seconds"]["typical"]
    assert it["products"]["typical"] == 12 * 8 + 8 * 80 + 6
    assert it["products"]["max"] == 2000 + 8 * 80 + 6
    for mode in (ex, it):
        s = mode["seconds"]
        assert 0 < s["low"] <= s["typical"] <= s["high"]
    assert ex["memory_bytes"] == 1946 ** 2 * 20


def test_explicit_modes_and_threshold() -> None:
    assert choose_hessian_mode(100, 10, {"mode": "iterative"}) == "iterative"
    assert choose_hessian_mode(5000, 10, {"mode": "exact"}) == "exact"
    assert choose_hessian_mode(300, 10, {"exact_threshold": 200}) == "iterative"
    assert choose_hessian_mode(300, 10, {}) == "exact"
    # without density and trace the iterative run is short: it wins sooner
    assert choose_hessian_mode(600, 1000, {"density": False, "trace": False}) == "iterative"


def test_rates_from_measurements() -> None:
    assert rates_from_samples([]) is DEFAULT_RATES
    r = rates_from_samples([{"units": 1_000_000, "seconds_per_product": 0.011},
                            {"units": 1_000_000, "seconds_per_product": 0.021}])
    lo, mid, hi = r.per_unit_s
    assert mid == pytest.approx(1.5e-8) and lo == pytest.approx(0.7e-8)
    assert hi == pytest.approx(3e-8) and "2 recent jobs" in r.source
    workers = [{"queues": ["gpu"], "rates": [{"units": 10, "seconds_per_product": 5.0}]},
               {"queues": ["cpu"], "rates": [{"units": 1_000_000,
                                              "seconds_per_product": 0.011}]}]
    assert pool_rates(workers, "cpu").per_unit_s[1] == pytest.approx(1e-8)
    assert pool_rates([], "cpu") is DEFAULT_RATES


def test_every_kind_gets_an_estimate_never_a_made_up_one() -> None:
    ev = estimate_job({"kind": "evaluate", "dtype": "float64"}, num_params=10,
                      num_samples=5, rates=DEFAULT_RATES)
    assert ev["products"] == {"typical": 1, "max": 1} and ev["memory_bytes"] == 240
    # coarse models from the option budgets, saying so
    conn = estimate_job({"kind": "level_set_connectivity", "options": {
        "num_trained": 3, "train": {"steps": 100},
        "paths": {"methods": ["neb"], "linear": {"num_points": 10, "refine_rounds": 2,
                                                 "refine_points": 5},
                  "neb": {"cycles": 2, "steps": 10, "images": 3, "max_pivots": 9}}}},
        num_params=10, num_samples=5, rates=DEFAULT_RATES)
    # 3 minima -> 3 pairs; training 300; per pair 10 samples + 20 steps x 5 (max 9) pivots
    assert conn["products"] == {"typical": 300 + 3 * (10 + 100),
                                "max": 300 + 3 * (10 + 10 + 180)}
    assert "coarse" in conn["basis"]
    man = estimate_job({"kind": "minimizer_manifold", "options": {
        "fit_max_steps": 10, "walk_steps": 2, "retract_max_steps": 8,
        "hessian_exact_max_params": 100}}, num_params=10, num_samples=5,
        rates=DEFAULT_RATES, outputs=2)
    assert man["products"] == {"typical": 5 * 2 + 10 + 2 * 2 * 2 + 2,
                               "max": 10 * 2 + 10 + 2 * 8 * 2 + 2}
    other = estimate_job({"kind": "test_block"}, num_params=10, num_samples=5,
                         rates=DEFAULT_RATES)
    assert other["products"] is None and other["seconds"] is None and other["note"]


def test_submitted_job_carries_estimate_and_limits(http: Any) -> None:
    req = evaluate_request()
    req.update(kind="hessian_spectrum", options={"top_k": 2}, max_runtime_s=60,
               queue_timeout_s=30)
    resp = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert resp.status_code == 202, resp.get_json()
    job = resp.get_json()
    est = job["estimate"]
    assert est["kind"] == "hessian_spectrum" and est["mode"] in ("exact", "iterative")
    assert est["rates"]["source"].startswith("default")
    assert job["limits"]["max_runtime_s"] == 60
    assert job["limits"]["queue_deadline_at"].endswith("Z")
    bad = http.post("/v1/jobs", json={**req, "max_runtime_s": "60"}, headers=AUTH_A)
    assert bad.status_code == 422 and "max_runtime_s" in bad.get_json()["errors"]


def test_work_per_sample_counts_convolutions_per_position() -> None:
    from landscope_service.jobs.estimate import work_per_sample

    mlp = {"type": "mlp", "input_dim": 3, "hidden": [16, 16], "output_dim": 1,
           "activation": "tanh", "bias": True}
    # weights 48 + 256 + 16, plus the inputs of the two tanh layers (16 each); P = 353
    assert work_per_sample(mlp) == max(48 + 256 + 16 + 32, 353)
    cnn = {"type": "sequential", "input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10}]}
    conv1 = 8 * 1 * 9 * 6 * 6          # 6x6 outputs
    relu = 8 * 6 * 6
    conv2 = 4 * 8 * 9 * 3 * 3          # (6 + 2 - 3) // 2 + 1 = 3
    flat = 4 * 3 * 3
    lin = 10 * 36
    assert work_per_sample(cnn) == conv1 + relu + conv2 + flat + lin
    assert work_per_sample({"type": "nonsense"}) == 0


@pytest.mark.parametrize("resolution", [21, [21], [21, 21]])
def test_slice_budget_counts_every_grid_point(resolution: Any) -> None:
    """One count for every axis (int or one-element list) means a 21 x 21 grid in 2-D."""
    from landscope_service.diagnostics.cost import gradient_budgets

    budget = gradient_budgets("landscape_slice", 100, {"dims": 2, "resolution": resolution})
    assert budget is not None and budget["typical"] == 21 * 21 // 3 + 1
