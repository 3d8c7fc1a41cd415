"""Unit tests of the slice core: directions, batched grid, progress, cancellation, files.

Float64 models; tolerances stated at each assertion.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from landscope_service.diagnostics import (
    Cancelled,
    Monitor,
    Params,
    Problem,
    RunContext,
    flatten,
    unflatten,
)
from landscope_service.diagnostics.slice import (
    evaluate_points,
    filter_normalize,
    parameter_roles,
    points_per_pass,
    resolve_options,
    run_landscape_slice,
    trajectory_pca,
)
from landscope_service.diagnostics.slice.plots import log_levels_wanted, vtk_bytes

DT = torch.float64


def _mlp(loss: str = "cross_entropy", n: int = 24, batch: int | None = None) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3)).to(DT)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g, dtype=DT)
    y = (torch.randint(0, 3, (n,), generator=g) if loss == "cross_entropy"
         else torch.randn(n, 3, generator=g, dtype=DT))
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return Problem(model, params, x, y, loss, batch_size=batch)  # type: ignore[arg-type]


def _conv() -> Problem:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 4)).to(DT)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 2, 5, 5, generator=g, dtype=DT)
    y = torch.randint(0, 4, (10,), generator=g)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return Problem(model, params, x, y, "cross_entropy", batch_size=4)


def _reference(pr: Problem, origin: torch.Tensor, dirs: list[torch.Tensor],
               coords: torch.Tensor) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for c in coords:
            theta = origin + sum(float(c[j]) * dirs[j] for j in range(len(dirs)))
            out.append(pr.full_loss(unflatten(theta, pr.params)))
    return torch.stack(out)


@pytest.mark.parametrize("make", [_mlp, _conv], ids=["linear-first", "conv-first"])
@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("per_pass", [1, 3])
def test_batched_grid_equals_point_by_point(make: Any, shortcut: bool, per_pass: int) -> None:
    pr = make()
    g = torch.Generator().manual_seed(4)
    origin = flatten(pr.params)
    dirs = [torch.randn(origin.shape, generator=g, dtype=DT) for _ in range(2)]
    coords = torch.randn(11, 2, generator=g, dtype=DT)
    got, _ = evaluate_points(pr, origin, dirs, coords, per_pass=per_pass, shortcut=shortcut)
    want = _reference(pr, origin, dirs, coords)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)  # float64 rounding only


def test_batchnorm_model_runs_point_by_point() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).to(DT)
    model.eval()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    g = torch.Generator().manual_seed(6)
    x = torch.randn(12, 3, generator=g, dtype=DT)
    y = torch.randn(12, 2, generator=g, dtype=DT)
    pr = Problem(model, params, x, y, "mse", buffers=buffers)
    origin = flatten(params)
    dirs = [torch.randn(origin.shape, generator=g, dtype=DT)]
    coords = torch.linspace(-1, 1, 5, dtype=DT).reshape(-1, 1)
    got, _ = evaluate_points(pr, origin, dirs, coords)
    torch.testing.assert_close(got, _reference(pr, origin, dirs, coords), rtol=1e-12, atol=0)


def test_accuracy_counts_argmax_hits() -> None:
    pr = _mlp()
    origin = flatten(pr.params)
    d = torch.zeros_like(origin)
    _, acc = evaluate_points(pr, origin, [d], torch.zeros(1, 1, dtype=DT), accuracy=True)
    with torch.no_grad():
        want = float((pr.forward(pr.params, pr.x).argmax(-1) == pr.y).double().mean())
    assert acc is not None and float(acc[0]) == want  # exact: a count over N
    with pytest.raises(ValueError, match="cross_entropy"):
        evaluate_points(_mlp("mse"), origin, [d], torch.zeros(1, 1, dtype=DT), accuracy=True)


def test_filter_normalisation_norms() -> None:
    pr = _conv()
    roles = parameter_roles(pr.model, pr.params)
    assert roles == {"0.weight": "filter", "0.bias": "bias_norm", "3.weight": "filter",
                     "3.bias": "bias_norm"}
    g = torch.Generator().manual_seed(7)
    raw = {k: torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    zero = filter_normalize(raw, pr.params, roles, "zero")
    for k in ("0.weight", "3.weight"):  # per output channel / per row, to 1e-12
        want = pr.params[k].reshape(pr.params[k].shape[0], -1).norm(dim=1)
        got = zero[k].reshape(zero[k].shape[0], -1).norm(dim=1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    assert all(float(zero[k].abs().max()) == 0.0 for k in ("0.bias", "3.bias"))
    norm = filter_normalize(raw, pr.params, roles, "normalize")
    for k in ("0.bias", "3.bias"):  # one block per parameter
        assert float(norm[k].norm()) == pytest.approx(float(pr.params[k].norm()), rel=1e-12)
    with pytest.raises(ValueError, match="bias_norm"):
        filter_normalize(raw, pr.params, roles, "ignore")  # type: ignore[arg-type]


def test_trajectory_pca_reconstructs_a_planar_trajectory() -> None:
    g = torch.Generator().manual_seed(8)
    origin = torch.randn(50, generator=g, dtype=DT)
    e = torch.linalg.qr(torch.randn(50, 2, generator=g, dtype=DT))[0]
    uv = torch.randn(6, 2, generator=g, dtype=DT) * torch.tensor([3.0, 1.0], dtype=DT)
    cps = [origin + e @ c for c in uv]
    d = trajectory_pca(origin, cps, 2)
    assert d.trajectory is not None
    basis = torch.stack(d.vectors, dim=1)
    for cp, c in zip(cps, d.trajectory, strict=True):  # in the plane: exact to 1e-12
        torch.testing.assert_close(origin + basis @ c, cp, rtol=0, atol=1e-12)
    assert sum(d.info["explained_variance_ratio"]) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="degenerate"):
        trajectory_pca(origin, [origin + e[:, 0] * t for t in (1.0, 2.0, 3.0)], 2)


def test_progress_counts_grid_points_and_never_goes_back() -> None:
    pr = _mlp()
    seen: list[tuple[str, float, str]] = []
    mon = Monitor(progress=lambda s, f, m: seen.append((s, f, m)), min_interval=0.0)
    out = run_landscape_slice(pr, {"dims": 2, "resolution": [6, 5], "rows_per_piece": 2,
                                   "points_per_pass": 4, "plots": False},
                              RunContext(monitor=mon))
    fractions = [f for _, f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    grid_msgs = [m for s, _, m in seen if s == "grid" and m.endswith("grid points")]
    # each piece names its rows and counts its own points (pieces may run anywhere)
    assert "rows 1-2 of 5: 4/12 grid points" in grid_msgs
    assert "row 5 of 5: 6/6 grid points" in grid_msgs
    assert seen[-1][2] == "30/30 grid points"
    assert out.result["pieces"] == 3 and out.result["num_points"] == 30


def test_cancellation_is_checked_before_every_pass() -> None:
    pr = _mlp()
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    mon = Monitor(should_cancel=should_cancel, min_interval=0.0)
    origin = flatten(pr.params)
    coords = torch.zeros(40, 1, dtype=DT)
    with pytest.raises(Cancelled):
        evaluate_points(pr, origin, [origin], coords, per_pass=2, monitor=mon)
    assert calls["n"] == 4  # three passes ran, the fourth check stopped the loop


def test_points_per_pass_fits_the_budget() -> None:
    pr = _mlp(n=24)
    per_point = 8 * (2 * pr.num_params + 2 * 24 * (7 + 7 + 3))
    assert points_per_pass(pr, 10 * per_point) == 10
    assert points_per_pass(pr, 1) == 1


@pytest.mark.parametrize(("opts", "match"), [
    ({"dims": 1, "resolution": [0]}, "resolution"),
    ({"dims": 1, "resolution": [402]}, "401"),
    ({"dims": 2, "resolution": [202, 5]}, "between 2 and 201"),
    ({"dims": 2, "range": [[1.0, 1.0], [-1.0, 1.0]]}, "range for alpha is empty"),
    ({"dims": 2, "range": [-1.0, 1.0, 2.0, 0.0]}, "range for beta is empty"),
    ({"dims": 2, "range": [-1.0, 1.0, 2.0]}, "range"),
    ({"dims": 1, "resolution": [5, 5]}, "resolution"),
    ({"dims": 3}, "dims"),
    ({"directions": "minima", "minima": ["a"]}, "minima"),
    ({"directions": "given", "direction_blobs": ["a"]}, "direction_blobs"),
    ({"directions": "trajectory_pca", "checkpoints": ["a", "b"]}, "checkpoints"),
    ({"directions": "path"}, "path_points"),
    ({"dims": 1, "convexity": True}, "convexity"),
    ({"bias_norm": "ignore"}, "bias_norm"),
    ({"colour": "red"}, "Unknown options"),
])
def test_bad_options_are_named(opts: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        resolve_options(opts)


def _loader(store: dict[str, Params]):  # type: ignore[no-untyped-def]
    return lambda ref: store[ref]


def test_one_d_path_and_files() -> None:
    pr = _mlp("mse", batch=10)
    g = torch.Generator().manual_seed(9)
    a = {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    b = {k: v - 0.1 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    out = run_landscape_slice(pr, {"dims": 1, "directions": "path", "path_points": ["a", "b"],
                                   "pair": [0, 1], "resolution": [9],
                                   "range": [[-0.25, 1.25]]},
                              RunContext(load_params=_loader({"a": a, "b": b})))
    res = out.result
    assert [p["alpha"] for p in res["points"]] == pytest.approx([0.0, 1.0], abs=1e-12)
    assert res["axes"]["beta"] is None and len(res["loss"]) == 9
    names = [x.name for x in out.artifacts]
    assert names == ["slice.npz", "profile.png", "profile.svg", "slice.vtk"]
    files = {x.name: x.data for x in out.artifacts}
    assert files["profile.png"][:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(io.BytesIO(files["slice.npz"]), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["loss"], np.asarray(res["loss"], dtype=np.float64))
        np.testing.assert_allclose(z["points"][:, 0], [0.0, 1.0], atol=1e-12)
    vtk = files["slice.vtk"].decode().splitlines()
    assert vtk[:5] == ["# vtk DataFile Version 3.0", "landscope loss slice", "ASCII",
                       "DATASET STRUCTURED_GRID", "DIMENSIONS 9 1 1"]
    assert vtk[5] == "POINTS 9 double"
    assert float(vtk[6].split()[2]) == res["loss"][0]  # %.17g round-trips exactly


def test_two_d_files_and_log_levels() -> None:
    out = run_landscape_slice(_mlp(), {"dims": 2, "resolution": [5, 4], "convexity": True,
                                       "accuracy": True}, RunContext())
    names = [x.name for x in out.artifacts]
    assert names == ["slice.npz", "contour.png", "contour.svg", "surface.png", "surface.svg",
                     "slice.vtk"]
    conv = out.result["convexity"]
    assert conv["ratio"][0][0] is None and conv["ratio"][1][1] is not None  # boundary null
    assert log_levels_wanted(np.array([1e-3, 1.0])) and not log_levels_wanted(
        np.array([0.5, 1.0]))
    assert not log_levels_wanted(np.array([0.0, 1.0]))
    text = vtk_bytes(np.array([0.0, 1.0]), np.array([0.0, 1.0]),
                     np.array([[1.0, np.nan], [2.0, 3.0]])).decode()
    assert "nan" not in text.lower() and "SCALARS log_loss double 1" in text


def test_trajectory_pca_runner_overlays_the_trajectory_inside_the_default_range() -> None:
    pr = _mlp("mse")
    origin = flatten(pr.params)
    g = torch.Generator().manual_seed(10)
    e = torch.linalg.qr(torch.randn(origin.numel(), 2, generator=g, dtype=DT))[0]
    uv = torch.randn(5, 2, generator=g, dtype=DT) * torch.tensor([2.0, 0.5], dtype=DT)
    store = {f"c{i}": unflatten(origin + e @ c, pr.params) for i, c in enumerate(uv)}
    out = run_landscape_slice(pr, {"dims": 2, "directions": "trajectory_pca",
                                   "checkpoints": list(store), "resolution": [5],
                                   "plots": False},
                              RunContext(load_params=_loader(store)))
    res = out.result
    traj = np.asarray(res["trajectory"])
    # the checkpoints lie in a plane through the origin, so the projection is an isometry:
    # norms and pairwise distances of the coordinates equal those of uv (1e-12)
    c = uv.numpy()
    np.testing.assert_allclose(np.linalg.norm(traj, axis=1), np.linalg.norm(c, axis=1),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(traj[:, None] - traj[None], axis=2),
                               np.linalg.norm(c[:, None] - c[None], axis=2), rtol=0, atol=1e-12)
    a, b = np.asarray(res["axes"]["alpha"]), np.asarray(res["axes"]["beta"])
    assert a.min() < traj[:, 0].min() and a.max() > traj[:, 0].max()
    assert b.min() < traj[:, 1].min() and b.max() > traj[:, 1].max()
    assert sum(res["direction_info"]["explained_variance_ratio"]) == pytest.approx(1.0,
                                                                                    abs=1e-12)



def test_plane_through_two_minima_takes_a_random_second_axis() -> None:
    pr = _mlp("mse")
    g = torch.Generator().manual_seed(11)
    a = {k: v + 0.2 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    b = {k: v - 0.2 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    out = run_landscape_slice(pr, {"dims": 2, "directions": "minima", "minima": ["a", "b"],
                                   "resolution": [5], "seed": 4, "orthogonalize": True,
                                   "plots": False},
                              RunContext(load_params=_loader({"a": a, "b": b})))
    res = out.result
    coords = [(p["alpha"], p["beta"]) for p in res["points"]]
    np.testing.assert_allclose(coords, [(0.0, 0.0), (1.0, 0.0)], atol=1e-12)
    assert res["origin"] == "first point" and res["seed"] == 4
    assert res["directions"][1]["name"] == "random (filter-normalised)"
    assert abs(res["directions"][0]["cosine"]) < 1e-12
    for p, w in zip(res["points"], (a, b), strict=True):  # in the plane, 1e-12
        assert p["loss_at_coordinates"] == pytest.approx(float(pr.full_loss(w)), rel=1e-12)
