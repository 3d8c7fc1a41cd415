"""Certified path maxima: a narrow maximum between far-apart minima, 1-D and 2-D.

The true maxima are closed forms evaluated on dense grids (spacing far below the bump's
width, so the grid error is below 1e-9 here). A uniform 33-point sample of the same
path misses the bump by more than 0.05 (checked), so the tests can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscope_service.diagnostics.connectivity import Objective, linear_path, neb_path
from landscope_service.diagnostics.connectivity.paths import NEBConfig
from landscope_service.diagnostics.connectivity.profile import (
    LinearConfig,
    LineCurve,
    certify_profiles,
    interval_bounds,
)

DT = torch.float64
BUMP_AT, BUMP_W = 3.3, 0.2


def f1(x: torch.Tensor) -> torch.Tensor:
    """A quartic double well (minima near +-10, hump 1 at 0), a broad bump of 0.9 at
    -5 and a narrow bump of 1 at 3.3 (width 0.2) that the uniform grid steps over."""
    return (
        1e-4 * (x * x - 100) ** 2
        + 0.9 * torch.exp(-(((x + 5) / 2) ** 2))
        + torch.exp(-(((x - BUMP_AT) / BUMP_W) ** 2))
    )


def _dense_max(fn, lo: float, hi: float, n: int = 20_001) -> float:
    """Max on a grid, then polished by a bounded scalar search around the best point."""
    from scipy.optimize import minimize_scalar

    xs = torch.linspace(lo, hi, n, dtype=DT)
    vals = fn(xs)
    k = int(vals.argmax())
    a, b = float(xs[max(k - 1, 0)]), float(xs[min(k + 1, n - 1)])
    r = minimize_scalar(
        lambda v: -float(fn(torch.tensor([v], dtype=DT))[0]), bounds=(a, b),
        method="bounded", options={"xatol": 1e-12},
    )
    return max(float(vals.max()), -float(r.fun))


def test_uniform_samples_miss_the_narrow_bump() -> None:
    xs = torch.linspace(-10, 10, 33, dtype=DT)
    assert float(f1(xs).max()) < _dense_max(f1, -10, 10) - 0.05


@pytest.mark.parametrize("method", ["linear", "neb"])
def test_narrow_maximum_1d(method: str) -> None:
    true = _dense_max(f1, -10, 10)
    obj = Objective(lambda t: f1(t[0]))
    a, b = torch.tensor([-10.0], dtype=DT), torch.tensor([10.0], dtype=DT)
    if method == "linear":
        r = linear_path(obj, a, b)
    else:
        r = neb_path(obj, a, b, NEBConfig(images=5, cycles=2, steps=40))
    # Every path from -10 to 10 crosses the bump: its maximum is the true one, and the
    # reported barrier is a sample (at most the maximum) with a certified margin.
    assert r.barrier <= true + 1e-9
    assert r.barrier + r.resolution >= true - 1e-9
    assert r.resolution <= 1e-3 * true


def h2(t: torch.Tensor) -> torch.Tensor:
    x, y = t[0], t[1]
    return f1(x) + y * y + 0.3 * y * torch.sin(x)


def test_narrow_maximum_2d_neb() -> None:
    # min over y of h2(x, y) is f1(x) - 0.0225 sin(x)^2; every path from x = -10 to
    # x = 10 crosses every x in between, so the minimax barrier is the max over x of it.
    def ridge(x: torch.Tensor) -> torch.Tensor:
        return f1(x) - 0.0225 * torch.sin(x) ** 2

    true = _dense_max(ridge, -10, 10)
    obj = Objective(h2)
    a = torch.tensor([-10.0, 0.5], dtype=DT)
    b = torch.tensor([10.0, -0.5], dtype=DT)
    r = neb_path(obj, a, b, NEBConfig(images=5, cycles=3, steps=60), seed=1)
    assert r.barrier + r.resolution >= true - 1e-9
    assert r.barrier <= true + 0.05  # and the path is a good one


def test_interval_bounds_cover_smooth_functions() -> None:
    """On sums of Gaussians sampled finer than their widths, every interval's bound is
    at least the dense maximum over the interval."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = torch.tensor(rng.uniform(0, 1, 4), dtype=DT)
        w = torch.tensor(rng.uniform(0.05, 0.2, 4), dtype=DT)
        amp = torch.tensor(rng.normal(size=4), dtype=DT)

        def fn(x: torch.Tensor, c=c, w=w, amp=amp) -> torch.Tensor:
            return (amp * torch.exp(-(((x.unsqueeze(-1) - c) / w) ** 2))).sum(-1)

        tg = torch.linspace(0, 1, 41, dtype=DT).requires_grad_(True)
        vals = fn(tg)
        (d,) = torch.autograd.grad(vals.sum(), tg)
        ts = tg.detach()
        u, _ = interval_bounds(ts, vals.detach(), d, d, 2.0)
        for k in range(40):
            dense = _dense_max(fn, float(ts[k]), float(ts[k + 1]), 2001)
            assert float(u[k]) >= dense - 1e-12


def test_certification_reaches_the_stated_resolution() -> None:
    obj = Objective(lambda t: f1(t[0]))
    a, b = torch.tensor([-10.0], dtype=DT), torch.tensor([10.0], dtype=DT)
    for res in (1e-2, 1e-5):
        (c,) = certify_profiles(
            obj, [LineCurve(a, b)], LinearConfig(resolution=res), like=a
        )
        assert c.resolution <= res * (1 + 1e-9) + 1e-12 * abs(c.barrier)
        assert c.barrier >= _dense_max(f1, -10, 10) - 1e-9
    assert math.isfinite(c.peak_t) and abs(c.peak_t * 20 - 10 - BUMP_AT) < 0.05
