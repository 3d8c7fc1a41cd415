"""Each diagnostic end to end: SDK (typed results, artifacts) and the CLI, real stack."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import landscope
from landscope_service.local import LocalStack

from support import cli_submit, cli_wait, landscope_cli

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


def _small_connectivity_request() -> dict[str, Any]:
    x, y = _points(16, 2, 2)
    return {
        "kind": "level_set_connectivity",
        "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [4],
                                   "output_dim": 1, "activation": "relu"},
                  "init_seed": 0},
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse",
        "options": {"num_trained": 3, "train": {"steps": 100},
                    "paths": {"neb": {"images": 3, "cycles": 1, "steps": 20}}},
    }


CLI_CASES = {
    # kind: (request, an artifact it writes, a check of the result)
    "evaluate": (lambda: {**_hessian_request("exact"), "kind": "evaluate", "options": {}},
                 None, lambda r: r["num_params"] == 31),
    "hessian_spectrum": (lambda: _hessian_request("exact"), "density.png",
                         lambda r: len(r["top"]["eigenvalues"]) == 3),
    "minimizer_manifold": (manifold_request, "singular_values.png",
                           lambda r: r["dimension"]["measured"] == 31),
    "level_set_connectivity": (_small_connectivity_request, "merge_tree.png",
                               lambda r: r["num_minima"] == 3),
}


@pytest.mark.parametrize("kind", list(CLI_CASES))
def test_cli_submit_wait_and_artifacts(stack: LocalStack, tmp_path: Path, kind: str) -> None:
    make, artifact, check = CLI_CASES[kind]
    run = landscope_cli(stack.url)
    job_id = cli_submit(run, make(), tmp_path / "job.json")
    finished = cli_wait(run, job_id)  # wait --json prints the whole job
    assert finished["status"] == "succeeded" and finished["kind"] == kind
    assert check(finished["result"])
    table = run("result", job_id, "--table")
    assert table.returncode == 0 and table.stdout.strip()
    if artifact is not None:
        dl = run("artifacts", job_id, "--out", str(tmp_path / "arts"))
        assert dl.returncode == 0, dl.stderr
        assert (tmp_path / "arts" / artifact).read_bytes()[:4] == b"\x89PNG"
    missing = run("status", "job_00000000000000000000000000")
    assert missing.returncode == 3 and "404" in missing.stderr + missing.stdout


def test_level_set_connectivity_given_and_trained_minima(client_a: landscope.Client) -> None:
    """Given minima are evaluated where they are; N_lambda is 0 below the lowest minimum
    and 1 above the highest barrier; the theory block checks Freeman-Bruna's width."""
    import io

    import numpy as np
    import torch
    from safetensors.numpy import save

    from landscope_service.diagnostics.evaluate import evaluate
    from landscope_service.modelspec.build import build_problem

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 2))
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    data = client_a.blobs.upload(buf.getvalue())
    arch = {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 2,
            "activation": "identity", "bias": False}
    given = []
    for _ in range(2):
        w = {"0.weight": rng.normal(size=(3, 2)), "2.weight": rng.normal(size=(2, 3))}
        given.append((w, client_a.blobs.upload(save(w)).id))
    req = {
        "kind": "level_set_connectivity",
        "model": {"architecture": arch, "init_seed": 0},
        "data": {"blob": data.id, "format": "npz"},
        "loss": "mse", "dtype": "float64",
        "options": {"minima": [b for _, b in given], "num_trained": 1,
                    "train": {"steps": 200, "lr": 0.05},
                    "paths": {"methods": ["neb"], "neb": {"images": 3, "cycles": 1,
                                                          "steps": 30}},
                    "lambda_grid_size": 8},
    }
    job = client_a.jobs.submit(req)
    res = client_a.jobs.result(job, timeout=300)
    assert res.num_minima == 3
    space = res.parameter_space
    losses = [m.loss for m in res.minima]
    for (w, _), m in zip(given, res.minima[:2], strict=True):
        prob = build_problem({**req, "model": {"architecture": arch, "init_seed": 0}},
                             lambda b: buf.getvalue(), device=torch.device("cpu"),
                             dtype=torch.float64)
        prob.params = {k: torch.as_tensor(v) for k, v in w.items()}
        assert m.loss == pytest.approx(evaluate(prob)["loss"], rel=1e-9)
    top = max(b for row in space.barriers for b in row if b is not None)
    assert space.n_lambda_at(min(losses) - 1e-6) == 0
    assert space.n_lambda_at(top + 1e-6) == 1
    assert res.barriers_are_upper_bounds
    fb = res.theory.freeman_bruna_linear  # widths 2-3-2: 3 > min(2, 2), so it applies
    assert fb.applies and fb.predictions
    assert {a.name for a in client_a.jobs.get(job.id).artifacts} >= {
        "merge_tree.png", "path_profiles.png", "barriers.json"}


def _hessian_request(mode: str) -> dict[str, Any]:
    x, y = _points(24, 3, 5)
    return {
        "kind": "hessian_spectrum",
        "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [6],
                                   "output_dim": 1, "activation": "tanh", "bias": True},
                  "init_seed": 3},
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse", "dtype": "float64",
        "options": {"mode": mode, "top_k": 3, "bottom_k": 2, "tol": 1e-10,
                    "density_probes": 4, "density_steps": 20},
    }


def test_hessian_spectrum_matches_dense_reference(client_a: landscope.Client) -> None:
    """Worker results, exact and iterative, against torch.func.hessian computed here
    (float64; 1e-8 relative)."""
    import torch
    from torch.func import functional_call, hessian

    from landscope_service.modelspec.build import build_problem

    req = _hessian_request("exact")
    prob = build_problem(req, lambda b: b"", device=torch.device("cpu"), dtype=torch.float64)
    names = list(prob.params)
    shapes = [prob.params[n].shape for n in names]
    flat = torch.cat([prob.params[n].reshape(-1) for n in names])

    def loss(v: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            parts[n] = v[i:i + s.numel()].reshape(s)
            i += s.numel()
        out = functional_call(prob.model, parts, (prob.x,))
        return torch.nn.functional.mse_loss(out, prob.y)

    evals = torch.linalg.eigvalsh(hessian(loss)(flat))
    jobs = {mode: client_a.jobs.submit(_hessian_request(mode)) for mode in ("exact", "iterative")}
    for mode, job in jobs.items():
        res = client_a.jobs.wait(job.id, timeout=300)
        assert res.status == "succeeded", res.error
        assert res.result is not None
        top = res.result["top"]["eigenvalues"]
        bottom = res.result["bottom"]["eigenvalues"]
        want_top = sorted(evals.tolist(), reverse=True)[:3]
        want_bottom = sorted(evals.tolist())[:2]
        assert top == pytest.approx(want_top, rel=1e-8, abs=1e-10), mode
        assert sorted(bottom) == pytest.approx(want_bottom, rel=1e-8, abs=1e-10), mode
        typed = client_a.jobs.get(job.id).typed_result()
        assert type(typed).__name__ == "HessianSpectrumResult"
        png = client_a.jobs.artifact(job.id, "density.png")
        assert png[:4] == b"\x89PNG"
