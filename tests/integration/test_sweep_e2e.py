"""``sweep`` end to end on the real stack (Redis, gunicorn API, Celery worker): the typed
SDK result equals the in-process runner's (float64, same seeds: every measure to 1e-9),
every claim runs through the CLI, and a claim that cannot apply is a 422 naming ``claim``."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

import landscope
from landscope.kinds.sweep import SweepResult
from landscope_service.local import LocalStack

from support import cli_submit, cli_wait, landscope_cli

pytestmark = pytest.mark.integration

ARCH = {"type": "mlp", "input_dim": 2, "hidden": [6], "output_dim": 1, "activation": "tanh",
        "bias": True}


def _data(n: int = 24, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    xs = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(n)]
    return {"inline": {"x": xs, "y": [[math.sin(2 * a) * math.cos(b)] for a, b in xs]}}


def sweep_request(**options: Any) -> dict[str, Any]:
    return {"kind": "sweep", "model": {"architecture": ARCH, "init_seed": 0},
            "data": _data(), "loss": "mse", "dtype": "float64", "seed": 5,
            "options": options}


def _in_process(req: dict[str, Any]) -> dict[str, Any]:
    import torch

    from landscope_service.diagnostics import RunContext
    from landscope_service.diagnostics.sweep.runner import run_sweep
    from landscope_service.modelspec.build import build_problem

    prob = build_problem(req, lambda b: b"", device=torch.device("cpu"), dtype=torch.float64)
    return run_sweep(prob, req["options"], RunContext(seed=req["seed"])).result


def _close(a: Any, b: Any, path: str = "result") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_edge_of_stability_through_the_sdk(client_a: landscope.Client) -> None:
    req = sweep_request(claim="edge_of_stability", seeds=3, learning_rates=[0.05, 0.5],
                        train={"steps": 40, "sharpness_every": 10})
    job = client_a.jobs.submit(req)
    res = client_a.jobs.result(job, timeout=300)
    assert isinstance(res, SweepResult)
    assert res.claim == "edge_of_stability" and res.seeds == 3
    assert [v.name for v in res.variants] == ["lr=0.05", "lr=0.5"]
    assert [r.seed for r in res.variants[0].runs] == [5, 6, 7]  # the job's seed + 0, 1, 2
    assert all(len(r.sharpness) == 5 for r in res.variants[0].runs)  # steps 0, 10, .., 40
    done = client_a.jobs.get(job.id)
    assert done.progress is not None and done.progress.fraction == 1.0
    _close(done.result, _in_process(req))


TINY = {
    "edge_of_stability": {"learning_rates": [0.05], "train": {"steps": 10,
                                                              "sharpness_every": 5}},
    "width_barriers": {"widths": [1, 2], "train": {"steps": 30, "lr": 0.2},
                       "barrier_points": 9},
    "batch_norm": {"measure_points": 2, "train": {"steps": 10}},
    "skip_connections": {"depths": [2], "slices": 2, "slice_points": 7,
                         "train": {"steps": 10}},
    "batch_size": {"batch_sizes": [6, 24], "target_fraction": 0.5, "sharpness_iters": 2,
                   "slices": 2, "train": {"steps": 40}},
    "weight_decay": {"weight_decays": [0, 0.1], "sharpness_iters": 2, "slices": 2,
                     "trace_probes": 4, "train": {"steps": 10}},
}
"""Every claim with a budget small enough for the suite."""


def test_every_claim_through_the_cli(stack: LocalStack, tmp_path: Path) -> None:
    """``landscope submit``, ``wait --json`` and ``result`` for each of the six claims (all
    submitted first, so the worker runs them back to back)."""
    run = landscope_cli(stack.url)
    ids = {claim: cli_submit(run, sweep_request(claim=claim, seeds=3, **options),
                             tmp_path / f"{claim}.json") for claim, options in TINY.items()}
    for claim, job_id in ids.items():
        finished = cli_wait(run, job_id)
        assert finished["status"] == "succeeded" and finished["kind"] == "sweep", claim
        res = SweepResult.from_json(finished["result"])
        assert res.claim == claim and res.seeds == 3
        assert res.verdict in ("supported", "not_supported", "inconclusive")
        assert all(len(v.runs) == 3 for v in res.variants)
        shown = run("result", job_id)
        assert shown.returncode == 0 and res.verdict in shown.stdout, claim
        if claim == "width_barriers":
            assert [v.params["hidden"] for v in res.variants] == [[6], [12]]
            for v in res.variants:
                assert len(v.pairs) == 3
                for p in v.pairs:
                    assert p.aligned_barrier is not None and p.raw_barrier is not None
                    assert p.aligned_barrier <= p.raw_barrier


def test_claim_that_cannot_apply_is_422(client_a: landscope.Client) -> None:
    req = sweep_request(claim="width_barriers")
    req["model"]["architecture"] = {**ARCH, "residual": True, "hidden": [2, 2]}
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(req)
    errors = dict(info.value.errors or {})
    assert "residual" in str(errors["options"]["claim"])
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(sweep_request(claim="learning_rate_warmup"))
    assert "claim" in dict(info.value.errors or {})["options"]
    with pytest.raises(landscope.UnprocessableEntityError) as info:  # 24 samples: both 24
        client_a.jobs.submit(sweep_request(claim="batch_size", batch_sizes=[24, 64]))
    assert "N = 24" in str(dict(info.value.errors or {})["options"]["batch_sizes"])


@pytest.mark.parametrize("claim", ["width_barriers", "batch_norm", "skip_connections",
                                   "batch_size", "weight_decay"])
def test_other_claims_through_the_sdk(client_a: landscope.Client, claim: str) -> None:
    req = sweep_request(seeds=3, claim=claim, **TINY[claim])
    job = client_a.jobs.submit(req)
    res = client_a.jobs.result(job, timeout=300)
    assert isinstance(res, SweepResult) and res.claim == claim
    assert len(res.variants) == 2 and all(len(v.runs) == 3 for v in res.variants)
    if claim == "batch_size":
        assert [v.params["batch_size"] for v in res.variants] == [24, 6]  # lr/B ascending
        assert all(r.epsilon_sharpness is not None and r.matched is not None
                   for v in res.variants for r in v.runs)
    if claim == "width_barriers":
        assert all(p.aligned_curve is not None and p.aligned_curve.t[-1] == 1.0
                   for v in res.variants for p in v.pairs)
    if claim == "weight_decay":
        assert all(r.trace_method == "hutchinson" and r.trace is not None
                   for v in res.variants for r in v.runs)
    done = client_a.jobs.get(job.id)
    assert {a.name for a in done.artifacts} >= {"seeds.png", "seeds.svg"}
    expected = _in_process(req)
    _close(done.result, expected)
