"""Known answers of ``landscape_slice`` (float64; each assertion states its tolerance).

* A linear model with mse: the loss is a quadratic in the parameters, and the slice along
  given directions equals its closed form (numpy, from the residuals) to 1e-12; so do the
  axis curvatures and the convexity map (the slice's constant 2x2 Hessian).
* Filter normalisation is invariant to ReLU rescaling, for an MLP (rows) and a conv net
  (output channels): the rescaled network's slice equals the original's (and without
  normalisation it does not).
* The plane through three minima passes through each at the reported coordinates, with
  the minima's own losses.
* A slice along the top Hessian eigenvector has centre curvature equal to the eigenvalue
  of the dense Hessian (second differences, 1e-5 relative).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscope_service.diagnostics import Params, Problem, RunContext, flatten, unflatten
from landscope_service.diagnostics.slice import run_landscape_slice

DT = torch.float64


def _loader(store: dict[str, Params]):  # type: ignore[no-untyped-def]
    def load(ref: str) -> Params:
        return {k: v.clone() for k, v in store[ref].items()}

    return load


def _linear_problem() -> tuple[Problem, nn.Sequential]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3)).to(DT)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g, dtype=DT)
    y = torch.randn(40, 3, generator=g, dtype=DT)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return Problem(model, params, x, y, "mse", batch_size=16), model


def test_linear_mse_slice_equals_closed_form() -> None:
    pr, _ = _linear_problem()
    g = torch.Generator().manual_seed(2)
    d1 = {k: torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    d2 = {k: torch.randn(v.shape, generator=g, dtype=DT) for k, v in pr.params.items()}
    ctx = RunContext(load_params=_loader({"d1": d1, "d2": d2}))
    out = run_landscape_slice(pr, {"dims": 2, "directions": "given",
                                   "direction_blobs": ["d1", "d2"],
                                   "range": [[-2.0, 1.0], [-0.5, 1.5]],
                                   "resolution": [13, 9]}, ctx)
    res = out.result
    # closed form: r(a, b) = r0 + a R1 + b R2 exactly (the model is linear in W and c);
    # L = mean(r^2) over samples and outputs.
    x, y = pr.x.numpy(), pr.y.numpy()

    def resid(p: Params) -> np.ndarray:
        return np.asarray(x @ p["0.weight"].numpy().T + p["0.bias"].numpy())

    r0 = resid(pr.params) - y
    r1, r2 = resid(d1), resid(d2)
    alpha, beta = np.asarray(res["axes"]["alpha"]), np.asarray(res["axes"]["beta"])
    want = np.array([[np.mean((r0 + a * r1 + b * r2) ** 2) for a in alpha] for b in beta])
    got = np.asarray(res["loss"], dtype=np.float64)
    assert got.shape == (9, 13)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    # the second difference of a quadratic is exact: d^T H d = 2 mean(R^2)
    for name, r in (("alpha", r1), ("beta", r2)):
        np.testing.assert_allclose(res["sharpness"][name]["curvature"], 2 * np.mean(r**2),
                                   rtol=1e-9)  # rounding of L / h^2 with h = 0.25
    np.testing.assert_allclose(res["centre_loss"], np.mean(r0**2), rtol=1e-12)
    # the slice's 2-D Hessian is the constant 2 [[R1.R1, R1.R2], [R1.R2, R2.R2]] / (N r):
    # central differences of a quadratic are exact, so every interior ratio is its
    # |lambda_min / lambda_max| (1e-9: rounding of L / h^2)
    conv = run_landscape_slice(pr, {"dims": 2, "directions": "given",
                                    "direction_blobs": ["d1", "d2"],
                                    "range": [[-2.0, 1.0], [-0.5, 1.5]], "resolution": [13, 9],
                                    "convexity": True, "plots": False}, ctx).result["convexity"]
    h2 = 2 * np.array([[np.mean(r1 * r1), np.mean(r1 * r2)], [np.mean(r1 * r2),
                                                                 np.mean(r2 * r2)]])
    lam = np.linalg.eigvalsh(h2)
    ratio = np.asarray(conv["ratio"], dtype=float)
    np.testing.assert_allclose(ratio[1:-1, 1:-1], abs(lam[0] / lam[1]), rtol=1e-9)
    assert np.isnan(ratio[0]).all() and conv["nonconvex_fraction"] == 0.0
    i, j = np.unravel_index(np.argmin(want), want.shape)
    assert res["minimum"]["alpha"] == pytest.approx(alpha[j], abs=0)
    assert res["minimum"]["beta"] == pytest.approx(beta[i], abs=0)
    # the npz holds the same numbers
    import io

    with np.load(io.BytesIO(next(a.data for a in out.artifacts if a.name == "slice.npz")),
                 allow_pickle=False) as z:
        np.testing.assert_allclose(z["loss"], want, rtol=1e-12)
        np.testing.assert_array_equal(z["alpha"], alpha)


def _relu_problem(scale: float, arch: str = "mlp") -> Problem:
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(4)
    if arch == "mlp":
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                              nn.Linear(8, 3)).to(DT)
        x = torch.randn(30, 5, generator=g, dtype=DT)
    else:  # filters are the conv's output channels
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 4 * 4, 3)).to(DT)
        x = torch.randn(30, 2, 4, 4, generator=g, dtype=DT)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    # f(x) is unchanged when layer 0 (weight and bias) is scaled by c and the next
    # weighted layer's weight by 1/c: relu(c z) = c relu(z) for c > 0.
    nxt = "2.weight" if arch == "mlp" else "3.weight"
    params["0.weight"] *= scale
    params["0.bias"] *= scale
    params[nxt] /= scale
    y = torch.randint(0, 3, (30,), generator=g)
    return Problem(model, params, x, y, "cross_entropy")


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("bias_norm", ["zero", "normalize"])
def test_filter_normalisation_is_invariant_to_relu_rescaling(bias_norm: str, arch: str
                                                            ) -> None:
    opts = {"dims": 2, "resolution": [7, 7], "seed": 5, "bias_norm": bias_norm,
            "accuracy": True, "plots": False}
    base = run_landscape_slice(_relu_problem(1.0, arch), opts, RunContext()).result
    scaled = run_landscape_slice(_relu_problem(7.5, arch), opts, RunContext()).result
    assert base["centre_loss"] == pytest.approx(scaled["centre_loss"], rel=1e-12)
    np.testing.assert_allclose(np.asarray(scaled["loss"]), np.asarray(base["loss"]),
                               rtol=1e-10)  # same function at every point, up to rounding
    np.testing.assert_array_equal(np.asarray(scaled["accuracy"]), np.asarray(base["accuracy"]))
    # the check can fail: raw Gaussian directions see the rescaling
    raw = {**opts, "normalization": "none"}
    b = np.asarray(run_landscape_slice(_relu_problem(1.0, arch), raw,
                                       RunContext()).result["loss"])
    s = np.asarray(run_landscape_slice(_relu_problem(7.5, arch), raw,
                                       RunContext()).result["loss"])
    assert np.max(np.abs(b - s) / np.abs(b)) > 1e-2


@pytest.mark.parametrize("orthogonalize", [False, True])
def test_plane_through_three_minima(orthogonalize: bool) -> None:
    pr, _ = _linear_problem()
    g = torch.Generator().manual_seed(6)
    minima = {f"m{i}": {k: v + 0.3 * torch.randn(v.shape, generator=g, dtype=DT)
                        for k, v in pr.params.items()} for i in range(3)}
    ctx = RunContext(load_params=_loader(minima))
    out = run_landscape_slice(pr, {"dims": 2, "directions": "minima",
                                   "minima": ["m0", "m1", "m2"], "orthogonalize": orthogonalize,
                                   "range": [[-0.5, 1.5], [-0.5, 1.5]],
                                   "resolution": [5, 5], "plots": False}, ctx)
    res = out.result
    own = [float(pr.full_loss(minima[f"m{i}"])) for i in range(3)]
    pts = res["points"]
    assert [p["label"] for p in pts] == ["minimum 0", "minimum 1", "minimum 2"]
    for p, lo in zip(pts, own, strict=True):
        assert p["loss"] == pytest.approx(lo, rel=1e-12)
        assert p["loss_at_coordinates"] == pytest.approx(lo, rel=1e-12)  # in the plane
        assert p["distance_from_slice"] < 1e-12
    if not orthogonalize:  # origin m0, d1 = m1 - m0, d2 = m2 - m0
        coords = [(p["alpha"], p["beta"]) for p in pts]
        np.testing.assert_allclose(coords, [(0, 0), (1, 0), (0, 1)], atol=1e-12)
        grid = np.asarray(res["loss"])  # alpha, beta in {-0.5, 0, 0.5, 1, 1.5}
        np.testing.assert_allclose([grid[1, 1], grid[1, 3], grid[3, 1]], own, rtol=1e-12)
    else:
        assert abs(res["directions"][0]["cosine"]) < 1e-12
        assert pts[1]["beta"] == pytest.approx(0.0, abs=1e-12)  # m1 lies on the first axis


def _tanh_problem() -> Problem:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).to(DT)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(8)
    x = torch.randn(25, 3, generator=g, dtype=DT)
    y = torch.randn(25, 2, generator=g, dtype=DT)
    return Problem(model, params, x, y, "mse")


def _dense_eigenvalues(pr: Problem) -> Tensor:
    theta = flatten(pr.params)
    h = torch.func.hessian(lambda t: pr.loss_fn(unflatten(t, pr.params), pr.x, pr.y))(theta)
    return torch.linalg.eigvalsh(0.5 * (h + h.T))


def test_hessian_top_slice_curvature_is_the_eigenvalue() -> None:
    pr = _tanh_problem()
    evals = _dense_eigenvalues(pr)
    out = run_landscape_slice(pr, {"dims": 2, "directions": "hessian_top",
                                   "range": [[-1e-3, 1e-3], [-1e-3, 1e-3]],
                                   "resolution": [3, 3], "hessian": {"tol": 1e-10},
                                   "plots": False},
                              RunContext())
    res = out.result
    # second differences with h = 1e-3: truncation h^2 / 12 * L'''' ~ 1e-7, rounding
    # eps * L / h^2 ~ 1e-10, so 1e-5 relative.
    for name, lam in (("alpha", evals[-1]), ("beta", evals[-2])):
        assert res["sharpness"][name]["curvature"] == pytest.approx(float(lam), rel=1e-5)
    assert res["direction_info"]["eigenvalues"] == pytest.approx(
        [float(evals[-1]), float(evals[-2])], rel=1e-9)  # Lanczos residual 1e-10 * ||H||
    assert all(d["norm"] == pytest.approx(1.0, abs=1e-12) for d in res["directions"])
    assert abs(res["directions"][0]["cosine"]) < 1e-8
    assert all(p["consistent"] for p in res["theory"]["predictions"])
