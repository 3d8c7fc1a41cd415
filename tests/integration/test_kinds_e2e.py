"""Each diagnostic end to end: SDK (typed results, artifacts) and the CLI, real stack."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import landscope
from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration


def _points(n: int, dim: int, seed: int) -> tuple[list[list[float]], list[list[float]]]:
    rng = random.Random(seed)
    x = [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]
    y = [[rng.gauss(0, 1)] for _ in range(n)]
    return x, y


def manifold_request() -> dict[str, Any]:
    x, y = _points(10, 3, 0)
    return {
        "kind": "minimizer_manifold",
        "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8],
                                   "output_dim": 1, "activation": "tanh", "bias": True},
                  "init_seed": 0},
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse", "dtype": "float64",
        "options": {"walk_steps": 3, "walk_step_length": 0.05},
    }


def test_minimizer_manifold_sdk(client_a: landscope.Client) -> None:
    job = client_a.jobs.submit(manifold_request())
    res = client_a.jobs.result(job, timeout=240)
    assert isinstance(res, landscope.kinds.result_class("minimizer_manifold"))
    assert res.num_params == 41 and res.num_equations == 10
    assert res.fit.interpolated
    assert res.dimension.predicted == 31 and res.dimension.measured == 31
    assert res.theory.applies and res.theory.agrees
    png = client_a.jobs.artifact(job.id, "singular_values.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_minimizer_manifold_rejects_cross_entropy(client_a: landscope.Client) -> None:
    req = manifold_request()
    req["loss"] = "cross_entropy"
    req["model"]["architecture"]["output_dim"] = 2
    req["data"]["inline"]["y"] = [i % 2 for i in range(10)]
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(req)
    assert "loss" in (info.value.errors or {})


def test_cli_submit_wait_and_artifacts(stack: LocalStack, tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(manifold_request()))
    env = {**os.environ, "LANDSCOPE_URL": stack.url, "LANDSCOPE_API_KEY": "key-a"}
    cli = [str(Path(sys.executable).with_name("landscope"))]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env,
                              timeout=300)

    sub = run("submit", str(job_file), "--json")
    assert sub.returncode == 0, sub.stderr
    job_id = json.loads(sub.stdout)["id"]
    waited = run("wait", job_id, "--no-progress", "--json")
    assert waited.returncode == 0, waited.stderr
    finished = json.loads(waited.stdout)  # wait --json prints the whole job
    assert finished["status"] == "succeeded"
    assert finished["result"]["dimension"]["measured"] == 31
    table = run("result", job_id, "--table")
    assert table.returncode == 0 and "31" in table.stdout
    dl = run("artifacts", job_id, "--out", str(tmp_path / "arts"))
    assert dl.returncode == 0, dl.stderr
    assert (tmp_path / "arts" / "singular_values.png").exists()
    missing = run("status", "job_00000000000000000000000000")
    assert missing.returncode == 3 and "404" in missing.stderr + missing.stdout
