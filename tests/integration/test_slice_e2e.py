"""``landscape_slice`` end to end: SDK (typed result, artifacts), CLI, and the 422s at
submit time, on the real stack (Redis, gunicorn API, Celery worker)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import landscope
from landscope.kinds.landscape_slice import LandscapeSliceResult
from landscope_service.local import LocalStack

from support import block_request, cli_submit, cli_wait, landscope_cli, wait_file

pytestmark = pytest.mark.integration

ARCH = {"type": "mlp", "input_dim": 2, "hidden": [5], "output_dim": 3,
        "activation": "tanh", "bias": True}


def _data(n: int = 24, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"inline": {"x": [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(n)],
                       "y": [rng.randrange(3) for _ in range(n)]}}


def slice_request(**options: Any) -> dict[str, Any]:
    return {"kind": "landscape_slice", "model": {"architecture": ARCH, "init_seed": 0},
            "data": _data(), "loss": "cross_entropy", "dtype": "float64",
            "options": {"dims": 2, "range": [[-1, 1]], "resolution": [7, 5], "seed": 3,
                        **options}}


def _in_process(req: dict[str, Any]) -> dict[str, Any]:
    import torch

    from landscope_service.diagnostics import RunContext
    from landscope_service.diagnostics.slice import run_landscape_slice
    from landscope_service.modelspec.build import build_problem

    prob = build_problem(req, lambda b: b"", device=torch.device("cpu"), dtype=torch.float64)
    return run_landscape_slice(prob, {**req["options"], "plots": False},
                               RunContext()).result


def test_random_slice_through_the_sdk(client_a: landscope.Client) -> None:
    req = slice_request(accuracy=True, convexity=True, range=[[-1, 1], [-1, 1]])
    job = client_a.jobs.submit(req)
    res = client_a.jobs.result(job, timeout=240)
    assert isinstance(res, LandscapeSliceResult)
    assert res.dims == 2 and res.seed == 3 and res.num_points == 35
    rows = res.loss_rows()
    assert len(rows) == 5 and all(len(r) == 7 for r in rows)
    # the worker's numbers are the library's numbers (same float64 arithmetic)
    local = _in_process(req)
    np.testing.assert_allclose(np.asarray(rows, dtype=float), np.asarray(local["loss"]),
                               rtol=1e-12)
    acc = res.accuracy_rows()
    assert acc is not None and all(0.0 <= a <= 1.0 for r in acc for a in r if a is not None)
    assert res.minimum is not None and res.minimum.loss == pytest.approx(min(
        v for r in rows for v in r if v is not None), rel=1e-15)
    assert res.convexity is not None and res.convexity.ratio[0][0] is None
    assert res.sharpness.beta is not None
    assert [d.name for d in res.directions] == ["random 0", "random 1"]
    names = {a.name for a in client_a.jobs.get(job.id).artifacts}
    assert names >= {"slice.npz", "contour.png", "surface.png", "slice.vtk"}
    assert client_a.jobs.artifact(job.id, "contour.png")[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(io.BytesIO(client_a.jobs.artifact(job.id, "slice.npz")),
                 allow_pickle=False) as z:
        np.testing.assert_array_equal(z["loss"], np.asarray(rows, dtype=float))
    vtk = client_a.jobs.artifact(job.id, "slice.vtk").decode()
    assert vtk.startswith("# vtk DataFile Version 3.0") and "DIMENSIONS 7 5 1" in vtk


def test_cli_submit_wait_and_contour(stack: LocalStack, tmp_path: Path) -> None:
    run = landscope_cli(stack.url)
    job_id = cli_submit(run, slice_request(), tmp_path / "slice.json")
    finished = cli_wait(run, job_id)
    assert finished["status"] == "succeeded" and finished["kind"] == "landscape_slice"
    assert len(finished["result"]["loss"]) == 5
    dl = run("artifacts", job_id, "--out", str(tmp_path / "arts"))
    assert dl.returncode == 0, dl.stderr
    assert (tmp_path / "arts" / "contour.png").read_bytes()[:4] == b"\x89PNG"


def _errors(client: landscope.Client, req: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client.jobs.submit(req)
    return dict(info.value.errors or {})


@pytest.mark.parametrize(("options", "field"), [
    ({"resolution": [0]}, "resolution"),
    ({"resolution": [202, 5]}, "resolution"),
    ({"dims": 1, "resolution": [402]}, "resolution"),
    ({"range": [[1, 1], [-1, 1]]}, "range"),
    ({"range": [[-1, 1], [2, -2]]}, "range"),
    ({"range": [-1, 1]}, "range"),
    ({"accuracy": True, "dims": 1, "convexity": True}, "convexity"),
    ({"directions": "minima", "minima": ["sha256:" + "0" * 64, "sha256:" + "1" * 64]},
     "minima"),
])
def test_bad_options_are_422_at_submit(client_a: landscope.Client, options: dict[str, Any],
                                       field: str) -> None:
    errors = _errors(client_a, slice_request(**options))
    assert field in errors.get("options", {}), errors


def test_minima_blob_that_does_not_fit(client_a: landscope.Client) -> None:
    from safetensors.numpy import save

    good = {"0.weight": np.zeros((5, 2)), "0.bias": np.zeros(5), "2.weight": np.zeros((3, 5)),
            "2.bias": np.zeros(3)}
    bad = {**good, "2.weight": np.zeros((3, 4))}
    ids = [client_a.blobs.upload(save(w)).id for w in (good, bad)]
    errors = _errors(client_a, slice_request(directions="minima", minima=ids))
    msg = json.dumps(errors["options"]["minima"])
    assert "2.weight" in msg and "1" in errors["options"]["minima"]


def _minima_blobs(client: landscope.Client) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    from safetensors.numpy import save

    rng = np.random.default_rng(4)
    ws = [{"0.weight": rng.normal(size=(5, 2)), "0.bias": rng.normal(size=5),
           "2.weight": rng.normal(size=(3, 5)), "2.bias": rng.normal(size=3)} for _ in range(2)]
    return [client.blobs.upload(save(w)).id for w in ws], ws


def test_path_of_a_connectivity_job(client_a: landscope.Client, client_b: landscope.Client,
                                    tmp_path: Path) -> None:
    ids, _ = _minima_blobs(client_a)
    conn = client_a.jobs.submit({
        "kind": "level_set_connectivity", "model": {"architecture": ARCH, "init_seed": 0},
        "data": _data(), "loss": "cross_entropy", "dtype": "float64",
        "options": {"minima": ids, "num_trained": 0, "refine": {"strategy": "none"},
                    "lambda_grid_size": 4}})
    # another tenant's job is unknown to this key
    other = _errors(client_b, slice_request(dims=1, resolution=[5], directions="path",
                                            path_job=conn.id, pair=[0, 1]))
    assert "No job" in json.dumps(other["options"]["path_job"])
    # an unfinished job: a test_block job holds the worker until its gate appears
    gate = tmp_path / "gate"
    blocked = client_a.jobs.submit(block_request(str(gate), started=str(tmp_path / "pid")))
    wait_file(tmp_path / "pid")
    try:
        unfinished = _errors(client_a, slice_request(dims=1, resolution=[5],
                                                     directions="path", path_job=blocked.id,
                                                     pair=[0, 1]))
        assert "running" in json.dumps(unfinished["options"]["path_job"])
    finally:
        gate.touch()
    conn_res = client_a.jobs.result(conn, timeout=300)
    bad_pair = _errors(client_a, slice_request(dims=1, resolution=[5], directions="path",
                                               path_job=conn.id, pair=[0, 2]))
    assert "pair" in bad_pair["options"]
    job = client_a.jobs.submit(slice_request(dims=1, resolution=[9], range=[[-0.25, 1.75]],
                                             directions="path", path_job=conn.id,
                                             pair=[1, 0]))
    assert job.request["options"]["path_points"] == [ids[1], ids[0]]
    res = client_a.jobs.result(job, timeout=240)
    assert isinstance(res, LandscapeSliceResult) and res.dims == 1
    assert [p.alpha for p in res.points] == pytest.approx([0.0, 1.0], abs=1e-12)
    want = [conn_res.minima[1].loss, conn_res.minima[0].loss]
    assert [p.loss for p in res.points] == pytest.approx(want, rel=1e-10)
    assert [p.loss_at_coordinates for p in res.points] == pytest.approx(want, rel=1e-10)
    grid = res.loss_rows()[0]  # alpha = -0.25, 0, 0.25, ..., 1.75: the ends at 0 and 1
    assert [grid[1], grid[5]] == pytest.approx(want, rel=1e-10)
    assert {a.name for a in client_a.jobs.get(job.id).artifacts} >= {
        "slice.npz", "profile.png", "profile.svg", "slice.vtk", "report.html"}


def test_hessian_top_through_the_service(client_a: landscope.Client) -> None:
    """The top eigenvector computed in the same job: the centre curvature along it is its
    eigenvalue (second difference with h = 1e-3, float64: 1e-5 relative)."""
    job = client_a.jobs.submit(slice_request(dims=1, directions="hessian_top",
                                             range=[[-1e-3, 1e-3]], resolution=[3],
                                             hessian={"tol": 1e-10}))
    res = client_a.jobs.result(job, timeout=240)
    lam = res.direction_info["eigenvalues"][0]
    assert res.sharpness.alpha.curvature == pytest.approx(lam, rel=1e-5)
    assert res.directions[0].norm == pytest.approx(1.0, abs=1e-12)
    assert {a.name for a in client_a.jobs.get(job.id).artifacts} >= {
        "slice.npz", "profile.png", "profile.svg", "slice.vtk", "report.html"}
