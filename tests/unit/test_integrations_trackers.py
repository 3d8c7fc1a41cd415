"""MLflow (file store) and W&B (offline) runs contain a real result's metrics, params,
tables and figures. The results come from the real runners on a tiny float64 model."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from landscope import Job
from landscope.integrations._common import flat_metrics, sanitise
from landscope.kinds.hessian_spectrum import HessianSpectrumOptions
from landscope.kinds.level_set_connectivity import (
    LevelSetConnectivityOptions,
    NEBOptions,
    PathOptions,
    TrainOptions,
)
from landscope_service.diagnostics import Problem, RunContext
from landscope_service.diagnostics.connectivity import run_level_set_connectivity
from landscope_service.diagnostics.hessian import run_hessian_spectrum

mlflow = pytest.importorskip("mlflow")  # the extras are in the dev install (make test)
wandb = pytest.importorskip("wandb")

DT = torch.float64


def _problem() -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).to(DT)
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    y = torch.randn(12, 1, generator=torch.Generator().manual_seed(2), dtype=DT)
    return Problem(model, {k: p.detach() for k, p in model.named_parameters()}, x, y, "mse")


@pytest.fixture(scope="module")
def spectrum_job() -> Job:
    opts = HessianSpectrumOptions(top_k=2, bottom_k=1, density_probes=2,
                                  density_steps=6).to_json()
    result = json.loads(json.dumps(run_hessian_spectrum(_problem(), opts, RunContext()).result))
    request = {"kind": "hessian_spectrum", "loss": "mse", "options": opts, "seed": 0,
               "data": {"inline": {"x": [[0.0, 1.0]], "y": [[1.0]]}}}
    return Job.from_json({
        "id": "job_1", "kind": "hessian_spectrum", "status": "succeeded",
        "progress": {"stage": "done", "fraction": 1.0, "message": ""},
        "created_at": "2026-01-01T00:00:00.000000Z", "metadata": {}, "request": request,
        "result": result,
        "artifacts": [{"name": "spectrum.png", "media_type": "image/png", "size": 0,
                       "sha256": "0" * 64}]})


@pytest.fixture(scope="module")
def connectivity_result() -> dict[str, Any]:
    opts = LevelSetConnectivityOptions(
        num_trained=3, paths=PathOptions(neb=NEBOptions(cycles=1, steps=20)),
        lambda_grid_size=6, train=TrainOptions(steps=60)).to_json()
    out = run_level_set_connectivity(_problem(), opts, RunContext(seed=3))
    return json.loads(json.dumps(out.result))  # type: ignore[no-any-return]


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


class _Jobs:
    """The one client call the loggers make (fetching a figure), answered locally."""

    def artifact(self, job: Any, name: str) -> bytes:
        assert name == "spectrum.png"
        return _png()


class _Client:
    jobs = _Jobs()


def test_keys_are_sanitised() -> None:
    assert sanitise("a[3].b:c d") == "a.3.b_c d"
    m = flat_metrics({"x": 1, "ok": True, "nan": float("nan"), "v": [1.0, 2.0],
                      "long": list(range(100)), "s": "text", "n": {"y": 2.5}})
    assert m == {"x": 1.0, "ok": 1.0, "v.0": 1.0, "v.1": 2.0, "n.y": 2.5}


def test_mlflow_file_store_run_has_the_metrics(spectrum_job: Job, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from landscope.integrations.mlflow import log_result

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it opt-in

    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        with mlflow.start_run() as run:
            logged = log_result(spectrum_job, client=_Client())
        stored = mlflow.get_run(run.info.run_id)
        result = spectrum_job.result or {}
        assert stored.data.metrics["landscope.sharpness"] == pytest.approx(result["sharpness"])
        assert stored.data.metrics["landscope.top.eigenvalues.1"] == \
            pytest.approx(result["top"]["eigenvalues"][1])
        assert stored.data.params["landscope.kind"] == "hessian_spectrum"
        assert stored.data.params["landscope.options.top_k"] == "2"
        assert not any(k.startswith("landscope.data.inline") for k in stored.data.params)
        files = {f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id,
                                                                     "landscope")}
        assert {"landscope/request.json", "landscope/result.json", "landscope/figures"} <= files
        assert set(logged.figures) == {"spectrum.png"}
    finally:
        mlflow.set_tracking_uri(None)


def test_wandb_offline_run_has_the_metrics_and_tables(
        spectrum_job: Job, connectivity_result: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from landscope.integrations.wandb import log_result, tables

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="landscope-test", dir=str(tmp_path))
    try:
        logged = log_result(spectrum_job, run=run, client=_Client())
        log_result(connectivity_result, run=run, prefix="conn")
        summary = dict(run.summary)
        assert summary["landscope.sharpness"] == pytest.approx(
            (spectrum_job.result or {})["sharpness"])
        assert "conn.num_minima" in summary and summary["conn.num_minima"] == 3
        assert run.config["landscope.kind"] == "hessian_spectrum"
        t = tables(connectivity_result)
        assert set(t) >= {"merge_tree", "n_lambda"} and len(t["n_lambda"][1]) == 6
        assert set(tables(logged.result)) == {"density"}
    finally:
        run.finish()
    files = [p for p in tmp_path.rglob("*.wandb")]
    assert files and os.path.getsize(files[0]) > 0
